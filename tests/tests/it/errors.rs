//! What users see when something is off: no server, a worker started before its server, a
//! busy port, the version, a mistyped flag.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::harness::{
    Farm, PATIENCE, assert_success, buildcat_command, describe, free_port, json, run_command,
    stderr, stdout, text,
};

/// A generous bound on failing to reach a server: the client's connect timeout is 5 s, and
/// a refused connection fails at once.
const FAIL_FAST: Duration = Duration::from_secs(15);

/// Guards the message when no server runs: `worker-info` and `info` fail quickly with one
/// line that names the address and says what to check.
#[test]
fn client_commands_without_a_server_say_where_they_looked() {
    let port = free_port();
    let client = crate::harness::Client::local(port);
    for args in [&["worker-info"][..], &["info", "--json"]] {
        let started = Instant::now();
        let output = client.run(args);
        let elapsed = started.elapsed();
        assert!(elapsed < FAIL_FAST, "{args:?} took {elapsed:?} to fail");
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}\n{}",
            describe(&output)
        );
        assert_eq!(stdout(&output), "", "{args:?} printed to stdout");
        let message = stderr(&output);
        assert_eq!(
            message.lines().count(),
            1,
            "{args:?}: not one line:\n{message}"
        );
        let address = format!("could not connect to the buildcat server at 127.0.0.1:{port}");
        assert!(message.contains(&address), "{args:?}: {message}");
        assert!(
            message.contains("is `buildcat server` running?"),
            "{args:?}: {message}"
        );
    }
}

/// Guards a worker started before its server (a farm booting in any order): it keeps trying
/// and registers once the server is up, and then runs jobs.
#[test]
fn a_worker_started_before_the_server_connects_when_it_comes_up() {
    let mut farm = Farm::without_server();
    let mut worker = farm.worker(&["--name", "early"]);
    worker.wait_for_log("cannot reach the buildcat server");
    farm.start_server();
    let output = farm.run(&["worker-info", "--json"]);
    assert_success(&output, "`buildcat worker-info --json`");
    assert_eq!(text(&json(&output), "/worker/name"), "early");
    worker.assert_running();
}

/// Guards a server started on a port in use: it fails at once with one line that names the
/// address and suggests `--port`.
#[test]
fn a_server_on_a_busy_port_fails_with_one_line() {
    let farm = Farm::without_server();
    let taken = TcpListener::bind("127.0.0.1:0").expect("could not bind a port");
    let port = taken.local_addr().expect("an address").port().to_string();
    let storage = farm.path().join("second.db");
    let mut command = buildcat_command(["server", "--port", &port, "--storage"]);
    command.arg(&storage);
    let output = run_command(command, PATIENCE);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    // The server logs that it loaded its storage before it binds; the error is the one
    // `error:` line, and it is the last.
    let stderr_text = stderr(&output);
    let errors: Vec<&str> = stderr_text
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "not one error line:\n{stderr_text}");
    assert_eq!(stderr_text.lines().last(), Some(errors[0]), "{stderr_text}");
    let message = errors[0];
    assert!(
        message.starts_with(&format!("error: could not listen on 127.0.0.1:{port}")),
        "{message}"
    );
    assert!(message.contains("--port"), "{message}");
}

/// Guards `buildcat version` (and `--version`): the program's name and the release.
#[test]
fn version_prints_the_version() {
    let expected = format!("buildcat {}\n", buildcat_proto::SOFTWARE_VERSION);
    for args in [["version"], ["--version"]] {
        let output = run_command(buildcat_command(args), PATIENCE);
        assert_success(&output, &format!("`buildcat {}`", args[0]));
        assert_eq!(stdout(&output), expected, "{args:?}");
    }
}

/// Guards a mistyped flag or command: refused with the usage exit code (2), naming it.
#[test]
fn an_unknown_flag_or_command_is_refused() {
    let cases: [&[&str]; 3] = [
        &["worker-info", "--no-such-flag"],
        &["--no-such-flag", "version"],
        &["no-such-command"],
    ];
    for args in cases {
        let output = run_command(buildcat_command(args), PATIENCE);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}\n{}",
            describe(&output)
        );
        let message = stderr(&output);
        let unknown = args
            .iter()
            .find(|arg| arg.starts_with("--no-such") || arg.starts_with("no-such"));
        let unknown = unknown.expect("every case has an unknown word");
        assert!(message.contains(unknown), "{args:?}: {message}");
    }
}

/// Guards `worker-info --timeout` against values that are not a number of seconds: refused
/// with a one-line error before anything is submitted, rather than a panic that leaves the
/// job queued.
#[test]
fn worker_info_refuses_a_timeout_that_is_not_seconds() {
    let farm = Farm::start();
    for timeout in ["--timeout=-1", "--timeout=NaN", "--timeout=1e30"] {
        let output = farm.run(&["worker-info", timeout]);
        assert!(
            matches!(output.status.code(), Some(1 | 2)),
            "{timeout}: not a clean refusal\n{}",
            describe(&output)
        );
        let message = stderr(&output);
        assert!(message.contains("--timeout"), "{timeout}: {message}");
        assert!(!message.contains("panicked"), "{timeout}: {message}");
    }
    let info = farm.info();
    assert!(
        crate::harness::queue(&info, "default").is_none(),
        "a refused command submitted a job: {info:#}"
    );
}
