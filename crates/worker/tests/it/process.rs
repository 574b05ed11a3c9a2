//! The process runner on real processes (`sh`, `cat`, `sleep`), outside a worker loop.

use std::path::Path;
use std::time::Duration;

use buildcat_worker::process::{ProcessEnd, ProcessReport, ProcessSpec, run_process};
use buildcat_worker::{Failure, JobContext, JobMonitor};
use tokio::time::Instant;

use crate::fake::{task_id, temp_root, within};
use crate::tree::{gone, pid};

/// The grace period these tests give processes between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(1);

/// A monitored context for a job in `root`.
fn context(root: &Path) -> (JobContext, JobMonitor) {
    JobContext::new(task_id(), 1, "default", root, "test-worker")
        .with_kill_grace(GRACE)
        .monitored()
}

/// `sh -c script` in `dir`.
fn sh(dir: &Path, script: &str) -> ProcessSpec {
    ProcessSpec::new("sh", dir).arg("-c").arg(script)
}

/// Runs `spec` to its end; returns the report and the lines `on_line` saw.
async fn run(spec: ProcessSpec, context: &JobContext) -> (ProcessReport, Vec<String>) {
    let mut seen = Vec::new();
    let report = within(
        "the process to end",
        run_process(spec, context, |line| seen.push(line.to_owned())),
    )
    .await
    .unwrap_or_else(|failure| panic!("could not start: {failure}"));
    (report, seen)
}

/// Runs `spec`, which must fail to start, and returns why.
async fn start_failure(spec: ProcessSpec, context: &JobContext) -> Failure {
    match within("the start to fail", run_process(spec, context, |_| {})).await {
        Ok(report) => panic!("expected a start failure, got {report:?}"),
        Err(failure) => failure,
    }
}

/// Waits for the first line the job logs.
async fn first_line(monitor: &JobMonitor) -> String {
    within("the first line of output", async {
        loop {
            if let Some(line) = monitor.take_lines().into_iter().next() {
                return line;
            }
            monitor.changed().await;
        }
    })
    .await
}

fn lines(expected: &[&str]) -> Vec<String> {
    expected.iter().map(|line| (*line).to_owned()).collect()
}

#[tokio::test]
async fn lines_stream_in_order_to_the_log_and_the_callback() {
    let root = temp_root();
    let (context, monitor) = context(root.path());
    let spec = sh(root.path(), "for i in 1 2 3 4 5; do echo \"line $i\"; done");
    let (report, seen) = run(spec, &context).await;

    let expected = lines(&["line 1", "line 2", "line 3", "line 4", "line 5"]);
    assert!(report.success(), "{report:?}");
    assert_eq!(
        report.end,
        ProcessEnd::Exited {
            code: Some(0),
            signal: None
        }
    );
    assert_eq!(seen, expected);
    assert_eq!(monitor.take_lines(), expected);
    assert_eq!(report.tail, expected);
    assert_eq!(report.into_failure("sh"), None);
}

#[tokio::test]
async fn a_non_zero_exit_fails_with_its_code_and_the_tail() {
    let root = temp_root();
    let (context, _monitor) = context(root.path());
    let spec = sh(root.path(), "echo rendering; exit 3");
    let (report, _) = run(spec, &context).await;

    let failure = report
        .into_failure("render.sh")
        .unwrap_or_else(|| panic!("expected a failure"));
    assert_eq!(failure.reason, "`render.sh` failed");
    assert_eq!(failure.exit_code, Some(3));
    assert_eq!(failure.output_tail, ["rendering"]);
    assert_eq!(failure.to_string(), "`render.sh` failed (exit code 3)");
}

#[tokio::test]
async fn stderr_is_captured_too() {
    let root = temp_root();
    let (context, monitor) = context(root.path());
    let spec = sh(root.path(), "echo to-stdout; echo to-stderr >&2");
    let (report, _) = run(spec, &context).await;

    // The two pipes are read concurrently, so their relative order is not fixed.
    let mut logged = monitor.take_lines();
    logged.sort();
    assert_eq!(logged, ["to-stderr", "to-stdout"]);
    let mut tail = report.tail;
    tail.sort();
    assert_eq!(tail, ["to-stderr", "to-stdout"]);
}

#[tokio::test]
async fn the_tail_keeps_the_last_twenty_lines() {
    let root = temp_root();
    let (context, monitor) = context(root.path());
    let spec = sh(
        root.path(),
        "i=1; while [ $i -le 30 ]; do echo $i; i=$((i+1)); done",
    );
    let (report, _) = run(spec, &context).await;

    let expected: Vec<String> = (11..=30).map(|n| n.to_string()).collect();
    assert_eq!(report.tail, expected);
    assert_eq!(monitor.take_lines().len(), 30);
}

#[tokio::test]
async fn carriage_returns_end_lines_like_progress_counters_print() {
    let root = temp_root();
    let (context, monitor) = context(root.path());
    let spec = sh(root.path(), r"printf '10%%\r20%%\r30%%\r\ndone\r\n'");
    run(spec, &context).await;
    assert_eq!(monitor.take_lines(), ["10%", "20%", "30%", "done"]);
}

#[tokio::test]
async fn a_missing_program_is_a_clear_error() {
    let root = temp_root();
    let (context, _monitor) = context(root.path());

    let failure = start_failure(
        ProcessSpec::new("buildcat-no-such-program", root.path()),
        &context,
    )
    .await;
    assert!(
        failure.reason.starts_with(
            "could not start `buildcat-no-such-program`: not found on this worker's PATH (PATH="
        ),
        "{failure}"
    );

    let missing = root.path().join("tools/missing.sh");
    let failure = start_failure(ProcessSpec::new(&missing, root.path()), &context).await;
    assert_eq!(
        failure.reason,
        format!("could not start `{}`: no such file", missing.display())
    );

    let nowhere = root.path().join("nowhere");
    let failure = start_failure(ProcessSpec::new("sh", &nowhere), &context).await;
    assert_eq!(
        failure.reason,
        format!(
            "could not start `sh`: its working directory {} does not exist",
            nowhere.display()
        )
    );

    let not_executable = root.path().join("notes.txt");
    std::fs::write(&not_executable, "hello").unwrap_or_else(|e| panic!("{e}"));
    let failure = start_failure(ProcessSpec::new(&not_executable, root.path()), &context).await;
    assert!(
        failure.reason.contains("permission denied"),
        "{}",
        failure.reason
    );
}

#[tokio::test]
async fn the_directory_environment_and_stdin_are_given() {
    let root = temp_root();
    let (context, monitor) = context(root.path());
    let spec = sh(root.path(), "pwd; echo \"$GREETING\"; cat").env("GREETING", "hello");
    let spec = spec.stdin("first\nsecond\n");
    let (report, _) = run(spec, &context).await;

    assert!(report.success(), "{report:?}");
    let directory = std::fs::canonicalize(root.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        monitor.take_lines(),
        [
            directory.to_string_lossy().into_owned(),
            "hello".to_owned(),
            "first".to_owned(),
            "second".to_owned()
        ]
    );
}

#[tokio::test]
async fn a_program_killed_by_a_signal_says_which() {
    let root = temp_root();
    let (context, _monitor) = context(root.path());
    let (report, _) = run(sh(root.path(), "kill -9 $$"), &context).await;
    assert_eq!(
        report.end,
        ProcessEnd::Exited {
            code: None,
            signal: Some(9)
        }
    );
    let failure = report
        .into_failure("sh")
        .unwrap_or_else(|| panic!("expected a failure"));
    assert_eq!(failure.to_string(), "`sh` was killed by signal 9 (SIGKILL)");
}

/// The supervisor between the worker and the program (Linux) ignores SIGTERM itself, and
/// must still report the program's own death by it, and its exit codes, unchanged.
#[tokio::test]
async fn exit_codes_and_signals_come_through_unchanged() {
    let root = temp_root();
    let (context, _monitor) = context(root.path());
    for (script, code, signal) in [
        ("kill -TERM $$", None, Some(15)),
        ("kill -INT $$", None, Some(2)),
        ("kill -SEGV $$", None, Some(11)),
        ("exit 0", Some(0), None),
        ("exit 255", Some(255), None),
    ] {
        let (report, _) = run(sh(root.path(), script), &context).await;
        assert_eq!(report.end, ProcessEnd::Exited { code, signal }, "{script}");
    }
}

#[tokio::test]
async fn the_deadline_kills_the_whole_tree() {
    let root = temp_root();
    let (context, _monitor) = context(root.path());
    let context = context.with_timeout(Duration::from_millis(300));
    let spec = sh(root.path(), "sleep 1000 & echo $!; sleep 1000");
    let (report, seen) = run(spec, &context).await;

    assert_eq!(
        report.end,
        ProcessEnd::TimedOut {
            limit: Duration::from_millis(300)
        }
    );
    // `sh` and its sleeps die of the SIGTERM; no SIGKILL is needed.
    assert!(report.elapsed < Duration::from_secs(10), "{report:?}");
    gone(pid(&seen[0])).await;
    let failure = report
        .into_failure("sh")
        .unwrap_or_else(|| panic!("expected a failure"));
    assert_eq!(
        failure.reason,
        "`sh` timed out after 300ms; its process tree was killed"
    );
}

#[tokio::test]
async fn a_cancel_kills_the_whole_tree() {
    let root = temp_root();
    let (context, monitor) = context(root.path());
    let spec = sh(root.path(), "sleep 1000 & echo $!; sleep 1000");

    let cancel = async {
        let line = first_line(&monitor).await;
        monitor.cancel();
        line
    };
    let (report, line) = tokio::join!(run(spec, &context), cancel);
    let (report, _) = report;
    assert_eq!(report.end, ProcessEnd::Canceled);
    gone(pid(&line)).await;
    assert_eq!(
        report.into_failure("sh").map(|failure| failure.reason),
        Some("`sh` was canceled".to_owned())
    );
}

#[tokio::test]
async fn a_program_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let root = temp_root();
    let (context, monitor) = context(root.path());
    // The ignored SIGTERM is inherited by the background sleep.
    let spec = sh(root.path(), "trap '' TERM; sleep 1000 & echo $!; wait");

    let cancel = async {
        let line = first_line(&monitor).await;
        monitor.cancel();
        (line, Instant::now())
    };
    let (report, (line, canceled_at)) = tokio::join!(run(spec, &context), cancel);
    let (report, _) = report;
    let stopped_after = canceled_at.elapsed();
    assert_eq!(report.end, ProcessEnd::Canceled);
    assert!(
        stopped_after >= GRACE - Duration::from_millis(50),
        "stopped {stopped_after:?} after the cancel, before the grace period was over"
    );
    gone(pid(&line)).await;
}

#[tokio::test]
async fn what_a_program_leaves_running_is_stopped_when_it_exits() {
    let root = temp_root();
    let (context, _monitor) = context(root.path());
    // The background sleep keeps the output pipe open after `sh` exits.
    let spec = sh(root.path(), "sleep 1000 & echo $!");
    let (report, seen) = run(spec, &context).await;

    assert!(report.success(), "{report:?}");
    // The leftover went at SIGTERM, well within the grace period.
    assert!(report.elapsed < GRACE, "{report:?}");
    gone(pid(&seen[0])).await;
}

#[tokio::test]
async fn a_context_without_a_monitor_discards_output() {
    let root = temp_root();
    let context = JobContext::new(task_id(), 1, "default", root.path(), "test-worker");
    let (report, seen) = run(sh(root.path(), "echo quiet"), &context).await;
    assert!(report.success());
    assert_eq!(seen, ["quiet"]);
    assert_eq!(report.tail, ["quiet"]);
}

/// Found trying the farm: a job printing 20 MB in a second lost most of it at the worker,
/// whose unsent output is bounded (the oldest lines dropped) though it was connected and
/// sending. A program that prints faster than its output is taken now waits on its pipe;
/// here the reader takes output only when the runner yields, so without pacing the runner
/// would read everything first and drop all but the bound.
#[tokio::test]
async fn a_program_printing_faster_than_its_output_is_taken_loses_no_line() {
    const LINES: usize = 20_000;
    let root = temp_root();
    let (context, monitor) = context(root.path());
    let spec = sh(root.path(), &format!("seq 1 {LINES}"));
    let reader = async {
        let mut taken: Vec<String> = Vec::new();
        while taken.len() < LINES {
            taken.extend(monitor.take_lines());
            if taken.len() < LINES {
                monitor.changed().await;
            }
        }
        taken
    };
    let (report, taken) = within("the output to be taken", async {
        tokio::join!(run_process(spec, &context, |_| {}), reader)
    })
    .await;
    let report = report.unwrap_or_else(|failure| panic!("could not start: {failure}"));
    assert!(report.success(), "{report:?}");
    let expected: Vec<String> = (1..=LINES).map(|n| n.to_string()).collect();
    assert_eq!(
        taken.len(),
        LINES,
        "first lines: {:?}",
        &taken[..3.min(taken.len())]
    );
    assert!(taken == expected, "lines were lost or reordered");
}
