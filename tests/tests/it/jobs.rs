//! Jobs made of tasks, end to end (issue 10, "How it is checked"): a chunked Blender render
//! is one job of tasks over two workers and `requeue --all` renders it again; `cancel`,
//! `pause`/`resume` (of a job and of a queue) and `priority` steer a job's tasks; numbers,
//! `JOB.TASK` and full ids name jobs and tasks everywhere, and numbers are never given out
//! again; `requeue --failed` and `jobs --user` keep to one submitter; retention and
//! `delete`; and all of it survives a server restart.
//!
//! Renders of many tasks that must stay running (or wait for a release) are played by a
//! stand-in `mantra` (`houdini-render-ifd` makes one task per file): a small `sh` script
//! the test writes, so its processes can be found and its pace set by a file in the root.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::harness::{
    Farm, PATIENCE, Sleeper, assert_success, describe, json, listed, run_command, stderr, stdout,
    tasks, text, worker,
};
use crate::lifecycle::millis;
use crate::render::{make_scene, on_path, png_size, submitted, write_file};

/// The keys of a job in `jobs --json` (README, "JSON"; issue 10 names them).
const LISTED_KEYS: [&str; 9] = [
    "created",
    "id",
    "name",
    "number",
    "priority",
    "queue",
    "state",
    "submitter",
    "tasks",
];

/// The task counts of a job in `jobs --json`.
const COUNT_KEYS: [&str; 7] = [
    "canceled", "failed", "finished", "paused", "queued", "started", "total",
];

/// The keys of each task in `status JOB --json`.
const TASK_KEYS: [&str; 8] = [
    "attempts", "ended", "frames", "index", "reason", "started", "state", "worker",
];

/// Writes an executable stand-in for `mantra` at `dir/mantra` that runs `body` (an `sh`
/// script; `$2` is the .ifd file) and returns its path.
fn fake_mantra(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("mantra");
    write_file(
        &path,
        format!("#!/bin/sh\nPATH=/usr/bin:/bin\nexport PATH\n{body}\n").as_bytes(),
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|error| panic!("could not make {} executable: {error}", path.display()));
    path
}

/// A stand-in `mantra` whose every run waits for the file `release` in its working
/// directory (the worker's root), then exits 0.
const WAIT_FOR_RELEASE: &str = "while [ ! -e release ]; do sleep 0.05; done";

/// Writes `files` .ifd files under `root`, submits `houdini-render-ifd FILES... ARGS...
/// --json` and returns the job's number and task count; fails the test if the command
/// fails.
#[track_caller]
fn render_ifd(farm: &Farm, root: &Path, files: usize, args: &[&str]) -> (String, u64) {
    let names: Vec<String> = (0..files).map(|index| format!("ifd/{index}.ifd")).collect();
    for name in &names {
        write_file(&root.join(name), b"an ifd file");
    }
    let mut full = vec!["houdini-render-ifd"];
    full.extend(names.iter().map(String::as_str));
    full.extend_from_slice(args);
    full.push("--json");
    let output = farm.run(&full);
    assert_success(&output, &format!("`buildcat {}`", full.join(" ")));
    submitted(&output)
}

/// The states of a `status JOB --json` view's tasks, in index order.
fn task_states(job: &Value) -> Vec<String> {
    tasks(job)
        .iter()
        .map(|task| task["state"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Guards the job model with the real Blender (issue 10): a 12-frame render in chunks of 3
/// is ONE job of 4 tasks (`--json` prints `{"job", "number", "tasks": 4}`), `jobs --json`
/// lists it with the documented keys and `tasks.total` 4, `status N --json` lists the 4
/// tasks with frames `1-3`..`10-12`, finished, on both workers, and every PNG is written;
/// after the PNGs are removed, `requeue --all N` renders every frame again.
#[test]
fn a_chunked_blender_render_is_one_job_of_four_tasks_and_requeue_all_renders_it_again() {
    if !on_path("blender") {
        assert!(
            std::env::var_os("BUILDCAT_CI").is_none(),
            "BUILDCAT_CI is set but blender is not on PATH"
        );
        eprintln!("skipped: needs `blender` on PATH");
        return;
    }
    let farm = Farm::start();
    let root = farm.make_dir("root");
    make_scene(&farm, &root);
    let workers = [
        farm.worker_in(&root, &["--name", "b1"]),
        farm.worker_in(&root, &["--name", "b2"]),
    ];
    farm.wait_for_info("both workers idle", |info| {
        ["b1", "b2"]
            .iter()
            .all(|name| worker(info, name).is_some_and(|w| w["state"] == "idle"))
    });
    let logs = || {
        let mut logs = farm.server_logs();
        for process in &workers {
            logs.push('\n');
            logs.push_str(&process.logs());
        }
        logs
    };

    let output = farm.ok(&[
        "blender-render",
        "scenes/anim.blend",
        "--frames",
        "1-12",
        "--chunk",
        "3",
        "--output",
        "renders/frame_####",
        "--format",
        "PNG",
        "--json",
    ]);
    let printed = json(&output);
    let (job, count) = submitted(&output);
    assert_eq!(count, 4, "{printed:#}");
    let id = text(&printed, "/job").to_owned();

    let jobs = farm.jobs(&[]);
    let number: u64 = job.parse().expect("a job number");
    let entry = listed(&jobs, number).unwrap_or_else(|| panic!("job {job} not listed: {jobs:#}"));
    for key in LISTED_KEYS {
        assert!(entry.get(key).is_some(), "no `{key}` in {entry:#}");
    }
    for key in COUNT_KEYS {
        assert!(
            entry["tasks"][key].is_u64(),
            "no count `{key}` in {entry:#}"
        );
    }
    assert_eq!(entry["tasks"]["total"], 4, "{entry:#}");
    assert_eq!(entry["id"], id.as_str(), "{entry:#}");
    assert_eq!(entry["name"], "anim.blend 1-12", "{entry:#}");
    assert!(
        text(entry, "/submitter").contains('@'),
        "the submitter is not user@host: {entry:#}"
    );
    assert_eq!(
        jobs["jobs"].as_array().map(Vec::len),
        Some(1),
        "one render, one job: {jobs:#}"
    );

    // `wait N` attaches to the job; four Blender runs on two shared cores: more patience.
    let waited = run_command(farm.client.command(&["wait", &job]), PATIENCE * 3);
    assert!(
        waited.status.success(),
        "`wait {job}`\n{}\n{}",
        describe(&waited),
        logs()
    );
    let status = farm.job(&job);
    assert_eq!(status["state"], "finished", "{status:#}");
    assert_eq!(status["id"], id.as_str(), "{status:#}");
    assert!(
        text(&status, "/runs").contains("anim.blend"),
        "`runs` does not say what it renders: {status:#}"
    );
    let listed_tasks = tasks(&status);
    let frames: Vec<&str> = listed_tasks
        .iter()
        .map(|task| task["frames"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(frames, ["1-3", "4-6", "7-9", "10-12"], "{status:#}");
    let mut served = BTreeSet::new();
    for (index, task) in listed_tasks.iter().enumerate() {
        for key in TASK_KEYS {
            assert!(task.get(key).is_some(), "no `{key}` in {task:#}");
        }
        assert_eq!(task["index"], index, "{status:#}");
        assert_eq!(task["state"], "finished", "{status:#}");
        served.insert(text(task, "/worker").to_owned());
    }
    assert_eq!(
        served,
        BTreeSet::from(["b1".to_owned(), "b2".to_owned()]),
        "the tasks did not go to both workers: {status:#}"
    );
    let frame = |number: u32| root.join(format!("renders/frame_{number:04}.png"));
    for number in 1..=12 {
        assert_eq!(png_size(&frame(number)), (64, 48), "frame {number}");
    }

    // Re-render after a fix: the frames are gone, `requeue --all` brings them back.
    for number in 1..=12 {
        std::fs::remove_file(frame(number)).expect("could not remove a frame");
    }
    let requeued = json(&farm.ok(&["requeue", "--all", &job, "--json"]));
    assert_eq!(requeued["jobs"][0]["tasks"], 4, "{requeued:#}");
    let waited = run_command(farm.client.command(&["wait", &job]), PATIENCE * 3);
    assert!(
        waited.status.success(),
        "`wait {job}` after requeue --all\n{}\n{}",
        describe(&waited),
        logs()
    );
    for number in 1..=12 {
        let png = frame(number);
        assert!(
            png.is_file(),
            "{} was not rendered again\n{}",
            png.display(),
            logs()
        );
        assert_eq!(png_size(&png), (64, 48), "frame {number}");
    }
    let status = farm.job(&job);
    assert_eq!(
        task_states(&status),
        ["finished"; 4],
        "after requeue --all: {status:#}"
    );
    for task in tasks(&status) {
        assert_eq!(task["attempts"], 2, "one more attempt each: {status:#}");
    }
}

/// Guards `cancel JOB` of a job of many tasks (issue 10): with two tasks running (their
/// processes found by a marker) and two queued, every task ends canceled, the running
/// ones' processes are killed, and both workers go idle; `cancel N.T` cancels one task of
/// another job, leaving its others.
#[test]
fn cancel_of_a_job_cancels_every_task_and_kills_the_running_ones() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let sleeper = Sleeper::new();
    let mantra = fake_mantra(
        &farm.make_dir("tools"),
        &format!("exec sleep {}", sleeper.arg()),
    );
    let mantra = mantra.to_str().expect("a UTF-8 path");
    let _workers = [
        farm.worker_in(&root, &["--name", "c1", "--mantra", mantra]),
        farm.worker_in(&root, &["--name", "c2", "--mantra", mantra]),
    ];
    let (job, count) = render_ifd(&farm, &root, 4, &[]);
    assert_eq!(count, 4);
    sleeper.wait_for(2, "two tasks of the job running");
    let status = farm.wait_for_job(&job, "two tasks started", |status| {
        task_states(status)
            .iter()
            .filter(|state| *state == "started")
            .count()
            == 2
    });
    assert_eq!(status["state"], "running", "{status:#}");
    let info = farm.info();
    let default = crate::harness::queue(&info, "default").expect("queue default listed");
    assert_eq!(default["jobs"], 1, "one job not ended: {info:#}");
    assert_eq!(default["started"], 2, "{info:#}");
    assert_eq!(default["queued"], 2, "{info:#}");
    let running: BTreeSet<String> = ["c1", "c2"]
        .iter()
        .map(|name| {
            worker(&info, name)
                .map_or("?", |w| text(w, "/task"))
                .to_owned()
        })
        .collect();
    assert!(
        running
            .iter()
            .all(|task| task.starts_with(&format!("{job}."))),
        "the workers' tasks are not the job's: {info:#}"
    );

    let canceled = json(&farm.ok(&["cancel", &job, "--json"]));
    assert_eq!(canceled["jobs"][0]["tasks"], 4, "{canceled:#}");
    assert_eq!(canceled["jobs"][0]["state"], "canceled", "{canceled:#}");
    sleeper.wait_for(0, "the running tasks killed");
    let status = farm.wait_for_job(&job, "every task canceled", |status| {
        task_states(status) == ["canceled"; 4]
    });
    assert_eq!(status["state"], "canceled", "{status:#}");
    farm.wait_for_info("both workers idle", |info| {
        ["c1", "c2"]
            .iter()
            .all(|name| worker(info, name).is_some_and(|w| w["state"] == "idle"))
    });

    // One task of a job: `cancel N.T`.
    let (other, _) = render_ifd(&farm, &root, 3, &["--queue", "nobody"]);
    let one = format!("{other}.1");
    farm.ok(&["cancel", &one]);
    let status = farm.job(&other);
    assert_eq!(
        task_states(&status),
        ["queued", "canceled", "queued"],
        "{status:#}"
    );
    assert_eq!(status["state"], "queued", "{status:#}");
}

/// Guards `pause JOB` / `resume JOB` and `pause --queue Q` / `resume --queue Q` (issue 10)
/// with one worker: pausing a job whose first task runs holds its queued tasks (shown
/// `paused`, job state `paused`) while the running task finishes, and the worker goes
/// idle; `resume` runs the rest to the end. A paused queue holds a new job's tasks with
/// the worker idle, and resuming it runs them.
#[test]
fn pause_holds_queued_tasks_while_the_running_one_finishes_and_resume_goes_on() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let mantra = fake_mantra(&farm.make_dir("tools"), WAIT_FOR_RELEASE);
    let mantra = mantra.to_str().expect("a UTF-8 path");
    let _worker = farm.worker_in(
        &root,
        &["--name", "p1", "--mantra", mantra, "default", "held"],
    );
    let (job, _) = render_ifd(&farm, &root, 3, &[]);
    farm.wait_for_job(&job, "its first task started", |status| {
        task_states(status) == ["started", "queued", "queued"]
    });

    farm.ok(&["pause", &job]);
    let status = farm.job(&job);
    assert_eq!(
        task_states(&status),
        ["started", "paused", "paused"],
        "{status:#}"
    );
    std::fs::write(root.join("release"), "").expect("could not write the release file");
    let status = farm.wait_for_job(&job, "its running task finished", |status| {
        status["tasks"][0]["state"] == "finished"
    });
    assert_eq!(
        task_states(&status),
        ["finished", "paused", "paused"],
        "{status:#}"
    );
    assert_eq!(status["state"], "paused", "{status:#}");
    let info = farm.wait_for_info("the worker idle", |info| {
        worker(info, "p1").is_some_and(|w| w["state"] == "idle")
    });
    let status = farm.job(&job);
    assert_eq!(
        task_states(&status),
        ["finished", "paused", "paused"],
        "the worker is idle ({info:#}) and the job is held: {status:#}"
    );

    farm.ok(&["resume", &job]);
    let status = farm.wait_for_job(&job, "finished after resume", |status| {
        status["state"] == "finished"
    });
    assert_eq!(task_states(&status), ["finished"; 3], "{status:#}");

    // A whole queue.
    farm.ok(&["pause", "--queue", "held"]);
    let (queued, _) = render_ifd(&farm, &root, 2, &["--queue", "held"]);
    let status = farm.job(&queued);
    assert_eq!(task_states(&status), ["paused"; 2], "{status:#}");
    assert_eq!(status["state"], "paused", "{status:#}");
    let info = farm.info();
    assert_eq!(
        worker(&info, "p1").map(|w| w["state"].clone()),
        Some(Value::from("idle")),
        "{info:#}"
    );
    farm.ok(&["resume", "--queue", "held"]);
    let status = farm.wait_for_job(&queued, "finished after the queue resumed", |status| {
        status["state"] == "finished"
    });
    assert_eq!(task_states(&status), ["finished"; 2], "{status:#}");
}

/// Guards `priority JOB N` (issue 10): with one worker busy on a first job, of two jobs
/// queued after it the later one, raised, starts first once the worker is free.
#[test]
fn priority_moves_a_later_job_ahead() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker_in(&root, &["--name", "only"]);
    let busy = farm.submit(&[
        "--",
        "sh",
        "-c",
        "while [ ! -e release ]; do sleep 0.05; done",
    ]);
    farm.wait_for_status(&busy, "started", |status| status["state"] == "started");
    let earlier = farm.submit(&["--", "true"]);
    let later = farm.submit(&["--", "true"]);
    let changed = json(&farm.ok(&["priority", &later, "10", "--json"]));
    assert_eq!(changed["number"].to_string(), later, "{changed:#}");
    assert_eq!(changed["priority"], 10, "{changed:#}");
    let status = farm.job(&later);
    assert_eq!(status["priority"], 10, "{status:#}");

    std::fs::write(root.join("release"), "").expect("could not write the release file");
    let started = |job: &str| {
        let status = farm.wait_for_status(job, "finished", |status| status["state"] == "finished");
        millis(&status["started"])
    };
    let (earlier_started, later_started) = (started(&earlier), started(&later));
    assert!(
        later_started <= earlier_started,
        "the raised job {later} started at {later_started} ms, after job {earlier} at \
         {earlier_started} ms"
    );
}

/// Guards the handles (issue 10): job numbers, `JOB.TASK` and full ids (`UUID`,
/// `UUID.T`) work in `status`, `logs`, `wait`, `--after`, `cancel`, `requeue` and `delete`;
/// `delete` refuses a running or queued job with a message that says to cancel it first,
/// and removes a finished or canceled one; numbers are never given out again, after a
/// `delete` or a server restart; and jobs (numbers, names, states, times, tasks) and a
/// held queue survive the restart.
#[test]
fn numbers_and_task_handles_work_everywhere_and_are_never_reused() {
    let mut farm = Farm::start();
    let root = farm.make_dir("root");
    let mut worker = farm.worker_in(&root, &["--name", "h1"]);

    let output = farm.ok(&["run", "--json", "--name", "greeting", "--", "echo", "hello"]);
    let printed = json(&output);
    let first = printed["number"].to_string();
    let id = text(&printed, "/job").to_owned();
    assert_eq!(printed["tasks"], 1, "{printed:#}");
    farm.ok(&["wait", &first]);
    farm.ok(&["wait", &id]);
    for handle in [
        first.clone(),
        format!("{first}.0"),
        id.clone(),
        format!("{id}.0"),
    ] {
        let printed = stdout(&farm.ok(&["logs", &handle]));
        assert_eq!(printed.trim(), "hello", "`logs {handle}`");
    }
    let by_number = farm.job(&first);
    let by_id = farm.job(&id);
    assert_eq!(
        by_number, by_id,
        "`status {first}` and `status {id}` differ"
    );
    assert_eq!(by_number["name"], "greeting", "{by_number:#}");
    assert_eq!(
        farm.status(&format!("{id}.0")),
        farm.status(&format!("{first}.0")),
        "`status {id}.0` and `status {first}.0` differ"
    );
    assert_eq!(farm.status(&first)["task"], format!("{first}.0"));

    // --after by number, by task, by id.
    for after in [
        first.clone(),
        format!("{first}.0"),
        id.clone(),
        format!("{id}.0"),
    ] {
        let dependent = farm.submit(&["--after", &after, "--", "true"]);
        let output = farm.run(&["wait", &dependent]);
        assert_success(&output, &format!("a job --after {after}"));
    }

    // cancel, requeue by task and by id, in a queue no worker serves.
    let (idle, _) = render_ifd(&farm, &root, 2, &["--queue", "nobody"]);
    let idle_id = text(&farm.job(&idle), "/id").to_owned();
    farm.ok(&["cancel", &format!("{idle}.0")]);
    assert_eq!(task_states(&farm.job(&idle)), ["canceled", "queued"]);
    farm.ok(&["requeue", &format!("{idle_id}.0")]);
    assert_eq!(task_states(&farm.job(&idle)), ["queued", "queued"]);
    farm.ok(&["cancel", &idle_id]);
    assert_eq!(task_states(&farm.job(&idle)), ["canceled", "canceled"]);
    farm.ok(&["requeue", &idle]);
    assert_eq!(task_states(&farm.job(&idle)), ["queued", "queued"]);

    // delete: refused while a job runs or waits, with a message that says to cancel first;
    // an ended job (finished, canceled) goes at once, by number or by id.
    let running = farm.submit(&[
        "--",
        "sh",
        "-c",
        "while [ ! -e release ]; do sleep 0.05; done",
    ]);
    farm.wait_for_status(&running, "started", |status| status["state"] == "started");
    for job in [&running, &idle] {
        let refused = farm.run(&["delete", job]);
        assert!(
            !refused.status.success(),
            "`delete` of job {job}, not ended, succeeded\n{}",
            describe(&refused)
        );
        assert!(
            stderr(&refused).contains("cancel"),
            "the refusal does not say to cancel first\n{}",
            describe(&refused)
        );
    }
    std::fs::write(root.join("release"), "").expect("could not write the release file");
    farm.ok(&["wait", &running]);
    farm.ok(&["delete", &running]);
    farm.ok(&["cancel", &idle]);
    farm.ok(&["delete", &idle_id]);
    for job in [&running, &idle] {
        let gone = farm.run(&["status", job]);
        assert!(
            !gone.status.success(),
            "deleted job {job} is still there\n{}",
            describe(&gone)
        );
    }
    let highest: u64 = running.parse().expect("a number");
    let next = farm.submit(&["--queue", "nobody", "--", "true"]);
    let next: u64 = next.parse().expect("a number");
    assert_eq!(next, highest + 1, "a number after a delete");
    farm.ok(&["cancel", &next.to_string()]);
    farm.ok(&["delete", &next.to_string()]);
    // A held queue is kept across the restart too.
    farm.ok(&["pause", "--queue", "nobody"]);

    // Restart: the same jobs, numbers, names, states and tasks; numbers go on.
    let kept = farm.jobs(&[]);
    let kept_jobs = kept["jobs"].as_array().expect("a list").clone();
    assert!(kept_jobs.len() >= 5, "{kept:#}");
    let statuses: Vec<Value> = kept_jobs
        .iter()
        .map(|job| farm.job(&job["number"].to_string()))
        .collect();
    worker.kill();
    farm.kill_server();
    farm.start_server();
    let again = farm.jobs(&[]);
    assert_eq!(again, kept, "`jobs --json` across a restart");
    // Compared without the job's `ended` first, so that the rest is checked too; `ended`
    // at the end of the test.
    let without_ended = |status: &Value| {
        let mut status = status.clone();
        if let Some(fields) = status.as_object_mut() {
            fields.remove("ended");
        }
        status
    };
    let mut restarted = Vec::new();
    for (job, before) in kept_jobs.iter().zip(&statuses) {
        let after = farm.job(&job["number"].to_string());
        assert_eq!(
            without_ended(&after),
            without_ended(before),
            "`status {}` across a restart",
            job["number"]
        );
        restarted.push(after);
    }
    assert!(
        farm.run(&["status", &next.to_string()]).status.code() != Some(0),
        "a deleted job came back after a restart"
    );
    let after_restart: u64 = farm
        .submit(&["--queue", "nobody", "--", "true"])
        .parse()
        .expect("a number");
    assert_eq!(after_restart, next + 1, "a number after a restart");
    let info = farm.info();
    let held = crate::harness::queue(&info, "nobody").map(|queue| queue["held"].clone());
    assert_eq!(
        held,
        Some(Value::Bool(true)),
        "the held queue after a restart: {info:#}"
    );
    let status = farm.job(&after_restart.to_string());
    assert_eq!(task_states(&status), ["paused"], "{status:#}");
    for (after, before) in restarted.iter().zip(&statuses) {
        assert_eq!(
            after["ended"], before["ended"],
            "job {}'s `ended` across a restart",
            before["number"]
        );
    }
}

/// Runs `buildcat ARGS` as `user` (its `USER`), for the submitter the client records.
fn as_user(farm: &Farm, user: &str, args: &[&str]) -> Output {
    let mut command = farm.client.command(args);
    command.env("USER", user);
    run_command(command, PATIENCE)
}

/// Guards owners (issue 10): alice and bob each have a failed job; `requeue --failed` run
/// as alice requeues only alice's (it finishes on its second attempt), bob's stays failed;
/// `jobs --user bob` lists only bob's.
#[test]
fn requeue_failed_and_jobs_user_keep_to_one_submitter() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker_in(&root, &["--name", "u1"]);
    // Fails until the file `fixed` exists in the root.
    let script = ["run", "--wait", "--", "sh", "-c", "test -e fixed"];
    let mut numbers = Vec::new();
    for user in ["alice", "bob"] {
        let output = as_user(&farm, user, &script);
        assert!(!output.status.success(), "{}", describe(&output));
        numbers.push(
            stdout(&output)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let [alice, bob] = [numbers[0].clone(), numbers[1].clone()];
    for job in [&alice, &bob] {
        assert_eq!(farm.job(job)["state"], "failed");
    }

    std::fs::write(root.join("fixed"), "").expect("could not write the fix");
    let output = as_user(&farm, "alice", &["requeue", "--failed"]);
    assert_success(&output, "`requeue --failed` as alice");
    farm.wait_for_job(&alice, "alice's job finished", |status| {
        status["state"] == "finished"
    });
    let status = farm.job(&bob);
    assert_eq!(
        status["state"], "failed",
        "bob's job was touched: {status:#}"
    );
    assert_eq!(tasks(&status)[0]["attempts"], 1, "{status:#}");

    let listing = farm.jobs(&["--user", "bob"]);
    let jobs = listing["jobs"].as_array().expect("a list");
    assert_eq!(jobs.len(), 1, "{listing:#}");
    assert_eq!(jobs[0]["number"].to_string(), bob, "{listing:#}");
    assert!(
        text(&jobs[0], "/submitter").starts_with("bob@"),
        "{listing:#}"
    );
}

/// Guards retention (issue 10): with `server --retention` of 1.8 seconds, a finished job
/// disappears from `jobs` after it while a failed job that ended earlier stays.
#[test]
fn retention_removes_finished_jobs_and_keeps_failed_ones() {
    let farm = Farm::start_with(&["--retention", "0.0005"]);
    let root = farm.make_dir("root");
    let _worker = farm.worker_in(&root, &["--name", "r1"]);
    let failed = farm.run(&["run", "--wait", "--", "false"]);
    assert!(!failed.status.success(), "{}", describe(&failed));
    let failed = stdout(&failed)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let finished = farm.ok(&["run", "--wait", "--", "true"]);
    let finished = stdout(&finished)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let failed_number: u64 = failed.parse().expect("a number");
    let finished_number: u64 = finished.parse().expect("a number");

    let listing = crate::harness::poll_until("the finished job removed", || {
        let listing = farm.jobs(&[]);
        if listed(&listing, finished_number).is_none() {
            Ok(listing)
        } else {
            Err(format!("{listing:#}"))
        }
    });
    let kept = listed(&listing, failed_number)
        .unwrap_or_else(|| panic!("the failed job was removed: {listing:#}"));
    assert_eq!(kept["state"], "failed", "{listing:#}");
    let gone = farm.run(&["status", &finished]);
    assert!(!gone.status.success(), "{}", describe(&gone));
}

/// Guards `run` with a long command line: what a job runs is shown in a listing as text of
/// at most 4 KiB, but the command itself is the worker's to run whole. A 5,000-byte
/// argument (a long `sh -c` script, say) is accepted and reaches the program intact.
#[test]
fn a_command_line_longer_than_the_shown_text_still_runs() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker_in(&root, &["--name", "l1"]);
    let long = "a".repeat(5000);
    let output = farm.run(&["run", "--wait", "--", "echo", &long]);
    assert_success(&output, "`buildcat run --wait -- echo <5000 bytes>`");
    let job = crate::harness::job_number(&output);
    let printed = stdout(&farm.ok(&["logs", &job]));
    assert_eq!(
        printed.trim_end(),
        long,
        "the argument did not arrive whole"
    );
    let status = farm.job(&job);
    assert!(
        text(&status, "/runs").starts_with("echo aaa"),
        "`runs` does not say what it runs: {status:#}"
    );
}
