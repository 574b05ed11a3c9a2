//! Losing the server: tasks keep running, results are reported on the next connection.

use buildcat_proto::{ServerFrame, WorkerInfo};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::fake::{
    FakeServer, LogLines, QUIET_HEARTBEAT_MS, assignment, builder, output, start, temp_root, within,
};
use crate::tasks::{Gated, gated};

#[tokio::test]
async fn a_task_survives_a_dropped_connection_and_is_reported_after_reconnecting() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (mut gate, handler) = gated();
    let worker = start(builder(&server, &root).handler(handler));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let job = assignment(&Gated {
        label: "ten-hour render".to_owned(),
    });
    connection.assign(job.clone()).await;
    assert_eq!(gate.started().await, job.task);
    drop(connection);

    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    assert_eq!(connection.registration.running, [(job.task, job.attempt)]);
    gate.open();
    let (id, completion) = connection.expect_completion().await;
    assert_eq!(
        (completion.task, completion.attempt),
        (job.task, job.attempt)
    );
    assert_eq!(output::<Gated>(&completion), "ten-hour render done");
    connection.ack(id).await;

    assert_eq!(worker.stop().await.tasks_completed, 1);
}

#[tokio::test]
async fn a_closing_server_is_reconnected_to() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    connection
        .send(ServerFrame::Closing("restarting".to_owned()))
        .await;
    connection.expect_closed().await;

    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    assert!(connection.registration.running.is_empty());
    connection.assign(assignment(&WorkerInfo)).await;
    let (id, _) = connection.expect_completion().await;
    connection.ack(id).await;
    assert_eq!(worker.stop().await.tasks_completed, 1);
}

#[tokio::test]
async fn an_unacknowledged_result_is_sent_again_after_reconnecting() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let job = assignment(&WorkerInfo);
    connection.assign(job.clone()).await;
    let (_, first) = connection.expect_completion().await;
    // The connection drops before the result is acknowledged.
    drop(connection);

    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    assert_eq!(connection.registration.running, [(job.task, job.attempt)]);
    let (id, again) = connection.expect_completion().await;
    assert_eq!(again, first);
    connection.ack(id).await;

    assert_eq!(worker.stop().await.tasks_completed, 1);
}

#[tokio::test]
async fn a_worker_started_before_the_server_connects_once_it_appears() {
    let (lines, mut logged) = mpsc::unbounded_channel();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(LogLines(lines))
        .with_ansi(false)
        .finish();
    // This test's runtime is single-threaded, so the worker logs on this thread.
    let _logging = tracing::subscriber::set_default(subscriber);

    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind: {e}"));
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    };
    let root = temp_root();
    let worker = start(
        buildcat_worker::Worker::builder()
            .server(address.to_string())
            .root(root.path())
            .name("early-bird")
            // No tools: a worker asks each found tool its version before it first connects,
            // and a real Blender on a busy machine could outlast the wait below.
            .detect_tools(false),
    );

    // Wait until the worker has tried and failed to reach the absent server.
    let address_text = address.to_string();
    within("the worker to report the server unreachable", async {
        while let Some(line) = logged.recv().await {
            if line.contains("cannot reach the buildcat server") && line.contains(&address_text) {
                return;
            }
        }
        panic!("the log channel closed");
    })
    .await;

    let listener = TcpListener::bind(address)
        .await
        .unwrap_or_else(|e| panic!("cannot bind {address} again: {e}"));
    let server = FakeServer::on(listener);
    let connection = server.accept(QUIET_HEARTBEAT_MS).await;
    assert_eq!(connection.registration.name, "early-bird");
    worker.stop().await;
}

#[tokio::test]
async fn the_running_task_is_named_first_then_unacknowledged_results() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (mut gate, handler) = gated();
    let worker = start(builder(&server, &root).handler(handler));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let reported = assignment(&Gated {
        label: "first".to_owned(),
    });
    connection.assign(reported.clone()).await;
    assert_eq!(gate.started().await, reported.task);
    gate.open();
    let (_, first_result) = connection.expect_completion().await;
    // The next job arrives before the first result is acknowledged, then the line drops.
    let running = assignment(&Gated {
        label: "second".to_owned(),
    });
    connection.assign(running.clone()).await;
    assert_eq!(gate.started().await, running.task);
    drop(connection);

    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    // The server takes the first job it can reclaim as the one the worker is busy with.
    assert_eq!(
        connection.registration.running,
        [
            (running.task, running.attempt),
            (reported.task, reported.attempt)
        ]
    );
    let (id, again) = connection.expect_completion().await;
    assert_eq!(again, first_result);
    connection.ack(id).await;
    gate.open();
    let (id, completion) = connection.expect_completion().await;
    assert_eq!(completion.task, running.task);
    assert_eq!(output::<Gated>(&completion), "second done");
    connection.ack(id).await;

    assert_eq!(worker.stop().await.tasks_completed, 2);
}

#[tokio::test]
async fn a_running_task_the_server_did_not_keep_is_abandoned_for_the_next() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (mut gate, handler) = gated();
    let worker = start(builder(&server, &root).handler(handler));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let lost = assignment(&Gated {
        label: "lost".to_owned(),
    });
    connection.assign(lost.clone()).await;
    assert_eq!(gate.started().await, lost.task);
    drop(connection);

    // The server gave the job to someone else meanwhile, so it counts this worker as idle.
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    assert_eq!(connection.registration.running, [(lost.task, lost.attempt)]);
    let next = assignment(&WorkerInfo);
    connection.assign(next.clone()).await;
    let (id, completion) = connection.expect_completion().await;
    assert_eq!(completion.task, next.task);
    connection.ack(id).await;

    assert_eq!(worker.stop().await.tasks_completed, 1);
}
