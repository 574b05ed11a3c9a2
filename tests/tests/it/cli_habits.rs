//! The command line fits a person's habits (issue 14): `run --wait` behaves like the
//! program (its stdout on stdout and stderr on stderr, its exit code, 128+N for a signal), scene paths are taken
//! from where the user stands inside the farm root, and the small mistakes get errors that
//! point the right way.

use std::path::Path;
use std::process::Output;

use crate::harness::{
    Farm, PATIENCE, Proc, buildcat_command, describe, job_number, poll_until, run_command, stderr,
    stdout, text, worker, worker_count,
};

/// A path as an argument.
fn arg(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// `buildcat ARGS` against `farm`, run in `dir` with `env` set.
fn run_in(farm: &Farm, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = farm.client.command(args);
    command.current_dir(dir);
    for (name, value) in env {
        command.env(name, value);
    }
    run_command(command, PATIENCE)
}

#[test]
fn run_wait_prints_the_programs_output_on_stdout_and_exits_as_it_did() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker(&["--root", arg(&root)]);

    let output = farm.run(&[
        "run",
        "--wait",
        "--",
        "sh",
        "-c",
        "echo to-stdout; echo to-stderr >&2; exit 3",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let number = job_number(&output);
    let printed: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    assert_eq!(printed[0], number, "{}", describe(&output));
    // Each stream where the program wrote it (tests/tests/it/streams.rs says more).
    assert!(
        printed.contains(&"to-stdout".to_owned()) && !printed.contains(&"to-stderr".to_owned()),
        "the program's stdout is not (only) on stdout\n{}",
        describe(&output)
    );
    assert!(
        stderr(&output).lines().any(|line| line == "to-stderr"),
        "the program's stderr is not on stderr\n{}",
        describe(&output)
    );
    assert!(
        stderr(&output).contains("exit code 3"),
        "{}",
        describe(&output)
    );

    // Killed by a signal: 128+N, as a shell says.
    let output = farm.run(&["run", "--wait", "--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(output.status.code(), Some(137), "{}", describe(&output));
    let output = farm.run(&["run", "--wait", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(output.status.code(), Some(143), "{}", describe(&output));

    let output = farm.run(&["run", "--wait", "--", "echo", "fine"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        stdout(&output).lines().any(|line| line == "fine"),
        "{}",
        describe(&output)
    );
}

#[test]
fn scene_paths_are_taken_from_where_the_user_stands_inside_the_root() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let shots = farm.make_dir("root/shots");
    std::fs::write(shots.join("a.blend"), "").expect("could not write the scene");
    let elsewhere = farm.make_dir("elsewhere");
    std::fs::write(elsewhere.join("b.blend"), "").expect("could not write the scene");
    let runs = |output: &Output| {
        assert!(output.status.success(), "{}", describe(output));
        let number = job_number(output);
        text(&farm.job(&number), "/runs").to_owned()
    };

    // Relative to the current directory inside the root, the root given by flag.
    let output = run_in(
        &farm,
        &shots,
        &[],
        &["blender-render", "--root", arg(&root), "a.blend"],
    );
    assert!(
        runs(&output).contains("shots/a.blend"),
        "{}",
        describe(&output)
    );
    // Absolute inside the root, the root given by the environment, typed from elsewhere.
    let absolute = shots.join("a.blend");
    let output = run_in(
        &farm,
        &elsewhere,
        &[("BUILDCAT_ROOT", arg(&root))],
        &["blender-render", arg(&absolute)],
    );
    let shown = runs(&output);
    assert!(
        shown.contains("shots/a.blend") && !shown.contains(arg(&root)),
        "{shown}"
    );
    // The root from the config file.
    let config = farm.path().join("config.toml");
    std::fs::write(&config, format!("[farm]\nroot = \"{}\"\n", root.display()))
        .expect("could not write the config file");
    let output = run_in(
        &farm,
        &shots,
        &[("BUILDCAT_CONFIG", arg(&config))],
        &["blender-render", "a.blend"],
    );
    assert!(
        runs(&output).contains("shots/a.blend"),
        "{}",
        describe(&output)
    );

    // Outside the root: the error names the root and how to set it.
    let output = run_in(
        &farm,
        &elsewhere,
        &[("BUILDCAT_ROOT", arg(&root))],
        &["blender-render", arg(&elsewhere.join("b.blend"))],
    );
    assert!(!output.status.success(), "{}", describe(&output));
    let message = stderr(&output);
    assert!(
        message.contains(&format!("outside the farm root {}", root.display()))
            && message.contains("--root")
            && message.contains("BUILDCAT_ROOT"),
        "{}",
        describe(&output)
    );
    // A missing scene is refused at submit when the root is visible.
    let output = run_in(
        &farm,
        &shots,
        &[],
        &["blender-render", "--root", arg(&root), "c.blend"],
    );
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr(&output).contains("does not exist") && stderr(&output).contains("shots/c.blend"),
        "{}",
        describe(&output)
    );
    // Without a root, an absolute path says how to set one.
    let output = run_in(&farm, &shots, &[], &["blender-render", arg(&absolute)]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(stderr(&output).contains("--root"), "{}", describe(&output));
    // Nothing of the refused ones was submitted.
    let listing = farm.jobs(&[]);
    assert_eq!(
        listing["jobs"].as_array().map(Vec::len),
        Some(3),
        "{listing:#}"
    );
}

#[test]
fn the_small_mistakes_get_errors_that_point_the_right_way() {
    let dir = tempfile::tempdir().expect("could not make a temporary directory");
    let storage = dir.path().join("jobs.db");
    let run = |args: &[&str]| {
        let mut command = buildcat_command(args);
        command.current_dir(dir.path());
        run_command(command, PATIENCE)
    };
    // The port in --bind.
    let output = run(&[
        "server",
        "--bind",
        "127.0.0.1:2243",
        "--storage",
        arg(&storage),
    ]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr(&output).contains("--bind 127.0.0.1 --port 2243"),
        "{}",
        describe(&output)
    );
    assert!(
        !storage.exists(),
        "a refused --bind left {}",
        storage.display()
    );
    // --workers 0.
    let output = run(&["farm", "--workers", "0", "--storage", arg(&storage)]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr(&output).contains("--workers"),
        "{}",
        describe(&output)
    );
    assert!(
        !storage.exists(),
        "a refused farm left {}",
        storage.display()
    );
    // A port that is taken: the server fails to bind and leaves no empty storage behind.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("could not bind a port");
    let port = taken
        .local_addr()
        .expect("a bound address")
        .port()
        .to_string();
    let output = run(&[
        "server",
        "--port",
        &port,
        "--no-http",
        "--storage",
        arg(&storage),
    ]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr(&output).contains("could not listen"),
        "{}",
        describe(&output)
    );
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", storage.display());
        assert!(
            !Path::new(&path).exists(),
            "a server that failed to bind left {path}"
        );
    }
}

#[test]
fn a_worker_pointed_at_something_else_says_so_once() {
    // The farm's HTTP API: a port that answers, but not in the buildcat protocol.
    let http = std::net::TcpListener::bind("127.0.0.1:0").expect("could not bind a port");
    let http_port = http.local_addr().expect("a bound address").port();
    drop(http);
    let http_addr = format!("127.0.0.1:{http_port}");
    let farm = Farm::start_with(&["--http", &http_addr]);
    let root = farm.make_dir("root");
    let mut command = buildcat_command([
        "worker",
        "--debug",
        "--port",
        &http_port.to_string(),
        "--name",
        "lost",
    ]);
    command.current_dir(&root);
    let lost = Proc::spawn("worker on the http port", command, farm.path());
    // Its retries show at debug level only; after two of them it has said all it says.
    let log = poll_until("the worker to retry twice", || {
        let log = lost.log();
        if log.matches("still not a buildcat server").count() >= 2 {
            Ok(log)
        } else {
            Err(log)
        }
    });
    assert_eq!(
        log.matches("does not speak the buildcat protocol").count(),
        log.matches("still not a buildcat server").count() + 1,
        "{log}"
    );
    let warnings = log
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("not a buildcat server"))
        .count();
    assert_eq!(warnings, 1, "{log}");
    assert!(
        !log.lines()
            .any(|line| line.contains("INFO") && line.contains("connected")),
        "{log}"
    );
}

#[test]
fn default_worker_names_are_stable_and_a_name_is_held_by_one_live_worker() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let state = farm.make_dir("state");
    let state = arg(&state);
    let mut first = farm.worker_in(&root, &["--state-dir", state]);
    let info = farm.wait_for_info("the first worker", |info| worker_count(info) == 1);
    let host = text(&info, "/workers/0/host").to_owned();
    assert_eq!(
        text(&info, "/workers/0/name"),
        format!("{host}-1"),
        "{info:#}"
    );
    let _second = farm.worker_in(&root, &["--state-dir", state]);
    farm.wait_for_info("the second worker, in the next slot", |info| {
        worker(info, &format!("{host}-2")).is_some()
    });
    // Started again, the first takes its own name back.
    first.kill();
    farm.wait_for_info("the first worker gone", |info| worker_count(info) == 1);
    let _again = farm.worker_in(&root, &["--state-dir", state]);
    farm.wait_for_info("the first worker back under its name", |info| {
        worker(info, &format!("{host}-1")).is_some() && worker_count(info) == 2
    });

    // Two live workers of one name: the second is refused, naming the first.
    let _one = farm.worker_in(&root, &["--name", "twin"]);
    farm.wait_for_info("the first twin", |info| worker(info, "twin").is_some());
    let mut other = farm.worker_in(&root, &["--name", "twin"]);
    // Given by name, the second stops rather than retrying (tester finding 10).
    let status = other.wait_exit(PATIENCE);
    assert!(!status.success(), "{status}");
    assert!(
        other
            .log()
            .contains("a worker named `twin` is already connected"),
        "{}",
        other.logs()
    );
    let info = farm.info();
    let twins = info["workers"].as_array().map_or(0, |workers| {
        workers.iter().filter(|w| w["name"] == "twin").count()
    });
    assert_eq!(twins, 1, "{info:#}");
}

#[test]
fn status_counts_attempts_after_a_requeue_and_names_what_a_deferred_task_waits_for() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker(&["--root", arg(&root)]);
    let output = farm.run(&["run", "--wait", "--", "false"]);
    assert!(!output.status.success(), "{}", describe(&output));
    let failed = job_number(&output);
    farm.ok(&["requeue", &failed]);
    farm.wait_for_status(
        &format!("{failed}.0"),
        "the second attempt failed",
        |status| {
            status["state"] == "failed" && status["attempts"].as_array().map(Vec::len) == Some(2)
        },
    );
    let shown = stdout(&farm.ok(&["status", &format!("{failed}.0")]));
    assert!(
        shown.contains("attempts: 2; 2 of 2 counted toward its limit"),
        "{shown}"
    );

    let waiting_on = farm.submit(&["--queue", "nobody", "--", "true"]);
    let deferred = farm.submit(&["--after", &waiting_on, "--", "true"]);
    let shown = stdout(&farm.ok(&["status", &deferred]));
    let expected = format!("waits for: job {waiting_on} (queued)");
    assert!(shown.contains(&expected), "{shown}");
    let shown = stdout(&farm.ok(&["status", &format!("{deferred}.0")]));
    assert!(
        shown.contains("state: deferred") && shown.contains(&expected),
        "{shown}"
    );
}

#[test]
fn the_logs_say_what_was_submitted_and_what_runs() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let mut worker = farm.worker(&["--root", arg(&root)]);
    let number = job_number(&farm.ok(&["run", "--wait", "--name", "nightly", "--", "true"]));
    poll_until("the server's line about the submission", || {
        let logs = farm.server_logs();
        let line = logs
            .lines()
            .find(|line| line.contains("job submitted") && line.contains("nightly"))
            .map(str::to_owned);
        match line {
            Some(line)
                if line.contains(&format!("job={number}")) && line.contains("submitter=") =>
            {
                Ok(())
            }
            _ => Err(logs),
        }
    });
    worker.wait_for_log(&format!("job={number} (nightly) scene=true"));
}

#[test]
fn run_sets_the_programs_environment_and_directory() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    farm.make_dir("root/shots/a");
    let _worker = farm.worker(&["--root", arg(&root)]);
    let output = farm.run(&[
        "run",
        "--wait",
        "--env",
        "SHOT=a 010",
        "--env",
        "EMPTY=",
        "--cwd",
        "shots/a",
        "--",
        "sh",
        "-c",
        "echo \"shot=$SHOT empty=[$EMPTY]\"; pwd -P",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let printed = stdout(&output);
    assert!(printed.contains("shot=a 010 empty=[]"), "{printed}");
    assert!(
        printed.contains(&root.join("shots/a").display().to_string()),
        "{printed}"
    );
    // Refused before anything is sent.
    for bad in [
        &["--env", "NOVALUE"][..],
        &["--env", "=x"][..],
        &["--cwd", "../elsewhere"][..],
        &["--cwd", "/abs"][..],
    ] {
        let mut args = vec!["run"];
        args.extend_from_slice(bad);
        args.extend_from_slice(&["--", "true"]);
        let output = farm.run(&args);
        assert!(!output.status.success(), "{args:?}\n{}", describe(&output));
        assert!(stderr(&output).contains(bad[0]), "{}", describe(&output));
    }
}
