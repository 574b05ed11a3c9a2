//! Submitting tasks and waiting for their typed outputs.

use buildcat_client::{
    Change, Changed, Client, ClientError, Failure, JobId, JobRef, JobState, Requeue, Submitted,
    TaskId, TaskRef, TaskState, WorkerInfo, WorkerInfoReport, submitter,
};
use buildcat_proto::{
    FarmInfo, OsInfo, Reply, Request, RequestError, RuntimeInfo, Task, WorkerDetails, codec,
};

use crate::fake::{FakeServer, Session};
use crate::{job_id, job_status, task_status, within};

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
        gpus: Vec::new(),
    }
}

/// What the server acknowledges for job `id`, number `number`, of `tasks` tasks.
fn submitted(id: JobId, number: u64, tasks: u32) -> Submitted {
    Submitted { id, number, tasks }
}

/// Answers the next request, which must be a `Wait` for job `id`, with its final record.
async fn answer_wait(session: &mut Session, id: JobId, number: u64, tasks: &[TaskState]) {
    let frame = session.request().await;
    assert_eq!(frame.request, Request::Wait(JobRef::Id(id)));
    let ended = job_status(id, number, tasks);
    session.reply(frame.id, Ok(Reply::Ended(ended))).await;
}

/// Answers the next request, which must be a `Task` request for task `index` of job `id`,
/// with `record`.
async fn answer_task(
    session: &mut Session,
    id: JobId,
    index: u32,
    record: buildcat_client::TaskStatus,
) {
    let frame = session.request().await;
    assert_eq!(
        frame.request,
        Request::Task(TaskRef::from(TaskId::new(id, index)))
    );
    session.reply(frame.id, Ok(Reply::Task(record))).await;
}

#[tokio::test]
async fn a_batch_is_one_submit_frame_of_one_job_per_task() {
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
            assert_eq!(
                job.name, "",
                "the server names an unnamed job after its kind"
            );
            assert_eq!(job.submitter, submitter());
            assert_eq!(job.tasks.len(), 1);
            assert_eq!(job.tasks[0].args, codec::encode_value(&WorkerInfo).unwrap());
        }
        let acknowledged = (1..=3).map(|n| submitted(job_id(n), n as u64, 1)).collect();
        session
            .reply(frame.id, Ok(Reply::Submitted(acknowledged)))
            .await;
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
    let numbers: Vec<_> = handles.iter().map(|handle| handle.number()).collect();
    assert_eq!(numbers, [1, 2, 3]);
    within(client.info()).await.unwrap();
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_built_job_is_one_named_job_of_many_tasks_and_wait_all_gives_each_output() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let id = job_id(20);
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        let Request::Submit(jobs) = frame.request else {
            panic!("expected a Submit request, got {:?}", frame.request);
        };
        let [job] = jobs.as_slice() else {
            panic!("expected one job, got {}", jobs.len());
        };
        assert_eq!(job.name, "reports 1-3");
        assert_eq!(job.runs, "worker-info three times");
        assert_eq!(job.submitter, submitter());
        assert_eq!(job.options.priority, 5);
        let frames: Vec<_> = job.tasks.iter().map(|task| task.frames.clone()).collect();
        assert_eq!(
            frames,
            [
                Some("1".to_owned()),
                Some("2".to_owned()),
                Some("3".to_owned())
            ]
        );
        session
            .reply(frame.id, Ok(Reply::Submitted(vec![submitted(id, 7, 3)])))
            .await;
        let states = [TaskState::Finished, TaskState::Failed, TaskState::Finished];
        answer_wait(&mut session, id, 7, &states).await;
        // The three task requests come together; answer them in the order they came.
        let mut asked = Vec::new();
        for _ in 0..3 {
            let frame = session.request().await;
            let Request::Task(task) = frame.request else {
                panic!("expected a Task request, got {:?}", frame.request);
            };
            assert_eq!(task.job, JobRef::Id(id));
            asked.push((frame.id, task.index.expect("a task index")));
        }
        for (request, index) in asked {
            let mut record = task_status(id, 7, index, states[index as usize]);
            if record.state == TaskState::Finished {
                record.result = Some(codec::encode_value(&report()).unwrap());
            } else {
                record.failure = Some(Failure::new("no worker root"));
            }
            session.reply(request, Ok(Reply::Task(record))).await;
        }
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let options = buildcat_client::JobOptions {
        priority: 5,
        ..Default::default()
    };
    let handle = within(
        client
            .new_job::<WorkerInfo>("default")
            .name("reports 1-3")
            .runs("worker-info three times")
            .options(options)
            .task(Some("1"), &WorkerInfo)
            .task(Some("2"), &WorkerInfo)
            .task(Some("3"), &WorkerInfo)
            .submit(),
    )
    .await
    .unwrap();
    assert_eq!((handle.id(), handle.number(), handle.tasks()), (id, 7, 3));
    let outputs = within(handle.wait_all()).await.unwrap();
    assert_eq!(outputs.len(), 3);
    assert_eq!(outputs[0].as_ref().unwrap(), &report());
    let failed = outputs[1].as_ref().unwrap_err();
    assert_eq!(failed.to_string(), "task 7.1 failed: no worker root");
    assert_eq!(outputs[2].as_ref().unwrap(), &report());
    within(script).await.unwrap();
}

#[tokio::test]
async fn an_empty_queue_name_or_a_job_without_tasks_is_refused_before_sending() {
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
    let error = within(
        client
            .new_job::<WorkerInfo>("default")
            .name("nothing")
            .submit(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid request: job `nothing` for queue `default` has no tasks; add at least one"
    );
    within(client.info()).await.unwrap();
    within(script).await.unwrap();
}

#[tokio::test]
async fn wait_decodes_the_typed_output_of_the_only_task() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let id = job_id(10);
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        assert!(matches!(frame.request, Request::Submit(ref jobs) if jobs.len() == 1));
        session
            .reply(frame.id, Ok(Reply::Submitted(vec![submitted(id, 10, 1)])))
            .await;
        answer_wait(&mut session, id, 10, &[TaskState::Finished]).await;
        let mut record = task_status(id, 10, 0, TaskState::Finished);
        record.result = Some(codec::encode_value(&report()).unwrap());
        answer_task(&mut session, id, 0, record).await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let handle = within(client.submit("default", &WorkerInfo)).await.unwrap();
    assert_eq!(handle.id(), id);
    assert_eq!(handle.number(), 10);
    assert_eq!(within(handle.wait()).await.unwrap(), report());
    within(script).await.unwrap();
}

#[tokio::test]
async fn wait_on_a_job_of_many_tasks_is_refused_at_once() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        // Nothing is asked of the server.
        assert!(session.recv().await.is_none());
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let handle = client.handle::<WorkerInfo>(submitted(job_id(21), 21, 4));
    let error = within(handle.wait()).await.unwrap_err();
    assert!(matches!(error, ClientError::Invalid(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "invalid request: job 21 has 4 tasks, so it has no single output; wait for each \
         task's with `wait_all`"
    );
    drop((handle, client));
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_failed_task_gives_its_reason() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let id = job_id(11);
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        answer_wait(&mut session, id, 11, &[TaskState::Failed]).await;
        let mut record = task_status(id, 11, 0, TaskState::Failed);
        record.failure = Some(Failure::new("hython exited with code 3"));
        answer_task(&mut session, id, 0, record).await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let error = within(client.handle::<WorkerInfo>(submitted(id, 11, 1)).wait())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::JobFailed { task, failure: Some(_) } if task == "11.0"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "task 11.0 failed: hython exited with code 3"
    );
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_canceled_task_says_so() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let id = job_id(12);
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        answer_wait(&mut session, id, 12, &[TaskState::Canceled]).await;
        answer_task(
            &mut session,
            id,
            0,
            task_status(id, 12, 0, TaskState::Canceled),
        )
        .await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let error = within(client.handle::<WorkerInfo>(submitted(id, 12, 1)).wait())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::JobCanceled { .. }),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "task 12.0 was canceled");
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_result_of_another_type_names_the_task_and_kind() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let id = job_id(13);
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        answer_wait(&mut session, id, 13, &[TaskState::Finished]).await;
        let mut record = task_status(id, 13, 0, TaskState::Finished);
        record.result = Some(vec![0xff; 3]);
        answer_task(&mut session, id, 0, record).await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let error = within(client.handle::<WorkerInfo>(submitted(id, 13, 1)).wait())
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Decode { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("could not decode the result of task 13.0 (kind buildcat.worker.info): "),
        "{error}"
    );
    within(script).await.unwrap();
}

#[tokio::test]
async fn jobs_and_tasks_are_named_as_typed_and_changes_come_back_per_target() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let id = job_id(42);
    let changed = Changed {
        job: id,
        number: 42,
        tasks: 1,
        state: JobState::Running,
    };
    let expected = changed.clone();
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        let targets = vec!["42.3".parse().unwrap(), "43".parse().unwrap()];
        assert_eq!(frame.request, Request::Cancel(targets.clone()));
        let changes = vec![
            Change {
                target: targets[0],
                result: Ok(changed.clone()),
            },
            Change {
                target: targets[1],
                result: Err(RequestError::UnknownJob(JobRef::Number(43))),
            },
        ];
        session.reply(frame.id, Ok(Reply::Changes(changes))).await;
        let frame = session.request().await;
        assert_eq!(
            frame.request,
            Request::SetPriority {
                job: JobRef::Number(42),
                priority: 10
            }
        );
        let change = Change {
            target: TaskRef::job(JobRef::Number(42)),
            result: Ok(changed),
        };
        session
            .reply(frame.id, Ok(Reply::Changes(vec![change])))
            .await;
        let frame = session.request().await;
        assert_eq!(
            frame.request,
            Request::PauseQueue {
                queue: "comp".to_owned(),
                paused: true
            }
        );
        session.reply(frame.id, Ok(Reply::Ack)).await;
        let frame = session.request().await;
        assert_eq!(
            frame.request,
            Request::Requeue(Requeue::Failed {
                queue: None,
                user: Some("render".to_owned())
            })
        );
        session
            .reply(frame.id, Ok(Reply::Changes(Vec::new())))
            .await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let targets = vec!["42.3".parse().unwrap(), "43".parse().unwrap()];
    let changes = within(client.cancel(targets)).await.unwrap();
    assert_eq!(changes[0].result, Ok(expected.clone()));
    assert!(changes[1].result.is_err());
    let priority = within(client.set_priority(JobRef::Number(42), 10))
        .await
        .unwrap();
    assert_eq!(priority, expected);
    within(client.pause_queue("comp", true)).await.unwrap();
    let requeued = within(client.requeue(Requeue::Failed {
        queue: None,
        user: Some("render".to_owned()),
    }))
    .await
    .unwrap();
    assert!(requeued.is_empty());
    within(script).await.unwrap();
}

#[tokio::test]
async fn a_record_of_another_job_is_a_protocol_error() {
    let server = FakeServer::bind().await;
    let addr = server.addr.clone();
    let script = tokio::spawn(async move {
        let mut session = server.session().await;
        let frame = session.request().await;
        assert_eq!(frame.request, Request::Job(JobRef::Number(5)));
        let other = job_status(job_id(6), 6, &[TaskState::Queued]);
        session.reply(frame.id, Ok(Reply::Job(other))).await;
    });
    let client = within(Client::connect(&addr)).await.unwrap();
    let error = within(client.job(JobRef::Number(5))).await.unwrap_err();
    assert!(matches!(error, ClientError::Protocol(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("asked about job 5, it answered with the record of job 6"),
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
