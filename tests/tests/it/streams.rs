//! Output lines keep their stream (issue 14): `run --wait` and `logs` print what the program
//! wrote to stdout on stdout and what it wrote to stderr on stderr, each in its order, and
//! `run --wait` still exits as the program did; the HTTP API's log page says which lines
//! were stderr.

use crate::harness::{describe, job_number, stderr, stdout};
use crate::http::{farm_with_http, request};

/// The program's lines as one stream shows them: the lines of `text` that are `prefix` or
/// `prefix-N`, in order (buildcat's own lines, such as `error: ...`, are left out).
fn lines_of<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| {
            line.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
        })
        .collect()
}

#[test]
fn run_wait_and_logs_print_each_stream_where_the_program_wrote_it() {
    let (farm, http) = farm_with_http(&[]);
    let _worker = farm.worker(&[]);
    let script = "echo out; echo err >&2; echo out-2; echo err-2 >&2; exit 3";

    let output = farm.run(&["run", "--wait", "--", "sh", "-c", script]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let number = job_number(&output);
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(
        lines_of(&out, "out"),
        ["out", "out-2"],
        "{}",
        describe(&output)
    );
    assert_eq!(
        lines_of(&out, "err"),
        Vec::<&str>::new(),
        "{}",
        describe(&output)
    );
    assert_eq!(
        lines_of(&err, "err"),
        ["err", "err-2"],
        "{}",
        describe(&output)
    );
    assert_eq!(
        lines_of(&err, "out"),
        Vec::<&str>::new(),
        "{}",
        describe(&output)
    );

    // `logs` reads the stored output back the same way.
    let output = farm.run(&["logs", &number]);
    assert!(output.status.success(), "{}", describe(&output));
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(
        lines_of(&out, "out"),
        ["out", "out-2"],
        "{}",
        describe(&output)
    );
    assert_eq!(
        lines_of(&out, "err"),
        Vec::<&str>::new(),
        "{}",
        describe(&output)
    );
    assert_eq!(
        lines_of(&err, "err"),
        ["err", "err-2"],
        "{}",
        describe(&output)
    );
    assert_eq!(
        lines_of(&err, "out"),
        Vec::<&str>::new(),
        "{}",
        describe(&output)
    );

    // The HTTP API's page marks the stderr lines by index, as the CLI's views do.
    let answer = request(
        http,
        "GET",
        &format!("/api/v1/jobs/{number}/tasks/0/log"),
        &[],
        None,
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let page: serde_json::Value = serde_json::from_str(&answer.body).expect("a JSON page");
    // Lines of two pipes: the order within each stream is kept, not across them.
    let lines = page["lines"].as_array().expect("lines");
    let stderr_indexes = page["stderr"].as_array().expect("stderr indexes");
    let streams: Vec<(&str, bool)> = lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            let from_stderr = stderr_indexes
                .iter()
                .any(|i| i.as_u64() == Some(index as u64));
            (line.as_str().expect("a line"), from_stderr)
        })
        .collect();
    let marked = |from_stderr: bool| -> Vec<&str> {
        streams
            .iter()
            .filter(|(_, stderr)| *stderr == from_stderr)
            .map(|(line, _)| *line)
            .collect()
    };
    assert_eq!(marked(false), ["out", "out-2"], "{page:#}");
    assert_eq!(marked(true), ["err", "err-2"], "{page:#}");
}
