//! The web page (issue 12): the page and its assets are served with the right types and
//! without the token; logging in sets an HttpOnly, SameSite=Strict cookie that then opens
//! the API; the farm feed (`/api/v1/events`) says `changed` after a submission, and at most
//! 64 feeds are open at once. Then the page itself in real headless Chromium, driven by
//! `tests/web/check.mjs` (playwright-core): the page asks for the server's token and signs
//! in (an HttpOnly cookie the script cannot read), a 12-frame Blender render shows on the jobs
//! page and its progress advances without a reload, the job page's grid fills in, a cancel
//! from the page cancels a job (checked with `buildcat status --json`), the workers page
//! shows the worker, and nothing is logged to the console as an error. Screenshots go to
//! `target/web-screenshots/`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Farm, PATIENCE, Streaming, free_port, text};
use crate::render::{make_scene, on_path, submitted};

/// How long one read of an answer may block: far longer than any answer needs.
const READ_LIMIT: Duration = Duration::from_secs(60);

/// The token of the browser test's server.
const TOKEN: &str = "Zm9yIHRoZSB3ZWIgcGFnZQ==";

/// The live streams the server allows at once (`events::MAX_STREAMS`).
const MAX_STREAMS: usize = 64;

/// A farm whose HTTP side listens on a free loopback port, with `extra` server flags.
fn farm_with_http(extra: &[&str]) -> (Farm, u16) {
    let http = free_port();
    let addr = format!("127.0.0.1:{http}");
    let mut args = vec!["--http", addr.as_str()];
    args.extend_from_slice(extra);
    (Farm::start_with(&args), http)
}

/// Sends one request and returns the stream, to read the answer from.
fn send(port: u16, method: &str, path: &str, headers: &[&str], body: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|error| panic!("could not connect to the HTTP side on {port}: {error}"));
    stream
        .set_read_timeout(Some(READ_LIMIT))
        .expect("a timeout");
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    if !body.is_empty() {
        text.push_str("Content-Type: application/json\r\n");
    }
    text.push_str(&format!(
        "Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream
        .write_all(text.as_bytes())
        .expect("could not send the request");
    stream
}

/// An answer: status, headers (names lowercased) and the raw body (chunks not decoded).
#[derive(Debug)]
struct Answer {
    /// The status code.
    status: u16,
    /// The headers.
    headers: Vec<(String, String)>,
    /// The body as sent.
    body: String,
}

impl Answer {
    /// A header's value, or "" when absent.
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// One whole request and answer.
fn request(port: u16, method: &str, path: &str, headers: &[&str], body: &str) -> Answer {
    let mut stream = send(port, method, path, headers, body);
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|error| panic!("{method} {path}: could not read the answer: {error}"));
    parse(&String::from_utf8_lossy(&raw))
}

/// Splits a raw answer into its parts.
fn parse(raw: &str) -> Answer {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Reads from `stream` into `seen` until it holds `text`; fails the test if the stream
/// ends or [`READ_LIMIT`] passes first.
#[track_caller]
fn read_until(stream: &mut TcpStream, seen: &mut String, text: &str) {
    let deadline = Instant::now() + READ_LIMIT;
    let mut buffer = [0u8; 4096];
    while !seen.contains(text) {
        assert!(
            Instant::now() < deadline,
            "no {text:?} within {READ_LIMIT:?}; got {seen:?}"
        );
        match stream.read(&mut buffer) {
            Ok(0) => panic!("the stream ended before {text:?}; got {seen:?}"),
            Ok(count) => seen.push_str(&String::from_utf8_lossy(&buffer[..count])),
            Err(error) => {
                panic!("reading the stream failed before {text:?}: {error}; got {seen:?}")
            }
        }
    }
}

#[test]
fn the_page_and_its_assets_are_served_and_the_farm_feed_says_changed() {
    let (farm, http) = farm_with_http(&[]);
    let page = request(http, "GET", "/", &[], "");
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    assert!(page.body.contains("<title>Buildcat</title>"), "{page:?}");
    let assets = [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
    ];
    for (path, content_type) in assets {
        assert!(page.body.contains(path), "the page does not load {path}");
        let asset = request(http, "GET", path, &[], "");
        assert_eq!(asset.status, 200, "{path}: {asset:?}");
        assert_eq!(asset.header("content-type"), content_type, "{path}");
        assert!(asset.body.len() > 100, "{path} is nearly empty: {asset:?}");
    }

    // The farm feed: `ready` at once, `changed` after a submission.
    let mut feed = send(http, "GET", "/api/v1/events", &[], "");
    let mut seen = String::new();
    read_until(&mut feed, &mut seen, "event: ready");
    let head = parse(&seen);
    assert_eq!(head.status, 200, "{seen}");
    assert_eq!(head.header("content-type"), "text/event-stream", "{seen}");
    farm.ok(&["run", "--queue", "nobody", "--", "true"]);
    read_until(&mut feed, &mut seen, "event: changed");

    // At most 64 feeds at once: the one past them gets 503 with a message.
    let mut feeds = vec![feed];
    while feeds.len() < MAX_STREAMS {
        let mut stream = send(http, "GET", "/api/v1/events", &[], "");
        read_until(&mut stream, &mut String::new(), "event: ready");
        feeds.push(stream);
    }
    let refused = request(http, "GET", "/api/v1/events", &[], "");
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(
        refused.body.contains("too many live streams"),
        "{refused:?}"
    );
    drop(feeds);
    // Closed feeds give their places back.
    crate::harness::poll_until("a feed place freed after the browsers went away", || {
        let mut stream = send(http, "GET", "/api/v1/events", &[], "");
        let mut seen = String::new();
        let mut buffer = [0u8; 1024];
        while !seen.contains("\r\n\r\n") {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(count) => seen.push_str(&String::from_utf8_lossy(&buffer[..count])),
            }
        }
        if seen.starts_with("HTTP/1.1 200") {
            Ok(())
        } else {
            Err(seen)
        }
    });
}

#[test]
fn the_page_signs_in_with_the_token_and_gets_an_http_only_cookie() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("token");
    std::fs::write(&file, "s3cret-Token+/=\n").expect("could not write the token file");
    let file = file.display().to_string();
    let (_farm, http) = farm_with_http(&["--http-token-file", &file]);

    // The page and its assets need no token: they hold no data.
    assert_eq!(request(http, "GET", "/", &[], "").status, 200);
    assert_eq!(request(http, "GET", "/assets/app.js", &[], "").status, 200);
    let refused = request(http, "GET", "/api/v1/info", &[], "");
    assert_eq!(refused.status, 401, "{refused:?}");
    let refused = request(http, "GET", "/api/v1/events", &[], "");
    assert_eq!(
        refused.status, 401,
        "the live feed needs the token too: {refused:?}"
    );

    let state = request(http, "GET", "/api/v1/login", &[], "");
    assert_eq!(state.status, 200, "{state:?}");
    assert!(
        state.body.contains(r#""required":true"#) && state.body.contains(r#""signed_in":false"#),
        "{state:?}"
    );
    let wrong = request(http, "POST", "/api/v1/login", &[], r#"{"token": "guess"}"#);
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert_eq!(wrong.header("set-cookie"), "", "{wrong:?}");
    assert!(wrong.body.contains("--http-token-file"), "{wrong:?}");

    let right = request(
        http,
        "POST",
        "/api/v1/login",
        &[],
        r#"{"token": "s3cret-Token+/="}"#,
    );
    assert_eq!(right.status, 200, "{right:?}");
    let cookie = right.header("set-cookie");
    assert!(
        cookie.starts_with("buildcat_token=s3cret-Token+/=;")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{right:?}"
    );
    let pair = cookie.split(';').next().unwrap_or_default();
    let info = request(
        http,
        "GET",
        "/api/v1/info",
        &[&format!("Cookie: {pair}")],
        "",
    );
    assert_eq!(info.status, 200, "the cookie opens the API: {info:?}");
    let state = request(
        http,
        "GET",
        "/api/v1/login",
        &[&format!("Cookie: {pair}")],
        "",
    );
    assert!(state.body.contains(r#""signed_in":true"#), "{state:?}");
}

/// Where the screenshots go: `target/web-screenshots/` of the workspace (or of
/// `CARGO_TARGET_DIR`).
fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("web-screenshots")
}

/// What the Chromium test needs, or why it cannot run here.
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
    if !on_path("blender") {
        return Err("no `blender` on PATH (apt-get install blender)".to_owned());
    }
    Ok((chromium, web))
}

/// The report's field as a number; fails the test if it is not one.
#[track_caller]
fn number(report: &Value, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("the report has no number `{field}`: {report:#}"))
}

#[test]
fn the_page_in_chromium_follows_a_render_and_cancels_a_job() {
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
    // With a token, so the page has to ask for it (and sign in) first.
    let token_dir = tempfile::tempdir().expect("a temporary directory");
    let token_file = token_dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("could not write the token file");
    let token_file = token_file.display().to_string();
    let (farm, http) = farm_with_http(&["--http-token-file", &token_file]);
    let root = farm.make_dir("root");
    make_scene(&farm, &root);
    // Submitted before any worker runs, so the page sees the render at 0 of 12 and then
    // sees it advance.
    let render = farm.ok(&[
        "blender-render",
        "scenes/anim.blend",
        "--frames",
        "1-12",
        "--chunk",
        "1",
        "--output",
        "renders/frame_####",
        "--format",
        "PNG",
        "--json",
    ]);
    let (render_job, tasks) = submitted(&render);
    assert_eq!(tasks, 12);
    // A job no worker takes (its queue is served by nobody), to cancel from the page.
    let long = farm.ok(&[
        "run", "--queue", "nobody", "--name", "long", "--json", "--", "sleep", "600",
    ]);
    let (long_job, _) = submitted(&long);

    let shots = screenshots();
    let mut command = Command::new("node");
    command
        .arg(web.join("check.mjs"))
        .env("BUILDCAT_URL", format!("http://127.0.0.1:{http}/"))
        .env("RENDER_JOB", &render_job)
        .env("LONG_JOB", &long_job)
        .env("WORKER", "web1")
        .env("TOKEN", TOKEN)
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium);
    let mut check = Streaming::spawn("the Chromium check", command);
    let first: Value = serde_json::from_str(&check.next_line(PATIENCE * 4))
        .unwrap_or_else(|error| panic!("not JSON ({error})\n{}", check.describe()));
    assert_eq!(
        first["step"],
        "jobs-seen",
        "{first:#}\n{}",
        check.describe()
    );
    let worker = farm.worker_in(&root, &["--name", "web1"]);

    // Twelve Blender runs on a machine shared with the rest of the suite.
    let (status, lines) = check.wait_exit(PATIENCE * 20);
    let last = lines.last().cloned().unwrap_or_default();
    let report: Value = serde_json::from_str(&last).unwrap_or_else(|error| {
        panic!(
            "the check's last line is not JSON ({error}): {lines:?}\n{}\n{}\n{}",
            check.describe(),
            worker.logs(),
            farm.server_logs()
        )
    });
    assert!(
        status.success() && report["done"] == true,
        "the Chromium check failed: {report:#}\n{}\n{}\n{}",
        check.describe(),
        worker.logs(),
        farm.server_logs()
    );

    assert!(
        text(&report, "/login_error").contains("--http-token-file"),
        "a wrong token is refused with the server's message: {report:#}"
    );
    assert_eq!(
        report["cookie"],
        serde_json::json!({ "httpOnly": true, "sameSite": "Strict" }),
        "{report:#}"
    );
    assert_eq!(report["script_sees_cookie"], false, "{report:#}");
    assert_eq!(number(&report, "jobs_page_first_finished"), 0, "{report:#}");
    assert!(
        number(&report, "jobs_page_later_finished") > 0,
        "{report:#}"
    );
    assert_eq!(
        number(&report, "reloads_at_end"),
        1,
        "the page was loaded once and never reloaded: {report:#}"
    );
    assert_eq!(number(&report, "grid_cells"), 12, "{report:#}");
    assert_eq!(number(&report, "grid_last_finished"), 12, "{report:#}");
    let tooltip = text(&report, "/grid_tooltip");
    assert!(
        tooltip.contains("worker: web1") && tooltip.contains("attempts: 1"),
        "{report:#}"
    );
    assert!(!text(&report, "/log_excerpt").is_empty(), "{report:#}");
    match text(&report, "/preview") {
        "decoded" => {}
        "route not served" => assert!(
            text(&report, "/preview_text").contains("no frame yet"),
            "{report:#}"
        ),
        other => panic!("the preview did not decode ({other}): {report:#}"),
    }
    assert!(
        text(&report, "/delete_error").contains("cancel"),
        "deleting a queued job shows the server's message, which says to cancel it: {report:#}"
    );
    assert_eq!(report["long_job_state_shown"], "canceled", "{report:#}");
    assert_eq!(
        farm.job(&long_job)["state"],
        "canceled",
        "the cancel from the page reached the server"
    );
    assert_eq!(farm.job(&render_job)["state"], "finished");
    assert!(text(&report, "/worker_row").contains("web1"), "{report:#}");
    // The Tools column: the worker renders the job with Blender, so it lists it, versioned.
    assert!(
        text(&report, "/worker_row").contains("blender "),
        "{report:#}"
    );
    assert!(number(&report, "farm_queues") >= 2, "{report:#}");
    assert_eq!(number(&report, "chart_bars"), 60, "{report:#}");
    assert_eq!(
        report["provoked_errors"].as_array().map(Vec::len),
        Some(2),
        "the refused sign-in and the refused delete are the errors provoked: {report:#}"
    );
    assert_eq!(
        report["console_errors"],
        Value::Array(Vec::new()),
        "the browser logged errors: {report:#}"
    );
    assert_eq!(
        report["stray_text"],
        Value::Array(Vec::new()),
        "a page showed a missing value: {report:#}"
    );
    for page in ["jobs", "job", "workers", "farm"] {
        let shot = shots.join(format!("{page}.png"));
        assert!(shot.is_file(), "no screenshot {}", shot.display());
    }
}
