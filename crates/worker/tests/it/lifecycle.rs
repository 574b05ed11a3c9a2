//! How `run` ends: the task limit, shutdown, and refusals that retrying cannot fix.

use buildcat_proto::{
    HandshakeError, HelloReply, Outcome, PROTOCOL_VERSION, SOFTWARE_VERSION, Welcome, WorkerInfo,
};
use buildcat_worker::WorkerError;
use futures_util::SinkExt;

use crate::fake::{
    FakeServer, QUIET_HEARTBEAT_MS, assignment, builder, output, start, temp_root, within,
};
use crate::tasks::{Gated, gated};

#[tokio::test]
async fn max_tasks_returns_after_that_many_completions() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let mut worker = start(builder(&server, &root).max_tasks(Some(2)));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    for _ in 0..2 {
        connection.assign(assignment(&WorkerInfo)).await;
        let (id, _) = connection.expect_completion().await;
        connection.ack(id).await;
    }
    let stats = worker
        .finished()
        .await
        .unwrap_or_else(|e| panic!("the worker failed: {e}"));
    assert_eq!(stats.tasks_completed, 2);
    connection.expect_closed().await;
}

#[tokio::test]
async fn a_task_past_the_limit_is_handed_back_as_interrupted() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let mut worker = start(builder(&server, &root).max_tasks(Some(1)));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    connection.assign(assignment(&WorkerInfo)).await;
    let (id, _) = connection.expect_completion().await;
    // The next job arrives before the first result is acknowledged: the worker must not run
    // it; it hands it back at once (interrupted: back to its queue without using an attempt,
    // rather than after the server's reconnect grace), and waits for both acknowledgements
    // before leaving.
    let declined = assignment(&WorkerInfo);
    connection.assign(declined.clone()).await;
    let (declined_id, completion) = connection.expect_completion().await;
    assert_eq!(
        (completion.task, completion.attempt, completion.outcome),
        (declined.task, declined.attempt, Outcome::Interrupted)
    );
    connection.ack(id).await;
    connection.ack(declined_id).await;
    connection.expect_closed().await;

    let stats = worker
        .finished()
        .await
        .unwrap_or_else(|e| panic!("the worker failed: {e}"));
    assert_eq!(stats.tasks_completed, 1);
}

#[tokio::test]
async fn max_tasks_across_loops_starts_no_task_past_the_limit() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (mut gate, handler) = gated();
    let mut worker = start(
        builder(&server, &root)
            .concurrency(2)
            .max_tasks(Some(1))
            .handler(handler),
    );
    let mut first = server.accept(QUIET_HEARTBEAT_MS).await;
    let mut second = server.accept(QUIET_HEARTBEAT_MS).await;

    let job = assignment(&Gated {
        label: "only".to_owned(),
    });
    first.assign(job.clone()).await;
    assert_eq!(gate.started().await, job.task);
    // The limit is taken: the other loop declines by disconnecting.
    second.assign(assignment(&WorkerInfo)).await;
    second.expect_closed().await;

    gate.open();
    let (id, completion) = first.expect_completion().await;
    assert_eq!(output::<Gated>(&completion), "only done");
    first.ack(id).await;
    first.expect_closed().await;
    let stats = worker
        .finished()
        .await
        .unwrap_or_else(|e| panic!("the worker failed: {e}"));
    assert_eq!(stats.tasks_completed, 1);
}

#[tokio::test]
async fn shutdown_while_idle_returns_promptly() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    assert_eq!(worker.stop().await.tasks_completed, 0);
    connection.expect_closed().await;
}

#[tokio::test]
async fn shutdown_while_disconnected_and_idle_returns_promptly() {
    // Nothing listens here, so the worker is in its retry loop when told to stop.
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind: {e}"));
        listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .to_string()
    };
    let root = temp_root();
    let worker = start(
        buildcat_worker::Worker::builder()
            .server(address)
            .root(root.path()),
    );
    assert_eq!(worker.stop().await.tasks_completed, 0);
}

#[tokio::test]
async fn shutdown_while_running_finishes_and_reports_the_task_first() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (mut gate, handler) = gated();
    let mut worker = start(builder(&server, &root).handler(handler));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let job = assignment(&Gated {
        label: "last".to_owned(),
    });
    connection.assign(job.clone()).await;
    assert_eq!(gate.started().await, job.task);
    worker.shut_down();

    gate.open();
    let (id, completion) = connection.expect_completion().await;
    assert_eq!(completion.task, job.task);
    assert_eq!(output::<Gated>(&completion), "last done");
    connection.ack(id).await;
    connection.expect_closed().await;
    let stats = worker
        .finished()
        .await
        .unwrap_or_else(|e| panic!("the worker failed: {e}"));
    assert_eq!(stats.tasks_completed, 1);
}

#[tokio::test]
async fn a_protocol_mismatch_is_fatal() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let mut worker = start(builder(&server, &root));

    let (_, mut link) = server.accept_hello().await;
    let refusal = HandshakeError::ProtocolMismatch {
        server: PROTOCOL_VERSION + 1,
        server_software: "9.9.9".to_owned(),
        peer: PROTOCOL_VERSION,
        peer_software: SOFTWARE_VERSION.to_owned(),
    };
    within(
        "the refusal to be sent",
        link.send(HelloReply::Refused(refusal)),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    match worker.finished().await {
        Err(error @ WorkerError::Refused { .. }) => {
            let message = error.to_string();
            assert!(message.contains(&server.address()), "{message}");
            assert!(message.contains("9.9.9"), "{message}");
        }
        other => panic!("expected a fatal refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_welcome_in_another_protocol_version_is_fatal() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let mut worker = start(builder(&server, &root));

    let (_, mut link) = server.accept_hello().await;
    let welcome = HelloReply::Welcome(Welcome {
        protocol: PROTOCOL_VERSION + 1,
        software: "9.9.9".to_owned(),
        max_frame: 1 << 20,
    });
    within("the welcome to be sent", link.send(welcome))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    match worker.finished().await {
        Err(WorkerError::Refused { reason, .. }) => {
            assert!(matches!(reason, HandshakeError::ProtocolMismatch { .. }));
        }
        other => panic!("expected a fatal refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_busy_server_is_retried() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root));

    let (_, mut link) = server.accept_hello().await;
    let refusal = HelloReply::Refused(HandshakeError::TooManyConnections { limit: 1 });
    within("the refusal to be sent", link.send(refusal))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let connection = server.accept(QUIET_HEARTBEAT_MS).await;
    assert_eq!(connection.registration.name, "test-worker");
    worker.stop().await;
}
