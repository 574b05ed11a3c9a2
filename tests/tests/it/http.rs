//! The HTTP API and metrics (issue 12, first slice), end to end: every GET endpoint answers
//! what the CLI's `--json` prints for the same farm; actions change what `buildcat status
//! --json` and `info --json` show; a server given a token file refuses requests without it
//! (401) and they change nothing; `/metrics` parses as Prometheus text with values matching
//! `info --json`; the OpenAPI document lists every endpoint exercised here.
//!
//! Requests are made with a few lines of HTTP/1.1 over a loopback `TcpStream`, so the test
//! depends on no HTTP client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Farm, PATIENCE, buildcat_command, describe, free_port, json, run_command};

/// How long one request may take: far longer than any answer needs on a loaded machine.
const REQUEST_LIMIT: Duration = Duration::from_secs(30);

/// An HTTP answer.
#[derive(Debug)]
pub(super) struct Answer {
    /// The status code.
    pub(super) status: u16,
    /// The headers, names lowercased.
    headers: Vec<(String, String)>,
    /// The body.
    pub(super) body: String,
}

impl Answer {
    /// The body as JSON; fails the test if it is not.
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {self:?}"))
    }

    /// A header's value.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request to `127.0.0.1:port` and reads the whole answer.
pub(super) fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&str>,
) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|error| panic!("could not connect to the HTTP API on {port}: {error}"));
    stream
        .set_read_timeout(Some(REQUEST_LIMIT))
        .expect("a timeout");
    let mut text =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        text.push_str("Content-Type: application/json\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream
        .write_all(text.as_bytes())
        .expect("could not send the request");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .expect("could not read the answer");
    let raw = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, rest) = raw.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        unchunk(rest)
    } else {
        rest.to_owned()
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// The body of a chunked answer.
pub(super) fn unchunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// `GET path`, expecting 200 and JSON.
#[track_caller]
fn get(port: u16, path: &str) -> Value {
    let answer = request(port, "GET", path, &[], None);
    assert_eq!(answer.status, 200, "GET {path}: {answer:?}");
    answer.json()
}

/// `POST path`, expecting 200 and JSON.
#[track_caller]
fn post(port: u16, path: &str, body: Option<&str>) -> Value {
    let answer = request(port, "POST", path, &[], body);
    assert_eq!(answer.status, 200, "POST {path}: {answer:?}");
    answer.json()
}

/// `buildcat ARGS` against the farm, parsed as JSON; fails the test if it fails.
#[track_caller]
fn cli(farm: &Farm, args: &[&str]) -> Value {
    json(&farm.ok(args))
}

/// A farm whose HTTP API listens on a free loopback port, with `extra` server flags.
pub(super) fn farm_with_http(extra: &[&str]) -> (Farm, u16) {
    let http = free_port();
    let addr = format!("127.0.0.1:{http}");
    let mut args = vec!["--http", addr.as_str()];
    args.extend_from_slice(extra);
    (Farm::start_with(&args), http)
}

#[test]
fn every_get_endpoint_answers_as_the_cli_does() {
    let (farm, http) = farm_with_http(&[]);
    let _worker = farm.worker(&["--name", "w1"]);
    let done = farm.submit(&["--", "sh", "-c", "echo hello from http; echo second line"]);
    farm.wait_for_job(&done, "finished", |job| job["state"] == "finished");
    // A job no worker serves stays queued, so the listing has two states.
    let waiting = farm.submit(&["--queue", "nobody", "--", "true"]);

    assert_eq!(get(http, "/api/v1/info"), cli(&farm, &["info", "--json"]));
    assert_eq!(
        get(http, "/api/v1/workers")["workers"],
        cli(&farm, &["info", "--json"])["workers"]
    );
    assert_eq!(get(http, "/api/v1/jobs"), cli(&farm, &["jobs", "--json"]));
    assert_eq!(
        get(http, "/api/v1/jobs?queue=nobody&state=queued&limit=5"),
        cli(
            &farm,
            &[
                "jobs", "--queue", "nobody", "--state", "queued", "--limit", "5", "--json"
            ]
        )
    );
    let status = cli(&farm, &["status", &done, "--json"]);
    assert_eq!(get(http, &format!("/api/v1/jobs/{done}")), status);
    let id = status["id"].as_str().expect("an id");
    assert_eq!(get(http, &format!("/api/v1/jobs/{id}")), status, "by UUID");
    assert_eq!(
        get(http, &format!("/api/v1/jobs/{done}/tasks/0")),
        cli(&farm, &["status", &format!("{done}.0"), "--json"])
    );
    assert_eq!(
        get(http, &format!("/api/v1/jobs/{waiting}")),
        cli(&farm, &["status", &waiting, "--json"])
    );

    let page = get(http, &format!("/api/v1/jobs/{done}/tasks/0/log"));
    assert_eq!(page["offset"], 0);
    assert_eq!(page["more"], false);
    assert_eq!(page["dropped"], Value::Null);
    let lines: Vec<&str> = page["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(lines.contains(&"hello from http"), "{page:#}");
    // The next page starts where this one ended, and is empty.
    let next = page["next"].as_u64().expect("next");
    let first = "hello from http\n".len() as u64;
    assert!(next > first, "{page:#}");
    let rest = get(
        http,
        &format!("/api/v1/jobs/{done}/tasks/0/log?from={first}"),
    );
    assert_eq!(rest["offset"], first);
    assert_eq!(rest["lines"][0], "second line");
    let end = get(
        http,
        &format!("/api/v1/jobs/{done}/tasks/0/log?from={next}"),
    );
    assert_eq!(end["lines"], serde_json::json!([]));

    // Errors say what was wrong, with a fitting status.
    let unknown = request(http, "GET", "/api/v1/jobs/99999", &[], None);
    assert_eq!(unknown.status, 404, "{unknown:?}");
    assert!(
        unknown.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("no job 99999")
    );
    let no_task = request(
        http,
        "GET",
        &format!("/api/v1/jobs/{done}/tasks/7"),
        &[],
        None,
    );
    assert_eq!(no_task.status, 404, "{no_task:?}");
    let bad = request(
        http,
        "GET",
        &format!("/api/v1/jobs/{done}/tasks/x"),
        &[],
        None,
    );
    assert_eq!(bad.status, 400, "{bad:?}");
    let bad_state = request(http, "GET", "/api/v1/jobs?state=sideways", &[], None);
    assert_eq!(bad_state.status, 400, "{bad_state:?}");
    assert!(
        bad_state.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("sideways")
    );
    let nowhere = request(http, "GET", "/api/v2/nothing", &[], None);
    assert_eq!(nowhere.status, 404);
    assert!(nowhere.json()["error"].is_string());
}

#[test]
fn actions_change_what_status_shows() {
    let (farm, http) = farm_with_http(&[]);
    let job = farm.submit(&["--queue", "nobody", "--", "true"]);
    let state = |farm: &Farm| cli(farm, &["status", &job, "--json"]);

    let paused = post(http, &format!("/api/v1/jobs/{job}/pause"), None);
    assert_eq!(paused["jobs"][0]["state"], "paused", "{paused:#}");
    assert_eq!(state(&farm)["state"], "paused");
    post(http, &format!("/api/v1/jobs/{job}/resume"), None);
    assert_eq!(state(&farm)["state"], "queued");

    post(
        http,
        &format!("/api/v1/jobs/{job}/priority"),
        Some(r#"{"priority": 7}"#),
    );
    assert_eq!(state(&farm)["priority"], 7);
    let bad_body = request(
        http,
        "POST",
        &format!("/api/v1/jobs/{job}/priority"),
        &[],
        Some("{}"),
    );
    assert_eq!(bad_body.status, 400, "{bad_body:?}");
    assert_eq!(state(&farm)["priority"], 7);

    // Deleting a job that has not ended is refused: 409, nothing changes.
    let early = request(http, "DELETE", &format!("/api/v1/jobs/{job}"), &[], None);
    assert_eq!(early.status, 409, "{early:?}");
    assert_eq!(state(&farm)["state"], "queued");

    let canceled = post(http, &format!("/api/v1/jobs/{job}/tasks/0/cancel"), None);
    assert_eq!(canceled["jobs"][0]["state"], "canceled", "{canceled:#}");
    assert_eq!(state(&farm)["tasks"][0]["state"], "canceled");
    post(http, &format!("/api/v1/jobs/{job}/requeue"), None);
    assert_eq!(state(&farm)["state"], "queued");
    post(http, &format!("/api/v1/jobs/{job}/cancel"), None);
    assert_eq!(state(&farm)["state"], "canceled");
    post(http, &format!("/api/v1/jobs/{job}/requeue?all=true"), None);
    assert_eq!(state(&farm)["state"], "queued");
    post(http, &format!("/api/v1/jobs/{job}/cancel"), None);
    let deleted = request(http, "DELETE", &format!("/api/v1/jobs/{job}"), &[], None);
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert!(!farm.run(&["status", &job, "--json"]).status.success());
    assert_eq!(
        request(http, "GET", &format!("/api/v1/jobs/{job}"), &[], None).status,
        404
    );

    // A queue is listed while it has jobs.
    farm.submit(&["--queue", "nobody", "--", "true"]);
    let held = post(http, "/api/v1/queues/nobody/pause", None);
    assert_eq!(
        held,
        serde_json::json!({ "queue": "nobody", "paused": true })
    );
    let queue = |farm: &Farm| {
        cli(farm, &["info", "--json"])["queues"]
            .as_array()
            .and_then(|queues| queues.iter().find(|q| q["name"] == "nobody").cloned())
            .expect("the queue is listed")
    };
    assert_eq!(queue(&farm)["held"], true);
    post(http, "/api/v1/queues/nobody/resume", None);
    assert_eq!(queue(&farm)["held"], false);

    let nobody = request(http, "POST", "/api/v1/workers/ghost/enable", &[], None);
    assert_eq!(nobody.status, 404, "{nobody:?}");
}

/// Writes `token` to a file in `dir` and returns its path as a string.
fn token_file(dir: &Path, token: &str) -> String {
    let path = dir.join("http.token");
    std::fs::write(&path, format!("{token}\n")).expect("could not write the token file");
    path.to_string_lossy().into_owned()
}

#[test]
fn a_token_file_makes_every_request_carry_the_token() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let token = "k3y-for-the-http-test";
    let file = token_file(dir.path(), token);
    let (farm, http) = farm_with_http(&["--http-token-file", &file]);
    farm.submit(&["--queue", "nobody", "--", "true"]);

    for (method, path) in [
        ("GET", "/api/v1/info"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/openapi.json"),
        ("POST", "/api/v1/queues/nobody/pause"),
    ] {
        for headers in [
            &[][..],
            &["Authorization: Bearer wrong"][..],
            &["Cookie: buildcat_token=k3y"][..],
        ] {
            let answer = request(http, method, path, headers, None);
            assert_eq!(
                answer.status, 401,
                "{method} {path} {headers:?}: {answer:?}"
            );
            assert!(
                answer.json()["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("--http-token-file")
            );
            assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
        }
    }
    // The refused pause changed nothing.
    let info = cli(&farm, &["info", "--json"]);
    assert_eq!(info["queues"][0]["held"], false, "{info:#}");

    let bearer = format!("Authorization: Bearer {token}");
    let answer = request(http, "GET", "/api/v1/info", &[&bearer], None);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json(), info);
    let cookie = format!("Cookie: theme=dark; buildcat_token={token}");
    let answer = request(
        http,
        "POST",
        "/api/v1/queues/nobody/pause",
        &[&cookie],
        None,
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(cli(&farm, &["info", "--json"])["queues"][0]["held"], true);
}

#[test]
fn beyond_loopback_the_server_refuses_to_start_without_a_token() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let storage = dir.path().join("buildcat.db");
    let port = free_port().to_string();
    let command = buildcat_command([
        "server".as_ref(),
        "--port".as_ref(),
        port.as_ref(),
        "--storage".as_ref(),
        storage.as_os_str(),
        "--http".as_ref(),
        "0.0.0.0:0".as_ref(),
    ]);
    let output = run_command(command, REQUEST_LIMIT);
    assert!(!output.status.success(), "{}", describe(&output));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("--http-token-file") && said.contains("/dev/urandom"),
        "{}",
        describe(&output)
    );
}

#[test]
fn metrics_match_info_and_parse_as_prometheus_text() {
    let (farm, http) = farm_with_http(&[]);
    let _worker = farm.worker(&["--name", "w1"]);
    let done = farm.submit(&["--", "true"]);
    farm.wait_for_job(&done, "finished", |job| job["state"] == "finished");
    farm.submit(&["--queue", "nobody", "--", "true"]);
    farm.submit(&["--queue", "nobody", "--", "true"]);
    let info = farm.wait_for_info("w1 idle", |info| info["workers"][0]["state"] == "idle");

    let answer = request(http, "GET", "/metrics", &[], None);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.header("content-type").unwrap_or("").contains("text"));
    let lines = answer.body.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", answer.body));
        match sample.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name} is not a number: {other:?}"),
        }
    };
    for queue in info["queues"].as_array().expect("queues") {
        let name = queue["name"].as_str().expect("a name");
        for state in [
            "queued", "started", "finished", "failed", "canceled", "deferred", "paused",
        ] {
            assert_eq!(
                value("buildcat_tasks", &[("queue", name), ("state", state)]),
                queue[state].as_f64().expect("a count"),
                "{state} tasks of {name}"
            );
        }
        assert_eq!(
            value("buildcat_jobs", &[("queue", name)]),
            queue["jobs"].as_f64().expect("a count")
        );
    }
    assert_eq!(
        value(
            "buildcat_tasks",
            &[("queue", "nobody"), ("state", "queued")]
        ),
        2.0
    );
    assert_eq!(value("buildcat_workers", &[("state", "idle")]), 1.0);
    assert_eq!(value("buildcat_workers", &[("state", "busy")]), 0.0);
    assert_eq!(value("buildcat_quarantined_workers", &[]), 0.0);
    // The worker's one connection; no client command runs during the scrape.
    assert_eq!(value("buildcat_connections", &[("role", "worker")]), 1.0);
    assert_eq!(value("buildcat_connections", &[("role", "client")]), 0.0);
    let commits = scrape
        .samples
        .iter()
        .find(|s| s.metric == "buildcat_store_commit_seconds")
        .unwrap_or_else(|| panic!("no commit histogram in\n{}", answer.body));
    match &commits.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let total = buckets.last().map_or(0.0, |b| b.count);
            assert!(
                total >= 3.0,
                "three submissions were committed: {buckets:?}"
            );
        }
        other => panic!("the commit latency is not a histogram: {other:?}"),
    }
    // The one job that ran: its attempt's run time, its task's queue wait, its end.
    let observations = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", answer.body));
        match &sample.value {
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    };
    assert_eq!(
        observations(
            "buildcat_task_run_seconds",
            &[("queue", "default"), ("outcome", "finished")]
        ),
        1.0
    );
    assert_eq!(
        observations("buildcat_task_queue_wait_seconds", &[("queue", "default")]),
        1.0
    );
    assert_eq!(
        value(
            "buildcat_jobs_ended_total",
            &[("queue", "default"), ("state", "finished")]
        ),
        1.0
    );
}

#[test]
fn the_openapi_document_lists_every_endpoint() {
    let (_farm, http) = farm_with_http(&[]);
    let document = get(http, "/api/v1/openapi.json");
    assert!(
        document["openapi"].as_str().unwrap_or("").starts_with("3."),
        "{document:#}"
    );
    for (method, path) in [
        ("get", "/api/v1/info"),
        ("get", "/api/v1/jobs"),
        ("get", "/api/v1/jobs/{job}"),
        ("delete", "/api/v1/jobs/{job}"),
        ("get", "/api/v1/jobs/{job}/tasks/{index}"),
        ("get", "/api/v1/jobs/{job}/tasks/{index}/log"),
        ("post", "/api/v1/jobs/{job}/cancel"),
        ("post", "/api/v1/jobs/{job}/tasks/{index}/cancel"),
        ("post", "/api/v1/jobs/{job}/requeue"),
        ("post", "/api/v1/jobs/{job}/pause"),
        ("post", "/api/v1/jobs/{job}/resume"),
        ("post", "/api/v1/jobs/{job}/priority"),
        ("post", "/api/v1/queues/{queue}/pause"),
        ("post", "/api/v1/queues/{queue}/resume"),
        ("get", "/api/v1/workers"),
        ("post", "/api/v1/workers/{name}/enable"),
        ("get", "/api/v1/openapi.json"),
        ("get", "/metrics"),
    ] {
        let operation = &document["paths"][path][method];
        assert!(
            operation["summary"].is_string(),
            "{method} {path} is not documented"
        );
        // Every `{param}` of the path is described.
        for param in path
            .split('/')
            .filter_map(|p| p.strip_prefix('{')?.strip_suffix('}'))
        {
            let described = operation["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == param && p["in"] == "path"));
            assert!(described, "{method} {path} does not describe `{param}`");
        }
    }
}

#[test]
fn a_request_that_never_finishes_does_not_keep_the_server_from_stopping() {
    let (mut farm, http) = farm_with_http(&[]);
    // Half a request, held open for the rest of the test.
    let mut stalled = TcpStream::connect(("127.0.0.1", http)).expect("could not connect");
    stalled
        .write_all(b"GET /api/v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("could not send half a request");
    // The HTTP API still answers others.
    assert_eq!(get(http, "/api/v1/info"), cli(&farm, &["info", "--json"]));
    let server = farm.server();
    // SAFETY: kill(2) with a pid this test started and a valid signal has no memory effects.
    let sent = unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0, "could not signal the server");
    let status = server.wait_exit(PATIENCE);
    assert!(status.success(), "{status:?}\n{}", server.logs());
    drop(stalled);
}

/// Guards the slowing down of token guesses: an address that sends ten wrong tokens (as
/// bearer tokens or to the login) gets 429 with `Retry-After` for every request after, the
/// right token included, so guessing gains nothing; requests without a token do not count.
#[test]
fn an_address_that_sends_many_wrong_tokens_is_slowed_down() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let token = "k3y-for-the-guessing-test";
    let file = token_file(dir.path(), token);
    let (_farm, http) = farm_with_http(&["--http-token-file", &file]);
    let bearer = format!("Authorization: Bearer {token}");

    // Requests without any token are refused but are not guesses.
    for _ in 0..20 {
        assert_eq!(request(http, "GET", "/api/v1/info", &[], None).status, 401);
    }
    assert_eq!(
        request(http, "GET", "/api/v1/info", &[&bearer], None).status,
        200
    );
    // Five wrong bearer tokens and five wrong logins.
    for n in 0..5 {
        let wrong = format!("Authorization: Bearer guess-{n}");
        assert_eq!(
            request(http, "GET", "/api/v1/info", &[&wrong], None).status,
            401
        );
        let body = format!("{{\"token\": \"guess-{n}\"}}");
        let answer = request(http, "POST", "/api/v1/login", &[], Some(&body));
        assert_eq!(answer.status, 401, "{answer:?}");
    }
    for headers in [&[bearer.as_str()][..], &[][..]] {
        let answer = request(http, "GET", "/api/v1/info", headers, None);
        assert_eq!(answer.status, 429, "{answer:?}");
        assert_eq!(answer.header("retry-after"), Some("60"));
        assert!(
            answer.json()["error"]
                .as_str()
                .unwrap_or("")
                .contains("too many wrong tokens"),
            "{answer:?}"
        );
    }
    let body = format!("{{\"token\": \"{token}\"}}");
    let answer = request(http, "POST", "/api/v1/login", &[], Some(&body));
    assert_eq!(answer.status, 429, "{answer:?}");
}
