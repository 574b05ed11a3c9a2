//! Results across server outages (tester findings 1, 6 and 10): a task that finishes while
//! the server is out of reach keeps its result past the lease (the lease stops running
//! tasks; a finished one has nothing to stop), names it at registration and sends it; a
//! result the server cannot store is sent again with a growing wait; a worker given a name
//! another live worker holds stops instead of retrying.

use std::time::{Duration, Instant};

use buildcat_proto::{
    FrameCodec, HelloReply, PROTOCOL_VERSION, Request, RequestError, SOFTWARE_VERSION, Welcome,
    WorkerInfo,
};
use buildcat_worker::WorkerError;
use futures_util::{SinkExt, StreamExt};

use crate::fake::{
    FakeServer, Link, QUIET_HEARTBEAT_MS, assignment, builder, output, start, temp_root, within,
};
use crate::tasks::{Gated, gated};

/// The fake server's grace in these tests, with heartbeats of [`HEARTBEAT_MS`]: a lease
/// of half a second.
const GRACE_MS: u64 = 1_000;

/// The heartbeat period announced.
const HEARTBEAT_MS: u64 = 200;

/// How long the server stays out of reach: past the worker's lease, and its grace.
const OUTAGE: Duration = Duration::from_millis(1_200);

/// Guards tester finding 1: the task ends while the worker waits for the server's welcome
/// (the server is out of reach), the outage outlasts the lease, and the result is kept,
/// named at registration and sent.
#[tokio::test]
async fn a_result_finished_during_an_outage_past_the_lease_is_kept_and_sent() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (mut gate, handler) = gated();
    let worker = start(builder(&server, &root).handler(handler));
    let connection = server.accept_with_grace(HEARTBEAT_MS, GRACE_MS).await;
    let job = assignment(&Gated {
        label: "kept".to_owned(),
    });
    let mut connection = connection;
    connection.assign(job.clone()).await;
    assert_eq!(gate.started().await, job.task);
    drop(connection);
    // The worker comes back; the server takes the connection but does not answer yet.
    let (_, link) = server.accept_hello().await;
    gate.open();
    // The outage itself, not a wait for anything: the lease runs out meanwhile.
    tokio::time::sleep(OUTAGE).await;
    let mut connection = FakeServer::welcome_with_grace(link, HEARTBEAT_MS, GRACE_MS).await;
    assert_eq!(
        connection.registration.running,
        [(job.task, job.attempt)],
        "the held result is named"
    );
    let (id, completion) = connection.expect_completion().await;
    assert_eq!(
        (completion.task, completion.attempt),
        (job.task, job.attempt)
    );
    assert_eq!(output::<Gated>(&completion), "kept done");
    connection.ack(id).await;
    assert_eq!(worker.stop().await.tasks_completed, 1);
}

/// Guards tester finding 6: a result the server cannot store is sent again on a new
/// connection, each try waiting longer than the one before (100 ms, then doubling), not
/// every 100 ms; once stored, the worker goes on.
#[tokio::test]
async fn a_refused_result_is_sent_again_with_a_growing_wait() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    let job = assignment(&WorkerInfo);
    connection.assign(job.clone()).await;
    let full = || Err(RequestError::Storage("database or disk is full".to_owned()));
    let mut waits = Vec::new();
    for _ in 0..4 {
        let (id, completion) = connection.expect_completion().await;
        assert_eq!(completion.task, job.task);
        connection.reply(id, full()).await;
        let refused = Instant::now();
        connection = server.accept(QUIET_HEARTBEAT_MS).await;
        waits.push(refused.elapsed());
    }
    let (id, completion) = connection.expect_completion().await;
    assert_eq!(completion.task, job.task);
    connection.ack(id).await;
    // Lower bounds only: the worker waits at least this long before each new try.
    for (index, wait) in waits.iter().enumerate() {
        let least = Duration::from_millis(100 << index);
        assert!(*wait >= least, "try {index} came after {wait:?}: {waits:?}");
    }
    assert_eq!(worker.stop().await.tasks_completed, 1);
}

/// Guards tester finding 10: a worker given its name whose registration is refused because
/// another live worker holds that name stops with an error that says so.
#[tokio::test]
async fn a_named_worker_whose_name_is_taken_stops() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let mut worker = start(builder(&server, &root));
    let (_, mut hello) = server.accept_hello().await;
    hello
        .send(HelloReply::Welcome(Welcome {
            protocol: PROTOCOL_VERSION,
            software: SOFTWARE_VERSION.to_owned(),
            max_frame: 16 << 20,
        }))
        .await
        .unwrap_or_else(|e| panic!("cannot welcome: {e}"));
    let mut link: Link = hello.map_codec(FrameCodec::retype);
    let frame = within("the registration", link.next())
        .await
        .unwrap_or_else(|| panic!("closed before registering"))
        .unwrap_or_else(|e| panic!("bad registration frame: {e}"));
    let Request::Register(registration) = frame.request else {
        panic!("expected a registration, got {:?}", frame.request);
    };
    let taken = RequestError::NameTaken {
        name: registration.name.clone(),
        holder: "pid 7 on render01".to_owned(),
    };
    link.send(buildcat_proto::ServerFrame::Reply {
        id: frame.id,
        reply: Err(taken.clone()),
    })
    .await
    .unwrap_or_else(|e| panic!("cannot refuse: {e}"));
    match worker.finished().await {
        Err(WorkerError::NameTaken { reason, .. }) => assert_eq!(reason, taken),
        other => panic!("expected the worker to stop for its taken name, got {other:?}"),
    }
}
