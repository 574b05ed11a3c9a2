//! Submitting tasks and waiting for their typed outputs.

use buildcat_client::{Client, ClientError, Failure, JobState, WorkerInfo, WorkerInfoReport};
use buildcat_proto::{FarmInfo, OsInfo, Reply, Request, RuntimeInfo, Task, WorkerDetails, codec};

use crate::fake::FakeServer;
use crate::{job_id, status, within};

/// A report such as a Linux worker would send.
fn report() -> WorkerInfoReport {
    WorkerInfoReport {
        os: OsInfo {
            host: "render01".to_owned(),
            machine: "x86_64".to_owned(),
            processor: "x86_64".to_owned(),
            release: "6.8.0".to_owned(),
            system: "Linux".to_owned(),
            version: "#1 SMP".to_owned(),
        },
        rust: RuntimeInfo {
            version: "1.95.0".to_owned(),
            target: "x86_64-unknown-linux-gnu".to_owned(),
        },
        worker: WorkerDetails {
            pid: 4242,
            root: "/mnt/projects".to_owned(),
            user: "render".to_owned(),
            version: "0.6.0".to_owned(),
            name: "render01.4242.1".to_owned(),
        },
    }
}

#[tokio::test]
async fn a_batch_is_one_submit_frame() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        let Request::Submit(jobs) = frame.request else {
            panic!("expected a Submit request, got {:?}", frame.request);
        };
        assert_eq!(jobs.len(), 3);
        for job in &jobs {
            assert_eq!(job.queue, "render");
            assert_eq!(job.kind, WorkerInfo::KIND);
            assert_eq!(job.args, codec::encode_value(&WorkerInfo).unwrap());
        }
        let ids = (1..=3).map(job_id).collect();
        session.reply(frame.id, Ok(Reply::Submitted(ids))).await;
        // The next frame is the next request, not more of the batch.
        let frame = session.request().await;
        assert_eq!(frame.request, Request::Info);
        session
            .reply(frame.id, Ok(Reply::Info(FarmInfo::default())))
            .await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let handles = within(client.submit_batch("render", [WorkerInfo; 3]))
        .await
        .unwrap();
    let ids: Vec<_> = handles.iter().map(|handle| handle.id()).collect();
    assert_eq!(ids, [job_id(1), job_id(2), job_id(3)]);
    within(client.info()).await.unwrap();
    within(script).await.unwrap();
}

#[tokio::test]
async fn an_empty_queue_name_is_refused_before_sending() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        assert_eq!(frame.request, Request::Info);
        session
            .reply(frame.id, Ok(Reply::Info(FarmInfo::default())))
            .await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let error = within(client.submit("", &WorkerInfo)).await.unwrap_err();
    assert!(matches!(error, ClientError::Invalid(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "invalid request: the queue name is empty; every job goes into a named queue, such as \
         `default`"
    );
    within(client.info()).await.unwrap();
    within(script).await.unwrap();
}

#[tokio::test]
async fn wait_decodes_the_typed_output() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let id = job_id(10);
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        assert!(matches!(frame.request, Request::Submit(ref jobs) if jobs.len() == 1));
        session
            .reply(frame.id, Ok(Reply::Submitted(vec![id])))
            .await;
        let frame = session.request().await;
        assert_eq!(frame.request, Request::Wait(id));
        let mut ended = status(id, JobState::Finished);
        ended.result = Some(codec::encode_value(&report()).unwrap());
        session.reply(frame.id, Ok(Reply::Ended(ended))).await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let handle = within(client.submit("default", &WorkerInfo)).await.unwrap();
    assert_eq!(handle.id(), id);
    assert_eq!(within(handle.wait()).await.unwrap(), report());
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_failed_job_gives_its_reason() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let id = job_id(11);
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        let mut ended = status(id, JobState::Failed);
        ended.failure = Some(Failure::new("hython exited with code 3"));
        session.reply(frame.id, Ok(Reply::Ended(ended))).await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let error = within(client.handle::<WorkerInfo>(id).wait())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::JobFailed { id: failed, failure: Some(_) } if *failed == id),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("job {id} failed: hython exited with code 3")
    );
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_canceled_job_says_so() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let id = job_id(12);
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        session
            .reply(frame.id, Ok(Reply::Ended(status(id, JobState::Canceled))))
            .await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let error = within(client.handle::<WorkerInfo>(id).wait())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::JobCanceled { .. }),
        "{error:?}"
    );
    assert_eq!(error.to_string(), format!("job {id} was canceled"));
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_result_of_another_type_names_the_job_and_kind() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let id = job_id(13);
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        let mut ended = status(id, JobState::Finished);
        ended.result = Some(vec![0xff; 3]);
        session.reply(frame.id, Ok(Reply::Ended(ended))).await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let error = within(client.handle::<WorkerInfo>(id).wait())
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Decode { .. }), "{error:?}");
    assert!(
        error.to_string().starts_with(&format!(
            "could not decode the result of job {id} (kind buildcat.worker.info): "
        )),
        "{error}"
    );
    within(script).await.unwrap();
}

#[test]
fn handles_are_clone_and_debug_without_the_task_being_either() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Opaque;
    impl Task for Opaque {
        const KIND: &'static str = "test.opaque";
        type Output = ();
    }
    fn assert_traits<T: Clone + std::fmt::Debug + Send + Sync>() {}
    assert_traits::<buildcat_client::JobHandle<Opaque>>();
    assert_traits::<Client>();
}
