//! Pausing a worker (issue 12), end to end with the real binary: `buildcat worker-pause`
//! lets the task it runs finish and gives it no new one, `info --json` and `/metrics` show
//! it paused, the HTTP API resumes it and it takes the waiting job at once; the pause holds
//! while the worker reconnects and a server restart forgets it. The Workers page's Pause
//! and Resume buttons in real headless Chromium (`tests/web/worker_pause.mjs`). And the
//! `buildcat_output_bytes` gauge counts the output kept, back to nothing after a delete.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{Farm, PATIENCE, Streaming, describe, json, worker};
use crate::http::{farm_with_http, request};
use crate::render::on_path;

/// A shell command that waits for `file` to exist, so a test decides when its job ends
/// without timing it.
fn wait_for_file(file: &Path) -> String {
    format!(
        "while [ ! -e '{}' ]; do sleep 0.1; done; echo released",
        file.display()
    )
}

/// The value of the sample `name` with `labels` in a `/metrics` scrape; fails the test if
/// there is none.
fn metric(port: u16, name: &str, labels: &[(&str, &str)]) -> f64 {
    let answer = request(port, "GET", "/metrics", &[], None);
    assert_eq!(answer.status, 200, "{answer:?}");
    let lines = answer.body.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", answer.body));
    match sample.value {
        prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name} is not a gauge: {other:?}"),
    }
}

/// The worker named `name` in `info`, or `Null`.
fn shown(info: &Value, name: &str) -> Value {
    worker(info, name).cloned().unwrap_or(Value::Null)
}

#[test]
fn a_paused_worker_finishes_its_task_and_takes_no_more_until_resumed() {
    let (farm, http) = farm_with_http(&[]);
    let _worker = farm.worker(&["--name", "p1"]);
    let go = farm.path().join("go");
    let running = farm.submit(&["--", "sh", "-c", &wait_for_file(&go)]);
    farm.wait_for_job(&running, "started", |job| job["state"] == "running");

    let paused = farm.ok(&["worker-pause", "p1"]);
    assert!(
        String::from_utf8_lossy(&paused.stdout).contains("paused p1"),
        "{}",
        describe(&paused)
    );
    // Busy with its task, and paused.
    let info = farm.info();
    let p1 = shown(&info, "p1");
    assert_eq!(
        (&p1["state"], &p1["paused"]),
        (&"busy".into(), &true.into())
    );
    let text = farm.ok(&["info"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("p1 is paused"),
        "{}",
        describe(&text)
    );
    let waiting = farm.submit(&["--", "true"]);
    std::fs::write(&go, b"").expect("could not write the release file");
    farm.wait_for_job(&running, "finished", |job| job["state"] == "finished");
    // Its task done, it takes nothing: the job waits, and the worker shows paused.
    let info = farm.wait_for_info("p1 paused with nothing to run", |info| {
        shown(info, "p1")["state"] == "paused"
    });
    assert_eq!(shown(&info, "p1")["task"], Value::Null);
    assert_eq!(farm.job(&waiting)["state"], "queued");
    assert_eq!(
        metric(http, "buildcat_workers", &[("state", "paused")]),
        1.0
    );
    assert_eq!(metric(http, "buildcat_workers", &[("state", "idle")]), 0.0);

    // Resumed through the API, it takes the waiting job at once.
    let answer = request(http, "POST", "/api/v1/workers/p1/resume", &[], None);
    assert_eq!(answer.status, 200, "{answer:?}");
    let body: Value = serde_json::from_str(&answer.body).expect("JSON");
    assert_eq!(body, serde_json::json!({ "worker": "p1", "paused": false }));
    farm.wait_for_job(&waiting, "finished", |job| job["state"] == "finished");
    let info = farm.info();
    assert_eq!(shown(&info, "p1")["paused"], false);

    // The API pauses too; a name nobody has is refused with the way to find the names.
    let answer = request(http, "POST", "/api/v1/workers/p1/pause", &[], None);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(shown(&farm.info(), "p1")["state"], "paused");
    let answer = request(http, "POST", "/api/v1/workers/nobody/pause", &[], None);
    assert_eq!(answer.status, 404, "{answer:?}");
    assert!(answer.body.contains("buildcat info"), "{answer:?}");
    // The CLI: several names, one refused: the others are changed, the command fails.
    let output = farm.run(&["worker-resume", "p1", "nobody", "--json"]);
    assert!(!output.status.success(), "{}", describe(&output));
    let views = json(&output);
    assert_eq!(
        views["workers"][0],
        serde_json::json!({ "worker": "p1", "paused": false })
    );
    assert_eq!(views["workers"][1]["worker"], "nobody");
    assert!(
        views["workers"][1]["error"]
            .as_str()
            .is_some_and(|error| error.contains("no worker named nobody")),
        "{views:#}"
    );
    assert_eq!(shown(&farm.info(), "p1")["paused"], false);
}

/// The pause is kept by name in the server's memory: the worker coming back on a new
/// connection is still paused; a restarted server has forgotten it (as it forgets
/// quarantines) and the worker takes work again.
#[test]
fn a_pause_holds_while_the_worker_reconnects_and_a_server_restart_forgets_it() {
    let mut farm = Farm::start();
    let mut first = farm.worker(&["--name", "r1"]);
    farm.wait_for_info("r1 connected", |info| worker(info, "r1").is_some());
    farm.ok(&["worker-pause", "r1"]);
    first.kill();
    farm.wait_for_info("r1 gone", |info| worker(info, "r1").is_none());
    let waiting = farm.submit(&["--", "true"]);

    let _second = farm.worker(&["--name", "r1"]);
    let info = farm.wait_for_info("r1 back", |info| worker(info, "r1").is_some());
    let r1 = shown(&info, "r1");
    assert_eq!(
        (&r1["state"], &r1["paused"]),
        (&"paused".into(), &true.into())
    );
    assert_eq!(farm.job(&waiting)["state"], "queued");

    farm.kill_server();
    farm.start_server();
    // The worker reconnects by itself; the new server knows no pause and hands it the job.
    farm.wait_for_job(&waiting, "finished", |job| job["state"] == "finished");
    assert_eq!(shown(&farm.info(), "r1")["paused"], false);
}

#[test]
fn the_output_bytes_gauge_counts_the_output_kept_until_its_job_is_deleted() {
    let (farm, http) = farm_with_http(&[]);
    let _worker = farm.worker(&["--name", "o1"]);
    assert_eq!(metric(http, "buildcat_output_bytes", &[]), 0.0);
    // Three lines of 11 bytes each, with their newlines.
    let job = farm.submit(&[
        "--",
        "sh",
        "-c",
        "echo first-line; echo secondline; echo third-line",
    ]);
    farm.wait_for_job(&job, "finished", |job| job["state"] == "finished");
    assert_eq!(metric(http, "buildcat_output_bytes", &[]), 33.0);
    let other = farm.submit(&["--", "echo", "kept"]);
    farm.wait_for_job(&other, "finished", |job| job["state"] == "finished");
    assert_eq!(metric(http, "buildcat_output_bytes", &[]), 38.0);
    farm.ok(&["delete", &job]);
    assert_eq!(metric(http, "buildcat_output_bytes", &[]), 5.0);
    farm.ok(&["delete", &other]);
    assert_eq!(metric(http, "buildcat_output_bytes", &[]), 0.0);
}

/// What the Chromium check needs (the browser and `tests/web`), or why it cannot run here.
fn browser_setup() -> Result<(PathBuf, PathBuf), String> {
    let chromium = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    if !chromium.is_file() {
        return Err(format!(
            "no Chromium at {} (apt-get install chromium, or set CHROMIUM)",
            chromium.display()
        ));
    }
    if !on_path("node") {
        return Err("no `node` on PATH (apt-get install nodejs npm)".to_owned());
    }
    if !web.join("node_modules/playwright-core").is_dir() {
        return Err(format!(
            "playwright-core is not installed: run `npm ci` in {}",
            web.display()
        ));
    }
    Ok((chromium, web))
}

/// The Workers page's buttons: Pause turns the row to `paused` (the server's view, fetched
/// again after the action) with a Resume button in its place; Resume turns it back.
#[test]
fn the_workers_page_pauses_and_resumes_a_worker_in_chromium() {
    let (chromium, web) = match browser_setup() {
        Ok(setup) => setup,
        Err(missing) => {
            assert!(
                std::env::var_os("BUILDCAT_CI").is_none(),
                "BUILDCAT_CI is set but the browser test cannot run: {missing}"
            );
            eprintln!("skipped: {missing}");
            return;
        }
    };
    let (farm, http) = farm_with_http(&[]);
    let _worker = farm.worker(&["--name", "page1"]);
    farm.wait_for_info("page1 idle", |info| shown(info, "page1")["state"] == "idle");
    let shots = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
            PathBuf::from,
        )
        .join("web-screenshots");
    let mut command = Command::new("node");
    command
        .arg(web.join("worker_pause.mjs"))
        .env("BUILDCAT_URL", format!("http://127.0.0.1:{http}/"))
        .env("WORKER", "page1")
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium);
    let mut check = Streaming::spawn("the Chromium check of worker pause", command);
    let (status, lines) = check.wait_exit(PATIENCE * 8);
    let last = lines.last().cloned().unwrap_or_default();
    let report: Value = serde_json::from_str(&last).unwrap_or_else(|error| {
        panic!(
            "the check's last line is not JSON ({error}): {lines:?}\n{}\n{}",
            check.describe(),
            farm.server_logs()
        )
    });
    assert!(
        status.success() && report["done"] == true,
        "the Chromium check failed: {report:#}\n{}\n{}",
        check.describe(),
        farm.server_logs()
    );
    assert_eq!(report["state_before"], "idle", "{report:#}");
    assert_eq!(report["state_paused"], "paused", "{report:#}");
    assert_eq!(
        report["buttons_paused"],
        serde_json::json!(["resume"]),
        "{report:#}"
    );
    assert_eq!(report["state_resumed"], "idle", "{report:#}");
    assert_eq!(
        report["buttons_resumed"],
        serde_json::json!(["pause"]),
        "{report:#}"
    );
    assert_eq!(
        report["console_errors"],
        serde_json::json!([]),
        "{report:#}"
    );
    assert_eq!(shown(&farm.info(), "page1")["paused"], false);
    assert!(shots.join("workers-paused.png").is_file());
}
