//! Issue 11 (fault 4): a task's completion adds tasks to its own job
//! (`Outcome::FinishedWithTasks`), as a render that reads its frame range from the scene
//! adds its render tasks. Added once, in the commit that records the task finished, by the
//! worker of the current attempt only, within the job's bounds; the job does not end while
//! they wait.

use buildcat_proto::{
    JobState, NewTask, Outcome, Reply, Request, RequestError, ServerFrame, TaskId, TaskState,
};

use super::{CLIENT, Farm, INFO, assignments, replies, whole};
use crate::core::job::MAX_TASKS;
use crate::core::{Effect, Input};
use crate::store::{Store, StoreOp};

/// Tasks rendering the frames given, one frame each.
fn tasks_of(frames: &[&str]) -> Vec<NewTask> {
    frames
        .iter()
        .map(|frames| NewTask {
            frames: Some((*frames).to_owned()),
            args: frames.as_bytes().to_vec(),
        })
        .collect()
}

/// A finished report that adds `tasks`.
fn adding(tasks: Vec<NewTask>) -> Outcome {
    Outcome::FinishedWithTasks {
        result: vec![7],
        tasks,
    }
}

/// A farm with worker 10 (`w1`) running the only task of a new job.
fn running() -> (Farm, TaskId) {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (id, frames) = farm.submit_one("default", INFO);
    assert_eq!(assignments(&frames), vec![(10, id, 1)]);
    (farm, id)
}

/// The frames of the job's tasks, in index order.
fn task_frames(farm: &Farm, id: TaskId) -> Vec<Option<String>> {
    farm.core.jobs[&id.job]
        .tasks
        .iter()
        .map(|task| task.frames.as_deref().map(str::to_owned))
        .collect()
}

#[test]
fn added_tasks_join_the_job_in_the_commit_that_finishes_their_task() {
    let (mut farm, id) = running();
    farm.request(CLIENT, Request::Wait(id.job.into()));
    farm.stored.clear();
    let frames = farm.complete(10, id, 1, adding(tasks_of(&["3", "5", "7"])));
    assert_eq!(replies(&frames, 10), vec![Ok(Reply::Ack)]);
    // One commit: the task's end and the tasks it added, numbered after it.
    assert!(
        matches!(
            farm.stored.as_slice(),
            [StoreOp::UpdateTask(status), StoreOp::AppendTasks { job, tasks }, ..]
                if status.id == id && status.state == TaskState::Finished
                    && *job == id.job && tasks.len() == 3
        ),
        "{:?}",
        farm.stored
    );
    assert_eq!(farm.state(id), TaskState::Finished);
    assert_eq!(
        task_frames(&farm, id),
        ["1", "3", "5", "7"].map(|frames| Some(frames.to_owned()))
    );
    // The worker, free again, gets the first added task; the job is not over.
    let first = TaskId::new(id.job, 1);
    assert_eq!(assignments(&frames), vec![(10, first, 1)]);
    assert_eq!(farm.job_state(id.job), JobState::Running);
    assert!(
        !replies(&frames, CLIENT)
            .iter()
            .any(|reply| matches!(reply, Ok(Reply::Ended(_)))),
        "a waiter hears nothing while added tasks wait"
    );
    let status = farm.core.job_status(id.job).expect("the job");
    assert_eq!(status.job.tasks.total, 4);
    assert_eq!(status.job.tasks.finished, 1);
    assert_eq!(status.tasks.len(), 4);
    // Each added task runs like any other, with the job's kind; the last one ends the job.
    let mut ended = Vec::new();
    for index in 1..=3 {
        let task = TaskId::new(id.job, index);
        assert_eq!(farm.state(task), TaskState::Started);
        let frames = farm.complete(10, task, 1, Outcome::Finished(vec![]));
        ended.extend(replies(&frames, CLIENT));
    }
    assert_eq!(farm.job_state(id.job), JobState::Finished);
    assert!(
        matches!(ended.as_slice(), [Ok(Reply::Ended(status))] if status.tasks.len() == 4),
        "{ended:?}"
    );
    // Stored: a restart finds the job whole.
    let restarted = farm.restart(crate::core::CoreConfig::default());
    assert_eq!(task_frames(&restarted, id), task_frames(&farm, id));
    assert_eq!(restarted.job_state(id.job), JobState::Finished);
}

#[test]
fn added_tasks_take_the_jobs_options_and_wait_while_it_is_paused() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let options = buildcat_proto::JobOptions {
        max_attempts: 3,
        priority: 9,
        ..Default::default()
    };
    let (ids, _) = farm.submit(vec![super::job("default", INFO, options)]);
    let id = ids[0];
    farm.request(CLIENT, Request::Pause(vec![id.job.into()]));
    let frames = farm.complete(10, id, 1, adding(tasks_of(&["2"])));
    assert!(assignments(&frames).is_empty(), "paused: nothing starts");
    let added = TaskId::new(id.job, 1);
    assert_eq!(farm.shown(added), TaskState::Paused);
    assert_eq!(farm.task(added).max_attempts, 3);
    assert_eq!(farm.job_state(id.job), JobState::Paused);
    let frames = farm.request(CLIENT, Request::Resume(vec![id.job.into()]));
    assert_eq!(assignments(&frames), vec![(10, added, 1)]);
}

#[test]
fn a_stale_attempt_adds_nothing() {
    let (mut farm, id) = running();
    farm.lose(10);
    farm.worker(11, "w2", &["default"]);
    farm.worker(12, "w1-late", &["default"]);
    let frames = farm.complete(12, id, 1, adding(tasks_of(&["2"])));
    assert_eq!(
        replies(&frames, 12),
        vec![Err(RequestError::StaleAttempt {
            task: id,
            attempt: 1
        })]
    );
    assert_eq!(farm.core.jobs[&id.job].tasks.len(), 1);
    assert!(
        !farm
            .stored
            .iter()
            .any(|op| matches!(op, StoreOp::AppendTasks { .. }))
    );
}

#[test]
fn more_tasks_than_a_job_may_have_are_refused_and_fail_the_attempt() {
    let (mut farm, id) = running();
    let too_many: Vec<NewTask> = (0..MAX_TASKS)
        .map(|_| NewTask {
            frames: None,
            args: Vec::new(),
        })
        .collect();
    // MAX_TASKS more, with the task itself: one over.
    let frames = farm.complete(10, id, 1, adding(too_many));
    let reply = replies(&frames, 10);
    assert!(
        matches!(reply.as_slice(), [Err(RequestError::Invalid(reason))]
            if reason.contains("at most 10000 tasks") && reason.contains("larger chunk")),
        "{reply:?}"
    );
    assert_eq!(farm.core.jobs[&id.job].tasks.len(), 1);
    assert_eq!(farm.state(id), TaskState::Failed, "its only attempt");
    let failure = farm.task(id).failure.as_deref().expect("a reason");
    assert!(
        failure.reason.contains("tried to add 10000 tasks"),
        "{failure:?}"
    );
    // Within the bound it is taken.
    let (id, frames) = farm.submit_one("default", INFO);
    assert_eq!(assignments(&frames), vec![(10, id, 1)]);
    let most: Vec<NewTask> = (1..MAX_TASKS).map(|_| frames_of("1")).collect();
    let frames = farm.complete(10, id, 1, adding(most));
    assert_eq!(replies(&frames, 10), vec![Ok(Reply::Ack)]);
    assert_eq!(farm.core.jobs[&id.job].tasks.len(), MAX_TASKS);
    // Frames written too long are refused as at submit.
    let (mut farm, id) = running();
    let long = frames_of(&"1,".repeat(1_000));
    let frames = farm.complete(10, id, 1, adding(vec![long]));
    assert!(
        matches!(replies(&frames, 10).as_slice(), [Err(RequestError::Invalid(reason))]
            if reason.contains("frames may be written in at most")),
        "{frames:?}"
    );
    assert_eq!(farm.core.jobs[&id.job].tasks.len(), 1);
}

/// One task of `frames`.
fn frames_of(frames: &str) -> NewTask {
    NewTask {
        frames: Some(frames.to_owned()),
        args: Vec::new(),
    }
}

#[test]
fn a_failed_commit_adds_nothing_and_the_resent_report_adds_once() {
    let (mut farm, id) = running();
    let frames = farm.handle_with(
        Input::Request {
            conn: 10,
            id: 1,
            request: Request::Complete(buildcat_proto::Completion {
                task: id,
                attempt: 1,
                outcome: adding(tasks_of(&["2", "3"])),
            }),
        },
        Some("the disk is full"),
    );
    assert!(matches!(
        replies(&frames, 10).as_slice(),
        [Err(RequestError::Storage(_))]
    ));
    assert_eq!(farm.core.jobs[&id.job].tasks.len(), 1);
    assert_eq!(farm.core.jobs[&id.job].adding, 0);
    assert_eq!(
        farm.state(id),
        TaskState::Started,
        "waits for the report again"
    );
    // The server dies before anything more: the restarted one knows only the started task.
    let mut restarted = farm.restart(crate::core::CoreConfig::default());
    restarted.worker_with(20, "w1", &["default"], &[INFO], vec![(id, 1)]);
    let frames = restarted.complete(20, id, 1, adding(tasks_of(&["2", "3"])));
    assert_eq!(replies(&frames, 20), vec![Ok(Reply::Ack)]);
    assert_eq!(restarted.core.jobs[&id.job].tasks.len(), 3);
    // Acknowledged, but the worker did not hear it (a lost connection) and sends it again
    // after a restart: stale, nothing added twice.
    let mut again = restarted.restart(crate::core::CoreConfig::default());
    again.worker_with(30, "w1", &["default"], &[INFO], vec![(id, 1)]);
    let frames = again.complete(30, id, 1, adding(tasks_of(&["2", "3"])));
    assert_eq!(
        replies(&frames, 30),
        vec![Err(RequestError::StaleAttempt {
            task: id,
            attempt: 1
        })]
    );
    assert_eq!(again.core.jobs[&id.job].tasks.len(), 3);
    assert_eq!(
        task_frames(&again, id)[1..],
        [Some("2".into()), Some("3".into())]
    );
}

/// Runs a worker's report through the core without completing its commit: the effects,
/// and the commit's token and ops.
fn report_uncommitted(
    farm: &mut Farm,
    conn: crate::core::ConnId,
    id: TaskId,
    outcome: Outcome,
) -> (crate::core::Token, Vec<StoreOp>) {
    let effects = farm.core.handle(
        farm.now,
        Input::Request {
            conn,
            id: 900,
            request: Request::Complete(buildcat_proto::Completion {
                task: id,
                attempt: 1,
                outcome,
            }),
        },
    );
    farm.core.check_invariants().expect("invariants hold");
    effects
        .into_iter()
        .find_map(|effect| match effect {
            Effect::Persist {
                ops,
                token: Some(token),
            } => Some((token, ops)),
            _ => None,
        })
        .expect("the report waits for its commit")
}

/// The commit of `ops` succeeded: stored, and the core told.
fn commit(
    farm: &mut Farm,
    token: crate::core::Token,
    ops: &[StoreOp],
) -> Vec<(crate::core::ConnId, ServerFrame)> {
    farm.store.commit(ops).expect("an in-memory commit");
    farm.handle(Input::Persisted {
        tokens: vec![token],
        result: Ok(()),
    })
}

#[test]
fn a_report_sent_again_while_the_first_is_stored_adds_nothing_twice() {
    let (mut farm, id) = running();
    let (token, ops) = report_uncommitted(&mut farm, 10, id, adding(tasks_of(&["2"])));
    // Sent twice on one connection (a confused worker): the second waits for the first.
    let frames = farm.complete(10, id, 1, adding(tasks_of(&["2"])));
    assert!(
        matches!(replies(&frames, 10).as_slice(), [Err(RequestError::Storage(reason))]
            if reason.contains("being stored already")),
        "{frames:?}"
    );
    // The worker's connection drops; it comes back with the task and sends the report again:
    // refused as well (it was told to stop the attempt it reclaimed).
    farm.handle(Input::Disconnected { conn: 10 });
    farm.worker_with(11, "w1", &["default"], &[INFO], vec![(id, 1)]);
    let frames = farm.complete(11, id, 1, adding(tasks_of(&["2"])));
    assert!(
        matches!(replies(&frames, 11).as_slice(), [Err(_)]),
        "{frames:?}"
    );
    assert_eq!(
        farm.core.jobs[&id.job].tasks.len(),
        1,
        "not before the commit"
    );
    commit(&mut farm, token, &ops);
    assert_eq!(farm.core.jobs[&id.job].tasks.len(), 2);
    assert_eq!(farm.state(id), TaskState::Finished);
    // Sent once more, it is stale now.
    let frames = farm.complete(11, id, 1, adding(tasks_of(&["2"])));
    assert_eq!(
        replies(&frames, 11),
        vec![Err(RequestError::StaleAttempt {
            task: id,
            attempt: 1
        })]
    );
    assert_eq!(farm.core.jobs[&id.job].tasks.len(), 2);
    let stored = farm.store.clone().load().expect("a load");
    assert_eq!(stored.jobs[0].tasks.len(), 2);
}

#[test]
fn tasks_added_by_a_task_canceled_while_its_report_was_stored_are_canceled() {
    let (mut farm, id) = running();
    let (token, ops) = report_uncommitted(&mut farm, 10, id, adding(tasks_of(&["2", "3"])));
    // Stored in order: the report's commit is before the cancel's.
    farm.store.commit(&ops).expect("an in-memory commit");
    farm.request(CLIENT, Request::Cancel(vec![whole(id)]));
    assert_eq!(farm.job_state(id.job), JobState::Canceled);
    farm.handle(Input::Persisted {
        tokens: vec![token],
        result: Ok(()),
    });
    let job = &farm.core.jobs[&id.job];
    assert_eq!(job.tasks.len(), 3, "stored, so kept");
    for index in 1..=2 {
        assert_eq!(farm.state(TaskId::new(id.job, index)), TaskState::Canceled);
    }
    assert_eq!(
        farm.job_state(id.job),
        JobState::Canceled,
        "not brought back"
    );
    // A restart agrees.
    let restarted = farm.restart(crate::core::CoreConfig::default());
    assert_eq!(restarted.job_state(id.job), JobState::Canceled);
    assert_eq!(restarted.core.jobs[&id.job].tasks.len(), 3);
}

#[test]
fn a_task_run_again_after_a_requeue_adds_nothing_twice() {
    let (mut farm, id) = running();
    farm.complete(10, id, 1, adding(tasks_of(&["2", "3"])));
    for index in 1..=2 {
        farm.complete(10, TaskId::new(id.job, index), 1, Outcome::Finished(vec![]));
    }
    assert_eq!(farm.job_state(id.job), JobState::Finished);
    // `requeue --all`: every task runs again, the added ones included.
    farm.request(
        CLIENT,
        Request::Requeue(buildcat_proto::Requeue::Tasks {
            targets: vec![whole(id)],
            all: true,
        }),
    );
    assert_eq!(farm.state(id), TaskState::Started);
    let frames = farm.complete(10, id, 2, adding(tasks_of(&["2", "3"])));
    assert_eq!(replies(&frames, 10), vec![Ok(Reply::Ack)]);
    assert_eq!(farm.state(id), TaskState::Finished);
    assert_eq!(farm.core.jobs[&id.job].tasks.len(), 3, "none added twice");
    for index in 1..=2 {
        farm.complete(10, TaskId::new(id.job, index), 2, Outcome::Finished(vec![]));
    }
    assert_eq!(farm.job_state(id.job), JobState::Finished);
}
