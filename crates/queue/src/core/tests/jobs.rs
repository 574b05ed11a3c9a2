//! Jobs made of tasks: what a person submits and steers (cancel, requeue, pause, priority,
//! delete, handles, dependencies) and what a worker runs (one task at a time).

use std::time::Duration;

use buildcat_proto::{
    Changed, Dependency, Failure, JobEvent, JobId, JobOptions, JobRef, JobState, Outcome, Reply,
    Request, RequestError, Requeue, ServerFrame, Submitted, TaskId, TaskRef, TaskState,
    WorkerActivity,
};

use super::{CLIENT, Farm, INFO, assignments, job, job_of, replies, stops, whole};
use crate::core::{ConnId, CoreConfig, Input};

/// Task `index` of the submitted job.
fn task(job: &Submitted, index: u32) -> TaskId {
    TaskId::new(job.id, index)
}

/// Submits one job of `tasks` tasks to `queue`.
fn submit_tasks(farm: &mut Farm, queue: &str, tasks: u32, options: JobOptions) -> Submitted {
    let (submitted, _) = farm.submit_jobs(vec![job_of(queue, INFO, options, tasks)]);
    submitted[0]
}

/// The only change of a reply, as done.
fn done(changes: &[buildcat_proto::Change]) -> Changed {
    match changes {
        [change] => change.result.clone().expect("the change was made"),
        other => panic!("expected one change, got {other:?}"),
    }
}

/// The only change of a reply, as refused.
fn refused(changes: &[buildcat_proto::Change]) -> RequestError {
    match changes {
        [change] => change.result.clone().expect_err("the change was refused"),
        other => panic!("expected one change, got {other:?}"),
    }
}

/// The changes a client was answered among `frames`.
fn changes_in(frames: &[(ConnId, ServerFrame)]) -> Vec<buildcat_proto::Change> {
    match replies(frames, CLIENT).as_slice() {
        [Ok(Reply::Changes(changes))] => changes.clone(),
        _ => panic!("expected the changes: {frames:?}"),
    }
}

/// Every event among `frames` sent for `request`.
fn events(frames: &[(ConnId, ServerFrame)], request: u64) -> Vec<JobEvent> {
    frames
        .iter()
        .filter_map(|(_, frame)| match frame {
            ServerFrame::Event { id, event } if *id == request => Some(event.clone()),
            _ => None,
        })
        .collect()
}

/// Runs task after task on worker `conn` until it is idle, finishing each; the tasks in the
/// order they came.
fn run_all(farm: &mut Farm, conn: ConnId, mut frames: Vec<(ConnId, ServerFrame)>) -> Vec<TaskId> {
    let mut ran = Vec::new();
    while let Some((_, task, attempt)) = assignments(&frames)
        .into_iter()
        .find(|(to, _, _)| *to == conn)
    {
        ran.push(task);
        frames = farm.complete(conn, task, attempt, Outcome::Finished(vec![]));
    }
    ran
}

#[test]
fn the_tasks_of_a_job_are_dispatched_in_index_order() {
    let mut farm = Farm::new();
    let job = submit_tasks(&mut farm, "default", 5, JobOptions::default());
    assert_eq!(job.tasks, 5);
    assert_eq!(job.number, 1);
    farm.worker(10, "w1", &["default"]);
    let frames = farm.worker(11, "w2", &["default"]);
    // Each worker slot takes one task: 0 and 1 run, the rest wait.
    assert_eq!(assignments(&frames), vec![(11, task(&job, 1), 1)]);
    assert_eq!(farm.state(task(&job, 0)), TaskState::Started);
    assert_eq!(farm.job_state(job.id), JobState::Running);
    let frames = farm.complete(11, task(&job, 1), 1, Outcome::Finished(vec![]));
    assert_eq!(assignments(&frames), vec![(11, task(&job, 2), 1)]);
    let frames = farm.complete(10, task(&job, 0), 1, Outcome::Finished(vec![]));
    assert_eq!(assignments(&frames), vec![(10, task(&job, 3), 1)]);
    // The assignment names the task as people do, with its frames.
    let frames = farm.complete(11, task(&job, 2), 1, Outcome::Finished(vec![]));
    let assignment = frames
        .iter()
        .find_map(|(_, frame)| match frame {
            ServerFrame::Assign(assignment) => Some(assignment.clone()),
            _ => None,
        })
        .expect("task 4 is assigned");
    assert_eq!(assignment.label(), "1.4");
    assert_eq!(assignment.frames.as_deref(), Some("5"));
    assert_eq!(
        assignment.name, INFO,
        "an unnamed job is named after its kind"
    );
}

#[test]
fn a_job_state_is_derived_from_its_tasks() {
    let mut farm = Farm::new();
    let options = JobOptions::default();
    let job = submit_tasks(&mut farm, "default", 3, options.clone());
    assert_eq!(farm.job_state(job.id), JobState::Queued);
    done(&farm.changes(Request::Pause(vec![job.id.into()])));
    assert_eq!(farm.job_state(job.id), JobState::Paused);
    assert_eq!(farm.shown(task(&job, 0)), TaskState::Paused);
    assert_eq!(
        farm.state(task(&job, 0)),
        TaskState::Queued,
        "kept as queued"
    );
    done(&farm.changes(Request::Resume(vec![job.id.into()])));
    assert_eq!(farm.job_state(job.id), JobState::Queued);
    farm.worker(10, "w1", &["default"]);
    assert_eq!(farm.job_state(job.id), JobState::Running);
    // Paused while a task runs: still running, the waiting tasks shown paused.
    done(&farm.changes(Request::Pause(vec![job.id.into()])));
    assert_eq!(farm.job_state(job.id), JobState::Running);
    assert_eq!(farm.shown(task(&job, 1)), TaskState::Paused);
    let frames = farm.complete(10, task(&job, 0), 1, Outcome::Finished(vec![]));
    assert!(assignments(&frames).is_empty());
    assert_eq!(farm.job_state(job.id), JobState::Paused);
    let frames = farm.request(CLIENT, Request::Resume(vec![job.id.into()]));
    let ran = run_all(&mut farm, 10, frames);
    assert_eq!(ran, vec![task(&job, 1), task(&job, 2)]);
    assert_eq!(farm.job_state(job.id), JobState::Finished);

    // Some failed and the rest ended: failed. Some canceled, none failed: canceled.
    let failing = submit_tasks(&mut farm, "default", 2, options.clone());
    farm.complete(
        10,
        task(&failing, 0),
        1,
        Outcome::Failed(Failure::new("boom")),
    );
    assert_eq!(
        farm.job_state(failing.id),
        JobState::Running,
        "task 1 is still to run"
    );
    farm.complete(10, task(&failing, 1), 1, Outcome::Finished(vec![]));
    assert_eq!(farm.job_state(failing.id), JobState::Failed);
    let canceled = submit_tasks(&mut farm, "default", 2, options);
    farm.complete(10, task(&canceled, 0), 1, Outcome::Finished(vec![]));
    done(&farm.changes(Request::Cancel(vec![task(&canceled, 1).into()])));
    assert_eq!(farm.job_state(canceled.id), JobState::Canceled);
    // The listing shows the same states and counts.
    let frames = farm.request(
        CLIENT,
        Request::Jobs(buildcat_proto::JobQuery {
            limit: 10,
            ..Default::default()
        }),
    );
    let Some(Ok(Reply::Jobs { jobs, more: false })) = replies(&frames, CLIENT).pop() else {
        panic!("expected a listing: {frames:?}");
    };
    let listed: Vec<(u64, JobState, u64, u64)> = jobs
        .iter()
        .map(|job| (job.number, job.state, job.tasks.finished, job.tasks.total))
        .collect();
    assert_eq!(
        listed,
        vec![
            (3, JobState::Canceled, 1, 2),
            (2, JobState::Failed, 1, 2),
            (1, JobState::Finished, 3, 3),
        ]
    );
}

#[test]
fn canceling_a_job_cancels_every_task_not_ended_and_stops_running_ones() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    farm.worker(11, "w2", &["default"]);
    let job = submit_tasks(&mut farm, "default", 4, JobOptions::default());
    farm.complete(10, task(&job, 0), 1, Outcome::Finished(vec![]));
    // Task 0 finished, 1 and 2 run, 3 waits.
    assert_eq!(farm.state(task(&job, 2)), TaskState::Started);
    let frames = farm.request(CLIENT, Request::Cancel(vec![job.id.into()]));
    let mut stopped = stops(&frames);
    stopped.sort();
    assert_eq!(
        stopped,
        vec![(10, task(&job, 2), 1), (11, task(&job, 1), 1)],
        "each running task's worker is told to stop it"
    );
    let changes = &changes_in(&frames);
    let changed = done(changes);
    assert_eq!((changed.tasks, changed.state), (3, JobState::Canceled));
    assert_eq!(changed.number, job.number);
    let states: Vec<TaskState> = (0..4).map(|i| farm.state(task(&job, i))).collect();
    assert_eq!(
        states,
        vec![
            TaskState::Finished,
            TaskState::Canceled,
            TaskState::Canceled,
            TaskState::Canceled
        ]
    );
    // The workers' reports of the stopped tasks change nothing; they are free again.
    farm.complete(10, task(&job, 2), 1, Outcome::Canceled);
    farm.complete(11, task(&job, 1), 1, Outcome::Canceled);
    assert_eq!(farm.state(task(&job, 1)), TaskState::Canceled);
    let (next, frames) = farm.submit_one("default", INFO);
    assert_eq!(assignments(&frames), vec![(10, next, 1)]);
    // Nothing left to cancel: refused with the job's state.
    let error = refused(&farm.changes(Request::Cancel(vec![job.id.into()])));
    assert!(
        matches!(&error, RequestError::WrongState { target, state, .. } if target == "job 1" && state == "canceled"),
        "{error:?}"
    );
}

#[test]
fn canceling_one_task_leaves_the_others_to_run() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let job = submit_tasks(&mut farm, "default", 3, JobOptions::default());
    // `1.0` is running, `1.2` waits: cancel both by their handles.
    let targets: Vec<TaskRef> = ["1.0", "1.2"]
        .iter()
        .map(|handle| handle.parse().expect("a task handle"))
        .collect();
    let frames = farm.request(CLIENT, Request::Cancel(targets));
    assert_eq!(stops(&frames), vec![(10, task(&job, 0), 1)]);
    let changes = &changes_in(&frames);
    assert_eq!(changes.len(), 2);
    assert!(
        changes
            .iter()
            .all(|change| matches!(change.result, Ok(Changed { tasks: 1, .. })))
    );
    assert_eq!(farm.job_state(job.id), JobState::Queued);
    let frames = farm.complete(10, task(&job, 0), 1, Outcome::Canceled);
    assert_eq!(assignments(&frames), vec![(10, task(&job, 1), 1)]);
    farm.complete(10, task(&job, 1), 1, Outcome::Finished(vec![]));
    assert_eq!(farm.job_state(job.id), JobState::Canceled);
    let status = farm.core.job_status(job.id).expect("the job");
    let shown: Vec<(TaskState, Option<String>)> = status
        .tasks
        .iter()
        .map(|task| (task.state, task.reason.clone()))
        .collect();
    assert_eq!(
        shown,
        vec![
            (TaskState::Canceled, Some("canceled".to_owned())),
            (TaskState::Finished, None),
            (TaskState::Canceled, Some("canceled".to_owned())),
        ]
    );
}

#[test]
fn requeue_runs_failed_and_canceled_tasks_again_and_all_finished_ones_too() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let job = submit_tasks(&mut farm, "default", 4, JobOptions::default());
    let fail = Outcome::Failed(Failure::new("licence"));
    farm.complete(10, task(&job, 0), 1, Outcome::Finished(vec![]));
    farm.complete(10, task(&job, 1), 1, fail);
    done(&farm.changes(Request::Cancel(vec![task(&job, 3).into()])));
    // Task 2 runs; 0 finished, 1 failed, 3 canceled.
    assert_eq!(farm.state(task(&job, 2)), TaskState::Started);
    let frames = farm.request(
        CLIENT,
        Request::Requeue(Requeue::Tasks {
            targets: vec![job.id.into()],
            all: false,
        }),
    );
    let changes = &changes_in(&frames);
    assert_eq!(done(changes).tasks, 2, "the failed and the canceled task");
    assert!(stops(&frames).is_empty(), "the running task is left alone");
    assert_eq!(farm.state(task(&job, 0)), TaskState::Finished);
    assert_eq!(farm.state(task(&job, 1)), TaskState::Queued);
    assert_eq!(farm.state(task(&job, 3)), TaskState::Queued);
    assert_eq!(farm.task(task(&job, 1)).max_attempts, 2, "one attempt more");
    let frames = farm.complete(10, task(&job, 2), 1, Outcome::Finished(vec![]));
    let ran = run_all(&mut farm, 10, frames);
    assert_eq!(ran, vec![task(&job, 1), task(&job, 3)]);
    assert_eq!(farm.job_state(job.id), JobState::Finished);
    // Nothing failed or canceled: refused, with a hint at `--all`.
    let again = |all| {
        Request::Requeue(Requeue::Tasks {
            targets: vec![job.id.into()],
            all,
        })
    };
    let error = refused(&farm.changes(again(false)));
    assert!(
        matches!(&error, RequestError::WrongState { what, .. } if what.contains("--all")),
        "{error:?}"
    );
    // `all`: every finished task again, the job's end undone until they finish.
    let frames = farm.request(CLIENT, again(true));
    let changes = &changes_in(&frames);
    let changed = done(changes);
    assert_eq!((changed.tasks, changed.state), (4, JobState::Running));
    assert_eq!(farm.core.jobs[&job.id].ended_at, None);
    let ran = run_all(&mut farm, 10, frames);
    assert_eq!(ran, (0..4).map(|i| task(&job, i)).collect::<Vec<_>>());
    let attempts: Vec<u32> = (0..4)
        .map(|i| farm.task(task(&job, i)).current_attempt())
        .collect();
    // Task 3 was canceled before it ever started.
    assert_eq!(attempts, vec![2, 3, 2, 2]);
    // One task by its handle.
    let error = refused(&farm.changes(Request::Requeue(Requeue::Tasks {
        targets: vec![task(&job, 2).into()],
        all: false,
    })));
    assert!(
        matches!(&error, RequestError::WrongState { target, state, .. } if target == "task 1.2" && state == "finished"),
        "{error:?}"
    );
}

#[test]
fn requeue_failed_touches_only_one_submitters_jobs() {
    let mut farm = Farm::new();
    let submit_as = |farm: &mut Farm, submitter: &str, queue: &str| {
        let mut new = job(queue, INFO, JobOptions::default());
        new.submitter = submitter.to_owned();
        let (submitted, _) = farm.submit_jobs(vec![new]);
        TaskId::new(submitted[0].id, 0)
    };
    let ana_here = submit_as(&mut farm, "ana@render01", "default");
    let ana_there = submit_as(&mut farm, "ana@laptop", "default");
    let ana_other_queue = submit_as(&mut farm, "ana@render01", "other");
    let bob = submit_as(&mut farm, "bob@render01", "default");
    let anabel = submit_as(&mut farm, "anabel@render01", "default");
    let all = [ana_here, ana_there, ana_other_queue, bob, anabel];
    let mut frames = farm.worker(10, "w1", &["default", "other"]);
    while let Some((_, id, attempt)) = assignments(&frames).pop() {
        frames = farm.complete(10, id, attempt, Outcome::Failed(Failure::new("no")));
    }
    assert!(all.iter().all(|id| farm.state(*id) == TaskState::Failed));
    let requeued = |farm: &mut Farm, queue: Option<&str>, user: &str| -> Vec<JobId> {
        let changes = farm.changes(Request::Requeue(Requeue::Failed {
            queue: queue.map(str::to_owned),
            user: Some(user.to_owned()),
        }));
        changes
            .iter()
            .map(|change| change.result.clone().expect("requeued").job)
            .collect()
    };
    // `user@host`: that user on that host, in one queue.
    assert_eq!(
        requeued(&mut farm, Some("default"), "ana@render01"),
        vec![ana_here.job]
    );
    // `user`: that user on any host (not a user whose name starts the same).
    assert_eq!(
        requeued(&mut farm, None, "ana"),
        vec![ana_there.job, ana_other_queue.job]
    );
    assert_eq!(farm.state(bob), TaskState::Failed);
    assert_eq!(farm.state(anabel), TaskState::Failed);
    assert!(requeued(&mut farm, None, "carol").is_empty());
    // Listings take the same forms.
    let listed = |farm: &mut Farm, user: &str| -> Vec<JobId> {
        let query = buildcat_proto::JobQuery {
            user: Some(user.to_owned()),
            limit: 10,
            ..Default::default()
        };
        let frames = farm.request(CLIENT, Request::Jobs(query));
        match replies(&frames, CLIENT).pop() {
            Some(Ok(Reply::Jobs { jobs, .. })) => jobs.iter().map(|job| job.id).collect(),
            other => panic!("expected a listing, got {other:?}"),
        }
    };
    assert_eq!(
        listed(&mut farm, "ana"),
        vec![ana_other_queue.job, ana_there.job, ana_here.job]
    );
    assert_eq!(listed(&mut farm, "ana@laptop"), vec![ana_there.job]);
    assert_eq!(listed(&mut farm, "anabel"), vec![anabel.job]);
}

#[test]
fn a_paused_job_holds_its_queued_tasks_while_a_running_one_finishes() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let paused = submit_tasks(&mut farm, "default", 3, JobOptions::default());
    let changed = done(&farm.changes(Request::Pause(vec![JobRef::Number(paused.number)])));
    assert_eq!(changed.tasks, 2, "the two queued tasks are held");
    assert_eq!(changed.state, JobState::Running);
    let other = submit_tasks(&mut farm, "default", 1, JobOptions::default());
    // The running task finishes; the worker takes the next job's task, not the held ones.
    let frames = farm.complete(10, task(&paused, 0), 1, Outcome::Finished(vec![]));
    assert_eq!(assignments(&frames), vec![(10, task(&other, 0), 1)]);
    let frames = farm.complete(10, task(&other, 0), 1, Outcome::Finished(vec![]));
    assert!(assignments(&frames).is_empty());
    assert_eq!(farm.job_state(paused.id), JobState::Paused);
    let info = farm.core.info();
    assert_eq!(info.queues[0].count(TaskState::Paused), 2);
    assert_eq!(info.queues[0].count(TaskState::Queued), 0);
    assert_eq!(info.workers[0].activity, WorkerActivity::Idle);
    // A pause is stored, so it survives a restart.
    let restarted = farm.restart(CoreConfig::default());
    assert_eq!(restarted.job_state(paused.id), JobState::Paused);
    // Pausing again changes nothing; resume lets the tasks go.
    assert_eq!(
        done(&farm.changes(Request::Pause(vec![paused.id.into()]))).tasks,
        0
    );
    let frames = farm.request(CLIENT, Request::Resume(vec![paused.id.into()]));
    let ran = run_all(&mut farm, 10, frames);
    assert_eq!(ran, vec![task(&paused, 1), task(&paused, 2)]);
    assert_eq!(farm.job_state(paused.id), JobState::Finished);
}

#[test]
fn a_paused_queue_holds_its_jobs_across_a_restart_until_resumed() {
    let mut farm = Farm::new();
    // A queue not on record yet may be paused: the jobs that come to it wait.
    let frames = farm.request(
        CLIENT,
        Request::PauseQueue {
            queue: "night".to_owned(),
            paused: true,
        },
    );
    assert_eq!(replies(&frames, CLIENT), vec![Ok(Reply::Ack)]);
    let held = submit_tasks(&mut farm, "night", 2, JobOptions::default());
    let free = submit_tasks(&mut farm, "default", 1, JobOptions::default());
    let frames = farm.worker(10, "w1", &["night", "default"]);
    assert_eq!(assignments(&frames), vec![(10, task(&free, 0), 1)]);
    assert_eq!(farm.job_state(held.id), JobState::Paused);
    assert_eq!(farm.shown(task(&held, 0)), TaskState::Paused);
    let queue = farm.core.info().queues;
    assert!(queue.iter().any(|q| q.name == "night" && q.paused));
    // After a restart the queue is still held.
    let mut restarted = farm.restart(CoreConfig::default());
    let frames = restarted.worker(10, "w1", &["night"]);
    assert!(assignments(&frames).is_empty(), "{frames:?}");
    assert_eq!(restarted.job_state(held.id), JobState::Paused);
    // Resumed: its tasks go to the idle worker.
    let frames = restarted.request(
        CLIENT,
        Request::PauseQueue {
            queue: "night".to_owned(),
            paused: false,
        },
    );
    assert_eq!(assignments(&frames), vec![(10, task(&held, 0), 1)]);
    let frames = restarted.complete(10, task(&held, 0), 1, Outcome::Finished(vec![]));
    assert_eq!(assignments(&frames), vec![(10, task(&held, 1), 1)]);
    // An empty queue name is refused.
    let frames = restarted.request(
        CLIENT,
        Request::PauseQueue {
            queue: " ".to_owned(),
            paused: true,
        },
    );
    assert!(matches!(
        replies(&frames, CLIENT).as_slice(),
        [Err(RequestError::Invalid(_))]
    ));
}

#[test]
fn raising_a_later_jobs_priority_moves_its_tasks_ahead() {
    let mut farm = Farm::new();
    let first = submit_tasks(&mut farm, "default", 2, JobOptions::default());
    let later = submit_tasks(&mut farm, "default", 2, JobOptions::default());
    let changed = done(&farm.changes(Request::SetPriority {
        job: JobRef::Number(later.number),
        priority: 10,
    }));
    assert_eq!(changed.tasks, 2);
    assert_eq!(farm.core.jobs[&later.id].options.priority, 10);
    let frames = farm.worker(10, "w1", &["default"]);
    let ran = run_all(&mut farm, 10, frames);
    assert_eq!(
        ran,
        vec![
            task(&later, 0),
            task(&later, 1),
            task(&first, 0),
            task(&first, 1)
        ]
    );
    // An unknown job is named in the refusal.
    let error = refused(&farm.changes(Request::SetPriority {
        job: JobRef::Number(99),
        priority: 1,
    }));
    assert_eq!(error, RequestError::UnknownJob(JobRef::Number(99)));
}

#[test]
fn only_ended_jobs_are_deleted_and_numbers_are_never_reused() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let running = submit_tasks(&mut farm, "default", 2, JobOptions::default());
    let error = refused(&farm.changes(Request::Delete(vec![running.id.into()])));
    assert!(
        matches!(&error, RequestError::WrongState { what, .. } if what.contains("cancel it first")),
        "{error:?}"
    );
    done(&farm.changes(Request::Cancel(vec![running.id.into()])));
    let deleted = done(&farm.changes(Request::Delete(vec![JobRef::Number(running.number)])));
    assert_eq!((deleted.job, deleted.tasks), (running.id, 2));
    assert!(!farm.core.jobs.contains_key(&running.id));
    let frames = farm.request(CLIENT, Request::Job(running.id.into()));
    assert_eq!(
        replies(&frames, CLIENT),
        vec![Err(RequestError::UnknownJob(running.id.into()))]
    );
    // The next job gets the next number, not the deleted one's.
    farm.complete(10, task(&running, 0), 1, Outcome::Canceled);
    let next = submit_tasks(&mut farm, "default", 1, JobOptions::default());
    assert_eq!((running.number, next.number), (1, 2));
    farm.complete(10, task(&next, 0), 1, Outcome::Finished(vec![]));
    done(&farm.changes(Request::Delete(vec![next.id.into()])));
    // After a restart with every job deleted, numbers still go on.
    let mut restarted = farm.restart(CoreConfig::default());
    assert_eq!(restarted.core.job_count(), 0);
    let after = submit_tasks(&mut restarted, "default", 1, JobOptions::default());
    assert_eq!(after.number, 3);
}

#[test]
fn finished_and_canceled_jobs_go_after_their_retention_and_failed_ones_stay() {
    let config = CoreConfig {
        retention: Duration::from_secs(3600),
        ..CoreConfig::default()
    };
    let mut farm = Farm::with(config.clone());
    farm.worker(10, "w1", &["default"]);
    let finished = submit_tasks(&mut farm, "default", 2, JobOptions::default());
    let failed = submit_tasks(&mut farm, "default", 2, JobOptions::default());
    let canceled = submit_tasks(&mut farm, "default", 2, JobOptions::default());
    farm.complete(10, task(&finished, 0), 1, Outcome::Finished(vec![]));
    farm.advance(Duration::from_secs(1800));
    // A job's retention counts from its last task's end.
    farm.complete(10, task(&finished, 1), 1, Outcome::Finished(vec![]));
    let fail = Outcome::Failed(Failure::new("no"));
    farm.complete(10, task(&failed, 0), 1, fail.clone());
    farm.complete(10, task(&failed, 1), 1, fail);
    done(&farm.changes(Request::Cancel(vec![canceled.id.into()])));
    farm.complete(10, task(&canceled, 0), 1, Outcome::Canceled);
    farm.advance(Duration::from_secs(3599));
    farm.request(10, Request::Heartbeat);
    farm.handle(Input::Tick);
    assert_eq!(
        farm.core.job_count(),
        3,
        "not before the retention has passed"
    );
    farm.advance(Duration::from_secs(2));
    farm.request(10, Request::Heartbeat);
    farm.handle(Input::Tick);
    assert!(!farm.core.jobs.contains_key(&finished.id));
    assert!(!farm.core.jobs.contains_key(&canceled.id));
    assert!(farm.core.jobs.contains_key(&failed.id));
    // Failed jobs stay however long it takes; a restart loads them, not the others.
    farm.advance(Duration::from_secs(30 * 24 * 3600));
    farm.request(10, Request::Heartbeat);
    farm.handle(Input::Tick);
    let restarted = farm.restart(config);
    assert_eq!(restarted.core.job_count(), 1);
    assert_eq!(restarted.job_state(failed.id), JobState::Failed);
}

#[test]
fn jobs_and_tasks_are_named_by_number_id_and_index() {
    let mut farm = Farm::new();
    let single = submit_tasks(&mut farm, "default", 1, JobOptions::default());
    let many = submit_tasks(&mut farm, "default", 3, JobOptions::default());
    let task_of = |farm: &mut Farm, handle: &str| {
        let frames = farm.request(CLIENT, Request::Task(handle.parse().expect("a handle")));
        replies(&frames, CLIENT).pop().expect("a reply")
    };
    // A job of one task is its task.
    for handle in ["1", "1.0", &single.id.to_string()] {
        let reply = task_of(&mut farm, handle);
        assert!(
            matches!(&reply, Ok(Reply::Task(status)) if status.id == task(&single, 0) && status.label() == "1.0"),
            "{handle}: {reply:?}"
        );
    }
    let reply = task_of(&mut farm, &format!("{}.2", many.id));
    assert!(
        matches!(&reply, Ok(Reply::Task(status)) if status.id == task(&many, 2) && status.frames.as_deref() == Some("3")),
        "{reply:?}"
    );
    // A job of several tasks must be told which.
    assert_eq!(
        task_of(&mut farm, "2"),
        Err(RequestError::WhichTask {
            job: JobRef::Number(2),
            tasks: 3
        })
    );
    assert_eq!(
        task_of(&mut farm, "2.3"),
        Err(RequestError::UnknownTask {
            job: JobRef::Number(2),
            index: 3,
            tasks: 3
        })
    );
    assert_eq!(
        task_of(&mut farm, "3.0"),
        Err(RequestError::UnknownJob(JobRef::Number(3)))
    );
    // A job by number and by id is the same job.
    for job in [JobRef::Number(2), JobRef::Id(many.id)] {
        let frames = farm.request(CLIENT, Request::Job(job));
        assert!(matches!(
            replies(&frames, CLIENT).as_slice(),
            [Ok(Reply::Job(status))] if status.job.id == many.id && status.job.number == 2 && status.tasks.len() == 3
        ));
    }
    // Logs of a job of several tasks without an index: which task?
    let frames = farm.request(
        CLIENT,
        Request::Logs {
            task: TaskRef::job(JobRef::Number(2)),
            from: 0,
            follow: false,
        },
    );
    assert!(matches!(
        replies(&frames, CLIENT).as_slice(),
        [Err(RequestError::WhichTask { tasks: 3, .. })]
    ));
    // A cancel of an unknown task is refused in its entry, the others done.
    let changes = farm.changes(Request::Cancel(vec![
        "2.7".parse().expect("a handle"),
        "2.1".parse().expect("a handle"),
    ]));
    assert!(matches!(
        changes[0].result,
        Err(RequestError::UnknownTask { index: 7, .. })
    ));
    assert!(matches!(changes[1].result, Ok(Changed { tasks: 1, .. })));
}

#[test]
fn a_job_waits_for_every_task_of_the_job_it_depends_on() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let first = submit_tasks(&mut farm, "default", 2, JobOptions::default());
    let after_job = JobOptions {
        after: vec![Dependency::Job(first.id)],
        ..JobOptions::default()
    };
    let second = submit_tasks(&mut farm, "default", 2, after_job);
    assert_eq!(farm.state(task(&second, 0)), TaskState::Deferred);
    assert_eq!(farm.job_state(second.id), JobState::Queued);
    let frames = farm.complete(10, task(&first, 0), 1, Outcome::Finished(vec![]));
    assert_eq!(
        assignments(&frames),
        vec![(10, task(&first, 1), 1)],
        "one task of the first job still runs"
    );
    assert_eq!(farm.state(task(&second, 0)), TaskState::Deferred);
    let frames = farm.complete(10, task(&first, 1), 1, Outcome::Finished(vec![]));
    assert_eq!(assignments(&frames), vec![(10, task(&second, 0), 1)]);
    assert_eq!(farm.state(task(&second, 1)), TaskState::Queued);
}

#[test]
fn a_job_may_wait_for_one_task_of_another() {
    let mut farm = Farm::new();
    let first = submit_tasks(&mut farm, "default", 3, JobOptions::default());
    let after_task = JobOptions {
        after: vec![Dependency::Task(task(&first, 0))],
        ..JobOptions::default()
    };
    let second = submit_tasks(&mut farm, "default", 1, after_task);
    assert_eq!(farm.state(task(&second, 0)), TaskState::Deferred);
    let frames = farm.worker(10, "w1", &["default"]);
    assert_eq!(assignments(&frames), vec![(10, task(&first, 0), 1)]);
    // Task 0 done: the dependent is queued, behind the older job's tasks.
    let frames = farm.complete(10, task(&first, 0), 1, Outcome::Finished(vec![]));
    assert_eq!(farm.state(task(&second, 0)), TaskState::Queued);
    let ran = run_all(&mut farm, 10, frames);
    assert_eq!(
        ran,
        vec![task(&first, 1), task(&first, 2), task(&second, 0)]
    );
    // A failed task fails the jobs waiting on it, with the reason.
    let failing = submit_tasks(&mut farm, "default", 2, JobOptions::default());
    let waiting = JobOptions {
        after: vec![Dependency::Task(task(&failing, 1))],
        ..JobOptions::default()
    };
    let dependent = submit_tasks(&mut farm, "default", 2, waiting);
    farm.complete(10, task(&failing, 0), 1, Outcome::Finished(vec![]));
    farm.complete(
        10,
        task(&failing, 1),
        1,
        Outcome::Failed(Failure::new("no")),
    );
    assert_eq!(farm.job_state(dependent.id), JobState::Failed);
    let reason = farm
        .task(task(&dependent, 1))
        .failure
        .as_ref()
        .map(|failure| failure.reason.clone());
    assert_eq!(reason.as_deref(), Some("dependency task 3.1 failed"));
}

/// A job canceled while it waited for its dependency, then requeued, still waits for it.
#[test]
fn a_requeued_job_still_waits_for_its_dependencies() {
    let mut farm = Farm::new();
    let first = submit_tasks(&mut farm, "default", 1, JobOptions::default());
    let after = JobOptions {
        after: vec![Dependency::Job(first.id)],
        ..JobOptions::default()
    };
    let second = submit_tasks(&mut farm, "default", 2, after);
    done(&farm.changes(Request::Cancel(vec![second.id.into()])));
    assert_eq!(farm.job_state(second.id), JobState::Canceled);
    done(&farm.changes(Request::Requeue(Requeue::Tasks {
        targets: vec![second.id.into()],
        all: false,
    })));
    assert_eq!(farm.state(task(&second, 0)), TaskState::Deferred);
    let frames = farm.worker(10, "w1", &["default"]);
    assert_eq!(assignments(&frames), vec![(10, task(&first, 0), 1)]);
    let frames = farm.complete(10, task(&first, 0), 1, Outcome::Finished(vec![]));
    let ran = run_all(&mut farm, 10, frames);
    assert_eq!(ran, vec![task(&second, 0), task(&second, 1)]);
}

#[test]
fn quarantine_counts_the_tasks_of_one_job_once() {
    let config = CoreConfig {
        quarantine_after: 2,
        quarantine_cooldown: Duration::ZERO,
        ..CoreConfig::default()
    };
    let mut farm = Farm::with(config);
    farm.worker(10, "w", &["default"]);
    let job = submit_tasks(&mut farm, "default", 4, JobOptions::default());
    for index in 0..4 {
        let outcome = Outcome::Failed(Failure::new("no licence"));
        farm.complete(10, task(&job, index), 1, outcome);
    }
    assert!(!farm.core.quarantined("w"), "four tasks of one job");
    assert_eq!(farm.job_state(job.id), JobState::Failed);
    let other = submit_tasks(&mut farm, "default", 1, JobOptions::default());
    farm.complete(
        10,
        task(&other, 0),
        1,
        Outcome::Failed(Failure::new("no licence")),
    );
    assert!(farm.core.quarantined("w"), "a second job");
}

#[test]
fn watchers_hear_each_task_change_and_the_end() {
    let mut farm = Farm::new();
    let job = submit_tasks(&mut farm, "default", 2, JobOptions::default());
    farm.next_request += 1;
    let watch = farm.next_request;
    farm.handle(Input::Request {
        conn: CLIENT,
        id: watch,
        request: Request::Watch(vec![JobRef::Number(job.number)]),
    });
    let mut seen = Vec::new();
    let mut frames = farm.worker(10, "w1", &["default"]);
    frames.extend(farm.complete(10, task(&job, 0), 1, Outcome::Finished(vec![])));
    frames.extend(farm.complete(10, task(&job, 1), 1, Outcome::Failed(Failure::new("no"))));
    for event in events(&frames, watch) {
        match event {
            JobEvent::Task { job: id, task } => {
                assert_eq!(id, job.id);
                seen.push((task.index, task.state));
            }
            JobEvent::Ended(status) => {
                assert_eq!(status.job.state, JobState::Failed);
                seen.push((u32::MAX, TaskState::Failed));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Each task's changes in order (task 1 may start while task 0's end is being stored),
    // and the end last.
    let of = |index: u32| -> Vec<TaskState> {
        seen.iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, state)| *state)
            .collect()
    };
    assert_eq!(of(0), vec![TaskState::Started, TaskState::Finished]);
    assert_eq!(of(1), vec![TaskState::Started, TaskState::Failed]);
    assert_eq!(seen.last(), Some(&(u32::MAX, TaskState::Failed)));
    assert!(replies(&frames, CLIENT).contains(&Ok(Reply::Ack)));
}

#[test]
fn wait_answers_once_every_task_has_ended() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let job = submit_tasks(&mut farm, "default", 3, JobOptions::default());
    let frames = farm.request(CLIENT, Request::Wait(JobRef::Number(job.number)));
    assert!(replies(&frames, CLIENT).is_empty());
    let frames = farm.complete(10, task(&job, 0), 1, Outcome::Finished(vec![]));
    assert!(replies(&frames, CLIENT).is_empty());
    let frames = farm.request(CLIENT, Request::Cancel(vec![task(&job, 2).into()]));
    assert_eq!(
        replies(&frames, CLIENT).len(),
        1,
        "only the cancel's answer"
    );
    let frames = farm.complete(10, task(&job, 1), 1, Outcome::Finished(vec![]));
    let ended = replies(&frames, CLIENT);
    let [Ok(Reply::Ended(status))] = ended.as_slice() else {
        panic!("expected the end: {frames:?}");
    };
    assert_eq!(status.job.state, JobState::Canceled);
    assert_eq!(status.job.tasks.finished, 2);
    assert!(status.job.ended_at.is_some());
    assert_eq!(status.tasks.len(), 3);
}

#[test]
fn the_status_of_a_job_of_many_tasks_with_long_reasons_fits_in_a_reply() {
    let config = CoreConfig {
        max_reply_bytes: 64 << 10,
        ..CoreConfig::default()
    };
    let budget = config.max_reply_bytes;
    let mut farm = Farm::with(config);
    farm.worker(10, "w1", &["default"]);
    let job = submit_tasks(&mut farm, "default", 1_000, JobOptions::default());
    for index in 0..1_000 {
        let failure = Failure::new(format!("{index}: {}", "x".repeat(4_000)));
        farm.complete(10, task(&job, index), 1, Outcome::Failed(failure));
    }
    let frames = farm.request(CLIENT, Request::Job(job.id.into()));
    let [(_, reply)] = frames.as_slice() else {
        panic!("expected one reply: {frames:?}");
    };
    let size = buildcat_proto::encoded_len(reply).expect("encodes");
    assert!(size <= budget, "a status of {size} bytes");
    let ServerFrame::Reply {
        reply: Ok(Reply::Job(status)),
        ..
    } = reply
    else {
        panic!("expected the job: {reply:?}");
    };
    assert_eq!(status.job.tasks.failed, 1_000, "the counts are whole");
    assert!(!status.tasks.is_empty(), "as many tasks as fit");
    assert!(
        status
            .tasks
            .iter()
            .enumerate()
            .all(|(i, t)| t.index as usize == i)
    );
    // One task's status has its reason whole (as bounded when it arrived).
    let frames = farm.request(CLIENT, Request::Task(task(&job, 999).into()));
    assert!(matches!(
        replies(&frames, CLIENT).as_slice(),
        [Ok(Reply::Task(status))] if status.failure.as_ref().is_some_and(|f| f.reason.starts_with("999: xxx"))
    ));
    // A small job's status keeps every reason, cut to its bound.
    let small = submit_tasks(&mut farm, "default", 1, JobOptions::default());
    farm.complete(
        10,
        task(&small, 0),
        1,
        Outcome::Failed(Failure::new("y".repeat(4_000))),
    );
    let status = farm.core.job_status(small.id).expect("the job");
    let reason = status.tasks[0].reason.clone().unwrap_or_default();
    assert!(reason.starts_with("yyy") && reason.len() <= 256, "{reason}");
}

#[test]
fn submissions_are_numbered_and_refused_when_malformed() {
    let mut farm = Farm::new();
    let (submitted, _) = farm.submit_jobs(vec![
        job_of("default", INFO, JobOptions::default(), 3),
        job_of("default", INFO, JobOptions::default(), 1),
    ]);
    let numbers: Vec<(u64, u32)> = submitted.iter().map(|s| (s.number, s.tasks)).collect();
    assert_eq!(numbers, vec![(1, 3), (2, 1)]);
    assert_eq!(farm.core.task_count(), 4);
    let cases = [
        (
            job_of("default", INFO, JobOptions::default(), 0),
            "at least one task",
        ),
        (
            job_of("default", INFO, JobOptions::default(), 10_001),
            "at most 10000 tasks",
        ),
        (
            job(
                "default",
                INFO,
                JobOptions {
                    after: vec![Dependency::Task(TaskId::new(submitted[0].id, 3))],
                    ..JobOptions::default()
                },
            ),
            "which the server does not know",
        ),
    ];
    for (bad, reason) in cases {
        let frames = farm.request(CLIENT, Request::Submit(vec![bad]));
        assert!(
            matches!(
                replies(&frames, CLIENT).as_slice(),
                [Err(RequestError::Invalid(message))] if message.contains(reason)
            ),
            "{reason}: {frames:?}"
        );
    }
    // A refused submission takes no number.
    let next = submit_tasks(&mut farm, "default", 1, JobOptions::default());
    assert_eq!(next.number, 3);
    // A named job keeps its name; the submitter is kept as sent.
    let mut named = job("default", INFO, JobOptions::default());
    named.name = "shot.blend 1-240".to_owned();
    let (submitted, _) = farm.submit_jobs(vec![named]);
    let summary = farm.core.jobs[&submitted[0].id].summary(false);
    assert_eq!(summary.name, "shot.blend 1-240");
    assert_eq!(summary.submitter, "ana@render01");
    assert_eq!(whole(TaskId::new(submitted[0].id, 0)).index, None);
}

/// The store keeps a job's end on its record (retention counts from it), and forgets it
/// when a requeue starts the job again.
#[test]
fn a_jobs_end_is_stored_on_its_record() {
    use crate::store::Store;
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let job = submit_tasks(&mut farm, "default", 2, JobOptions::default());
    let stored_end = |farm: &mut Farm| {
        let loaded = farm.store.load().expect("an in-memory load");
        loaded.jobs[0].job.ended_at
    };
    farm.complete(10, task(&job, 0), 1, Outcome::Finished(vec![]));
    assert_eq!(stored_end(&mut farm), None);
    farm.advance(Duration::from_secs(5));
    farm.complete(10, task(&job, 1), 1, Outcome::Finished(vec![]));
    assert_eq!(stored_end(&mut farm), Some(farm.now));
    assert_eq!(farm.core.jobs[&job.id].ended_at, Some(farm.now));
    done(&farm.changes(Request::Requeue(Requeue::Tasks {
        targets: vec![job.id.into()],
        all: true,
    })));
    assert_eq!(stored_end(&mut farm), None);
}

/// A dependency's end is stored in one commit and the release of the jobs waiting on it in
/// the next: a server killed in between must still release them when it starts again,
/// rather than leave them deferred for good. Found by the randomized test's restarts.
#[test]
fn a_job_whose_dependency_ended_before_a_crash_is_released_at_load() {
    use crate::store::{Store, StoreOp};
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let first = submit_tasks(&mut farm, "default", 1, JobOptions::default());
    let after = JobOptions {
        after: vec![Dependency::Job(first.id)],
        ..JobOptions::default()
    };
    let second = submit_tasks(&mut farm, "default", 2, after);
    let failing = submit_tasks(&mut farm, "other", 1, JobOptions::default());
    let after_failing = JobOptions {
        after: vec![Dependency::Task(task(&failing, 0))],
        ..JobOptions::default()
    };
    let broken = submit_tasks(&mut farm, "default", 1, after_failing);
    farm.complete(10, task(&first, 0), 1, Outcome::Finished(vec![]));
    farm.complete(10, task(&second, 0), 1, Outcome::Finished(vec![]));
    farm.complete(10, task(&second, 1), 1, Outcome::Finished(vec![]));
    farm.worker(11, "w2", &["other"]);
    farm.complete(
        11,
        task(&failing, 0),
        1,
        Outcome::Failed(Failure::new("no")),
    );
    assert_eq!(farm.job_state(broken.id), JobState::Failed);
    // As if the releases were never stored: the dependents are deferred in the store.
    let deferred: Vec<StoreOp> = [task(&second, 0), task(&second, 1), task(&broken, 0)]
        .into_iter()
        .map(|id| {
            let mut status = farm.core.task_status(id).expect("the task");
            status.state = TaskState::Deferred;
            status.attempts.clear();
            status.ended_at = None;
            status.failure = None;
            status.result = None;
            status.progress = None;
            StoreOp::UpdateTask(status)
        })
        .collect();
    farm.store.commit(&deferred).expect("an in-memory commit");
    let mut restarted = farm.restart(CoreConfig::default());
    assert_eq!(restarted.state(task(&second, 0)), TaskState::Queued);
    assert_eq!(restarted.state(task(&broken, 0)), TaskState::Failed);
    assert!(
        restarted
            .stored
            .iter()
            .any(|op| matches!(op, StoreOp::UpdateTask(status) if status.id == task(&second, 1) && status.state == TaskState::Queued)),
        "the release is stored"
    );
    let frames = restarted.worker(10, "w1", &["default"]);
    let ran = run_all(&mut restarted, 10, frames);
    assert_eq!(ran, vec![task(&second, 0), task(&second, 1)]);
}

/// A task canceled while its worker is cut off, then requeued at once: the cut-off worker
/// may still run it until its lease ends, so the task must not start elsewhere before then.
#[test]
fn a_task_requeued_while_its_worker_is_cut_off_waits_for_the_lease() {
    let grace = CoreConfig::default().reconnect_grace;
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let job = submit_tasks(&mut farm, "default", 1, JobOptions::default());
    farm.handle(Input::Disconnected { conn: 10 });
    farm.worker(11, "w2", &["default"]);
    farm.advance(Duration::from_secs(5));
    done(&farm.changes(Request::Cancel(vec![job.id.into()])));
    let requeue = Request::Requeue(Requeue::Tasks {
        targets: vec![job.id.into()],
        all: false,
    });
    let frames = farm.request(CLIENT, requeue.clone());
    assert!(assignments(&frames).is_empty(), "w1 may still run it");
    assert_eq!(farm.state(task(&job, 0)), TaskState::Queued);
    farm.advance(grace - Duration::from_secs(6));
    farm.request(11, Request::Heartbeat);
    assert!(assignments(&farm.handle(Input::Tick)).is_empty());
    // The lease counts from when the server last heard from w1.
    farm.advance(Duration::from_secs(1));
    farm.request(11, Request::Heartbeat);
    let frames = farm.handle(Input::Tick);
    assert_eq!(assignments(&frames), vec![(11, task(&job, 0), 2)]);

    // A worker that reports the canceled attempt has stopped it: no wait then.
    let other = submit_tasks(&mut farm, "default", 1, JobOptions::default());
    farm.worker(12, "w3", &["default"]);
    assert_eq!(farm.core.running.get(&task(&other, 0)), Some(&12));
    farm.handle(Input::Disconnected { conn: 12 });
    done(&farm.changes(Request::Cancel(vec![other.id.into()])));
    let frames = farm.worker_with(13, "w3", &["default"], &[INFO], vec![(task(&other, 0), 1)]);
    assert_eq!(stops(&frames), vec![(13, task(&other, 0), 1)]);
    farm.complete(13, task(&other, 0), 1, Outcome::Canceled);
    let frames = farm.request(
        CLIENT,
        Request::Requeue(Requeue::Tasks {
            targets: vec![other.id.into()],
            all: false,
        }),
    );
    assert_eq!(assignments(&frames), vec![(13, task(&other, 0), 2)]);
}

/// A worker that came back for a task handed back after its loss reclaims it; if the server
/// stops before that reclaim is stored, it starts with the task queued while the worker
/// still runs it. The task waits one grace period for its worker before going elsewhere.
/// Found by the randomized test's restarts.
#[test]
fn after_a_restart_a_task_lost_by_its_worker_waits_the_grace_for_it() {
    let grace = CoreConfig::default().reconnect_grace;
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let job = submit_tasks(&mut farm, "default", 1, JobOptions::default());
    farm.lose(10);
    assert_eq!(farm.state(task(&job, 0)), TaskState::Queued);
    // Stopped and started again: w2 does not get the task during the grace; w1 reclaims it.
    let mut restarted = farm.restart(CoreConfig::default());
    assert!(restarted.stored.is_empty(), "nothing changes at load");
    let frames = restarted.worker(11, "w2", &["default"]);
    assert!(assignments(&frames).is_empty());
    restarted.worker_with(20, "w1", &["default"], &[INFO], vec![(task(&job, 0), 1)]);
    assert_eq!(restarted.state(task(&job, 0)), TaskState::Started);
    let frames = restarted.complete(20, task(&job, 0), 1, Outcome::Finished(vec![]));
    assert_eq!(replies(&frames, 20), vec![Ok(Reply::Ack)]);
    assert_eq!(restarted.task(task(&job, 0)).attempts.len(), 1, "ran once");
    // Without w1 coming back, the task goes to w2 once the grace has passed.
    let mut again = farm.restart(CoreConfig::default());
    again.worker(11, "w2", &["default"]);
    again.advance(grace - Duration::from_secs(1));
    again.request(11, Request::Heartbeat);
    assert!(assignments(&again.handle(Input::Tick)).is_empty());
    again.advance(Duration::from_secs(1));
    again.request(11, Request::Heartbeat);
    let frames = again.handle(Input::Tick);
    assert_eq!(assignments(&frames), vec![(11, task(&job, 0), 2)]);
}
