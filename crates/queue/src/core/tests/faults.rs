//! Regression tests for the faults of issue 9 ("nothing runs twice, nothing is stranded,
//! nothing is lost"), each named by the item it guards.

use std::time::Duration;

use buildcat_proto::{
    AttemptOutcome, Failure, JobOptions, Outcome, Reply, Request, RequestError, ServerFrame,
    TaskId, TaskState, WorkerActivity,
};

use super::{Farm, INFO, assignments, job, replies, whole};
use crate::core::{CoreConfig, Effect, Input};
use crate::store::StoreError;

/// Item 1: an idle worker that sends a result the server refuses as stale was listed idle
/// twice, so the next two jobs both went to it and the first was stranded as started.
#[test]
fn a_refused_result_changes_nothing_but_the_refusal() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (first, _) = farm.submit_one("default", INFO);
    farm.complete(10, first, 1, Outcome::Finished(vec![]));
    // The same result again, as after a partition: refused; w1 stays idle once.
    let frames = farm.complete(10, first, 1, Outcome::Finished(vec![]));
    assert_eq!(
        replies(&frames, 10),
        vec![Err(RequestError::StaleAttempt {
            task: first,
            attempt: 1
        })]
    );
    assert_eq!(farm.core.idle.len(), 1);
    farm.worker(11, "w2", &["default"]);
    let (a, frames_a) = farm.submit_one("default", INFO);
    let (b, frames_b) = farm.submit_one("default", INFO);
    assert_eq!(assignments(&frames_a), vec![(10, a, 1)]);
    assert_eq!(assignments(&frames_b), vec![(11, b, 1)], "one job per slot");
}

/// Item 3: a worker that comes back still running an attempt that was handed on is told to
/// stop it, and gets no work until it reports that attempt.
#[test]
fn a_returning_worker_holding_a_handed_on_attempt_stops_it_before_new_work() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    farm.lose(10);
    farm.worker(11, "w2", &["default"]);
    assert_eq!(farm.task(id).current_attempt(), 2);
    let (other, _) = farm.submit_one("default", INFO);
    let frames = farm.worker_with(20, "w1", &["default"], &[INFO], vec![(id, 1)]);
    assert!(
        frames.iter().any(|(conn, frame)| *conn == 20
            && matches!(frame, ServerFrame::Cancel { task, attempt: 1, .. } if *task == id)),
        "{frames:?}"
    );
    assert!(assignments(&frames).is_empty(), "not idle while it stops");
    assert_eq!(farm.state(other), TaskState::Queued);
    let frames = farm.complete(20, id, 1, Outcome::Canceled);
    assert_eq!(
        replies(&frames, 20),
        vec![Err(RequestError::StaleAttempt {
            task: id,
            attempt: 1
        })]
    );
    assert_eq!(assignments(&frames), vec![(20, other, 1)]);
    assert_eq!(
        farm.state(id),
        TaskState::Started,
        "w2's attempt is untouched"
    );
}

/// Item 5: a completion whose commit failed (disk full) stayed applied in memory; the
/// worker's resend was refused as stale and the job stranded.
#[test]
fn a_completion_takes_effect_only_once_committed() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    farm.request(super::CLIENT, Request::Wait(id.job.into()));
    let frames = farm.handle_with(
        Input::Request {
            conn: 10,
            id: 1,
            request: Request::Complete(buildcat_proto::Completion {
                task: id,
                attempt: 1,
                outcome: Outcome::Finished(vec![7]),
            }),
        },
        Some("database or disk is full"),
    );
    assert!(matches!(
        replies(&frames, 10).as_slice(),
        [Err(RequestError::Storage(_))]
    ));
    assert!(
        replies(&frames, super::CLIENT).is_empty(),
        "nobody hears of an end not stored"
    );
    assert_eq!(farm.state(id), TaskState::Started);
    assert!(farm.task(id).attempts[0].outcome.is_none());
    // The worker reconnects with its unacknowledged result and sends it again.
    farm.handle(Input::Disconnected { conn: 10 });
    farm.worker_with(11, "w1", &["default"], &[INFO], vec![(id, 1)]);
    let frames = farm.complete(11, id, 1, Outcome::Finished(vec![7]));
    assert_eq!(replies(&frames, 11), vec![Ok(Reply::Ack)]);
    assert_eq!(farm.state(id), TaskState::Finished);
    assert!(matches!(
        replies(&frames, super::CLIENT).as_slice(),
        [Ok(Reply::Ended(status))] if status.tasks[0].state == TaskState::Finished
    ));
    let frames = farm.request(super::CLIENT, Request::Task(id.into()));
    assert!(matches!(
        replies(&frames, super::CLIENT).as_slice(),
        [Ok(Reply::Task(task))] if task.result == Some(vec![7])
    ));
}

/// Item 5, when the worker does not come back: the job waits the grace, then is handed on.
#[test]
fn a_completion_that_failed_to_commit_is_handed_on_if_its_worker_never_resends() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    farm.handle_with(
        Input::Request {
            conn: 10,
            id: 1,
            request: Request::Complete(buildcat_proto::Completion {
                task: id,
                attempt: 1,
                outcome: Outcome::Finished(vec![]),
            }),
        },
        Some("database or disk is full"),
    );
    assert!(farm.core.orphans.contains_key(&id));
    farm.handle(Input::Disconnected { conn: 10 });
    farm.advance(CoreConfig::default().reconnect_grace + Duration::from_secs(1));
    farm.handle(Input::Tick);
    assert_eq!(farm.state(id), TaskState::Queued);
}

fn attempts(count: u32) -> JobOptions {
    JobOptions {
        max_attempts: count,
        ..JobOptions::default()
    }
}

fn fail(farm: &mut Farm, conn: u64, id: TaskId, attempt: u32) {
    let outcome = Outcome::Failed(Failure::new("the root is gone"));
    farm.complete(conn, id, attempt, outcome);
}

/// Item 7: one broken worker, always idle longest, took every retry of the jobs it had
/// failed, and failed 7 of 10 jobs with all their attempts.
#[test]
fn a_retry_goes_to_a_worker_that_has_not_failed_the_job() {
    let config = CoreConfig {
        retry_backoff: Duration::ZERO,
        ..CoreConfig::default()
    };
    let mut farm = Farm::with(config);
    farm.worker(11, "healthy", &["default"]);
    farm.worker(10, "broken", &["default"]);
    let (long, _) = farm.submit_one("default", INFO);
    let (ids, _) = farm.submit(vec![
        job("default", INFO, attempts(3)),
        job("default", INFO, attempts(3)),
    ]);
    assert_eq!(farm.core.running.get(&long), Some(&11));
    // The broken worker fails both jobs; their retries wait for the healthy one rather than
    // go back to it.
    fail(&mut farm, 10, ids[0], 1);
    fail(&mut farm, 10, ids[1], 1);
    assert_eq!(farm.state(ids[0]), TaskState::Queued);
    assert_eq!(farm.state(ids[1]), TaskState::Queued);
    assert_eq!(farm.core.idle.len(), 1, "broken has nothing it should run");
    let frames = farm.complete(11, long, 1, Outcome::Finished(vec![]));
    assert_eq!(assignments(&frames), vec![(11, ids[0], 2)]);
    let frames = farm.complete(11, ids[0], 2, Outcome::Finished(vec![]));
    assert_eq!(assignments(&frames), vec![(11, ids[1], 2)]);
    farm.complete(11, ids[1], 2, Outcome::Finished(vec![]));
    assert!(ids.iter().all(|id| farm.state(*id) == TaskState::Finished));
}

/// Item 7: with no other worker that can run it, a retry still runs where it failed.
#[test]
fn a_retry_goes_back_to_the_only_worker_that_can_run_it() {
    let config = CoreConfig {
        retry_backoff: Duration::ZERO,
        ..CoreConfig::default()
    };
    let mut farm = Farm::with(config);
    farm.worker(10, "only", &["default"]);
    let (ids, _) = farm.submit(vec![job("default", INFO, attempts(2))]);
    let outcome = Outcome::Failed(Failure::new("flaky"));
    let frames = farm.complete(10, ids[0], 1, outcome);
    assert_eq!(assignments(&frames), vec![(10, ids[0], 2)]);
}

/// Item 7: a worker that fails five different jobs in a row is quarantined: no work, the
/// reason in `info`, until `worker-enable` (or its cool-down) lets it back.
#[test]
fn a_worker_failing_job_after_job_is_quarantined_until_enabled() {
    let config = CoreConfig {
        quarantine_cooldown: Duration::ZERO,
        ..CoreConfig::default()
    };
    let mut farm = Farm::with(config);
    farm.worker(10, "broken", &["default"]);
    let mut failed = Vec::new();
    for _ in 0..5 {
        let (id, _) = farm.submit_one("default", INFO);
        fail(&mut farm, 10, id, 1);
        failed.push(id);
    }
    let info = farm.core.info();
    assert_eq!(info.workers[0].activity, WorkerActivity::Quarantined);
    let reason = info.workers[0].quarantine.clone().unwrap_or_default();
    assert!(
        reason.contains("failed 5 different jobs in a row"),
        "{reason}"
    );
    assert!(reason.contains("the root is gone"), "{reason}");
    let (waiting, frames) = farm.submit_one("default", INFO);
    assert!(assignments(&frames).is_empty());
    let frames = farm.request(super::CLIENT, Request::EnableWorker("nobody".to_owned()));
    assert_eq!(
        replies(&frames, super::CLIENT),
        vec![Err(RequestError::UnknownWorker("nobody".to_owned()))]
    );
    let frames = farm.request(super::CLIENT, Request::EnableWorker("broken".to_owned()));
    assert_eq!(replies(&frames, super::CLIENT), vec![Ok(Reply::Ack)]);
    assert_eq!(assignments(&frames), vec![(10, waiting, 1)]);
    assert_eq!(farm.core.info().workers[0].quarantine, None);
}

/// Item 7: the same job failing again does not count twice, and a finished job ends the
/// streak; the cool-down ends a quarantine by itself.
#[test]
fn quarantine_counts_different_jobs_in_a_row_and_cools_down() {
    let config = CoreConfig {
        retry_backoff: Duration::ZERO,
        quarantine_after: 2,
        quarantine_cooldown: Duration::from_secs(60),
        ..CoreConfig::default()
    };
    let mut farm = Farm::with(config);
    farm.worker(10, "w", &["default"]);
    let (ids, _) = farm.submit(vec![job("default", INFO, attempts(3))]);
    fail(&mut farm, 10, ids[0], 1);
    fail(&mut farm, 10, ids[0], 2);
    assert!(!farm.core.quarantined("w"), "one job, failed twice");
    farm.complete(10, ids[0], 3, Outcome::Finished(vec![]));
    let (a, _) = farm.submit_one("default", INFO);
    fail(&mut farm, 10, a, 1);
    let (b, _) = farm.submit_one("default", INFO);
    fail(&mut farm, 10, b, 1);
    assert!(farm.core.quarantined("w"));
    // `info` says when it ends by itself, so a submit's warning can (tester finding 4).
    let ends = buildcat_proto::view::rfc3339(farm.now.plus(Duration::from_secs(60)));
    let reason = farm.core.info().workers[0].quarantine.clone();
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.ends_with(&format!("; it ends by itself at {ends}"))),
        "{reason:?}"
    );
    farm.advance(Duration::from_secs(60));
    farm.request(10, Request::Heartbeat);
    let (c, frames) = farm.submit_one("default", INFO);
    assert!(assignments(&frames).is_empty());
    let frames = farm.handle(Input::Tick);
    assert!(!farm.core.quarantined("w"));
    assert_eq!(assignments(&frames), vec![(10, c, 1)]);
    assert!(matches!(
        farm.task(a).attempts[0].outcome,
        Some(AttemptOutcome::Failed(_))
    ));
}

/// Item 3, the order: a worker reads nothing before its registration is answered, so a
/// stop sent first made every re-registration of a worker holding a handed-on attempt fail
/// (`unexpected frame ... before the registration was answered`), over and over. The reply
/// comes first, then the stop.
#[test]
fn a_returning_worker_is_registered_before_it_is_told_to_stop() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    farm.lose(10);
    farm.worker(11, "w2", &["default"]);
    let frames = farm.worker_with(20, "w1", &["default"], &[INFO], vec![(id, 1)]);
    let to_20: Vec<&ServerFrame> = frames
        .iter()
        .filter(|(conn, _)| *conn == 20)
        .map(|(_, frame)| frame)
        .collect();
    assert!(
        matches!(
            to_20.as_slice(),
            [
                ServerFrame::Reply {
                    reply: Ok(Reply::Registered { .. }),
                    ..
                },
                ServerFrame::Cancel { task, attempt: 1, .. },
            ] if *task == id
        ),
        "{to_20:?}"
    );
}

/// Item 5 with more work queued, found end to end (`chaos::results_refused_on_a_full_disk_
/// are_stored_once_space_returns`): the slot of a worker whose result is being committed
/// takes the next job; when that commit fails the worker keeps the result and comes back
/// listing both. It was told to stop the first (its slot was taken by the second), so its
/// result was never stored. Now it keeps both: the result is stored when sent again.
#[test]
fn a_result_whose_commit_failed_is_taken_when_its_worker_returns_busy() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (first, _) = farm.submit_one("default", INFO);
    let (second, _) = farm.submit_one("default", INFO);
    // The result's commit fails; the next job's assignment is stored in a later commit,
    // once a little space came back (each commit reported on its own here).
    let effects = farm.core.handle(
        farm.now,
        Input::Request {
            conn: 10,
            id: 1,
            request: Request::Complete(buildcat_proto::Completion {
                task: first,
                attempt: 1,
                outcome: Outcome::Finished(vec![7]),
            }),
        },
    );
    let tokens: Vec<_> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Persist { token, .. } => *token,
            _ => None,
        })
        .collect();
    let [result, assignment] = tokens[..] else {
        panic!("a commit for the result, then one for the next assignment: {effects:?}");
    };
    farm.handle(Input::Persisted {
        tokens: vec![result],
        result: Err(StoreError::Unavailable(
            "database or disk is full".to_owned(),
        )),
    });
    let frames = farm.handle(Input::Persisted {
        tokens: vec![assignment],
        result: Ok(()),
    });
    assert_eq!(assignments(&frames), vec![(10, second, 1)]);
    assert_eq!(farm.state(first), TaskState::Started);
    // The worker drops the connection on the storage error and comes back running the
    // second job, still holding the first's result.
    farm.handle(Input::Disconnected { conn: 10 });
    let frames = farm.worker_with(
        11,
        "w1",
        &["default"],
        &[INFO],
        vec![(second, 1), (first, 1)],
    );
    assert!(
        !frames
            .iter()
            .any(|(_, frame)| matches!(frame, ServerFrame::Cancel { .. })),
        "{frames:?}"
    );
    let frames = farm.complete(11, first, 1, Outcome::Finished(vec![7]));
    assert_eq!(replies(&frames, 11), vec![Ok(Reply::Ack)]);
    assert_eq!(farm.state(first), TaskState::Finished);
    let frames = farm.complete(11, second, 1, Outcome::Finished(vec![]));
    assert_eq!(replies(&frames, 11), vec![Ok(Reply::Ack)]);
    assert_eq!(farm.state(second), TaskState::Finished);
}

/// Found end to end (`chaos::repeated_server_kills_...`): a job was sent to its worker before
/// the record of that attempt was stored, so a server killed in between restarted with the
/// job queued while the worker ran it; another worker got the same attempt number, and the
/// first, returning, took the job over: two copies at once. A worker now hears of an
/// attempt only once it is stored; one that cannot be stored is not sent at all.
#[test]
fn a_job_is_sent_to_its_worker_only_once_its_attempt_is_stored() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (first, _) = farm.submit_one("default", INFO);
    farm.complete(10, first, 1, Outcome::Finished(vec![]));
    // Submitted and committed; the assignment's commit fails.
    let effects = farm.core.handle(
        farm.now,
        Input::Request {
            conn: super::CLIENT,
            id: 1,
            request: Request::Submit(vec![job("default", INFO, JobOptions::default())]),
        },
    );
    let Some(Effect::Persist {
        token: Some(submitted),
        ..
    }) = effects.last()
    else {
        panic!("a commit for the submission: {effects:?}");
    };
    let effects = farm.core.handle(
        farm.now,
        Input::Persisted {
            tokens: vec![*submitted],
            result: Ok(()),
        },
    );
    assert!(
        !effects
            .iter()
            .any(|effect| matches!(effect, Effect::Send(_, ServerFrame::Assign(_)))),
        "not sent before its attempt is stored: {effects:?}"
    );
    let Some(Effect::Persist {
        token: Some(assigned),
        ..
    }) = effects.last()
    else {
        panic!("a commit for the assignment: {effects:?}");
    };
    let frames = farm.handle(Input::Persisted {
        tokens: vec![*assigned],
        result: Err(StoreError::Unavailable(
            "database or disk is full".to_owned(),
        )),
    });
    assert!(assignments(&frames).is_empty());
    let id = TaskId::new(
        *farm
            .core
            .jobs
            .keys()
            .find(|id| **id != first.job)
            .expect("the second job"),
        0,
    );
    assert_eq!(farm.state(id), TaskState::Queued);
    assert!(
        farm.task(id).attempts.is_empty(),
        "the attempt never happened"
    );
    // Dispatched again after a pause, not in a loop against the full disk.
    assert_eq!(farm.core.idle.len(), 1);
    farm.advance(CoreConfig::default().retry_backoff);
    farm.request(10, Request::Heartbeat);
    let frames = farm.handle(Input::Tick);
    assert_eq!(assignments(&frames), vec![(10, id, 1)]);
}

/// The other half of the same fault: a returning worker may reclaim only an attempt that was
/// given to it, by name; a worker holding an attempt number recorded for another is told to
/// stop it, and the other keeps its job.
#[test]
fn a_worker_cannot_reclaim_an_attempt_given_to_another() {
    let mut farm = Farm::new();
    farm.worker(10, "w2", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    assert_eq!(farm.core.running.get(&id), Some(&10));
    let frames = farm.worker_with(20, "w1", &["default"], &[INFO], vec![(id, 1)]);
    assert!(
        frames.iter().any(|(conn, frame)| *conn == 20
            && matches!(frame, ServerFrame::Cancel { task, attempt: 1, .. } if *task == id)),
        "{frames:?}"
    );
    assert!(
        !frames
            .iter()
            .any(|(conn, frame)| *conn == 10 && matches!(frame, ServerFrame::Closing(_))),
        "w2 keeps its connection and its job: {frames:?}"
    );
    assert_eq!(farm.core.running.get(&id), Some(&10));
}

/// Found trying the farm as a new user (item 6's kind): with the storage file deleted, a
/// cancel was answered "canceled", and the job came back running after a restart. A cancel
/// or requeue is now answered once its change is stored; a failed commit answers a storage
/// error that says the change would not survive a restart.
#[test]
fn a_cancel_is_acknowledged_only_once_stored() {
    let mut farm = Farm::new();
    let (id, _) = farm.submit_one("default", INFO);
    let effects = farm.core.handle(
        farm.now,
        Input::Request {
            conn: super::CLIENT,
            id: 1,
            request: Request::Cancel(vec![whole(id)]),
        },
    );
    assert!(
        !effects
            .iter()
            .any(|effect| matches!(effect, Effect::Send(_, ServerFrame::Reply { id: 1, .. }))),
        "answered before its commit: {effects:?}"
    );
    let Some(Effect::Persist {
        token: Some(token), ..
    }) = effects.last()
    else {
        panic!("a commit for the cancel: {effects:?}");
    };
    let frames = farm.handle(Input::Persisted {
        tokens: vec![*token],
        result: Err(StoreError::Lost {
            path: "buildcat.db".to_owned(),
            message: "it was removed".to_owned(),
        }),
    });
    let answers = replies(&frames, super::CLIENT);
    assert!(
        matches!(answers.as_slice(), [Err(RequestError::Storage(message))] if message.contains("restart would undo it")),
        "{answers:?}"
    );
    // With storage back, the answer lists the changes.
    let (other, _) = farm.submit_one("default", INFO);
    let frames = farm.request(super::CLIENT, Request::Cancel(vec![whole(other)]));
    assert!(matches!(
        replies(&frames, super::CLIENT).as_slice(),
        [Ok(Reply::Changes(changes))] if changes.len() == 1
    ));
}
