//! Results across server outages (tester findings 1 and 10): a task that finishes while the
//! server is down, for longer than the worker's lease or than the server's reconnect grace,
//! runs once; its worker keeps the result and sends it when the server is back, and the
//! task shows one attempt, finished. A second worker started with a name a live worker
//! holds stops with a message that says so, instead of retrying forever.
//!
//! The task appends `start` to a file in the root when it starts and `ran` when it ends,
//! which it does once the test creates `release` (after killing the server).

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{Farm, PATIENCE, Proc, poll_until, worker};

/// The task: `start`, then `ran` once `release` exists.
const SCRIPT: &str =
    "echo start >> runs; while [ ! -e release ]; do sleep 0.05; done; echo ran >> runs";

/// The lines of the `runs` file in `root`.
fn runs(root: &Path) -> Vec<String> {
    fs::read_to_string(root.join("runs"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Kills the server while the task runs, lets the task finish during the outage, keeps the
/// server down for `outage` (from the kill), starts it again on the same storage and checks
/// that the task ran once, its result kept: one attempt, finished.
fn finish_during_an_outage(server_args: &[&str], outage: Duration, name: &str) {
    let mut farm = Farm::start_with(server_args);
    let root = farm.path().to_owned();
    let state = farm.make_dir("state");
    let state = state.to_str().expect("a UTF-8 path");
    let mut worker_proc = farm.worker(&["--name", name, "--state-dir", state]);
    farm.wait_for_info("the worker", |info| worker(info, name).is_some());
    let job = farm.submit(&["--", "sh", "-c", SCRIPT]);
    poll_until("the task started", || {
        if runs(&root) == ["start"] {
            Ok(())
        } else {
            Err(format!("{:?}\n{}", runs(&root), worker_proc.logs()))
        }
    });

    farm.kill_server();
    let killed = Instant::now();
    fs::write(root.join("release"), "").expect("cannot create the release file");
    poll_until("the task finished during the outage", || {
        if runs(&root) == ["start", "ran"] {
            Ok(())
        } else {
            Err(format!("{:?}\n{}", runs(&root), worker_proc.logs()))
        }
    });
    // The outage itself (not a wait for anything): the server stays down this long, past
    // the worker's lease.
    thread::sleep(outage.saturating_sub(killed.elapsed()));
    worker_proc.assert_running();
    farm.start_server();

    let status = farm.wait_for_status(&job, "finished", |status| status["state"] == "finished");
    assert_eq!(
        runs(&root),
        ["start", "ran"],
        "the task ran again\n{status:#}\n{}",
        worker_proc.logs()
    );
    let attempts = status["attempts"].as_array().cloned().unwrap_or_default();
    assert_eq!(attempts.len(), 1, "{status:#}\n{}", worker_proc.logs());
    assert_eq!(attempts[0]["outcome"], "finished", "{status:#}");
    let log = worker_proc.log();
    assert!(
        !log.contains("within the lease"),
        "a finished task has nothing to stop: {log}"
    );
}

/// Guards tester finding 1: the server killed while a task runs and kept down longer than
/// the worker's lease (3.2 s of a 4 s grace, as 50 s of 60 by default) but shorter than the
/// grace; the task finished during the outage. It ran once, and its result was kept.
#[test]
fn a_task_finished_during_an_outage_longer_than_the_lease_runs_once() {
    finish_during_an_outage(
        &["--reconnect-grace", "4", "--heartbeat", "0.5"],
        Duration::from_millis(3_700),
        "outage-lease",
    );
}

/// Guards tester finding 1 with a short grace (`--reconnect-grace 12` after a 16 s
/// outage): the outage outlasts the grace too. The task still ran once.
#[test]
fn a_task_finished_during_an_outage_longer_than_the_grace_runs_once() {
    finish_during_an_outage(
        &["--reconnect-grace", "2", "--heartbeat", "0.5"],
        Duration::from_secs(3),
        "outage-grace",
    );
}

/// Guards tester finding 10: `worker --name w1` while a live w1 holds the name exits
/// non-zero at once, saying so and what to do; the first keeps serving.
#[test]
fn a_worker_whose_name_a_live_worker_holds_stops() {
    let farm = Farm::start();
    let first_state = farm.make_dir("first");
    let second_state = farm.make_dir("second");
    let mut first = farm.worker(&[
        "--name",
        "w1",
        "--state-dir",
        first_state.to_str().expect("a UTF-8 path"),
    ]);
    farm.wait_for_info("the first w1", |info| worker(info, "w1").is_some());
    let mut second: Proc = farm.worker(&[
        "--name",
        "w1",
        "--state-dir",
        second_state.to_str().expect("a UTF-8 path"),
    ]);
    let status = second.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(1), "{status}\n{}", second.logs());
    let log = second.log();
    assert!(
        log.contains("a worker named `w1` is already connected")
            && log.contains("give this one another --name, or stop the other first"),
        "{log}"
    );
    first.assert_running();
    let job = farm.submit(&["--", "sh", "-c", "echo served"]);
    farm.wait_for_status(&job, "finished", |status| status["state"] == "finished");
}
