//! Heartbeats at the period the server announces.

use tokio::time::Instant;

use crate::fake::{FakeServer, assignment, builder, output, start, temp_root};
use crate::tasks::{Gated, gated};

#[tokio::test]
async fn heartbeats_arrive_at_the_announced_interval() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root));
    let mut connection = server.accept(50).await;
    let registered = Instant::now();

    connection.expect_heartbeats(2).await;
    // Two periods cannot have passed sooner than this (the worker's clock starts later).
    assert!(
        registered.elapsed().as_millis() >= 100,
        "{:?}",
        registered.elapsed()
    );
    worker.stop().await;
}

#[tokio::test]
async fn heartbeats_continue_while_a_task_runs() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (mut gate, handler) = gated();
    let worker = start(builder(&server, &root).handler(handler));
    let mut connection = server.accept(50).await;

    let job = assignment(&Gated {
        label: "long render".to_owned(),
    });
    connection.assign(job.clone()).await;
    assert_eq!(gate.started().await, job.task);
    connection.expect_heartbeats(3).await;

    gate.open();
    let (id, completion) = connection.expect_completion().await;
    assert_eq!(output::<Gated>(&completion), "long render done");
    connection.ack(id).await;
    worker.stop().await;
}
