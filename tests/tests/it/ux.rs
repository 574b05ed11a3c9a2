//! What a new user meets (tester findings 4, 7, 12, 13 and 14), end to end with the real
//! binary: a submit says when every worker that could run the job is quarantined or paused
//! (and how to let it back), `run --wait` says so while the job waits and `status` shows
//! why; `--json --wait` keeps stdout JSON; mistyped queues, zero limits and the messages
//! the tester found confusing.

use crate::harness::{Farm, PATIENCE, Proc, describe, json, poll_until, stderr, stdout, worker};

/// Quarantines the only worker, `name`, with failing jobs: the server quarantines after
/// two different failed jobs (`--quarantine-after 2`).
fn quarantined_farm(name: &str) -> (Farm, Proc) {
    let farm = Farm::start_with(&["--quarantine-after", "2"]);
    let vm = farm.worker(&["--name", name]);
    for code in ["1", "2"] {
        let failed = farm.run(&["run", "--wait", "--", "sh", "-c", &format!("exit {code}")]);
        assert_eq!(
            failed.status.code(),
            code.parse().ok(),
            "{}",
            describe(&failed)
        );
    }
    farm.wait_for_info("the worker quarantined", |info| {
        worker(info, name).is_some_and(|w| w["state"] == "quarantined")
    });
    (farm, vm)
}

/// Guards finding 4: after ordinary failures quarantine the only worker, a submit warns
/// which worker is out, why, when that ends by itself and how to end it now; `status`
/// shows the same; `run --wait` says it once while the job waits and runs it once the
/// worker is enabled.
#[test]
fn a_submit_to_a_quarantined_farm_says_which_worker_and_the_way_out() {
    let (farm, _vm) = quarantined_farm("vm-1");
    let submitted = farm.ok(&["run", "--", "echo", "hello"]);
    let warning = stderr(&submitted);
    assert!(
        warning.contains("warning: no worker serving queue `default` takes work now")
            && warning.contains("vm-1 is quarantined (failed 2 different jobs in a row")
            && warning.contains("it ends by itself at ")
            && warning.contains("`buildcat worker-enable vm-1`"),
        "{}",
        describe(&submitted)
    );
    let number = stdout(&submitted).trim().to_owned();
    let status = farm.ok(&["status", &number]);
    assert!(
        stdout(&status).contains(
            "  waiting: no worker serving queue `default` takes work now: vm-1 is quarantined"
        ),
        "{}",
        describe(&status)
    );
    let task = farm.ok(&["status", &format!("{number}.0")]);
    assert!(
        stdout(&task).contains("  waiting: no worker serving queue `default` takes work now"),
        "{}",
        describe(&task)
    );
    let mut waiting = Proc::spawn(
        "run --wait",
        farm.client
            .command(&["run", "--wait", "--", "echo", "waited"]),
        farm.path(),
    );
    poll_until("run --wait to say why its job waits", || {
        if waiting.log().contains("vm-1 is quarantined") {
            Ok(())
        } else {
            Err(waiting.logs())
        }
    });
    farm.ok(&["worker-enable", "vm-1"]);
    let status = waiting.wait_exit(PATIENCE);
    assert!(status.success(), "{}", waiting.logs());
    let said = waiting.log();
    assert_eq!(
        said.matches("vm-1 is quarantined").count(),
        1,
        "said more than once:\n{said}"
    );
    let logs = waiting.logs();
    let printed = logs.split(" stderr ===").next().unwrap_or_default();
    assert!(printed.contains("\nwaited\n"), "{logs}");
}

/// Guards finding 4: with the only worker paused, a submit says so and names
/// `worker-resume`; resuming it runs the job.
#[test]
fn a_submit_while_the_only_worker_is_paused_says_so() {
    let farm = Farm::start();
    let _worker = farm.worker(&["--name", "p1"]);
    farm.wait_for_info("the worker idle", |info| {
        worker(info, "p1").is_some_and(|w| w["state"] == "idle")
    });
    farm.ok(&["worker-pause", "p1"]);
    let submitted = farm.ok(&["run", "--", "true"]);
    assert!(
        stderr(&submitted).contains(
            "warning: no worker serving queue `default` takes work now: p1 is paused; `buildcat worker-resume p1` lets it take work"
        ),
        "{}",
        describe(&submitted)
    );
    let number = stdout(&submitted).trim().to_owned();
    farm.ok(&["worker-resume", "p1"]);
    farm.wait_for_job(&number, "finished", |job| job["state"] == "finished");
    // Nothing holds the next one: no warning.
    let quiet = farm.ok(&["run", "--", "true"]);
    assert!(!stderr(&quiet).contains("warning"), "{}", describe(&quiet));
}

/// Guards finding 12: `run --json --wait` prints only the JSON on stdout; the program's
/// output (both streams) goes to stderr.
#[test]
fn run_json_wait_keeps_stdout_json() {
    let farm = Farm::start();
    let _worker = farm.worker(&["--name", "j1"]);
    let output = farm.ok(&[
        "run",
        "--json",
        "--wait",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    let parsed: serde_json::Value =
        serde_json::from_str(&stdout(&output)).unwrap_or_else(|error| {
            panic!("stdout is not JSON alone ({error}):\n{}", describe(&output))
        });
    assert!(parsed["number"].is_u64(), "{parsed:#}");
    let err = stderr(&output);
    assert!(
        err.contains("out\n") && err.contains("err\n"),
        "{}",
        describe(&output)
    );
}

/// `buildcat ARGS` that must fail: its stderr, for the message.
#[track_caller]
fn refused(farm: &Farm, args: &[&str]) -> String {
    let output = farm.run(args);
    assert!(!output.status.success(), "accepted:\n{}", describe(&output));
    stderr(&output)
}

/// Guards findings 12, 13 and 14: zero limits are refused like everywhere else, mistyped
/// queues are said, and the messages the tester found confusing say what is wrong once.
#[test]
fn rough_edges_of_the_cli_are_smoothed() {
    let farm = Farm::start();
    let _worker = farm.worker(&["--name", "e1", "default", "render"]);
    farm.wait_for_info("the worker idle", |info| {
        worker(info, "e1").is_some_and(|w| w["state"] == "idle")
    });

    // Finding 12: worker-info --timeout 0 is refused as run's is; jobs --limit 0 too.
    let said = refused(&farm, &["worker-info", "--timeout", "0"]);
    assert!(
        said.contains("--timeout must be a positive number of seconds"),
        "{said}"
    );
    let said = refused(&farm, &["jobs", "--limit", "0"]);
    assert!(said.contains("--limit must be at least 1"), "{said}");

    // Finding 12: a queue nothing uses is said, with the queues in use.
    let paused = farm.ok(&["pause", "--queue", "nosuchqueue"]);
    assert!(
        stderr(&paused).contains(
            "warning: no job or worker uses queue `nosuchqueue` (is it mistyped?); queues in use: default, render"
        ),
        "{}",
        describe(&paused)
    );
    farm.ok(&["resume", "--queue", "nosuchqueue"]);
    let quiet = farm.ok(&["pause", "--queue", "render"]);
    assert!(!stderr(&quiet).contains("warning"), "{}", describe(&quiet));
    farm.ok(&["resume", "--queue", "render"]);
    let eta = Proc::spawn(
        "eta",
        farm.client
            .command(&["eta", "--queue", "nosuch", "--interval", "0.2"]),
        farm.path(),
    );
    poll_until("eta to warn of the unknown queue", || {
        if eta.log().contains("no job or worker uses queue `nosuch`") {
            Ok(())
        } else {
            Err(eta.logs())
        }
    });
    drop(eta);

    // Finding 13: --cwd says what to give once.
    let said = refused(&farm, &["run", "--cwd", "../..", "--", "true"]);
    assert_eq!(
        said.matches("give").count(),
        1,
        "the advice is given more than once: {said}"
    );
    // Finding 13: `abc` is no job number or id, not "part of an id".
    let said = refused(&farm, &["status", "abc"]);
    assert!(
        said.contains("`abc` is not a job number or a job id") && !said.contains("only part"),
        "{said}"
    );
    // Finding 13: a task the job lacks is named by the job's number.
    let number = farm.submit(&["--", "true"]);
    let said = refused(
        &farm,
        &["run", "--after", &format!("{number}.7"), "--", "true"],
    );
    assert!(
        said.contains(&format!(
            "--after {number}.7: job {number} has no task 7; its tasks are {number}.0 only"
        )),
        "{said}"
    );
    farm.ok(&["run", "--after", &format!("{number}.0"), "--", "true"]);

    // Finding 14: worker-enable takes several names, as worker-pause does.
    let enabled = farm.run(&["worker-enable", "e1", "nobody"]);
    assert!(!enabled.status.success(), "{}", describe(&enabled));
    assert!(
        stdout(&enabled).contains("e1 takes work again")
            && stderr(&enabled).contains("could not enable worker nobody"),
        "{}",
        describe(&enabled)
    );

    // Finding 14: repeated frames are named as frames.
    let submitted = farm.ok(&[
        "blender-render",
        "shot.blend",
        "--frames",
        "1-3,3,1",
        "--queue",
        "render",
    ]);
    assert!(
        stderr(&submitted)
            .contains("warning: frames 3 and 1 are listed more than once; each renders once"),
        "{}",
        describe(&submitted)
    );
}

/// Guards finding 14: with `$USER` unset the submitter is the user database's name for
/// the user id (`root` for uid 0), not `unknown`.
#[test]
fn the_submitter_without_user_is_the_login_name() {
    let farm = Farm::start();
    let expected = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("`id -un` runs");
    let expected = String::from_utf8_lossy(&expected.stdout).trim().to_owned();
    assert!(!expected.is_empty(), "`id -un` printed no name");
    let mut command = farm.client.command(&["run", "--", "true"]);
    command.env_remove("USER").env_remove("USERNAME");
    let output = crate::harness::run_command(command, PATIENCE);
    assert!(output.status.success(), "{}", describe(&output));
    let number = stdout(&output).trim().to_owned();
    let status = json(&farm.ok(&["status", &number, "--json"]));
    let submitter = status["submitter"].as_str().unwrap_or_default().to_owned();
    assert!(
        submitter.starts_with(&format!("{expected}@")),
        "{submitter} (expected {expected}@HOST)\n{status:#}"
    );
}

/// Guards finding 7: a task canceled by a person, requeued and canceled again shows two
/// attempts, neither counted, both named as canceled; one finished, requeued and finished
/// again says the first was requeued.
#[test]
fn status_names_attempts_that_did_not_count() {
    let farm = Farm::start();
    let _worker = farm.worker(&["--name", "a1"]);
    let long = farm.submit(&["--name", "long", "--", "sleep", "300"]);
    let task = format!("{long}.0");
    for round in 1..=2_usize {
        farm.wait_for_status(&task, "running", |status| {
            status["state"] == "started"
                && status["attempts"].as_array().map(Vec::len) == Some(round)
        });
        farm.ok(&["cancel", if round == 1 { &long } else { &task }]);
        farm.wait_for_status(&task, "canceled", |status| {
            status["state"] == "canceled"
                && status["attempts"].as_array().is_some_and(|a| {
                    a.len() == round && a.iter().all(|a| a["outcome"] != "running")
                })
        });
        if round == 1 {
            farm.ok(&["requeue", &long]);
        }
    }
    let shown = stdout(&farm.ok(&["status", &task]));
    assert!(
        shown.contains("attempts: 2; 0 of 1 counted toward its limit (not counted: 2 canceled)"),
        "{shown}"
    );

    let quick = farm.submit(&["--", "true"]);
    let task = format!("{quick}.0");
    farm.wait_for_status(&task, "finished", |status| status["state"] == "finished");
    farm.ok(&["requeue", &quick, "--all"]);
    farm.wait_for_status(&task, "finished again", |status| {
        status["state"] == "finished" && status["attempts"].as_array().map(Vec::len) == Some(2)
    });
    let shown = stdout(&farm.ok(&["status", &task]));
    assert!(
        shown.contains(
            "attempts: 2; 1 of 1 counted toward its limit (not counted: 1 finished, then requeued)"
        ),
        "{shown}"
    );
}
