//! `server --notify URL`: one JSON POST per ended job, to a receiver run by the test on
//! loopback; a receiver that was down gets what it missed once it is back; `--notify-on`
//! limits which ends are sent; a bad URL is refused at start with what to give.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{PATIENCE, buildcat_command, describe, poll_until, run_command};
use crate::http::farm_with_http;

/// How long the test waits for a notification: the first retry of a delivery that failed
/// comes after 1 s, the next after 2 s and 4 s; far more than that on a loaded machine.
const DELIVERY: Duration = Duration::from_secs(60);

/// A webhook receiver on a loopback port: records each POST's path and JSON body, answers
/// 200.
struct Receiver {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on `port` (0: any free one) and sends what it receives to `posts`.
    fn start(port: u16, posts: mpsc::Sender<(String, Value)>) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("a loopback port");
        let port = listener.local_addr().expect("an address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::Acquire) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                if let Some(post) = read_post(stream) {
                    let _ = posts.send(post);
                }
            }
        });
        Receiver {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/farm", self.port)
    }

    /// Stops listening: the port refuses connections until a receiver binds it again.
    fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept loop, which then sees the flag and drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the receiver thread");
        }
    }
}

/// Reads one HTTP/1.1 request; answers 200 to a POST with a JSON body and returns it.
fn read_post(stream: TcpStream) -> Option<(String, Value)> {
    stream.set_read_timeout(Some(PATIENCE)).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut length = 0;
    let mut json_type = false;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "content-type" => json_type = value.trim() == "application/json",
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .ok()?;
    assert_eq!(method, "POST", "notifications are POSTs");
    assert!(json_type, "notifications say they are JSON");
    Some((path, serde_json::from_slice(&body).expect("a JSON body")))
}

/// The next notification, within [`DELIVERY`].
#[track_caller]
fn next(posts: &mpsc::Receiver<(String, Value)>, what: &str) -> (String, Value) {
    posts
        .recv_timeout(DELIVERY)
        .unwrap_or_else(|_| panic!("no notification {what} within {DELIVERY:?}"))
}

#[test]
fn each_ended_job_is_posted_once_also_to_a_receiver_that_was_down() {
    let (posts_tx, posts) = mpsc::channel();
    let receiver = Receiver::start(0, posts_tx.clone());
    let port = receiver.port;
    let url = receiver.url();
    let (farm, http) = farm_with_http(&["--notify", &url]);
    let _worker = farm.worker(&["--name", "w1"]);

    let first = farm.submit(&["--name", "hello", "--", "true"]);
    let (path, body) = next(&posts, "for the first job");
    assert_eq!(path, "/hooks/farm");
    assert_eq!(body["event"], "job_ended");
    assert_eq!(body["job"]["number"].to_string(), first);
    assert_eq!(body["job"]["name"], "hello");
    assert_eq!(body["job"]["state"], "finished");
    assert_eq!(body["job"]["tasks"]["finished"], 1);
    assert!(
        body["ended"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{body}"
    );
    assert_eq!(
        body["url"],
        format!("http://127.0.0.1:{http}/#/job/{first}"),
        "a link to the job's page"
    );
    let text = body["text"].as_str().expect("a line of text");
    assert!(
        text.contains(&format!("Job {first}"))
            && text.contains("hello")
            && text.contains("finished"),
        "{text}"
    );

    // The receiver goes down; a job fails meanwhile.
    receiver.stop();
    let second = farm.submit(&["--", "sh", "-c", "exit 3"]);
    farm.wait_for_job(&second, "failed", |job| job["state"] == "failed");
    poll_until(
        "the server to say the notification was not delivered",
        || {
            let logs = farm.server_logs();
            if logs.contains("notification not delivered") {
                Ok(())
            } else {
                Err(format!("server logs:\n{logs}"))
            }
        },
    );
    assert!(
        posts.try_recv().is_err(),
        "nothing reached a receiver that is down"
    );

    // Back up on the same port: the missed notification arrives, once.
    let receiver = Receiver::start(port, posts_tx);
    let (_, body) = next(&posts, "for the job that ended while the receiver was down");
    assert_eq!(body["job"]["number"].to_string(), second);
    assert_eq!(body["job"]["state"], "failed");
    assert_eq!(body["job"]["tasks"]["failed"], 1);

    let third = farm.submit(&["--", "true"]);
    let (_, body) = next(&posts, "for the third job");
    assert_eq!(
        body["job"]["number"].to_string(),
        third,
        "one POST per end, in order"
    );
    receiver.stop();
    assert!(
        !farm.server_logs().contains("panicked"),
        "{}",
        farm.server_logs()
    );
}

#[test]
fn notify_on_limits_which_ends_are_posted() {
    let (posts_tx, posts) = mpsc::channel();
    let receiver = Receiver::start(0, posts_tx);
    let url = receiver.url();
    let (farm, _http) = farm_with_http(&["--notify", &url, "--notify-on", "failed,canceled"]);
    let _worker = farm.worker(&["--name", "w1"]);
    let fine = farm.submit(&["--", "true"]);
    farm.wait_for_job(&fine, "finished", |job| job["state"] == "finished");
    let failed = farm.submit(&["--", "false"]);
    let (_, body) = next(&posts, "for the failed job");
    assert_eq!(
        body["job"]["number"].to_string(),
        failed,
        "the finished job {fine} was not posted"
    );
    receiver.stop();
}

#[test]
fn a_notify_url_that_is_not_http_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let storage = dir.path().join("farm.db");
    let output = run_command(
        buildcat_command([
            "server",
            "--storage",
            storage.to_str().expect("a UTF-8 path"),
            "--no-http",
            "--notify",
            "chat.example/hooks/1",
        ]),
        PATIENCE,
    );
    assert!(!output.status.success(), "{}", describe(&output));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("--notify") && said.contains("http://"),
        "the error names the flag and what to give: {said}"
    );
    assert!(
        !storage.exists(),
        "nothing was opened: {}",
        describe(&output)
    );
}
