//! Running assigned tasks and reporting how they ended.

use std::time::Duration;

use buildcat_proto::{RequestError, SOFTWARE_VERSION, Task, WorkerInfo};

use crate::fake::{
    FakeServer, QUIET_HEARTBEAT_MS, assignment, builder, failure_reason, output, start, temp_root,
};
use crate::tasks::{Gated, Greet, gated, greet};

#[tokio::test]
async fn worker_info_reports_this_process() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let job = assignment(&WorkerInfo);
    connection.assign(job.clone()).await;
    let (id, completion) = connection.expect_completion().await;
    assert_eq!(
        (completion.task, completion.attempt),
        (job.task, job.attempt)
    );
    let report = output::<WorkerInfo>(&completion);
    connection.ack(id).await;

    let canonical = std::fs::canonicalize(root.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.worker.root, canonical.to_string_lossy());
    assert_eq!(report.worker.pid, std::process::id());
    assert_eq!(report.worker.name, "test-worker");
    assert_eq!(report.worker.version, SOFTWARE_VERSION);
    assert!(!report.os.host.is_empty());
    assert!(
        report.rust.version.starts_with("rustc "),
        "{:?}",
        report.rust
    );

    assert_eq!(worker.stop().await.tasks_completed, 1);
}

#[tokio::test]
async fn unknown_kind_fails_naming_the_kind() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root).handler(greet));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let mut job = assignment(&WorkerInfo);
    job.kind = "studio.mystery".to_owned();
    connection.assign(job.clone()).await;
    let (id, completion) = connection.expect_completion().await;
    connection.ack(id).await;

    assert_eq!(completion.task, job.task);
    assert_eq!(
        failure_reason(&completion),
        "this worker has no handler for job kind `studio.mystery` \
         (it handles: buildcat.command.run, buildcat.command.run_in, buildcat.worker.info, test.greet)"
    );
    worker.stop().await;
}

#[tokio::test]
async fn custom_task_gets_typed_args_and_context_and_returns_its_output() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root).handler(greet));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let mut job = assignment(&Greet {
        name: "houdini".to_owned(),
        times: 2,
    });
    job.attempt = 3;
    job.queue = "urgent".to_owned();
    connection.assign(job.clone()).await;
    let (id, completion) = connection.expect_completion().await;
    connection.ack(id).await;

    let greeting = output::<Greet>(&completion);
    assert_eq!(greeting.lines, ["hello houdini", "hello houdini"]);
    assert_eq!((greeting.task, greeting.attempt), (job.task, 3));
    // People's name for the task: its job's number and its index.
    assert_eq!(greeting.label, format!("{}.2", job.number));
    assert_eq!(greeting.label, job.label());
    assert_eq!(greeting.job_name, job.name);
    assert_eq!(completion.attempt, 3);
    assert_eq!(greeting.queue, "urgent");
    assert_eq!(greeting.worker, "test-worker");
    let canonical = std::fs::canonicalize(root.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(greeting.root, canonical.to_string_lossy());
    worker.stop().await;
}

#[tokio::test]
async fn undecodable_args_fail_saying_so() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root).handler(greet));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let mut job = assignment(&WorkerInfo);
    job.kind = Greet::KIND.to_owned();
    job.args = vec![0xff, 0xff, 0xff];
    connection.assign(job).await;
    let (id, completion) = connection.expect_completion().await;
    connection.ack(id).await;

    let reason = failure_reason(&completion);
    assert!(reason.contains("do not decode"), "{reason}");
    assert!(reason.contains(Greet::KIND), "{reason}");
    worker.stop().await;
}

#[tokio::test]
async fn a_handler_that_ignores_its_deadline_is_abandoned_after_the_backstop() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (_gate, handler) = gated();
    let worker = start(
        builder(&server, &root)
            .kill_grace(Duration::from_millis(100))
            .handler(handler),
    );
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let mut job = assignment(&Gated {
        label: "never opened".to_owned(),
    });
    job.timeout_ms = Some(50);
    connection.assign(job).await;
    let (id, completion) = connection.expect_completion().await;
    connection.ack(id).await;

    let reason = failure_reason(&completion);
    assert!(reason.contains("timed out after 50ms"), "{reason}");
    assert!(reason.contains("did not stop at the deadline"), "{reason}");
    worker.stop().await;
}

#[tokio::test]
async fn the_next_task_may_arrive_before_the_ack_and_a_stale_result_is_dropped() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root).handler(greet));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let first = assignment(&WorkerInfo);
    connection.assign(first.clone()).await;
    let (first_id, completion) = connection.expect_completion().await;
    assert_eq!(completion.task, first.task);

    // The server pushes the next job before acknowledging the first result.
    let second = assignment(&Greet {
        name: "modo".to_owned(),
        times: 1,
    });
    connection.assign(second.clone()).await;
    let (second_id, completion) = connection.expect_completion().await;
    assert_eq!(completion.task, second.task);
    assert_eq!(output::<Greet>(&completion).lines, ["hello modo"]);

    // Replies arrive out of order; the first is refused as stale.
    connection.ack(second_id).await;
    connection
        .reply(
            first_id,
            Err(RequestError::StaleAttempt {
                task: first.task,
                attempt: first.attempt,
            }),
        )
        .await;

    // The worker carries on.
    let third = assignment(&WorkerInfo);
    connection.assign(third.clone()).await;
    let (third_id, completion) = connection.expect_completion().await;
    assert_eq!(completion.task, third.task);
    connection.ack(third_id).await;

    assert_eq!(worker.stop().await.tasks_completed, 3);
}
