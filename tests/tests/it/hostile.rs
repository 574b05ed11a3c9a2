//! A hostile network: connections that send garbage, other protocols, frames that lie about
//! their length or break off, messages the protocol does not have, the wrong magic or
//! version, or nothing at all, each while a worker runs a job a client is waiting on. Each
//! bad connection is closed on its own; the farm carries on.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use buildcat_proto::codec::{decode_value, encode_frame, encode_value};
use buildcat_proto::{
    ClientFrame, HandshakeError, Hello, HelloReply, PROTOCOL_VERSION, Request, Role, ServerFrame,
};

use crate::harness::{
    Farm, PATIENCE, assert_success, describe, job_number, json, stdout, text, worker,
};

/// How long the server may take to close a connection that says nothing: its handshake
/// timeout is 5 s.
const SILENCE_LIMIT: Duration = Duration::from_secs(15);

/// How many idle connections are opened at once.
const IDLE_CONNECTIONS: usize = 200;

/// Creates its file when dropped: the file a test's job waits for.
struct Release(std::path::PathBuf);

impl Drop for Release {
    fn drop(&mut self) {
        if let Err(error) = std::fs::write(&self.0, b"") {
            eprintln!("could not create {}: {error}", self.0.display());
        }
    }
}

/// A length prefix followed by `body`.
fn frame(body: &[u8]) -> Vec<u8> {
    let length = u32::try_from(body.len()).expect("a small frame");
    let mut bytes = length.to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

/// A hello frame for this build, as a client.
fn hello() -> Vec<u8> {
    encode_frame(&Hello::new(Role::Client)).expect("a hello encodes")
}

/// One hostile connection: what it is and its socket.
struct Hostile {
    /// What it sends, for messages.
    what: &'static str,
    /// The connection.
    stream: TcpStream,
    /// When it was opened.
    opened: Instant,
}

impl Hostile {
    /// Connects and sends `bytes`; with `hang_up`, also closes its sending side.
    fn open(port: u16, what: &'static str, bytes: &[u8], hang_up: bool) -> Hostile {
        let mut stream =
            TcpStream::connect(("127.0.0.1", port)).expect("could not connect to the server");
        let opened = Instant::now();
        stream
            .write_all(bytes)
            .unwrap_or_else(|error| panic!("{what}: could not send: {error}"));
        if hang_up {
            stream
                .shutdown(Shutdown::Write)
                .unwrap_or_else(|error| panic!("{what}: could not shut down: {error}"));
        }
        Hostile {
            what,
            stream,
            opened,
        }
    }

    /// Reads until the server closes the connection (end of file, or a reset) and returns
    /// the frames it sent; fails the test if it stays open `limit` after it was opened, or
    /// if what the server sent is not whole frames.
    fn frames_until_closed(mut self, limit: Duration) -> Vec<Vec<u8>> {
        let deadline = self.opened + limit;
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{}: the server did not close the connection within {limit:?}",
                self.what
            );
            self.stream
                .set_read_timeout(Some(left))
                .expect("a read timeout");
            match self.stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) if error.kind() == ErrorKind::ConnectionReset => break,
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(error) => panic!("{}: reading failed: {error}", self.what),
            }
        }
        let mut frames = Vec::new();
        let mut rest = &received[..];
        while !rest.is_empty() {
            let (prefix, body) = rest.split_at_checked(4).unwrap_or_else(|| {
                panic!(
                    "{}: the server sent a partial frame: {received:?}",
                    self.what
                )
            });
            let length = u32::from_be_bytes(prefix.try_into().expect("four bytes")) as usize;
            let (body, after) = body.split_at_checked(length).unwrap_or_else(|| {
                panic!(
                    "{}: the server sent a partial frame: {received:?}",
                    self.what
                )
            });
            frames.push(body.to_vec());
            rest = after;
        }
        frames
    }
}

/// The hello reply in `frame`; fails the test if it is not one.
#[track_caller]
fn hello_reply(what: &str, frame: &[u8]) -> HelloReply {
    decode_value(frame)
        .unwrap_or_else(|error| panic!("{what}: not a hello reply ({error}): {frame:?}"))
}

/// Fails the test unless the server sent nothing or one refusal (never a welcome).
#[track_caller]
fn assert_refused_or_silent(what: &str, frames: &[Vec<u8>]) {
    match frames {
        [] => {}
        [only] => assert!(
            matches!(hello_reply(what, only), HelloReply::Refused(_)),
            "{what}: answered {:?}",
            hello_reply(what, only)
        ),
        _ => panic!("{what}: more than one frame: {frames:?}"),
    }
}

/// Fails the test unless the server sent exactly one refusal, and returns its reason.
#[track_caller]
fn refusal(what: &str, frames: &[Vec<u8>]) -> HandshakeError {
    let [only] = frames else {
        panic!("{what}: expected one refusal, got {frames:?}");
    };
    match hello_reply(what, only) {
        HelloReply::Refused(error) => error,
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

/// Fails the test unless the server welcomed the connection and then closed it with a
/// `Closing` frame whose reason contains `words`.
#[track_caller]
fn assert_welcomed_then_closed(what: &str, frames: &[Vec<u8>], words: &str) {
    let [welcome, closing] = frames else {
        panic!("{what}: expected a welcome and a closing frame, got {frames:?}");
    };
    assert!(
        matches!(hello_reply(what, welcome), HelloReply::Welcome(_)),
        "{what}: {:?}",
        hello_reply(what, welcome)
    );
    let closing: ServerFrame = decode_value(closing)
        .unwrap_or_else(|error| panic!("{what}: not a server frame ({error}): {closing:?}"));
    match closing {
        ServerFrame::Closing(reason) => assert!(
            reason.contains(words),
            "{what}: the reason does not say `{words}`: {reason}"
        ),
        other => panic!("{what}: expected a closing frame, got {other:?}"),
    }
}

/// Guards the server against hostile connections (DESIGN.md: bad bytes end that
/// connection with a logged reason, and an error frame where the peer can still read one;
/// they never take the server down or touch other connections; a handshake timeout bounds
/// silent peers). While a worker runs a job a `run --wait` client waits on, connections
/// send: garbage; an HTTP request; the start of a TLS ClientHello; length prefixes over the
/// 16 MiB limit; a frame cut short; a hello then a frame with trailing bytes; a hello then
/// an unknown request; a hello with the wrong magic; a hello with protocol version 999
/// (refused naming both versions); and nothing. Each is closed, the silent one within
/// 15 s. Then the client gets its result, the worker is still registered, and
/// `worker-info` works, also with 200 idle connections open at once.
#[test]
fn hostile_connections_are_closed_and_the_farm_carries_on() {
    let mut farm = Farm::start();
    let root = farm.make_dir("root");
    let _worker = farm.worker(&[
        "--root",
        root.to_str().expect("a UTF-8 path"),
        "--name",
        "steady",
    ]);
    let port = farm.port;

    std::thread::scope(|scope| {
        // Lets the job end even when an assertion below fails, so the scope ends quickly.
        let release = Release(root.join("release"));
        let waiting = scope.spawn(|| {
            farm.run(&[
                "run",
                "--wait",
                "--",
                "sh",
                "-c",
                "while [ ! -e release ]; do sleep 0.05; done; echo released",
            ])
        });
        let info = farm.wait_for_info("the worker running the job", |info| {
            worker(info, "steady").is_some_and(|w| w["state"] == "busy")
        });
        let task = text(&info, "/workers/0/task").to_owned();

        let mut wrong_magic = Hello::new(Role::Client);
        wrong_magic.magic = *b"NOTBCAT!";
        let mut wrong_version = Hello::new(Role::Client);
        wrong_version.protocol = 999;
        let mut tls = vec![
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ];
        tls.extend_from_slice(&[0u8; 64]);
        let mut trailing = encode_value(&ClientFrame {
            id: 1,
            request: Request::Info,
        })
        .expect("a request encodes");
        trailing.push(0);
        let mut with_trailing = hello();
        with_trailing.extend(frame(&trailing));
        let mut unknown_request = hello();
        unknown_request.extend(frame(&[0x01, 0x7f]));
        let mut cut_short = 100u32.to_be_bytes().to_vec();
        cut_short.extend_from_slice(&[0xab; 10]);
        let mut huge = 0x7fff_ffffu32.to_be_bytes().to_vec();
        huge.extend_from_slice(b"more bytes that never come");

        let open = |what, bytes: &[u8], hang_up| Hostile::open(port, what, bytes, hang_up);
        let garbage = open("garbage", &[0xff; 64], false);
        let http = open(
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: buildcat\r\n\r\n",
            false,
        );
        let tls = open("a TLS ClientHello", &tls, false);
        let huge = open("a length prefix of 0x7fffffff", &huge, false);
        let just_over = open(
            "a length prefix of 16 MiB + 1",
            &(16 * 1024 * 1024 + 1u32).to_be_bytes(),
            false,
        );
        let cut_short = open("a frame cut short", &cut_short, true);
        let with_trailing = open("a frame with trailing bytes", &with_trailing, false);
        let unknown_request = open("an unknown request", &unknown_request, false);
        let wrong_magic = open(
            "a hello with the wrong magic",
            &encode_frame(&wrong_magic).expect("a hello encodes"),
            false,
        );
        let wrong_version = open(
            "a hello with protocol version 999",
            &encode_frame(&wrong_version).expect("a hello encodes"),
            false,
        );
        let silent = open("nothing", &[], false);

        for refused in [garbage, http] {
            let what = refused.what;
            let error = refusal(what, &refused.frames_until_closed(PATIENCE));
            assert_eq!(error, HandshakeError::BadMagic, "{what}");
        }
        for oversized in [huge, just_over] {
            let what = oversized.what;
            refusal(what, &oversized.frames_until_closed(PATIENCE));
        }
        for closed in [tls, cut_short] {
            let what = closed.what;
            assert_refused_or_silent(what, &closed.frames_until_closed(PATIENCE));
        }
        let what = with_trailing.what;
        assert_welcomed_then_closed(
            what,
            &with_trailing.frames_until_closed(PATIENCE),
            "unexpected bytes",
        );
        let what = unknown_request.what;
        assert_welcomed_then_closed(
            what,
            &unknown_request.frames_until_closed(PATIENCE),
            "malformed",
        );
        let what = wrong_magic.what;
        assert_eq!(
            refusal(what, &wrong_magic.frames_until_closed(PATIENCE)),
            HandshakeError::BadMagic
        );
        let what = wrong_version.what;
        let error = refusal(what, &wrong_version.frames_until_closed(PATIENCE));
        let HandshakeError::ProtocolMismatch { server, peer, .. } = &error else {
            panic!("{what}: refused with {error:?}");
        };
        assert_eq!((*server, *peer), (PROTOCOL_VERSION, 999), "{error:?}");
        let message = error.to_string();
        for version in [
            format!("version {PROTOCOL_VERSION}"),
            "version 999".to_owned(),
        ] {
            assert!(
                message.contains(&version),
                "{what}: `{version}` not in {message}"
            );
        }
        let what = silent.what;
        let frames = silent.frames_until_closed(SILENCE_LIMIT);
        assert!(frames.is_empty(), "{what}: the server sent {frames:?}");

        drop(release);
        let output = waiting.join().expect("the waiting client panicked");
        assert_success(
            &output,
            "the client waiting through the hostile connections",
        );
        assert_eq!(format!("{}.0", job_number(&output)), task);
        // The program's output comes on stdout (issue 14).
        assert!(
            stdout(&output).contains("released"),
            "{}",
            describe(&output)
        );
    });

    farm.wait_for_info("the worker registered and idle", |info| {
        worker(info, "steady").is_some_and(|w| w["state"] == "idle")
    });
    let output = farm.run(&["worker-info", "--json"]);
    assert_success(
        &output,
        "`buildcat worker-info --json` after the hostile connections",
    );
    assert_eq!(text(&json(&output), "/worker/name"), "steady");

    let idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("could not open a connection"))
        .collect();
    let started = Instant::now();
    let output = farm.run(&["worker-info", "--json"]);
    let took = started.elapsed();
    assert_success(
        &output,
        "`buildcat worker-info --json` with 200 idle connections",
    );
    assert_eq!(text(&json(&output), "/worker/name"), "steady");
    assert!(
        took < Duration::from_secs(10),
        "worker-info took {took:?} with {IDLE_CONNECTIONS} idle connections"
    );
    drop(idle);
    farm.server().assert_running();
    let info = farm.info();
    assert!(worker(&info, "steady").is_some(), "{info:#}");
}

/// The number of open file descriptors of process `pid`.
#[cfg(target_os = "linux")]
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .unwrap_or_else(|error| panic!("could not list the open files of {pid}: {error}"))
}

/// Regression: the core task kept a session's outbox after the peer hung up, so every closed
/// connection leaked a socket in CLOSE_WAIT.
/// Guards the server's sockets (ARCHITECTURE.md: connection handling stays bounded): once
/// the clients of 40 `info` commands have hung up, the server holds no more open files
/// than before them.
#[cfg(target_os = "linux")]
#[test]
fn closed_connections_release_their_sockets() {
    let mut farm = Farm::start();
    let pid = farm.server().id();
    // Storage, the listener and the runtime's own; at most one probe connection more.
    let before = open_files(pid);
    for _ in 0..40 {
        let output = farm.run(&["info", "--json"]);
        assert_success(&output, "`buildcat info --json`");
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = open_files(pid);
        if now <= before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server holds {now} open files, {before} before 40 clients came and went"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Regression (issue 9, item 9): whenever the server closed a connection itself, the
/// session polled its writer's task handle again after it had completed, which panics
/// ("JoinHandle polled after completion") in the server's log. The simplest trigger: a peer
/// that says hello as a worker and never registers, closed at the register timeout (10 s).
/// The peer gets a welcome and a `Closing` frame that says why, and the server's log has no
/// panic.
#[test]
fn a_connection_the_server_closes_itself_leaves_no_panic() {
    let mut farm = Farm::start();
    let unregistered = Hostile::open(
        farm.port,
        "a worker that never registers",
        &encode_frame(&Hello::new(Role::Worker)).expect("a hello encodes"),
        false,
    );
    let what = unregistered.what;
    let frames = unregistered.frames_until_closed(PATIENCE);
    assert_welcomed_then_closed(what, &frames, "regist");
    // The server logs the close after sending it; a panic would follow at once.
    let output = farm.run(&["info", "--json"]);
    assert_success(&output, "`buildcat info --json` after the closed worker");
    farm.server().assert_running();
    let logs = farm.server_logs();
    assert!(!logs.contains("panicked"), "the server panicked:\n{logs}");
}

/// Listings the flooding client pipelines in the fairness test.
const FLOOD_LISTINGS: u64 = 200;

/// Guards fairness between connections (issue 9, item 11: 200 pipelined `jobs --limit
/// 1000` from one client delayed another client's `info` to 5 s): while one client
/// pipelines 200 listings of 1,000 jobs, another client's `Info` is answered before the
/// flood's last listing, because each connection may have only a few requests waiting for
/// the core.
#[test]
fn one_clients_listings_do_not_hold_up_another_clients_info() {
    let mut farm = Farm::start();
    let port = farm.port;
    crate::memory::store_jobs(port);
    let mut asker = crate::memory::connect(port);
    let mut flood = crate::memory::connect(port);
    let mut listings = Vec::new();
    for id in 1..=FLOOD_LISTINGS {
        let request = ClientFrame {
            id,
            request: Request::Jobs(buildcat_proto::JobQuery {
                queue: None,
                state: None,
                user: None,
                limit: 1_000,
            }),
        };
        listings.extend(encode_frame(&request).expect("a listing encodes"));
    }
    flood.write_all(&listings).expect("send the listings");
    // The flood is being answered once its first reply is here.
    let first = crate::memory::read_frame(&mut flood).expect("a first listing");
    assert!(
        matches!(decode_value(&first), Ok(ServerFrame::Reply { .. })),
        "expected a listing"
    );
    let reading = std::thread::spawn(move || {
        for _ in 1..FLOOD_LISTINGS {
            crate::memory::read_frame(&mut flood).expect("a listing");
        }
        Instant::now()
    });
    let asked = Instant::now();
    let info = ClientFrame {
        id: 1,
        request: Request::Info,
    };
    asker
        .write_all(&encode_frame(&info).expect("info encodes"))
        .expect("send info");
    let reply = crate::memory::read_frame(&mut asker).expect("an answer to info");
    let answered = Instant::now();
    assert!(
        matches!(decode_value(&reply), Ok(ServerFrame::Reply { .. })),
        "expected the info reply"
    );
    let last_listing = reading.join().expect("the flood's reader panicked");
    eprintln!(
        "info answered in {:?} during the flood; the flood's last listing came {:?} after info was asked",
        answered - asked,
        last_listing.saturating_duration_since(asked)
    );
    assert!(
        answered < last_listing,
        "info was answered only after the flood's last listing"
    );
    farm.server().assert_running();
}
