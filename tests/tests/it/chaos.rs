//! The farm under repeated faults, end to end (issue 9, "How it is checked"): the server
//! killed again and again while clients submit and workers run, a worker that fails every
//! job, and a full disk while workers report results. Each test checks the farm's promises
//! (README, "What the farm promises under faults") on the jobs it ran: nothing acknowledged
//! is lost, nothing is left started or queued once the queue drains, and no job runs twice
//! at the same time.
//!
//! The jobs (each of one task) mark their runs in files under `runs/` in the root, one file
//! per job, named by the job's number (from the `BUILDCAT_TASK` label, `42.0`, the worker
//! gives them). A run holds an exclusive `flock` on the job's
//! lock file while it runs; a run that cannot take it writes `overlap`, so two copies of a
//! job running at once cannot go unnoticed, even on different workers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    Client, Farm, Later, assert_success, count, describe, job_number, json, poll_within, queue,
    stdout, text, worker,
};
use crate::storage::Tmpfs;

/// How long the waits here may take before the test fails: more than
/// [`PATIENCE`](crate::harness::PATIENCE), because a drain after several restarts runs dozens
/// of jobs on a two-core machine that runs every other test at the same time.
const LONG_PATIENCE: Duration = Duration::from_secs(90);

/// The job every chaos test runs: marks its run in `runs/JOB` (`run` at the start, `done` at
/// the end, `overlap` if another run of the job holds the lock), sleeping between for the
/// seconds given after the script (its `$0`), so that one script serves any length of job.
const MARKED_JOB: &str = "f=runs/${BUILDCAT_TASK%.*}; exec 9>>\"$f.lock\"; \
     flock -n 9 || echo overlap >> \"$f\"; echo run >> \"$f\"; \
     sleep \"$0\"; echo done >> \"$f\"";

/// The lines of a job's marker file (empty if it never ran).
fn marks(root: &Path, job: &str) -> Vec<String> {
    std::fs::read_to_string(runs_dir(root).join(job))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Where the jobs mark their runs.
fn runs_dir(root: &Path) -> PathBuf {
    root.join("runs")
}

/// Every job on record, by number, from `buildcat jobs --json` (at most 1,000: the tests here
/// submit far fewer); fails the test if the listing fails or is cut short.
fn all_jobs(farm: &Farm) -> BTreeMap<String, Value> {
    let output = farm.run(&["jobs", "--limit", "1000", "--json"]);
    assert!(
        output.status.success(),
        "`buildcat jobs --json` failed\n{}\n{}",
        describe(&output),
        farm.server_logs()
    );
    let listing = json(&output);
    assert_eq!(listing["more"], false, "more jobs than one listing shows");
    listing["jobs"]
        .as_array()
        .expect("a list of jobs")
        .iter()
        .map(|job| {
            let number = job["number"].as_u64().expect("a job number").to_string();
            (number, job.clone())
        })
        .collect()
}

/// Polls `buildcat info --json` (through the farm's client, so that it works across server
/// restarts) until the default queue has nothing queued, deferred or started and at least
/// `ended` jobs ended; fails the test after [`LONG_PATIENCE`].
fn wait_for_drain(farm: &Farm, ended: u64) -> Value {
    poll_within(LONG_PATIENCE, "the queue to drain", || {
        let output = farm.run(&["info", "--json"]);
        let info = output
            .status
            .success()
            .then(|| serde_json::from_slice::<Value>(&output.stdout).ok())
            .flatten();
        let drained = info
            .as_ref()
            .and_then(|info| queue(info, "default"))
            .is_some_and(|q| {
                let n = |state: &str| q[state].as_u64().unwrap_or(u64::MAX);
                n("queued") == 0
                    && n("deferred") == 0
                    && n("started") == 0
                    && n("finished") + n("failed") + n("canceled") >= ended
            });
        match info {
            Some(info) if drained => Ok(info),
            _ => Err(Later(move || {
                format!(
                    "last `buildcat info --json`:\n{}\n{}",
                    describe(&output),
                    farm.server_logs()
                )
            })),
        }
    })
}

/// Whether the submitters may submit: the test closes the gate while the server is down
/// (so that they do not spin on refused connections) and shuts it at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// The server is up: submit.
    Open,
    /// The server is down: wait until it is back.
    Closed,
    /// The test has enough: stop.
    Done,
}

/// What the submitter threads and the test share.
struct Submissions {
    /// Whether to submit now.
    gate: Mutex<Gate>,
    /// Signalled when the gate changes.
    gate_changed: Condvar,
    /// Every job number a `buildcat run` printed before exiting 0: the acknowledged jobs.
    acknowledged: Mutex<Vec<String>>,
    /// How many `buildcat run` commands failed (refused or cut off by a kill), for messages.
    refused: Mutex<usize>,
}

impl Submissions {
    /// Open, nothing submitted yet.
    fn new() -> Submissions {
        Submissions {
            gate: Mutex::new(Gate::Open),
            gate_changed: Condvar::new(),
            acknowledged: Mutex::new(Vec::new()),
            refused: Mutex::new(0),
        }
    }

    /// Sets the gate and wakes the submitters.
    fn set(&self, gate: Gate) {
        *self.gate.lock().unwrap_or_else(PoisonError::into_inner) = gate;
        self.gate_changed.notify_all();
    }

    /// Blocks while the gate is closed; `false` once it is done.
    fn may_submit(&self) -> bool {
        let gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        let gate = self
            .gate_changed
            .wait_while(gate, |gate| *gate == Gate::Closed)
            .unwrap_or_else(PoisonError::into_inner);
        *gate == Gate::Open
    }

    /// How many jobs were acknowledged so far.
    fn acknowledged(&self) -> usize {
        self.acknowledged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Submits `buildcat run -- sh -c MARKED_JOB SECONDS` until the gate is done, recording
    /// what was acknowledged. Keeps at most [`MAX_BACKLOG`] acknowledged jobs unfinished, so
    /// that submissions go on at the pace the workers run them (kills land while clients
    /// submit and workers run) and the queue drains quickly at the end.
    fn submit_until_done(&self, client: &Client, root: &Path, seconds: &str) {
        while self.may_submit() {
            let backlog = self.acknowledged().saturating_sub(runs_done(root));
            if backlog >= MAX_BACKLOG {
                poll_within(LONG_PATIENCE, "the workers to catch up", || {
                    let backlog = self.acknowledged().saturating_sub(runs_done(root));
                    let gate = *self.gate.lock().unwrap_or_else(PoisonError::into_inner);
                    (backlog < MAX_BACKLOG || gate != Gate::Open)
                        .then_some(())
                        .ok_or_else(|| format!("{backlog} jobs acknowledged and not run"))
                });
                continue;
            }
            let output = client.run(&["run", "--", "sh", "-c", MARKED_JOB, seconds]);
            if output.status.success() {
                let id = job_number(&output);
                self.acknowledged
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(id);
            } else {
                *self.refused.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            }
        }
    }
}

/// How many runs of jobs have ended (`done` lines under `runs/`).
fn runs_done(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(runs_dir(root)) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_none())
        .map(|entry| {
            std::fs::read_to_string(entry.path())
                .unwrap_or_default()
                .lines()
                .filter(|line| *line == "done")
                .count()
        })
        .sum()
}

/// How many acknowledged jobs the submitters leave waiting or running: enough that both
/// workers always have work, few enough that the queue drains in a second or two.
const MAX_BACKLOG: usize = 6;

/// How many times the server is killed.
const KILLS: usize = 4;

/// How many acknowledgements the submitters get between kills (and after the last).
const ACKS_PER_ROUND: usize = 12;

/// How many submitters run at once.
const SUBMITTERS: usize = 2;

/// How long each job of the crash test runs, in seconds: long enough that kills land while
/// jobs run, short enough that the queue drains in seconds.
const CRASH_JOB_SECONDS: &str = "0.2";

/// Guards issue 9 items 1 and 4 and the first promise of the README's fault table, under
/// repetition: the server is killed with SIGKILL four times, each time after another dozen
/// acknowledgements, while two clients keep submitting with `buildcat run` and two workers
/// run the jobs; each time it is started again on the same storage and port and the workers
/// reconnect by themselves, well within the grace. Once the queue drains: every
/// acknowledged job exists and is finished, no job on record is left queued or started, and
/// every job ran exactly once (its marker file reads `run`, `done`): no job was lost, run
/// twice at once, or run again because a restart handed it on before its worker was back.
///
/// A kill between a worker finishing and its result being stored is covered: the worker
/// keeps the result and reclaims the job with it, so the job still runs once. So is a kill
/// between an assignment and its record: the server sends `Assign` only once the job's
/// `started` record is committed (this test's review found it sent before; see
/// `core/tests/faults.rs`, `a_job_is_sent_to_its_worker_only_once_its_attempt_is_stored`).
#[test]
fn repeated_server_kills_lose_nothing_and_run_every_job_once() {
    // A grace far longer than a restart, so that every worker is back within it.
    let mut farm = Farm::start_with(&["--heartbeat", "1", "--reconnect-grace", "30"]);
    let root = farm.path().to_owned();
    std::fs::create_dir(runs_dir(&root)).expect("could not create the runs directory");
    let state = farm.make_dir("state");
    let state = state.to_str().expect("a UTF-8 path");
    let workers = [
        farm.worker(&["--name", "chaos-crash-a", "--state-dir", state]),
        farm.worker(&["--name", "chaos-crash-b", "--state-dir", state]),
    ];
    let submissions = Submissions::new();
    let client = farm.client.clone();

    thread::scope(|scope| {
        for _ in 0..SUBMITTERS {
            scope.spawn(|| submissions.submit_until_done(&client, &root, CRASH_JOB_SECONDS));
        }
        for round in 1..=KILLS {
            let target = round * ACKS_PER_ROUND;
            poll_within(LONG_PATIENCE, "more acknowledgements", || {
                let acknowledged = submissions.acknowledged();
                (acknowledged >= target)
                    .then_some(())
                    .ok_or_else(|| format!("{acknowledged} of {target}"))
            });
            farm.kill_server();
            submissions.set(Gate::Closed);
            farm.start_server();
            submissions.set(Gate::Open);
        }
        let target = (KILLS + 1) * ACKS_PER_ROUND;
        poll_within(LONG_PATIENCE, "the last acknowledgements", || {
            let acknowledged = submissions.acknowledged();
            (acknowledged >= target)
                .then_some(())
                .ok_or_else(|| format!("{acknowledged} of {target}"))
        });
        submissions.set(Gate::Done);
    });

    let acknowledged = submissions
        .acknowledged
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let refused = submissions
        .refused
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let info = wait_for_drain(&farm, acknowledged.len() as u64);
    let jobs = all_jobs(&farm);
    let logs = || {
        let workers: Vec<String> = workers.iter().map(|worker| worker.logs()).collect();
        format!("{}\n{}", workers.join("\n"), farm.server_logs())
    };

    for id in &acknowledged {
        let job = jobs
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged job {id} was lost\n{info:#}\n{}", logs()));
        assert_eq!(job["state"], "finished", "{job:#}\n{}", logs());
    }
    // Submissions cut off by a kill may have been stored without their acknowledgement
    // arriving; those must not be stranded either.
    for (id, job) in &jobs {
        assert_eq!(job["state"], "finished", "job {id} {job:#}\n{}", logs());
        assert_eq!(
            marks(&root, id),
            ["run", "done"],
            "job {id} did not run exactly once\n{job:#}\n{}",
            logs()
        );
    }
    eprintln!(
        "{} acknowledged, {} on record, {refused} refused or cut off by {KILLS} kills",
        acknowledged.len(),
        jobs.len()
    );
    for mut worker in workers {
        worker.assert_running();
    }
}

/// How many jobs the broken-worker test submits, each with three attempts.
const BROKEN_WORKER_JOBS: u64 = 10;

/// The quarantine threshold the server uses by default (`--quarantine-after`), which the
/// broken worker reaches.
const QUARANTINE_AFTER: u64 = 5;

/// Guards issue 9 item 7: with one healthy worker and one whose root was removed after it
/// started (every job fails at once there), 10 × `run --attempts 3 -- sh -c 'sleep 1'`
/// used to fail 7 of 10 jobs, all three attempts on the broken worker, because it is always
/// idle longest. Now all 10 finish, no job fails twice on the broken worker, `info` shows
/// the broken worker quarantined with the reason (in JSON and in words), and `buildcat
/// worker-enable` lets it back: `info` shows it idle again.
#[test]
fn a_broken_worker_is_quarantined_and_every_job_finishes_elsewhere() {
    let farm = Farm::start_with(&["--heartbeat", "1"]);
    let state = farm.make_dir("state");
    let state = state.to_str().expect("a UTF-8 path");
    let broken_root = farm.make_dir("broken-root");
    let broken_root_arg = broken_root.to_str().expect("a UTF-8 path");
    let healthy = farm.worker(&["--name", "chaos-healthy", "--state-dir", state]);
    let broken = farm.worker(&[
        "--name",
        "chaos-broken",
        "--state-dir",
        state,
        "--root",
        broken_root_arg,
    ]);
    farm.wait_for_info("both workers idle", |info| {
        ["chaos-healthy", "chaos-broken"]
            .iter()
            .all(|name| worker(info, name).is_some_and(|w| w["state"] == "idle"))
    });
    std::fs::remove_dir(&broken_root).expect("could not remove the broken worker's root");

    let jobs: Vec<String> = (0..BROKEN_WORKER_JOBS)
        .map(|_| farm.submit(&["--attempts", "3", "--", "sh", "-c", "sleep 1"]))
        .collect();
    let logs = || {
        format!(
            "{}\n{}\n{}",
            healthy.logs(),
            broken.logs(),
            farm.server_logs()
        )
    };
    let info = poll_within(LONG_PATIENCE, "every job to end", || {
        let info = farm.info();
        let ended = ["finished", "failed", "canceled"]
            .iter()
            .map(|state| count(&info, "default", state).unwrap_or(0))
            .sum::<u64>();
        if ended == BROKEN_WORKER_JOBS {
            Ok(info)
        } else {
            Err(Later(move || format!("{info:#}\n{}", logs())))
        }
    });
    assert_eq!(
        count(&info, "default", "finished"),
        Some(BROKEN_WORKER_JOBS),
        "{info:#}\n{}",
        logs()
    );
    for id in &jobs {
        let status = farm.status(id);
        let attempts = status["attempts"].as_array().expect("a list of attempts");
        let on_broken = attempts
            .iter()
            .filter(|attempt| attempt["worker"] == "chaos-broken")
            .count();
        assert!(
            on_broken <= 1,
            "job {id} was retried on the worker that had failed it\n{status:#}"
        );
        let last = attempts.last().expect("a finished job has an attempt");
        assert_eq!(last["worker"], "chaos-healthy", "{status:#}");
        assert_eq!(last["outcome"], "finished", "{status:#}");
    }

    let quarantined = worker(&info, "chaos-broken").expect("the broken worker is connected");
    assert_eq!(quarantined["state"], "quarantined", "{info:#}\n{}", logs());
    let reason = text(quarantined, "/quarantine");
    assert!(
        reason.contains(&format!(
            "failed {QUARANTINE_AFTER} different jobs in a row"
        )),
        "the quarantine does not say why: {reason}"
    );
    let shown = farm.run(&["info"]);
    assert_success(&shown, "`buildcat info`");
    let shown = stdout(&shown);
    assert!(
        shown.contains("chaos-broken is quarantined")
            && shown.contains("buildcat worker-enable chaos-broken"),
        "`buildcat info` does not show the quarantine and the way out\n{shown}"
    );

    let enabled = farm.run(&["worker-enable", "chaos-broken"]);
    assert_success(&enabled, "`buildcat worker-enable chaos-broken`");
    let info = farm.wait_for_info("the broken worker let back", |info| {
        worker(info, "chaos-broken")
            .is_some_and(|w| w["state"] == "idle" && w.get("quarantine").is_none())
    });
    assert_eq!(
        worker(&info, "chaos-healthy").map(|w| &w["state"]),
        Some(&Value::from("idle")),
        "{info:#}"
    );
}

/// The size of the tmpfs the full-disk test fills: room for the server's store and a few
/// jobs, little enough to fill in a moment.
const SMALL_DISK: &str = "4m";

/// How many jobs the full-disk test runs: two per worker, so that each worker's first result
/// meets the full disk and its second job is assigned only after space returns.
const FULL_DISK_JOBS: usize = 4;

/// Guards issue 9 item 5 (a completion whose commit failed stayed applied in memory, the
/// worker's resend was refused as stale and the job was stranded as started), end to end:
/// two workers run jobs that wait for a `release` file, with the server's storage on a
/// 4 MiB tmpfs; the disk is filled and the jobs released. Their results cannot be stored:
/// the server logs the failed commit, the workers say the result was not taken and keep it,
/// and the jobs stay started. Once space is freed, the workers' resends are stored: every
/// job ends finished (the two still queued run too), none is left started or queued, and
/// each ran exactly once. Needs root for the tmpfs: skipped with a message elsewhere,
/// failing under `BUILDCAT_CI`.
#[test]
fn results_refused_on_a_full_disk_are_stored_once_space_returns() {
    let Some(disk) = Tmpfs::mount_or_skip(SMALL_DISK) else {
        return;
    };
    let mut farm = Farm::without_server();
    farm.set_storage(&disk.path().join("buildcat.db"));
    farm.start_server();
    let root = farm.path().to_owned();
    std::fs::create_dir(runs_dir(&root)).expect("could not create the runs directory");
    let state = farm.make_dir("state");
    let state = state.to_str().expect("a UTF-8 path");
    // Each run waits for `release`, then marks its end as the crash test's jobs do.
    let script = "f=runs/${BUILDCAT_TASK%.*}; echo run >> \"$f\"; \
                  while [ ! -e release ]; do sleep 0.05; done; echo done >> \"$f\"";
    let jobs: Vec<String> = (0..FULL_DISK_JOBS)
        .map(|_| farm.submit(&["--", "sh", "-c", script]))
        .collect();
    let mut workers = [
        farm.worker(&["--name", "chaos-full-a", "--state-dir", state]),
        farm.worker(&["--name", "chaos-full-b", "--state-dir", state]),
    ];
    farm.wait_for_info("two jobs running", |info| {
        count(info, "default", "started") == Some(2)
    });
    let running: Vec<String> = jobs
        .iter()
        .filter(|id| farm.status(id)["state"] == "started")
        .cloned()
        .collect();
    assert_eq!(running.len(), 2, "{running:?}");

    let filler = disk.path().join("filler");
    crate::storage::fill(&filler);
    std::fs::write(root.join("release"), "").expect("could not create the release file");
    for worker in &mut workers {
        worker.wait_for_log("could not take the result of task");
    }
    farm.server().wait_for_log("could not commit to storage");
    for id in &running {
        let status = farm.status(id);
        assert_eq!(
            status["state"], "started",
            "a result was applied although it could not be stored\n{status:#}"
        );
        assert_eq!(marks(&root, id), ["run", "done"], "{status:#}");
    }

    std::fs::remove_file(&filler).expect("could not remove the filler");
    let logs = || {
        let workers: Vec<String> = workers.iter().map(|worker| worker.logs()).collect();
        format!("{}\n{}", workers.join("\n"), farm.server_logs())
    };
    for id in &jobs {
        poll_within(LONG_PATIENCE, "the job to finish", || {
            let status = farm.status(id);
            if status["state"] == "finished" {
                Ok(())
            } else {
                Err(Later(move || format!("job {id}: {status:#}\n{}", logs())))
            }
        });
        assert_eq!(marks(&root, id), ["run", "done"], "job {id}\n{}", logs());
    }
    let info = wait_for_drain(&farm, FULL_DISK_JOBS as u64);
    assert_eq!(
        count(&info, "default", "finished"),
        Some(FULL_DISK_JOBS as u64),
        "{info:#}"
    );
    for worker in &mut workers {
        worker.assert_running();
    }
}
