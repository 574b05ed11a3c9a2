//! The two behaviours the original Buildcat's own test suite checks, run against the
//! rewrite (ORIGINAL.md, "Behaviour the original's own tests check").

use crate::harness::{Farm, assert_success, count, json, stderr, stdout};
use crate::tutorial::check_report;

/// Guards the original's first check: with a server and no worker, submitting a
/// worker-info job leaves exactly one job queued in `default`; `worker-info --timeout`
/// gives up with an error that names the queue, and the job stays.
#[test]
fn without_a_worker_the_job_stays_queued() {
    let farm = Farm::start();
    let output = farm.run(&["worker-info", "--timeout", "1"]);
    assert!(
        !output.status.success(),
        "worker-info succeeded with no worker"
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        crate::harness::describe(&output)
    );
    assert_eq!(
        stdout(&output),
        "",
        "nothing is printed to stdout on failure"
    );
    let message = stderr(&output);
    assert!(
        message.contains("queue `default`"),
        "the error does not name the queue:\n{message}"
    );
    let info = farm.info();
    assert_eq!(count(&info, "default", "queued"), Some(1), "{info:#}");
    for state in ["started", "finished", "failed", "canceled", "deferred"] {
        assert_eq!(
            count(&info, "default", state),
            Some(0),
            "{state} in {info:#}"
        );
    }
}

/// Guards the original's second check: with a server and a worker, the job returns the
/// worker info with every key, and queue `default` ends with no job queued.
#[test]
fn with_a_worker_the_job_returns_info_and_the_queue_empties() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let worker = farm.worker(&[
        "--root",
        root.to_str().expect("a UTF-8 path"),
        "--name",
        "only",
    ]);
    let output = farm.run(&["worker-info", "--json"]);
    assert_success(&output, "`buildcat worker-info --json`");
    check_report(
        &json(&output),
        &root.display().to_string(),
        "only",
        worker.id(),
    );
    let info = farm.info();
    assert_eq!(count(&info, "default", "queued"), Some(0), "{info:#}");
    assert_eq!(count(&info, "default", "finished"), Some(1), "{info:#}");
}
