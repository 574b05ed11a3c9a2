//! `buildcat migrate` (issue 17): a farm's state copied from SQLite into PostgreSQL reads
//! the same there and goes on running.

use serde_json::Value;

use crate::harness::{Farm, PATIENCE, Postgres, buildcat_command, describe, json, stderr, stdout};

/// Runs `buildcat migrate ARGS` (not against a server: it has no --host).
fn migrate(farm: &Farm, args: &[&str]) -> std::process::Output {
    let mut command = buildcat_command(["migrate"]);
    command.args(args).current_dir(farm.path());
    crate::harness::run_command(command, PATIENCE)
}

/// What a farm shows of its jobs: `jobs --json` and `status --json` and `logs` (stdout and
/// stderr) of each.
fn shown(farm: &Farm, jobs: &[&str]) -> (Value, Vec<Value>, Vec<String>) {
    let listing = farm.jobs(&["--all"]);
    let statuses = jobs.iter().map(|job| farm.job(job)).collect();
    // The program's stderr lines are printed on stderr, its stdout lines on stdout.
    let logs = jobs
        .iter()
        .map(|job| {
            let output = farm.ok(&["logs", job]);
            format!("{}--- stderr:\n{}", stdout(&output), stderr(&output))
        })
        .collect();
    (listing, statuses, logs)
}

/// Queue `night` in `info --json` (`null` when not listed).
fn night(info: &Value) -> Value {
    info["queues"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|queue| queue["name"] == "night")
        .cloned()
        .unwrap_or(Value::Null)
}

/// Guards issue 17's migrate: a SQLite farm with a finished job (output on stdout and
/// stderr), a failed one, a queued one, a paused queue and a deleted job is refused while
/// its server runs; once stopped it is copied into PostgreSQL, where a server shows the
/// same `jobs`, `status` and `logs`, keeps the queue paused, numbers the next job after the
/// deleted one and runs the queued job; a second migrate into the same database is refused.
#[test]
fn a_sqlite_farm_migrated_to_postgresql_shows_the_same_jobs_and_runs_the_queued_ones() {
    let Some(cluster) = Postgres::start_or_skip("migrate") else {
        return;
    };
    let url = cluster.create_database("migrated");
    let mut farm = Farm::without_server();
    let sqlite = farm.path().join("old.db");
    farm.set_storage(&sqlite);
    farm.start_server();

    let mut worker = farm.worker(&["--max-jobs", "3"]);
    let done = farm.submit(&[
        "--name",
        "greeting",
        "--",
        "sh",
        "-c",
        "echo hello; echo oops >&2; echo bye",
    ]);
    let failed = farm.submit(&["--name", "broken", "--", "sh", "-c", "echo trying; exit 3"]);
    let deleted = farm.submit(&["--", "true"]);
    farm.wait_for_job(&done, "finished", |job| job["state"] == "finished");
    farm.wait_for_job(&failed, "failed", |job| job["state"] == "failed");
    farm.wait_for_job(&deleted, "finished", |job| job["state"] == "finished");
    let status = worker.wait_exit(PATIENCE);
    assert!(
        status.success(),
        "the worker exits after three jobs\n{}",
        worker.logs()
    );
    farm.ok(&["delete", &deleted]);
    let queued = farm.submit(&["--name", "later", "--", "echo", "later"]);
    farm.ok(&["pause", "--queue", "night"]);
    let jobs = [done.as_str(), failed.as_str(), queued.as_str()];
    let before = shown(&farm, &jobs);
    let info = farm.info();
    assert_eq!(
        night(&info)["held"],
        true,
        "queue night is paused: {info:#}"
    );

    let sqlite_arg = sqlite.display().to_string();
    let refused = migrate(&farm, &["--from", &sqlite_arg, "--to", &url]);
    assert!(
        !refused.status.success() && stderr(&refused).contains("server running on it"),
        "migrate refuses a source a server holds\n{}",
        describe(&refused)
    );

    farm.kill_server();
    let copied = migrate(&farm, &["--from", &sqlite_arg, "--to", &url, "--json"]);
    assert!(copied.status.success(), "migrate\n{}", describe(&copied));
    let counts = json(&copied);
    assert_eq!(counts["jobs"], 3, "{counts:#}");
    assert_eq!(counts["tasks"], 3, "{counts:#}");
    assert_eq!(counts["ended_tasks"], 2, "{counts:#}");
    assert_eq!(counts["paused_queues"], 1, "{counts:#}");
    let next: u64 = deleted.parse::<u64>().expect("a job number") + 2;
    assert_eq!(counts["next_number"], next, "{counts:#}");

    let again = migrate(&farm, &["--from", &sqlite_arg, "--to", &url]);
    assert!(
        !again.status.success() && stderr(&again).contains("not empty"),
        "a second migrate into the same database is refused\n{}",
        describe(&again)
    );

    farm.set_storage(std::path::Path::new(&url));
    farm.start_server();
    let after = shown(&farm, &jobs);
    assert_eq!(after.0, before.0, "`jobs --all` differs after migrating");
    assert_eq!(after.1, before.1, "`status` differs after migrating");
    assert_eq!(after.2, before.2, "`logs` differs after migrating");
    assert!(
        after.2[0].contains("hello") && after.2[0].contains("oops"),
        "the finished job's log: {}",
        after.2[0]
    );
    let info = farm.info();
    assert_eq!(
        night(&info)["held"],
        true,
        "queue night is still paused: {info:#}"
    );

    let mut worker = farm.worker(&["--max-jobs", "1"]);
    farm.wait_for_job(&queued, "finished", |job| job["state"] == "finished");
    let status = worker.wait_exit(PATIENCE);
    assert!(
        status.success(),
        "the worker exits after one job\n{}",
        worker.logs()
    );
    assert_eq!(stdout(&farm.ok(&["logs", &queued])).trim(), "later");
    assert!(
        farm.server_logs().contains("active server of the database"),
        "the server says it is active\n{}",
        farm.server_logs()
    );
    let newer = farm.submit(&["--", "true"]);
    assert_eq!(
        newer,
        next.to_string(),
        "numbers go on after the deleted job's"
    );
}
