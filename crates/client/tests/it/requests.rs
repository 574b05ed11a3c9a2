//! Requests on one connection: matching replies to callers, refusals, and a connection
//! that ends while requests wait.

use buildcat_client::{
    Client, ClientError, ErrorKind, JobRef, NewJob, NewTask, RequestError, TaskId, TaskRef,
    TaskState,
};
use buildcat_proto::{
    Assignment, FarmInfo, JobEvent, JobOptions, LogPage, Reply, Request, ServerFrame,
};
use futures_util::future::join_all;
use tokio::sync::mpsc;

use crate::fake::FakeServer;
use crate::{job_id, job_status, within};

#[tokio::test]
async fn replies_out_of_order_reach_their_callers() {
    const COUNT: usize = 100;
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let mut asked = Vec::new();
        for _ in 0..COUNT {
            let frame = session.request().await;
            let Request::Job(JobRef::Id(id)) = frame.request else {
                panic!("expected a Job request by id, got {:?}", frame.request);
            };
            asked.push((frame.id, id));
        }
        for (request, job) in asked.into_iter().rev() {
            let record = job_status(job, 1, &[TaskState::Queued]);
            session.reply(request, Ok(Reply::Job(record))).await;
        }
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let ids: Vec<_> = (0..COUNT as u128).map(job_id).collect();
    let answers = within(join_all(ids.iter().map(|&id| client.job(id)))).await;
    for (id, answer) in ids.iter().zip(answers) {
        assert_eq!(answer.unwrap().job.id, *id);
    }
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_refused_request_says_why_and_keeps_the_connection() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let missing = JobRef::Number(99);
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        session
            .reply(frame.id, Err(RequestError::UnknownJob(missing)))
            .await;
        let frame = session.request().await;
        session
            .reply(frame.id, Ok(Reply::Info(FarmInfo::default())))
            .await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let error = within(client.job(missing)).await.unwrap_err();
    assert!(
        matches!(error, ClientError::RequestRefused(RequestError::UnknownJob(id)) if id == missing),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("the server refused the request: no job 99 (it may have been deleted"),
        "{error}"
    );
    within(client.info()).await.unwrap();
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_reply_of_the_wrong_kind_is_a_protocol_error() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        session.reply(frame.id, Ok(Reply::Ack)).await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let error = within(client.info()).await.unwrap_err();
    assert!(matches!(error, ClientError::Protocol(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the server broke the protocol: it answered a `Info` request with a `Ack` reply"
    );
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_server_that_hangs_up_fails_waiting_and_later_requests() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        assert!(matches!(frame.request, Request::Wait(_)));
        drop(session);
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let error = within(client.wait_job(job_id(1))).await.unwrap_err();
    assert!(
        matches!(error, ClientError::ConnectionLost { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "the connection to the buildcat server at {addr} was lost: "
        )),
        "{message}"
    );
    // Every later request fails the same way at once.
    let later = within(client.info()).await.unwrap_err();
    assert_eq!(later.to_string(), message);
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_closing_server_fails_waiting_requests_with_its_reason() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        session.request().await;
        session.request().await;
        session
            .send(ServerFrame::Closing(
                "the server is shutting down".to_owned(),
            ))
            .await;
        // The client hangs up after the Closing frame.
        assert_eq!(session.recv().await, None);
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let (first, second) =
        within(async { tokio::join!(client.info(), client.job(job_id(2))) }).await;
    for error in [first.unwrap_err(), second.unwrap_err()] {
        assert_eq!(
            error.to_string(),
            format!(
                "the connection to the buildcat server at {addr} was lost: the server closed \
                 it: the server is shutting down"
            )
        );
    }
    drop(client);
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_request_over_the_servers_frame_limit_fails_alone() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let mut session = server.accept().await.welcome_with_limit(1024).await;
        // The oversized submit never arrives; the next request does.
        let frame = session.request().await;
        assert_eq!(frame.request, Request::Info);
        session
            .reply(frame.id, Ok(Reply::Info(FarmInfo::default())))
            .await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let job = NewJob {
        queue: "default".to_owned(),
        kind: "studio.big".to_owned(),
        name: String::new(),
        submitter: String::new(),
        runs: String::new(),
        options: JobOptions::default(),
        tasks: vec![NewTask {
            frames: None,
            args: vec![0; 4096],
        }],
    };
    let error = within(client.submit_jobs(vec![job])).await.unwrap_err();
    assert!(matches!(error, ClientError::Encode(_)), "{error:?}");
    assert!(
        error.to_string().contains("over the limit of 1024 bytes"),
        "{error}"
    );
    within(client.info()).await.unwrap();
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_reply_nobody_waits_for_is_dropped() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let (asked_tx, asked_rx) = tokio::sync::oneshot::channel();
    let (abandoned_tx, abandoned_rx) = tokio::sync::oneshot::channel::<()>();
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        asked_tx.send(()).unwrap();
        abandoned_rx.await.unwrap();
        let late = job_status(job_id(3), 3, &[TaskState::Finished]);
        session.reply(frame.id, Ok(Reply::Ended(late))).await;
        let frame = session.request().await;
        session
            .reply(frame.id, Ok(Reply::Info(FarmInfo::default())))
            .await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.wait_job(job_id(3)).await }
    });
    within(asked_rx).await.unwrap();
    waiting.abort();
    assert!(within(waiting).await.unwrap_err().is_cancelled());
    abandoned_tx.send(()).unwrap();
    within(client.info()).await.unwrap();
    within(script).await.unwrap();
}

#[tokio::test]
async fn ten_thousand_requests_in_flight_share_one_connection() {
    const COUNT: usize = 10_000;
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        for _ in 0..COUNT {
            let frame = session.request().await;
            let Request::Job(JobRef::Id(id)) = frame.request else {
                panic!("expected a Job request by id, got {:?}", frame.request);
            };
            let record = job_status(id, 1, &[TaskState::Queued]);
            session.reply(frame.id, Ok(Reply::Job(record))).await;
        }
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let ids: Vec<_> = (0..COUNT as u128).map(job_id).collect();
    let answers = within(join_all(ids.iter().map(|&id| client.job(id)))).await;
    for (id, answer) in ids.iter().zip(answers) {
        assert_eq!(answer.unwrap().job.id, *id);
    }
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_frame_that_came_with_the_welcome_is_read_at_once() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let peer = server.accept().await;
        let closing = ServerFrame::Closing("the server is shutting down".to_owned());
        peer.welcome_together_with(closing).await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    // The server sends nothing more and keeps the socket open: the Closing frame must be
    // decoded from what the handshake already read, or this would hang.
    let error = within(client.info()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("the server closed it: the server is shutting down"),
        "{error}"
    );
    drop(client);
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_job_assignment_sent_to_a_client_is_ignored() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        session
            .send(ServerFrame::Assign(Assignment {
                task: TaskId::new(job_id(4), 0),
                number: 4,
                name: "worker-info".to_owned(),
                frames: None,
                attempt: 1,
                queue: "default".to_owned(),
                kind: "buildcat.worker.info".to_owned(),
                args: Vec::new(),
                timeout_ms: None,
            }))
            .await;
        session
            .reply(frame.id, Ok(Reply::Info(FarmInfo::default())))
            .await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    assert_eq!(within(client.info()).await.unwrap(), FarmInfo::default());
    within(script).await.unwrap();
}

/// Guards the bound on a streaming request's events (structure review R9): a consumer that
/// does not keep up gets the events that fit and then a `Lagged` end, instead of the
/// client buffering without limit; the connection stays usable.
#[tokio::test]
async fn a_follower_that_does_not_keep_up_is_ended_as_lagged() {
    const CAPACITY: usize = 2;
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let task = TaskId::new(job_id(1), 2);
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        let asked = Request::Logs {
            task: TaskRef::from(task),
            from: 0,
            follow: true,
        };
        assert_eq!(frame.request, asked);
        for number in 0..=CAPACITY {
            let event = JobEvent::Log {
                task,
                page: LogPage {
                    lines: vec![format!("line {number}")],
                    ..LogPage::default()
                },
            };
            session
                .send(ServerFrame::Event {
                    id: frame.id,
                    event,
                })
                .await;
        }
        let asked = session.request().await;
        assert_eq!(asked.request, Request::Info);
        session
            .reply(asked.id, Ok(Reply::Info(FarmInfo::default())))
            .await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let (events, mut received) = mpsc::channel(CAPACITY);
    // Nothing reads `received` while following.
    let error = within(client.follow_logs(task, 0, events))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Lagged { capacity: CAPACITY }),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Lagged);
    for number in 0..CAPACITY {
        let Some(JobEvent::Log { page, .. }) = received.recv().await else {
            panic!("expected the log event that fit");
        };
        assert_eq!(page.lines, [format!("line {number}")]);
    }
    assert_eq!(within(client.info()).await.unwrap(), FarmInfo::default());
    within(script).await.unwrap();
}
