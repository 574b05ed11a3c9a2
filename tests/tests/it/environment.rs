//! The environment fallbacks the commands document: `BUILDCAT_HOST`, `BUILDCAT_PORT` and
//! `BUILDCAT_ROOT`, with flags winning over them.

use crate::harness::{
    Farm, PATIENCE, Proc, assert_success, buildcat_command, describe, free_port, json, run_command,
    stderr, text,
};

/// Guards the fallbacks: a worker given only `BUILDCAT_PORT` and `BUILDCAT_ROOT` (started
/// from another directory) serves with that root; client commands given only
/// `BUILDCAT_HOST` and `BUILDCAT_PORT` reach the server; each variable is really read; and
/// `--port` wins over `BUILDCAT_PORT`.
#[test]
fn settings_fall_back_to_the_environment() {
    let farm = Farm::start();
    let root = farm.make_dir("env-root");
    let elsewhere = farm.make_dir("elsewhere");
    let port = farm.port.to_string();
    let mut command = buildcat_command(["worker", "--name", "from-env"]);
    command
        .env("BUILDCAT_PORT", &port)
        .env("BUILDCAT_ROOT", &root)
        .current_dir(&elsewhere);
    let mut worker = Proc::spawn("worker from-env", command, farm.path());

    let mut command = buildcat_command(["worker-info", "--json"]);
    command
        .env("BUILDCAT_HOST", "127.0.0.1")
        .env("BUILDCAT_PORT", &port);
    let output = run_command(command, PATIENCE);
    assert_success(
        &output,
        "`worker-info --json` with the server in the environment",
    );
    let report = json(&output);
    assert_eq!(text(&report, "/worker/name"), "from-env", "{report:#}");
    assert_eq!(
        text(&report, "/worker/root"),
        root.display().to_string(),
        "BUILDCAT_ROOT, not the current directory: {report:#}"
    );
    worker.assert_running();

    let nothing_there = free_port().to_string();
    let mut command = buildcat_command(["info", "--json", "--port", &port]);
    command.env("BUILDCAT_PORT", &nothing_there);
    let output = run_command(command, PATIENCE);
    assert_success(&output, "`info --port P` with another BUILDCAT_PORT");

    let mut command = buildcat_command(["info", "--json"]);
    command.env("BUILDCAT_PORT", &nothing_there);
    let output = run_command(command, PATIENCE);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let expected = format!("127.0.0.1:{nothing_there}");
    assert!(stderr(&output).contains(&expected), "{}", describe(&output));

    // 127.0.0.2 is loopback too, but the server listens on 127.0.0.1 only.
    let mut command = buildcat_command(["info", "--json"]);
    command
        .env("BUILDCAT_HOST", "127.0.0.2")
        .env("BUILDCAT_PORT", &port);
    let output = run_command(command, PATIENCE);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let expected = format!("127.0.0.2:{port}");
    assert!(stderr(&output).contains(&expected), "{}", describe(&output));
}
