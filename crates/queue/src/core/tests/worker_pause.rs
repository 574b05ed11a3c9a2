//! Issue 12: a person pauses a worker ("finish the task you run, take no more") and
//! resumes it; the pause is kept by name across the worker's reconnects, not across a
//! server restart.

use buildcat_proto::{
    Outcome, Reply, Request, RequestError, ServerFrame, TaskState, WorkerActivity,
};

use super::{CLIENT, Farm, INFO, assignments, replies};
use crate::core::{ConnId, CoreConfig, Input};

/// Pauses (`true`) or resumes the worker named `name`, checks the client is answered
/// `Ack`; every frame sent.
fn pause(farm: &mut Farm, name: &str, paused: bool) -> Vec<(ConnId, ServerFrame)> {
    let frames = farm.request(
        CLIENT,
        Request::PauseWorker {
            name: name.to_owned(),
            paused,
        },
    );
    assert_eq!(replies(&frames, CLIENT), vec![Ok(Reply::Ack)]);
    frames
}

#[test]
fn a_paused_worker_finishes_its_task_and_takes_no_new_one_until_resumed() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (running, _) = farm.submit_one("default", INFO);
    assert_eq!(farm.state(running), TaskState::Started);
    pause(&mut farm, "w1", true);
    // It keeps the task it runs, shown busy and paused.
    assert_eq!(farm.state(running), TaskState::Started);
    let worker = &farm.core.info().workers[0];
    assert_eq!(
        (worker.activity, worker.paused),
        (WorkerActivity::Busy, true)
    );
    let (waiting, frames) = farm.submit_one("default", INFO);
    assert!(assignments(&frames).is_empty(), "{frames:?}");
    // Its task ends; it is given nothing more.
    let frames = farm.complete(10, running, 1, Outcome::Finished(vec![]));
    assert_eq!(farm.state(running), TaskState::Finished);
    assert!(assignments(&frames).is_empty(), "{frames:?}");
    assert_eq!(farm.state(waiting), TaskState::Queued);
    let worker = &farm.core.info().workers[0];
    assert_eq!(
        (worker.activity, worker.paused, worker.task),
        (WorkerActivity::Paused, true, None)
    );
    // Resumed, it is handed the waiting task at once.
    let frames = pause(&mut farm, "w1", false);
    assert_eq!(assignments(&frames), vec![(10, waiting, 1)]);
    let worker = &farm.core.info().workers[0];
    assert_eq!(
        (worker.activity, worker.paused),
        (WorkerActivity::Busy, false)
    );
}

#[test]
fn work_goes_past_a_paused_idle_worker_to_the_others() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    farm.worker(11, "w2", &["default"]);
    // w1 is idle longest and would get the next task; paused, it leaves the idle order.
    pause(&mut farm, "w1", true);
    assert_eq!(farm.core.info().workers[0].activity, WorkerActivity::Paused);
    let (first, frames) = farm.submit_one("default", INFO);
    assert_eq!(assignments(&frames), vec![(11, first, 1)]);
    let (second, frames) = farm.submit_one("default", INFO);
    assert!(assignments(&frames).is_empty());
    // Pausing twice changes nothing; resuming twice hands out work once.
    pause(&mut farm, "w1", true);
    let frames = pause(&mut farm, "w1", false);
    assert_eq!(assignments(&frames), vec![(10, second, 1)]);
    let frames = pause(&mut farm, "w1", false);
    assert!(assignments(&frames).is_empty());
}

#[test]
fn a_name_never_seen_is_refused() {
    let mut farm = Farm::new();
    for paused in [true, false] {
        let request = Request::PauseWorker {
            name: "nobody".to_owned(),
            paused,
        };
        let frames = farm.request(CLIENT, request);
        assert_eq!(
            replies(&frames, CLIENT),
            vec![Err(RequestError::UnknownWorker("nobody".to_owned()))]
        );
    }
}

/// The pause is kept by name in memory: a worker that reconnects (network blip, restart of
/// the worker) is still paused; a restarted server has forgotten it, as it forgets
/// quarantines.
#[test]
fn a_pause_holds_across_reconnects_but_not_a_server_restart() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    pause(&mut farm, "w1", true);
    farm.lose(10);
    assert!(farm.core.info().workers.is_empty());
    let (waiting, _) = farm.submit_one("default", INFO);
    // Back on a new connection, it is still paused.
    let frames = farm.worker(20, "w1", &["default"]);
    assert!(assignments(&frames).is_empty(), "{frames:?}");
    let worker = &farm.core.info().workers[0];
    assert_eq!(
        (worker.activity, worker.paused),
        (WorkerActivity::Paused, true)
    );
    let mut restarted = farm.restart(CoreConfig::default());
    let frames = restarted.worker(30, "w1", &["default"]);
    assert_eq!(assignments(&frames), vec![(30, waiting, 1)]);
    assert!(!restarted.core.info().workers[0].paused);
}

/// A paused worker that is also quarantined shows as quarantined; enabling it ends the
/// quarantine but not the pause, and a finished task does not forget the pause.
#[test]
fn a_pause_outlives_the_end_of_a_quarantine_and_a_finished_task() {
    let config = CoreConfig {
        quarantine_after: 1,
        quarantine_cooldown: std::time::Duration::ZERO,
        ..CoreConfig::default()
    };
    let mut farm = Farm::with(config);
    farm.worker(10, "w1", &["default"]);
    let (failing, _) = farm.submit_one("default", INFO);
    pause(&mut farm, "w1", true);
    let failure = Outcome::Failed(buildcat_proto::Failure::new("the root is gone"));
    farm.complete(10, failing, 1, failure);
    let worker = &farm.core.info().workers[0];
    assert_eq!(
        (worker.activity, worker.paused),
        (WorkerActivity::Quarantined, true)
    );
    let (waiting, _) = farm.submit_one("default", INFO);
    let frames = farm.request(CLIENT, Request::EnableWorker("w1".to_owned()));
    assert!(assignments(&frames).is_empty(), "still paused: {frames:?}");
    assert_eq!(farm.core.info().workers[0].activity, WorkerActivity::Paused);
    let frames = pause(&mut farm, "w1", false);
    assert_eq!(assignments(&frames), vec![(10, waiting, 1)]);
    // A task finished while paused keeps the pause (a success clears the failure record).
    pause(&mut farm, "w1", true);
    farm.complete(10, waiting, 1, Outcome::Finished(vec![]));
    assert!(farm.core.info().workers[0].paused);
    farm.handle(Input::Tick);
    assert_eq!(farm.core.info().workers[0].activity, WorkerActivity::Paused);
}

/// A retry avoids the worker that failed it only while another worker would take it: a
/// paused one would not, so the retry goes back to the one that failed it rather than
/// waiting for the pause to end.
#[test]
fn a_retry_does_not_wait_for_a_paused_worker() {
    let config = CoreConfig {
        retry_backoff: std::time::Duration::ZERO,
        ..CoreConfig::default()
    };
    let mut farm = Farm::with(config);
    farm.worker(10, "w1", &["default"]);
    farm.worker(11, "w2", &["default"]);
    pause(&mut farm, "w2", true);
    let options = buildcat_proto::JobOptions {
        max_attempts: 2,
        ..buildcat_proto::JobOptions::default()
    };
    let (ids, frames) = farm.submit(vec![super::job("default", INFO, options)]);
    assert_eq!(assignments(&frames), vec![(10, ids[0], 1)]);
    let failure = Outcome::Failed(buildcat_proto::Failure::new("flaky"));
    let frames = farm.complete(10, ids[0], 1, failure);
    assert_eq!(assignments(&frames), vec![(10, ids[0], 2)]);
}

/// A retry held back from the worker that failed it, because another worker could run it,
/// goes to the first once the other is paused.
#[test]
fn pausing_the_other_worker_releases_a_held_back_retry() {
    let config = CoreConfig {
        retry_backoff: std::time::Duration::ZERO,
        ..CoreConfig::default()
    };
    let mut farm = Farm::with(config);
    farm.worker(10, "w1", &["default"]);
    let options = buildcat_proto::JobOptions {
        max_attempts: 2,
        ..buildcat_proto::JobOptions::default()
    };
    let (ids, _) = farm.submit(vec![super::job("default", INFO, options)]);
    let flaky = ids[0];
    farm.worker(11, "w2", &["default"]);
    let (busy, frames) = farm.submit_one("default", INFO);
    assert_eq!(assignments(&frames), vec![(11, busy, 1)]);
    let failure = Outcome::Failed(buildcat_proto::Failure::new("flaky"));
    let frames = farm.complete(10, flaky, 1, failure);
    assert!(assignments(&frames).is_empty(), "held for w2: {frames:?}");
    let frames = pause(&mut farm, "w2", true);
    assert_eq!(assignments(&frames), vec![(10, flaky, 2)]);
}
