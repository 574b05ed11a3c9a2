//! Reading the JSON views of `buildcat`: the job number `run` printed, and accessors for
//! `info --json`, `jobs --json` and `status --json`. A job is made of tasks; a test of a
//! single submission reads its one task (`status N.0`), see [`task_handle`].

use std::process::Output;

use serde_json::Value;

use super::{describe, stdout};

/// The job number a `buildcat run` or render command (without `--json`) printed: its first
/// line of stdout, the handle people type (`42`).
#[track_caller]
pub fn job_number(output: &Output) -> String {
    let printed = stdout(output);
    let number = printed.lines().next().unwrap_or_default().trim().to_owned();
    assert!(
        !number.is_empty() && number.bytes().all(|byte| byte.is_ascii_digit()),
        "no job number on the first line of stdout\n{}",
        describe(output)
    );
    number
}

/// The handle of a task: `handle` itself when it names one (`42.3`, `UUID.3`), else the
/// only task of the job it names (`42` is `42.0`), so that tests of single submissions read
/// the task that ran.
pub fn task_handle(handle: &str) -> String {
    if handle.contains('.') {
        handle.to_owned()
    } else {
        format!("{handle}.0")
    }
}

/// Job number `number` in a `jobs --json` view, if listed.
pub fn listed(jobs: &Value, number: u64) -> Option<&Value> {
    jobs["jobs"]
        .as_array()?
        .iter()
        .find(|job| job["number"] == number)
}

/// The `tasks` array of a `status JOB --json` view; fails the test if absent.
#[track_caller]
pub fn tasks(job: &Value) -> &Vec<Value> {
    job["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks array in {job:#}"))
}

/// Queue `name` in an `info --json` view, if it has any jobs.
pub fn queue<'a>(info: &'a Value, name: &str) -> Option<&'a Value> {
    info["queues"]
        .as_array()?
        .iter()
        .find(|queue| queue["name"] == name)
}

/// How many jobs of queue `name` are in `state`; `None` if the queue is not listed.
pub fn count(info: &Value, name: &str, state: &str) -> Option<u64> {
    queue(info, name).map(|queue| {
        queue[state]
            .as_u64()
            .unwrap_or_else(|| panic!("queue {name} has no count `{state}`: {queue}"))
    })
}

/// Worker `name` in an `info --json` view, if it is connected.
pub fn worker<'a>(info: &'a Value, name: &str) -> Option<&'a Value> {
    info["workers"]
        .as_array()?
        .iter()
        .find(|worker| worker["name"] == name)
}

/// How many workers an `info --json` view lists.
pub fn worker_count(info: &Value) -> usize {
    info["workers"].as_array().map_or(0, Vec::len)
}

/// The string at `pointer` (e.g. `/worker/root`) in a JSON value; fails the test if absent.
#[track_caller]
pub fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value:#}"))
}
