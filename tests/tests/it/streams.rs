//! Output lines keep their stream (issue 14): `run --wait` and `logs` print what the program
//! wrote to stdout on stdout and what it wrote to stderr on stderr, each in its order, and
//! `run --wait` still exits as the program did.

use crate::harness::{Farm, describe, job_number, stderr, stdout};

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
    let farm = Farm::start();
    let _worker = farm.worker(&[]);
    let script = "echo out; echo err >&2; echo out-2; echo err-2 >&2; exit 3";

    let output = farm.run(&["run", "--wait", "--", "sh", "-c", script]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let number = job_number(&output);
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(lines_of(&out, "out"), ["out", "out-2"], "{}", describe(&output));
    assert_eq!(lines_of(&out, "err"), Vec::<&str>::new(), "{}", describe(&output));
    assert_eq!(lines_of(&err, "err"), ["err", "err-2"], "{}", describe(&output));
    assert_eq!(lines_of(&err, "out"), Vec::<&str>::new(), "{}", describe(&output));

    // `logs` reads the stored output back the same way.
    let output = farm.run(&["logs", &number]);
    assert!(output.status.success(), "{}", describe(&output));
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(lines_of(&out, "out"), ["out", "out-2"], "{}", describe(&output));
    assert_eq!(lines_of(&out, "err"), Vec::<&str>::new(), "{}", describe(&output));
    assert_eq!(lines_of(&err, "err"), ["err", "err-2"], "{}", describe(&output));
    assert_eq!(lines_of(&err, "out"), Vec::<&str>::new(), "{}", describe(&output));
}
