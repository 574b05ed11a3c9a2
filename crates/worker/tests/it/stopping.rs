//! Stopping a worker two ways (finish the running tasks, or kill them and report them as
//! interrupted), its lease on a task when the server stops answering, and a slot that never
//! runs two tasks at once (issue 9, items 3 and 12).

use buildcat_proto::{Outcome, Request, RunCommand, ServerFrame};

use crate::fake::{
    FakeServer, QUIET_HEARTBEAT_MS, assignment, builder, output, start_with_handle, temp_root,
    within,
};
use crate::tasks::{Gated, gated};
use crate::tree::{gone, pid};

/// A `RunCommand` of `sh -c script`.
fn sh(script: &str) -> RunCommand {
    RunCommand {
        program: "sh".to_owned(),
        args: vec!["-c".to_owned(), script.to_owned()],
    }
}

/// Prints the pid of a `sleep` in the job's tree, then loops forever.
const ENDLESS: &str = "sleep 1000 & echo $!; while :; do sleep 1; done";

/// Whether process `pid` exists (a zombie counts: it is gone for what matters, but exists).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 checks only that the process exists and may be signaled.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test]
async fn finish_lets_the_running_task_end_and_counts_it() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (mut gate, handler) = gated();
    let (mut worker, handle) = start_with_handle(builder(&server, &root).handler(handler));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    assert_eq!(handle.running_tasks(), 0);

    let job = assignment(&Gated {
        label: "frame 1".to_owned(),
    });
    connection.assign(job.clone()).await;
    gate.started().await;
    assert_eq!(handle.running_tasks(), 1);
    handle.finish();
    assert!(handle.is_stopping());
    gate.open();
    let (id, completion) = connection.expect_completion().await;
    assert_eq!(output::<Gated>(&completion), "frame 1 done");
    connection.ack(id).await;
    let stats = worker
        .finished()
        .await
        .unwrap_or_else(|e| panic!("the worker failed: {e}"));
    assert_eq!(stats.tasks_completed, 1);
    assert_eq!(handle.running_tasks(), 0);
}

#[tokio::test]
async fn stop_now_kills_the_task_tree_and_reports_it_interrupted() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (mut worker, handle) = start_with_handle(builder(&server, &root));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let job = assignment(&sh(ENDLESS));
    connection.assign(job.clone()).await;
    let sleeper = pid(&connection.expect_line(|_| true).await);
    assert_eq!(handle.running_tasks(), 1);
    // The first Ctrl-C, then the second.
    handle.finish();
    handle.stop_now();
    let (id, completion) = connection.expect_completion().await;
    assert_eq!(
        (completion.task, completion.attempt),
        (job.task, job.attempt)
    );
    assert_eq!(completion.outcome, Outcome::Interrupted);
    gone(sleeper).await;
    connection.ack(id).await;
    worker
        .finished()
        .await
        .unwrap_or_else(|e| panic!("the worker failed: {e}"));
    assert_eq!(handle.running_tasks(), 0);
}

#[tokio::test]
async fn stop_now_while_cut_off_kills_the_task_and_returns_without_the_server() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (mut worker, handle) = start_with_handle(builder(&server, &root));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    let job = assignment(&sh(ENDLESS));
    connection.assign(job).await;
    let sleeper = pid(&connection.expect_line(|_| true).await);
    // The server goes away for good.
    drop(connection);
    drop(server);
    handle.stop_now();
    gone(sleeper).await;
    worker
        .finished()
        .await
        .unwrap_or_else(|e| panic!("the worker failed: {e}"));
    assert_eq!(handle.running_tasks(), 0);
}

#[tokio::test]
async fn a_task_is_stopped_when_the_server_stops_answering_past_the_lease() {
    // A 1 s grace and 200 ms heartbeats: a lease of half a second.
    const HEARTBEAT_MS: u64 = 200;
    const GRACE_MS: u64 = 1_000;
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (worker, _handle) = start_with_handle(builder(&server, &root));
    let mut connection = server.accept_with_grace(HEARTBEAT_MS, GRACE_MS).await;
    let job = assignment(&sh(ENDLESS));
    connection.assign(job.clone()).await;
    let sleeper = pid(&connection.expect_line(|_| true).await);

    // Answered heartbeats renew the lease: ten of them span four leases.
    connection.expect_heartbeats(10).await;
    assert!(
        alive(sleeper),
        "the job was stopped on a healthy connection"
    );

    // The server stops answering (the frames still arrive: a one-way cut).
    gone(sleeper).await;

    // Back on a new connection, the attempt is neither named nor reported: the server hands
    // the job on, and this worker stays one that takes work (an `Interrupted` report would
    // tell the server it is stopping for good).
    drop(connection);
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    assert!(
        connection.registration.running.is_empty(),
        "{:?}",
        connection.registration.running
    );
    let next = assignment(&sh("echo next"));
    connection.assign(next.clone()).await;
    connection.expect_line(|line| line == "next").await;
    let (id, completion) = connection.expect_completion().await;
    assert_eq!(
        completion.task, next.task,
        "the next job's result, nothing else"
    );
    connection.ack(id).await;
    worker.stop().await;
}

#[tokio::test]
async fn an_assignment_while_a_task_runs_starts_only_after_that_task_has_stopped() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (worker, handle) = start_with_handle(builder(&server, &root));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    // The first job ignores SIGTERM, so only a kill stops it.
    let first = assignment(&sh(
        "trap '' TERM; sleep 1000 & echo $!; while :; do sleep 1; done",
    ));
    connection.assign(first.clone()).await;
    let sleeper = pid(&connection.expect_line(|_| true).await);

    // The server hands this slot another job (it gave the first away meanwhile).
    let marker = root.path().join("second-started");
    let second = assignment(&sh(&format!(
        "grep -q '^State:.*[RSD]' /proc/{sleeper}/status 2>/dev/null && echo overlap; \
         echo started > '{}'",
        marker.display()
    )));
    connection.assign(second.clone()).await;
    let report = connection.expect_report().await;
    let completion = report.completion();
    assert_eq!(
        completion.task, second.task,
        "the abandoned job was reported"
    );
    assert!(
        !report.lines().iter().any(|line| line == "overlap"),
        "the second job started while the first still ran: {:?}",
        report.lines()
    );
    assert!(matches!(completion.outcome, Outcome::Finished(_)));
    assert!(marker.exists());
    gone(sleeper).await;
    assert_eq!(handle.running_tasks(), 0);
    worker.stop().await;
}

#[tokio::test]
async fn a_cancel_after_reregistering_stops_the_task_before_the_next_starts() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (worker, _handle) = start_with_handle(builder(&server, &root));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    let job = assignment(&sh(ENDLESS));
    connection.assign(job.clone()).await;
    let sleeper = pid(&connection.expect_line(|_| true).await);
    drop(connection);

    // Back, the worker names the job it runs; the server has given it away and says so.
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    assert_eq!(connection.registration.running, [(job.task, job.attempt)]);
    connection
        .send(ServerFrame::Cancel {
            task: job.task,
            attempt: job.attempt,
            reason: "handed to another worker".to_owned(),
        })
        .await;
    let (id, completion) = connection.expect_completion().await;
    assert_eq!(
        (completion.task, completion.outcome),
        (job.task, Outcome::Canceled)
    );
    gone(sleeper).await;
    connection.ack(id).await;
    // Nothing else is sent; the worker stops.
    let stopping = within("the worker to stop", async {
        let mut worker = worker;
        worker.shut_down();
        loop {
            match connection.next_frame().await {
                None => break,
                Some(frame) if frame.request == Request::Heartbeat => {}
                Some(frame) => panic!("unexpected request {:?}", frame.request),
            }
        }
        worker.finished().await
    });
    stopping
        .await
        .unwrap_or_else(|e| panic!("the worker failed: {e}"));
}

#[tokio::test]
async fn a_task_is_stopped_when_the_server_stays_unreachable_past_the_lease() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (mut worker, handle) = start_with_handle(builder(&server, &root));
    // A 1 s grace and 200 ms heartbeats: a lease of half a second.
    let mut connection = server.accept_with_grace(200, 1_000).await;
    connection.assign(assignment(&sh(ENDLESS))).await;
    let sleeper = pid(&connection.expect_line(|_| true).await);
    // The server is gone: every reconnect is refused.
    drop(connection);
    drop(server);
    gone(sleeper).await;
    assert_eq!(handle.running_tasks(), 0);
    handle.stop_now();
    worker
        .finished()
        .await
        .unwrap_or_else(|e| panic!("the worker failed: {e}"));
}
