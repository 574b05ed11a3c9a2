//! Helpers that run the real `buildcat` binary: finding (or building) it and the examples,
//! free loopback ports, guards that kill servers and workers on drop and keep their logs,
//! client commands with a deadline, commands whose output is read as it comes, polling
//! `buildcat info --json` or `buildcat status --json` until the farm or a job looks as
//! expected, and finding a job's processes by a marker in their command line.
//!
//! Nothing here sleeps to let something happen: a wait either polls an observable condition
//! (a port that accepts, a line in a log, the output of `info` or `status`, the process
//! table) under [`PATIENCE`], or waits for a process to exit.
//!
//! `bin` finds the programs, `command` runs commands to completion, `proc` holds the
//! processes that run on (servers, workers, streaming commands), `farm` a farm on this host
//! and its client, `view` reads the JSON views, `sleeper` finds a job's processes, `postgres` a private PostgreSQL cluster. Tests
//! import everything from here (`use crate::harness::{..}`).

mod bin;
mod command;
mod farm;
mod postgres;
mod proc;
mod sleeper;
mod view;

use std::fmt::Display;
use std::thread;
use std::time::{Duration, Instant};

pub use bin::{buildcat, example};
pub use command::{
    assert_success, buildcat_command, canonical, describe, free_port, json, program_command,
    run_command, stderr, stdout,
};
pub use farm::{Client, Farm};
pub use postgres::{Postgres, TestCa, switched_to_postgres};
pub use proc::{Proc, Streaming};
pub use sleeper::Sleeper;
#[allow(
    unused_imports,
    reason = "part of the harness's interface for tests of a job's processes"
)]
pub use sleeper::processes_running;
pub use view::{count, job_number, listed, queue, task_handle, tasks, text, worker, worker_count};

/// How long anything a test waits for may take before the test fails. Generous, because a
/// two-core machine runs every test of this binary at once; a passing test never waits it
/// out.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How often a poll looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Calls `probe` every [`POLL_INTERVAL`] until it returns `Ok`, and returns that value; fails
/// the test after [`PATIENCE`], showing `what` was awaited and the last `Err` (what the probe
/// saw: a status, logs).
///
/// The one waiting loop of the harness: everything a test waits for goes through here or
/// [`poll_within`]. The `Err` is formatted only on failure, so it may read logs lazily
/// ([`Later`]).
#[track_caller]
pub fn poll_until<T, E: Display>(what: &str, probe: impl FnMut() -> Result<T, E>) -> T {
    poll_within(PATIENCE, what, probe)
}

/// [`poll_until`] with another limit than [`PATIENCE`] (a caller's own deadline).
#[track_caller]
pub fn poll_within<T, E: Display>(
    limit: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let last = match probe() {
            Ok(value) => return value,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what} after {limit:?}\n{last}"
        );
        thread::sleep(POLL_INTERVAL);
    }
}

/// Text made only when shown, so that a poll reads logs only when it fails.
pub struct Later<F>(pub F);

impl<F: Fn() -> String> Display for Later<F> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&(self.0)())
    }
}
