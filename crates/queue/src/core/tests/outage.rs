//! Results across server outages (tester finding 1): a task that finished while the server
//! was away is named by its worker when it registers again, and its result is taken rather
//! than the task run twice: within the reconnect grace of a restarted server, after it (the
//! attempt counted lost but not handed on yet), and while the worker already runs another
//! task. A result whose task went to another worker meanwhile is refused, and that worker's
//! attempt is untouched.

use std::time::Duration;

use buildcat_proto::{AttemptOutcome, Outcome, Reply, RequestError, ServerFrame, TaskState};

use super::{Farm, INFO, assignments, replies};
use crate::core::{CoreConfig, Effect, Input};
use crate::store::StoreError;

/// Whether `frames` tell connection `conn` to stop an attempt.
fn cancels(frames: &[(u64, ServerFrame)], conn: u64) -> bool {
    frames
        .iter()
        .any(|(to, frame)| *to == conn && matches!(frame, ServerFrame::Cancel { .. }))
}

/// The tester's case: the server is killed while a task runs, the task finishes while the
/// server is down (longer than the worker's lease, shorter than the grace of the restarted
/// server), and the worker comes back naming the attempt: it is reclaimed, its result taken,
/// and the task has one attempt, finished.
#[test]
fn a_result_held_across_a_restart_is_taken_within_the_grace() {
    let mut farm = Farm::new();
    farm.worker(10, "t4", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    let mut restarted = farm.restart(CoreConfig::default());
    restarted.advance(Duration::from_secs(5));
    restarted.handle(Input::Tick);
    let frames = restarted.worker_with(11, "t4", &["default"], &[INFO], vec![(id, 1)]);
    assert!(!cancels(&frames, 11), "{frames:?}");
    assert!(
        assignments(&frames).is_empty(),
        "the slot holds the result: {frames:?}"
    );
    let frames = restarted.complete(11, id, 1, Outcome::Finished(vec![1]));
    assert_eq!(replies(&frames, 11), vec![Ok(Reply::Ack)]);
    assert_eq!(restarted.state(id), TaskState::Finished);
    let attempts = &restarted.task(id).attempts;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Finished));
}

/// The same with the worker back only after the restarted server's grace (the tester's
/// `--reconnect-grace 12` after a 16 s outage, and a slow reconnect): the attempt was
/// counted lost and queued again, but no other worker took it, so the returning worker's
/// result is taken and the task does not run again.
#[test]
fn a_result_held_past_the_grace_is_taken_when_not_handed_on() {
    let mut farm = Farm::new();
    farm.worker(10, "t4", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    let mut restarted = farm.restart(CoreConfig::default());
    restarted.advance(CoreConfig::default().reconnect_grace + Duration::from_secs(1));
    restarted.handle(Input::Tick);
    assert_eq!(restarted.state(id), TaskState::Queued, "counted lost");
    let frames = restarted.worker_with(11, "t4", &["default"], &[INFO], vec![(id, 1)]);
    assert!(!cancels(&frames, 11), "{frames:?}");
    assert!(assignments(&frames).is_empty(), "{frames:?}");
    assert_eq!(restarted.state(id), TaskState::Started);
    let frames = restarted.complete(11, id, 1, Outcome::Finished(vec![1]));
    assert_eq!(replies(&frames, 11), vec![Ok(Reply::Ack)]);
    assert_eq!(restarted.state(id), TaskState::Finished);
    let attempts = &restarted.task(id).attempts;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Finished));
}

/// A worker that comes back running one task and holding the result of another, both
/// counted lost past the grace and neither handed on: it keeps the running one, and the
/// held result waits for it (one grace) instead of being refused because the slot is busy.
#[test]
fn a_held_result_counted_lost_is_taken_from_a_worker_that_returns_busy() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (first, _) = farm.submit_one("default", INFO);
    let (second, _) = farm.submit_one("default", INFO);
    // The first's result is refused (its commit fails) and the slot goes on to the second.
    let effects = farm.core.handle(
        farm.now,
        Input::Request {
            conn: 10,
            id: 1,
            request: buildcat_proto::Request::Complete(buildcat_proto::Completion {
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
    farm.handle(Input::Persisted {
        tokens: vec![assignment],
        result: Ok(()),
    });
    // Then the worker is away past the grace: both attempts are counted lost.
    farm.lose(10);
    assert_eq!(farm.state(first), TaskState::Queued);
    assert_eq!(farm.state(second), TaskState::Queued);
    let frames = farm.worker_with(
        11,
        "w1",
        &["default"],
        &[INFO],
        vec![(second, 1), (first, 1)],
    );
    assert!(!cancels(&frames, 11), "{frames:?}");
    assert!(assignments(&frames).is_empty(), "{frames:?}");
    assert_eq!(
        farm.state(first),
        TaskState::Started,
        "waiting for the held result"
    );
    let frames = farm.complete(11, first, 1, Outcome::Finished(vec![7]));
    assert_eq!(replies(&frames, 11), vec![Ok(Reply::Ack)]);
    assert_eq!(farm.state(first), TaskState::Finished);
    assert_eq!(farm.task(first).attempts.len(), 1);
    let frames = farm.complete(11, second, 1, Outcome::Finished(vec![]));
    assert_eq!(replies(&frames, 11), vec![Ok(Reply::Ack)]);
    assert_eq!(farm.state(second), TaskState::Finished);
    assert_eq!(farm.task(second).attempts.len(), 1);
}

/// A held result the worker never sends after all is not waited for forever: once the
/// grace it was given ends, the task is counted lost again and runs elsewhere.
#[test]
fn a_readopted_attempt_whose_result_never_comes_is_handed_on_after_the_grace() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (first, _) = farm.submit_one("default", INFO);
    farm.lose(10);
    let (busy, _) = farm.submit_one("other", INFO);
    farm.worker(12, "w3", &["other"]);
    farm.handle(Input::Disconnected { conn: 12 });
    farm.advance(CoreConfig::default().reconnect_grace + Duration::from_secs(1));
    farm.handle(Input::Tick);
    // w3 comes back running its own task and (wrongly) naming w1's lost attempt: not its
    // own, so it is told to stop it rather than given it.
    let frames = farm.worker_with(13, "w3", &["other"], &[INFO], vec![(busy, 1), (first, 1)]);
    assert!(cancels(&frames, 13), "{frames:?}");
    assert_eq!(farm.state(first), TaskState::Queued);
    // w1 comes back busy with nothing of its own but naming the lost attempt second.
    let (other_task, _) = farm.submit_one("mine", INFO);
    farm.worker(14, "w1", &["mine"]);
    farm.handle(Input::Disconnected { conn: 14 });
    let frames = farm.worker_with(
        15,
        "w1",
        &["mine"],
        &[INFO],
        vec![(other_task, 1), (first, 1)],
    );
    assert!(!cancels(&frames, 15), "{frames:?}");
    assert_eq!(farm.state(first), TaskState::Started);
    // It never sends the result: after the grace the task is lost again and queued.
    farm.advance(CoreConfig::default().reconnect_grace + Duration::from_secs(1));
    farm.handle(Input::Tick);
    assert_eq!(farm.state(first), TaskState::Queued);
    let frames = farm.worker(16, "w2", &["default"]);
    assert_eq!(assignments(&frames), vec![(16, first, 2)]);
}

/// A result that comes back after the task was handed to another worker is refused as
/// stale, and the other worker's attempt is untouched: never two results for one task.
#[test]
fn a_held_result_of_a_task_handed_on_is_refused() {
    let mut farm = Farm::new();
    farm.worker(10, "t4", &["default"]);
    let (id, _) = farm.submit_one("default", INFO);
    farm.lose(10);
    let frames = farm.worker(11, "t5", &["default"]);
    assert_eq!(assignments(&frames), vec![(11, id, 2)]);
    let frames = farm.worker_with(12, "t4", &["default"], &[INFO], vec![(id, 1)]);
    assert!(cancels(&frames, 12), "{frames:?}");
    let frames = farm.complete(12, id, 1, Outcome::Finished(vec![1]));
    assert_eq!(
        replies(&frames, 12),
        vec![Err(RequestError::StaleAttempt {
            task: id,
            attempt: 1
        })]
    );
    assert_eq!(farm.state(id), TaskState::Started);
    assert_eq!(farm.core.running.get(&id), Some(&11));
    let frames = farm.complete(11, id, 2, Outcome::Finished(vec![2]));
    assert_eq!(replies(&frames, 11), vec![Ok(Reply::Ack)]);
    assert_eq!(farm.state(id), TaskState::Finished);
}
