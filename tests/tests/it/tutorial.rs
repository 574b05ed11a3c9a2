//! The tutorial: a server, a worker started from the shared storage root, `worker-info` and
//! `info`, as README.md walks through them.

use serde_json::Value;

use crate::harness::{
    Farm, Proc, assert_success, buildcat_command, count, json, stdout, text, worker,
};

/// Guards the tutorial end to end: a worker rooted with `--root` (given through a symlink)
/// and one started with the root as its current directory and no `--root` each report their
/// canonical root, in the readable report and in `--json`, with every key users of the
/// original read; afterwards `info --json` shows the queues drained and both workers idle
/// with their roots.
#[test]
fn worker_info_reports_the_canonical_root_and_info_shows_idle_workers() {
    let mut farm = Farm::start();
    let root_a = farm.make_dir("farm-a");
    let link = farm.path().join("farm-link");
    std::os::unix::fs::symlink(&root_a, &link).expect("could not make a symlink");
    let root_b = farm.make_dir("farm-b");

    // `buildcat worker --root DIR`, serving `default`; its own state directory, so its
    // default name takes the first slot (issue 14: `HOST-SLOT`).
    let state = farm.make_dir("state-a");
    let worker_a = farm.worker(&[
        "--root",
        link.to_str().expect("a UTF-8 path"),
        "--state-dir",
        state.to_str().expect("a UTF-8 path"),
    ]);
    // `cd DIR && buildcat worker`, serving its own queue so its jobs cannot go to worker A.
    let worker_b = farm.worker_in(&root_b, &["--name", "from-cwd", "from-cwd"]);
    let name_a = format!("{}-1", hostname());

    let readable = farm.run(&["worker-info"]);
    assert_success(&readable, "`buildcat worker-info`");
    let report = stdout(&readable);
    let lines: Vec<&str> = report.lines().collect();
    for section in ["os:", "rust:", "worker:"] {
        assert!(lines.contains(&section), "no `{section}` line in\n{report}");
    }
    let root_line = format!("  root: {}", root_a.display());
    assert!(
        lines.contains(&root_line.as_str()),
        "no `{root_line}` line in\n{report}"
    );
    assert!(
        lines.contains(&format!("  name: {name_a}").as_str()),
        "worker A is not named {name_a} (HOST-SLOT) in\n{report}"
    );

    let output = farm.run(&["worker-info", "--json"]);
    assert_success(&output, "`buildcat worker-info --json`");
    let report_a = json(&output);
    check_report(
        &report_a,
        &root_a.display().to_string(),
        &name_a,
        worker_a.id(),
    );

    let output = farm.run(&["worker-info", "--json", "--queue", "from-cwd"]);
    assert_success(&output, "`buildcat worker-info --json --queue from-cwd`");
    let report_b = json(&output);
    check_report(
        &report_b,
        &root_b.display().to_string(),
        "from-cwd",
        worker_b.id(),
    );

    let info = farm.wait_for_info("both queues drained and both workers idle", |info| {
        count(info, "default", "queued") == Some(0)
            && count(info, "default", "finished") == Some(2)
            && count(info, "from-cwd", "queued") == Some(0)
            && count(info, "from-cwd", "finished") == Some(1)
            && [name_a.as_str(), "from-cwd"]
                .iter()
                .all(|name| worker(info, name).is_some_and(|w| w["state"] == "idle"))
    });
    for state in ["started", "failed", "canceled", "deferred"] {
        assert_eq!(
            count(&info, "default", state),
            Some(0),
            "{state} in {info:#}"
        );
    }
    let listed_a = worker(&info, &name_a).expect("worker A is listed");
    assert_eq!(listed_a["root"], root_a.display().to_string(), "{info:#}");
    assert_eq!(
        listed_a["queues"],
        serde_json::json!(["default"]),
        "{info:#}"
    );
    assert_eq!(listed_a["host"], hostname(), "{info:#}");
    assert_eq!(listed_a["job"], Value::Null, "{info:#}");
    let listed_b = worker(&info, "from-cwd").expect("worker B is listed");
    assert_eq!(listed_b["root"], root_b.display().to_string(), "{info:#}");
    assert_eq!(
        listed_b["queues"],
        serde_json::json!(["from-cwd"]),
        "{info:#}"
    );
    farm.server().assert_running();
}

/// Checks a `worker-info --json` report: every key the original's report has (with `rust`
/// for the original's `python`), each with a plausible value, and this worker's identity.
#[track_caller]
pub fn check_report(report: &Value, root: &str, name: &str, pid: u32) {
    for key in [
        "host",
        "machine",
        "processor",
        "release",
        "system",
        "version",
    ] {
        assert!(
            !text(report, &format!("/os/{key}")).is_empty(),
            "os.{key} is empty in {report:#}"
        );
    }
    for key in ["root", "user", "version", "name"] {
        text(report, &format!("/worker/{key}"));
    }
    assert_eq!(report["worker"]["pid"], pid, "worker.pid in {report:#}");
    assert_eq!(
        text(report, "/worker/root"),
        root,
        "worker.root in {report:#}"
    );
    assert_eq!(
        text(report, "/worker/name"),
        name,
        "worker.name in {report:#}"
    );
    assert_eq!(
        text(report, "/worker/version"),
        buildcat_proto::SOFTWARE_VERSION,
        "worker.version in {report:#}"
    );
    assert!(!text(report, "/worker/user").is_empty(), "{report:#}");
    assert!(
        text(report, "/rust/version").starts_with("rustc "),
        "rust.version in {report:#}"
    );
    assert!(!text(report, "/rust/target").is_empty(), "{report:#}");
    assert_eq!(
        text(report, "/os/host"),
        hostname(),
        "os.host in {report:#}"
    );
    #[cfg(target_os = "linux")]
    assert_eq!(
        text(report, "/os/system"),
        "Linux",
        "os.system in {report:#}"
    );
}

/// This machine's host name, as `gethostname` reports it (what the worker reads).
pub fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the pointer and length describe `buffer`, which outlives the call;
    // `gethostname` writes at most that many bytes.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    assert_eq!(
        result,
        0,
        "gethostname failed: {}",
        std::io::Error::last_os_error()
    );
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

/// Guards `buildcat farm` (README's first command): one process runs a server on the given
/// port and `--workers N` workers rooted at the current directory, named `HOST-1`, `HOST-2`;
/// `worker-info` reaches them and `info` lists them idle with that root.
#[test]
fn farm_runs_a_server_and_local_workers_rooted_here() {
    let farm = Farm::without_server();
    let root = farm.make_dir("farm-root");
    let port = farm.port.to_string();
    let mut command = buildcat_command(["farm", "--workers", "2", "--port", &port, "--storage"]);
    command
        .arg(farm.path().join("farm.db"))
        .current_dir(&root)
        .env("BUILDCAT_STATE_DIR", farm.make_dir("state"));
    let mut process = Proc::spawn("farm", command, farm.path());
    let addr = ("127.0.0.1", farm.port);
    if let Err(logs) = process.wait_until("accepting connections", || {
        std::net::TcpStream::connect(addr).is_ok()
    }) {
        panic!("`buildcat farm` exited during startup\n{logs}");
    }
    let names: Vec<String> = (1..=2)
        .map(|index| format!("{}-{index}", hostname()))
        .collect();
    let info = farm
        .client
        .wait_for_info(&process, "two idle workers", |info| {
            names
                .iter()
                .all(|name| worker(info, name).is_some_and(|w| w["state"] == "idle"))
        });
    for name in &names {
        let listed = worker(&info, name).expect("listed");
        assert_eq!(listed["root"], root.display().to_string(), "{info:#}");
    }
    let output = farm.run(&["worker-info", "--json"]);
    assert_success(
        &output,
        "`buildcat worker-info --json` against `buildcat farm`",
    );
    let report = json(&output);
    let name = text(&report, "/worker/name").to_owned();
    assert!(names.contains(&name), "{name} is not one of {names:?}");
    check_report(&report, &root.display().to_string(), &name, process.id());
}
