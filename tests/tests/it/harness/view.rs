//! Reading the JSON views of `buildcat`: the id `run` printed, and accessors for `info
//! --json` and `status --json`. When jobs gain tasks, only this file changes.

use std::process::Output;

use serde_json::Value;

use super::{describe, stdout};

/// The job id a `buildcat run` (without `--json`) printed: its first line of stdout.
#[track_caller]
pub fn job_id(output: &Output) -> String {
    let printed = stdout(output);
    let id = printed.lines().next().unwrap_or_default().trim().to_owned();
    assert_eq!(
        id.len(),
        36,
        "no job id on the first line of stdout\n{}",
        describe(output)
    );
    id
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
