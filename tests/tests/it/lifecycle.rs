//! Jobs that survive failures (README.md, "Jobs that survive failures"): what a failed job
//! reports, its output while it runs, timeouts and cancels that stop the whole process
//! tree, retries, requeue, dependencies, priorities, a worker killed in the middle of a
//! job, listing jobs and watching a queue drain.

use std::path::Path;

use serde_json::{Value, json};

use crate::harness::{
    Farm, PATIENCE, Sleeper, Streaming, assert_success, count, describe, job_number, json, stderr,
    stdout, text, worker,
};

/// A path as a command-line argument.
fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Creates an empty file, which the jobs of these tests wait for.
fn touch(path: &Path) {
    std::fs::write(path, b"")
        .unwrap_or_else(|error| panic!("could not create {}: {error}", path.display()));
}

/// The lines of a job's output, from `buildcat logs JOB`.
#[track_caller]
fn logs(farm: &Farm, job: &str) -> Vec<String> {
    let output = farm.run(&["logs", job]);
    assert_success(&output, &format!("`buildcat logs {job}`"));
    stdout(&output).lines().map(str::to_owned).collect()
}

/// The attempts of a `status --json` record.
#[track_caller]
fn attempts(status: &Value) -> &Vec<Value> {
    status["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("no attempts list in {status:#}"))
}

/// Milliseconds since the Unix epoch of an RFC 3339 time as `status --json` writes it
/// (`2026-11-28T14:38:04.123Z`).
#[track_caller]
pub(crate) fn millis(value: &Value) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    let number = |range: std::ops::Range<usize>| -> i64 {
        text.get(range)
            .and_then(|digits| digits.parse().ok())
            .unwrap_or_else(|| panic!("not an RFC 3339 time: {text}"))
    };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = number(11..13) * 3600 + number(14..16) * 60 + number(17..19);
    (days * 86_400 + seconds) * 1000 + number(20..23)
}

/// Guards what a job sees and what its end reports. A program that prints to stdout and
/// stderr and exits 3, run with `--wait`, makes `run` exit non-zero with an error naming
/// the job (by number) and the exit code; `status N.0 --json` shows the task's failed
/// attempt (worker and outcome), the exit code and the output's tail, and `logs` prints
/// both lines. `run --json` prints `{"job": ID, "number": N, "tasks": 1}` and a finished
/// command's result is `{"exit_code": 0}`. The program runs in the worker's root with its
/// job's id in `BUILDCAT_JOB_ID` and its task's handle (`N.0`) in `BUILDCAT_TASK`.
#[test]
fn a_job_reports_its_failure_its_result_and_what_it_saw() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker(&["--root", arg(&root), "--name", "w1"]);

    let output = farm.run(&[
        "run",
        "--wait",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert!(
        !output.status.success(),
        "a job exiting 3 did not fail `run --wait`\n{}",
        describe(&output)
    );
    let id = job_number(&output);
    let message = stderr(&output);
    assert!(
        message.contains(&format!("job {id} failed")) && message.contains("exit code 3"),
        "the error does not name the job and the exit code:\n{message}"
    );
    let status = farm.status(&id);
    assert_eq!(status["task"], format!("{id}.0"), "{status:#}");
    assert_eq!(status["number"].to_string(), id, "{status:#}");
    assert_eq!(status["state"], "failed", "{status:#}");
    assert_eq!(status["exit_code"], 3, "{status:#}");
    let attempts = attempts(&status);
    assert_eq!(attempts.len(), 1, "{status:#}");
    assert_eq!(attempts[0]["worker"], "w1", "{status:#}");
    assert_eq!(attempts[0]["outcome"], "failed", "{status:#}");
    let tail = status["output_tail"]
        .as_array()
        .unwrap_or_else(|| panic!("no output tail in {status:#}"));
    for line in ["out", "err"] {
        assert!(tail.contains(&json!(line)), "no `{line}` in {status:#}");
    }
    // `logs` prints each line on the stream the program wrote it to.
    let output = farm.run(&["logs", &id]);
    assert_success(&output, &format!("`buildcat logs {id}`"));
    assert_eq!(stdout(&output).lines().collect::<Vec<_>>(), ["out"]);
    assert_eq!(stderr(&output).lines().collect::<Vec<_>>(), ["err"]);

    let output = farm.run(&["run", "--json", "--", "true"]);
    assert_success(&output, "`buildcat run --json -- true`");
    let (number, tasks) = crate::render::submitted(&output);
    assert_eq!(tasks, 1, "{}", describe(&output));
    let id = text(&json(&output), "/job").to_owned();
    assert_eq!(farm.job(&id)["number"].to_string(), number);
    let status = farm.wait_for_status(&id, "finished", |status| {
        status["state"] != "queued" && status["state"] != "started"
    });
    assert_eq!(status["state"], "finished", "{status:#}");
    assert_eq!(status["result"], json!({ "exit_code": 0 }), "{status:#}");
    assert_eq!(status["exit_code"], Value::Null, "{status:#}");

    let output = farm.run(&[
        "run",
        "--wait",
        "--",
        "sh",
        "-c",
        "echo \"$BUILDCAT_JOB_ID\"; echo \"$BUILDCAT_TASK\"; pwd -P",
    ]);
    assert_success(&output, "a job printing its id, task and directory");
    let number = job_number(&output);
    let id = text(&farm.job(&number), "/id").to_owned();
    assert_eq!(
        logs(&farm, &number),
        [id, format!("{number}.0"), root.display().to_string()]
    );
}

/// Guards `logs --follow`: on a job that printed one line and waits, it prints that line,
/// then the line printed after the test lets the job go on, and exits (successfully) when
/// the job ends.
#[test]
fn logs_follow_streams_a_running_job_until_it_ends() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker(&["--root", arg(&root)]);
    let id = farm.submit(&[
        "--",
        "sh",
        "-c",
        "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second",
    ]);
    let mut follow = Streaming::spawn(
        "`buildcat logs --follow`",
        farm.client.command(&["logs", "--follow", &id]),
    );
    assert_eq!(follow.next_line(PATIENCE), "first");
    let status = farm.status(&id);
    assert_eq!(status["state"], "started", "{status:#}");
    touch(&root.join("go"));
    assert_eq!(follow.next_line(PATIENCE), "second");
    let (exit, rest) = follow.wait_exit(PATIENCE);
    assert!(exit.success(), "{exit}\n{}", follow.describe());
    assert!(rest.is_empty(), "more lines after the job's own: {rest:?}");
    let status = farm.status(&id);
    assert_eq!(status["state"], "finished", "{status:#}");
}

/// Guards stopping jobs (DESIGN.md: kill the whole process tree on timeout or cancel): a
/// job over its `--timeout` fails with a reason saying it timed out and none of its
/// processes (one in the background) is left; a running job canceled with `cancel`
/// becomes canceled, its processes go, and the worker runs the next job; a queued job
/// canceled leaves its queue; canceling a job that has ended is refused, saying there is
/// nothing to cancel.
#[test]
fn timeouts_and_cancels_stop_the_whole_process_tree() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker(&["--root", arg(&root), "--name", "w1"]);

    let sleeper = Sleeper::new();
    let script = format!("sleep {0} & sleep {0}", sleeper.arg());
    let output = farm.run(&["run", "--wait", "--timeout", "1", "--", "sh", "-c", &script]);
    assert!(
        !output.status.success(),
        "a job past its timeout did not fail `run --wait`\n{}",
        describe(&output)
    );
    let timed_out = job_number(&output);
    assert!(
        stderr(&output).contains("timed out"),
        "{}",
        describe(&output)
    );
    let status = farm.status(&timed_out);
    assert_eq!(status["state"], "failed", "{status:#}");
    let reason = status["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("timed out"), "{status:#}");
    sleeper.wait_for(0, "the timed-out job's processes are gone");

    let sleeper = Sleeper::new();
    let script = format!("sleep {0} & sleep {0}", sleeper.arg());
    let running = farm.submit(&["--", "sh", "-c", &script]);
    sleeper.wait_for(2, "both sleeps of the job to cancel are running");
    let output = farm.run(&["cancel", &running]);
    assert_success(&output, "`buildcat cancel` of a running job");
    assert_eq!(
        stdout(&output),
        format!("canceled {running}: job canceled\n")
    );
    let status = farm.status(&running);
    assert_eq!(status["state"], "canceled", "{status:#}");
    sleeper.wait_for(0, "the canceled job's processes are gone");
    let status = farm.wait_for_status(&running, "its attempt canceled", |status| {
        attempts(status)
            .last()
            .is_some_and(|attempt| attempt["outcome"] == "canceled")
    });
    assert_eq!(status["state"], "canceled", "{status:#}");
    let output = farm.run(&["run", "--wait", "--", "true"]);
    assert_success(&output, "a job after the canceled one");
    let finished = job_number(&output);

    let queued = farm.submit(&["--queue", "unserved", "--", "true"]);
    let info = farm.info();
    assert_eq!(count(&info, "unserved", "queued"), Some(1), "{info:#}");
    let output = farm.run(&["cancel", &queued]);
    assert_success(&output, "`buildcat cancel` of a queued job");
    let info = farm.info();
    assert_eq!(count(&info, "unserved", "queued"), Some(0), "{info:#}");
    assert_eq!(count(&info, "unserved", "canceled"), Some(1), "{info:#}");
    let status = farm.status(&queued);
    assert_eq!(status["state"], "canceled", "{status:#}");
    assert_eq!(attempts(&status).len(), 0, "{status:#}");

    for ended in [&finished, &timed_out, &queued] {
        let before = farm.status(ended)["state"].clone();
        let output = farm.run(&["cancel", ended]);
        assert!(
            !output.status.success(),
            "canceling a {before} job succeeded\n{}",
            describe(&output)
        );
        assert!(
            stderr(&output).contains("nothing to cancel"),
            "{}",
            describe(&output)
        );
        assert_eq!(farm.status(ended)["state"], before);
    }
}

/// Guards retries and requeue. A job with `--attempts 3` whose first attempt fails (and
/// leaves a marker in the root) and whose second succeeds ends finished with both attempts
/// recorded, the second started after the retry backoff (2 s). `requeue JOB` puts a failed
/// job back in its queue and it runs again; `requeue --failed --queue Q` requeues the
/// failed jobs of Q only, `requeue --failed` every other one, and then there is nothing
/// left to requeue.
#[test]
fn failed_attempts_are_retried_and_failed_jobs_can_be_requeued() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker(&["--root", arg(&root), "--name", "w1", "default", "other"]);

    let output = farm.run(&[
        "run",
        "--wait",
        "--attempts",
        "3",
        "--",
        "sh",
        "-c",
        "test -e marker || { touch marker; exit 1; }",
    ]);
    assert_success(&output, "a job that fails once with three attempts");
    assert!(
        root.join("marker").is_file(),
        "the first attempt did not run in the root"
    );
    let status = farm.status(&job_number(&output));
    assert_eq!(status["state"], "finished", "{status:#}");
    assert_eq!(status["max_attempts"], 3, "{status:#}");
    let tries = attempts(&status);
    assert_eq!(tries.len(), 2, "{status:#}");
    assert_eq!(tries[0]["outcome"], "failed", "{status:#}");
    assert!(
        tries[0]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("exit code 1")),
        "{status:#}"
    );
    assert_eq!(tries[1]["outcome"], "finished", "{status:#}");
    let waited = millis(&tries[1]["started"]) - millis(&tries[0]["ended"]);
    assert!(waited >= 2000, "retried after {waited} ms: {status:#}");

    let output = farm.run(&["run", "--wait", "--", "sh", "-c", "test -e fixed"]);
    assert!(!output.status.success(), "{}", describe(&output));
    let failed = job_number(&output);
    assert_eq!(farm.status(&failed)["state"], "failed");
    touch(&root.join("fixed"));
    let output = farm.run(&["requeue", "--json", &failed]);
    assert_success(&output, "`buildcat requeue --json JOB`");
    let changed = json(&output);
    assert_eq!(
        changed["jobs"][0]["number"].to_string(),
        failed,
        "{changed:#}"
    );
    // The job's state once requeued: queued, or running if the idle worker took it at once.
    assert!(
        matches!(
            changed["jobs"][0]["state"].as_str(),
            Some("queued" | "running")
        ),
        "{changed:#}"
    );
    assert_eq!(changed["jobs"][0]["tasks"], 1, "{changed:#}");
    let status = farm.wait_for_status(&failed, "finished after the requeue", |status| {
        status["state"] == "finished"
    });
    let tries = attempts(&status);
    assert_eq!(tries.len(), 2, "{status:#}");
    assert_eq!(tries[0]["outcome"], "failed", "{status:#}");
    assert_eq!(tries[1]["outcome"], "finished", "{status:#}");

    let fail = |queue: &str| {
        let output = farm.run(&["run", "--wait", "--queue", queue, "--", "test", "-e", "go"]);
        assert!(!output.status.success(), "{}", describe(&output));
        job_number(&output)
    };
    let (first, second, elsewhere) = (fail("default"), fail("default"), fail("other"));
    touch(&root.join("go"));
    let output = farm.run(&["requeue", "--failed", "--queue", "default"]);
    assert_success(&output, "`buildcat requeue --failed --queue default`");
    // Each line names the job and its state once requeued: queued, or running if the
    // worker took it at once.
    let said = stdout(&output);
    let requeued: Vec<&str> = said
        .lines()
        .map(|line| line.split_once(": job ").map_or(line, |(head, _)| head))
        .collect();
    assert_eq!(
        requeued,
        [format!("requeued {first}"), format!("requeued {second}")],
        "{said}"
    );
    for job in [&first, &second] {
        farm.wait_for_status(job, "finished after requeue --failed", |status| {
            status["state"] == "finished"
        });
    }
    assert_eq!(farm.status(&elsewhere)["state"], "failed");
    let output = farm.run(&["requeue", "--failed"]);
    assert_success(&output, "`buildcat requeue --failed`");
    let said = stdout(&output);
    assert!(
        said.starts_with(&format!("requeued {elsewhere}: job ")) && said.lines().count() == 1,
        "{said}"
    );
    farm.wait_for_status(&elsewhere, "finished after requeue --failed", |status| {
        status["state"] == "finished"
    });
    let output = farm.run(&["requeue", "--failed"]);
    assert_success(&output, "`buildcat requeue --failed` with nothing failed");
    assert_eq!(stdout(&output), "no failed jobs to requeue\n");
}

/// Guards dependencies: a job submitted `--after A` stays deferred while A runs and runs
/// once A has finished; a job after a dependency that fails fails without running, with a
/// reason naming the dependency, and so does one submitted after it has failed.
#[test]
fn a_dependent_job_waits_for_its_dependency_and_fails_with_it() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker(&["--root", arg(&root)]);

    let first = farm.submit(&["--", "sh", "-c", "while [ ! -e go-a ]; do sleep 0.05; done"]);
    let after = farm.submit(&["--after", &first, "--", "true"]);
    farm.wait_for_status(&first, "started", |status| status["state"] == "started");
    let status = farm.status(&after);
    assert_eq!(status["state"], "deferred", "{status:#}");
    touch(&root.join("go-a"));
    let status = farm.wait_for_status(&after, "ended", |status| {
        !matches!(
            status["state"].as_str(),
            Some("deferred" | "queued" | "started")
        )
    });
    assert_eq!(status["state"], "finished", "{status:#}");
    let dependency = farm.status(&first);
    assert_eq!(dependency["state"], "finished", "{dependency:#}");
    assert!(
        millis(&status["started"]) >= millis(&dependency["ended"]),
        "the dependent started before its dependency ended:\n{status:#}\n{dependency:#}"
    );

    let failing = farm.submit(&[
        "--",
        "sh",
        "-c",
        "while [ ! -e go-b ]; do sleep 0.05; done; exit 4",
    ]);
    let doomed = farm.submit(&["--after", &failing, "--", "true"]);
    assert_eq!(farm.status(&doomed)["state"], "deferred");
    touch(&root.join("go-b"));
    let status = farm.wait_for_status(&doomed, "ended", |status| {
        !matches!(
            status["state"].as_str(),
            Some("deferred" | "queued" | "started")
        )
    });
    assert_eq!(status["state"], "failed", "{status:#}");
    assert!(
        status["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains(&failing)),
        "the reason does not name the dependency {failing}: {status:#}"
    );
    assert_eq!(attempts(&status).len(), 0, "{status:#}");

    let late = farm.submit(&["--after", &failing, "--", "true"]);
    let status = farm.status(&late);
    assert_eq!(status["state"], "failed", "{status:#}");
    assert!(
        status["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains(&failing)),
        "{status:#}"
    );
}

/// Guards the order within a queue: three jobs queued with priorities 0, 5 and 1 before
/// any worker serves the queue run in the order 5, 1, 0 on a worker started afterwards
/// (with `--max-jobs 3`, after which it exits cleanly).
#[test]
fn higher_priority_jobs_run_first() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let priorities = ["0", "5", "1"];
    let jobs: Vec<(&str, String)> = priorities
        .iter()
        .map(|&priority| {
            let script = format!("echo {priority} >> order");
            let id = farm.submit(&[
                "--queue",
                "prio",
                "--priority",
                priority,
                "--",
                "sh",
                "-c",
                &script,
            ]);
            (priority, id)
        })
        .collect();
    let info = farm.info();
    assert_eq!(count(&info, "prio", "queued"), Some(3), "{info:#}");

    let mut worker = farm.worker(&["--root", arg(&root), "--max-jobs", "3", "prio"]);
    let exit = worker.wait_exit(PATIENCE);
    assert!(exit.success(), "{}\n{}", worker.logs(), farm.server_logs());
    let order = std::fs::read_to_string(root.join("order")).expect("the jobs wrote `order`");
    assert_eq!(order, "5\n1\n0\n");

    let by_priority = |priority: &str| {
        let (_, id) = jobs
            .iter()
            .find(|(p, _)| *p == priority)
            .expect("submitted");
        let status = farm.status(id);
        assert_eq!(status["state"], "finished", "{status:#}");
        let job = farm.job(id);
        assert_eq!(job["priority"], priority.parse::<i64>().expect("a number"));
        status
    };
    let ran: Vec<Value> = ["5", "1", "0"].into_iter().map(by_priority).collect();
    for pair in ran.windows(2) {
        let (earlier, later) = (&attempts(&pair[0])[0], &attempts(&pair[1])[0]);
        assert!(
            millis(&later["started"]) >= millis(&earlier["ended"]),
            "not run one after the other in priority order:\n{:#}\n{:#}",
            pair[0],
            pair[1]
        );
    }
}

/// Guards a worker killed in the middle of a job (README: a worker loss does not use up
/// the job's attempts): with `--reconnect-grace 1`, the job of a worker killed with
/// SIGKILL goes back to its queue with its attempt recorded as `worker lost`, and a second
/// worker runs it to the end as attempt 2, although it was submitted with `--attempts 1`.
#[test]
fn a_job_whose_worker_is_killed_runs_again_on_another_worker() {
    let farm = Farm::start_with(&["--reconnect-grace", "1"]);
    let root = farm.make_dir("root");
    // The first attempt sleeps until it is killed (the killed worker cannot stop it; the
    // sleeper does at the end of the test), the second prints its number.
    let sleeper = Sleeper::new();
    let script = format!(
        "if [ \"$BUILDCAT_ATTEMPT\" = 1 ]; then exec sleep {}; fi; echo \"attempt $BUILDCAT_ATTEMPT\"",
        sleeper.arg()
    );
    let mut doomed = farm.worker(&["--root", arg(&root), "--name", "doomed"]);
    let id = farm.submit(&["--attempts", "1", "--", "sh", "-c", &script]);
    sleeper.wait_for(1, "the first attempt is running");
    let status = farm.status(&id);
    assert_eq!(status["state"], "started", "{status:#}");
    assert_eq!(status["worker"], "doomed", "{status:#}");

    doomed.kill();
    let status = farm.wait_for_status(&id, "its first attempt lost", |status| {
        attempts(status)
            .first()
            .is_some_and(|attempt| attempt["outcome"] == "worker lost")
    });
    assert_eq!(status["state"], "queued", "{status:#}");
    farm.wait_for_info("the killed worker is gone", |info| {
        worker(info, "doomed").is_none()
    });

    let _rescuer = farm.worker(&["--root", arg(&root), "--name", "rescuer"]);
    let status = farm.wait_for_status(&id, "ended", |status| {
        !matches!(status["state"].as_str(), Some("queued" | "started"))
    });
    assert_eq!(status["state"], "finished", "{status:#}");
    assert_eq!(status["max_attempts"], 1, "{status:#}");
    let tries = attempts(&status);
    assert_eq!(tries.len(), 2, "{status:#}");
    assert_eq!(tries[0]["worker"], "doomed", "{status:#}");
    assert_eq!(tries[0]["outcome"], "worker lost", "{status:#}");
    assert_eq!(tries[1]["number"], 2, "{status:#}");
    assert_eq!(tries[1]["worker"], "rescuer", "{status:#}");
    assert_eq!(tries[1]["outcome"], "finished", "{status:#}");
    assert_eq!(logs(&farm, &id), ["attempt 2"]);
}

/// Guards `jobs` and `eta`: `jobs --json --state failed` lists the failed jobs only,
/// newest first; `--queue Q` lists the jobs of Q only, and both filters combine. `eta`
/// with stdout not a terminal prints one plain line per sample (no carriage returns or
/// escape codes) naming the queue and its job count.
#[test]
fn jobs_lists_by_state_and_queue_and_eta_prints_plain_lines() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker(&["--root", arg(&root), "la", "lb"]);
    let run = |queue: &str, program: &str| {
        let output = farm.run(&["run", "--wait", "--queue", queue, "--", program]);
        assert_eq!(
            output.status.success(),
            program == "true",
            "{}",
            describe(&output)
        );
        job_number(&output)
    };
    let failed_a = run("la", "false");
    let finished_a = run("la", "true");
    let failed_b = run("lb", "false");

    let listed = |args: &[&str]| -> Vec<Value> {
        let mut full = vec!["jobs", "--json"];
        full.extend_from_slice(args);
        let output = farm.run(&full);
        assert_success(&output, &format!("`buildcat {}`", full.join(" ")));
        let jobs = json(&output)["jobs"]
            .as_array()
            .unwrap_or_else(|| panic!("no jobs list\n{}", describe(&output)))
            .clone();
        for pair in jobs.windows(2) {
            assert!(
                millis(&pair[0]["created"]) >= millis(&pair[1]["created"]),
                "not newest first: {jobs:#?}"
            );
        }
        jobs
    };
    let ids = |jobs: &[Value]| -> Vec<String> {
        jobs.iter()
            .map(|job| job["number"].as_u64().expect("a number").to_string())
            .collect()
    };
    let failed = listed(&["--state", "failed"]);
    assert_eq!(ids(&failed), [failed_b.clone(), failed_a.clone()]);
    assert!(failed.iter().all(|job| job["state"] == "failed"));
    let in_la = listed(&["--queue", "la"]);
    assert_eq!(ids(&in_la), [finished_a, failed_a.clone()]);
    assert!(in_la.iter().all(|job| job["queue"] == "la"));
    assert_eq!(
        ids(&listed(&["--queue", "la", "--state", "failed"])),
        [failed_a]
    );

    for _ in 0..2 {
        farm.submit(&["--queue", "etaq", "--", "true"]);
    }
    let mut eta = Streaming::spawn(
        "`buildcat eta`",
        farm.client.command(&[
            "eta",
            "--queue",
            "etaq",
            "--interval",
            "0.2",
            "--count",
            "3",
        ]),
    );
    for _ in 0..3 {
        let line = eta.next_line(PATIENCE);
        assert!(
            line.starts_with("etaq: 2 tasks"),
            "not a line about queue etaq and its 2 tasks: {line:?}"
        );
        assert!(
            !line.contains(['\r', '\u{1b}']),
            "terminal codes in a line for a pipe: {line:?}"
        );
    }
    eta.kill();
}
