//! Bad input a new user met (the tester's findings 5, 8, 9 and 11): every case is refused
//! early, with a message that names what to change, and changes nothing.
//!
//! - 5: the HTTP API refuses a state-changing request from another site's page (a foreign
//!   `Origin`, `Sec-Fetch-Site: cross-site`) and, without a token, one naming a foreign
//!   `Host` (DNS rebinding); the server's own page (same origin) and header-less clients
//!   (curl, scripts) still steer the farm.
//! - 8: an absurd `--timeout` is refused before submitting, naming the flag and the largest
//!   value, and takes no job number.
//! - 9: a render of more tasks than a job may have names the task limit, not a frame error.
//! - 11: server flags that would make it useless are refused at start.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{
    Farm, buildcat_command, describe, free_port, job_number, json, run_command, stderr,
};
use crate::http::{farm_with_http, request};

/// How long one request or refused command may take: far longer than any needs.
const LIMIT: Duration = Duration::from_secs(30);

/// Sends `head` (a request line and headers, without the blank line) to the HTTP API on
/// `port` and returns the status and body; the caller writes every header, `Host` included.
fn raw(port: u16, head: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|error| panic!("could not connect to the HTTP API on {port}: {error}"));
    stream.set_read_timeout(Some(LIMIT)).expect("a timeout");
    stream
        .write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .expect("could not send the request");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("could not read the answer");
    let (top, body) = answer.split_once("\r\n\r\n").expect("a header block");
    let status = top
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    (status, body.to_owned())
}

/// The state `buildcat status` shows for `job`.
fn state(farm: &Farm, job: &str) -> String {
    json(&farm.ok(&["status", job, "--json"]))["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Tester finding 5: `curl -X POST -H 'Content-Type: text/plain' -H 'Origin:
/// http://evil.example' .../api/v1/jobs/28/cancel` canceled the job. Now it is refused
/// (403, JSON saying why) and the job stays; so is a cross-site fetch and a request whose
/// `Host` a rebinding page would send. The same-origin page and header-less clients work.
#[test]
fn other_sites_pages_cannot_steer_the_farm() {
    let (farm, http) = farm_with_http(&[]);
    let job = farm.submit(&["--queue", "nobody", "--", "true"]);
    let cancel = format!("/api/v1/jobs/{job}/cancel");
    for header in [
        "Origin: http://evil.example",
        "Origin: null",
        // Another port on this host is another origin (another local web app).
        &format!("Origin: http://127.0.0.1:{}", free_port()),
        "Sec-Fetch-Site: cross-site",
    ] {
        let answer = request(
            http,
            "POST",
            &cancel,
            &[header, "Content-Type: text/plain"],
            None,
        );
        assert_eq!(answer.status, 403, "{header}: {answer:?}");
        let error: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON");
        let said = error["error"].as_str().unwrap_or_default();
        assert!(said.contains("another site"), "{header}: {said}");
        assert_eq!(state(&farm, &job), "queued", "{header} changed the job");
    }
    // A read from another origin is not refused here (the browser keeps the answer from
    // the other page unless CORS allows it, and the server sends no CORS headers).
    let read = request(
        http,
        "GET",
        &format!("/api/v1/jobs/{job}"),
        &["Origin: http://evil.example"],
        None,
    );
    assert_eq!(read.status, 200, "{read:?}");
    assert!(read.body.contains(&format!("\"number\":{job}")), "{read:?}");

    // A rebinding page's requests name its own host: refused, reads included.
    for method in ["GET", "POST"] {
        let (status, body) = raw(
            http,
            &format!(
                "{method} /api/v1/jobs/{job}/pause HTTP/1.1\r\nHost: evil.example:{http}\r\nContent-Length: 0"
            ),
        );
        assert_eq!(status, 403, "{method}: {body}");
        assert!(body.contains("evil.example"), "{body}");
    }
    let (status, body) = raw(
        http,
        &format!("GET / HTTP/1.1\r\nHost: evil.example:{http}"),
    );
    assert_eq!(status, 403, "the page for a foreign host: {body}");
    assert_eq!(state(&farm, &job), "queued");
    let (status, body) = raw(
        http,
        &format!("GET /api/v1/info HTTP/1.1\r\nHost: localhost:{http}"),
    );
    assert_eq!(status, 200, "localhost is this host: {body}");

    // The server's own page: same origin, as the browser sends it.
    let own = format!("Origin: http://127.0.0.1:{http}");
    let paused = request(
        http,
        "POST",
        &format!("/api/v1/jobs/{job}/pause"),
        &[&own, "Sec-Fetch-Site: same-origin"],
        None,
    );
    assert_eq!(paused.status, 200, "{paused:?}");
    assert_eq!(state(&farm, &job), "paused");
    // Scripts and curl send no Origin.
    let canceled = request(http, "POST", &cancel, &[], None);
    assert_eq!(canceled.status, 200, "{canceled:?}");
    assert_eq!(state(&farm, &job), "canceled");
}

/// Tester finding 8: `run --timeout 99999999999999999999 -- true` was a storage error
/// after the job took a number. Now the command refuses it before connecting, naming the
/// flag and the longest timeout, and the next job gets the next number.
#[test]
fn an_absurd_timeout_is_refused_before_submitting() {
    let farm = Farm::start();
    let first = job_number(&farm.ok(&["run", "--queue", "nobody", "--", "true"]));
    let refused = farm.run(&[
        "run",
        "--queue",
        "nobody",
        "--timeout",
        "99999999999999999999",
        "--",
        "true",
    ]);
    assert!(!refused.status.success(), "{}", describe(&refused));
    let said = stderr(&refused);
    assert!(
        said.contains("--timeout") && said.contains("31536000"),
        "{said}"
    );
    assert!(!said.contains("storage"), "{said}");
    let next = job_number(&farm.ok(&["run", "--queue", "nobody", "--", "true"]));
    let number = |text: &str| text.parse::<u64>().expect("a job number");
    assert_eq!(
        number(&next),
        number(&first) + 1,
        "the refused submission took a job number"
    );
    assert!(
        !farm.server_logs().contains("ERROR"),
        "{}",
        farm.server_logs()
    );
}

/// Tester finding 9: `blender-render cube.blend --frames 1-1000000 --chunk 1` failed with
/// `could not encode the request: frame of 35823250 bytes is over the limit`. Now it names
/// the task limit and what to change, like a render of fewer (but still too many) tasks.
#[test]
fn a_render_of_too_many_tasks_names_the_task_limit() {
    let farm = Farm::start();
    for frames in ["1-1000000", "1-300000"] {
        let output = farm.run(&[
            "blender-render",
            "cube.blend",
            "--frames",
            frames,
            "--chunk",
            "1",
        ]);
        assert!(!output.status.success(), "{}", describe(&output));
        let said = stderr(&output);
        assert!(
            said.contains("at most 10000") && said.contains("larger chunk"),
            "{frames}: {said}"
        );
        assert!(!said.contains("encode"), "{frames}: {said}");
    }
}

/// Tester finding 11: `server --max-frame 1` started and then every client failed;
/// `--max-connections 0` started and refused everyone. Both are refused at start now,
/// saying the bounds.
#[test]
fn server_flags_that_make_it_useless_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let storage = dir.path().join("buildcat.db");
    for (flag, value, says) in [
        ("--max-frame", "1", "512 KiB"),
        ("--max-connections", "0", "refuse everyone"),
        ("--heartbeat", "0", "0.1 to 600"),
        ("--max-log-bytes", "0", "1 MiB"),
    ] {
        let port = free_port().to_string();
        let command = buildcat_command([
            "server".as_ref(),
            "--port".as_ref(),
            port.as_ref(),
            "--storage".as_ref(),
            storage.as_os_str(),
            "--no-http".as_ref(),
            flag.as_ref(),
            value.as_ref(),
        ]);
        let output = run_command(command, LIMIT);
        assert!(!output.status.success(), "{flag}: {}", describe(&output));
        let said = stderr(&output);
        assert!(said.contains(flag) && said.contains(says), "{flag}: {said}");
    }
    assert!(!storage.exists(), "a refused server opened its storage");
}
