//! Bytes that are not the buildcat protocol never take the server down or disturb the
//! connections that are.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::harness::{Farm, PATIENCE, assert_success, json, text, worker, worker_count};

/// Guards the server against garbage (DESIGN.md: bad bytes end that connection and never
/// take the server down or touch other connections): while a worker is connected, one
/// connection sends an HTTP request, one 64 random bytes, one a well-framed message that is
/// not a hello, and one nothing at all. Each is closed by the server (the silent one when
/// its handshake time runs out), and meanwhile `worker-info` still works and the worker
/// stays registered.
#[test]
fn garbage_connections_do_not_disturb_the_farm() {
    let mut farm = Farm::start();
    let _worker = farm.worker(&["--name", "steady"]);
    farm.wait_for_info("the worker registered", |info| {
        worker(info, "steady").is_some()
    });

    let addr = ("127.0.0.1", farm.port);
    let connect = || {
        let stream = TcpStream::connect(addr).expect("could not connect to the server");
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("a read timeout");
        stream
    };
    let mut http = connect();
    http.write_all(b"GET / HTTP/1.1\r\nHost: buildcat\r\n\r\n")
        .expect("could not send the request");
    let seed = seed();
    let mut random = connect();
    random
        .write_all(&random_bytes(seed, 64))
        .expect("could not send the random bytes");
    let mut not_hello = connect();
    not_hello
        .write_all(&[0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef])
        .expect("could not send the frame");
    let mut silent = connect();

    // The HTTP request's first four bytes read as a length far over the frame limit: it is
    // refused before the server buffers anything. Both it and the frame that is not a hello
    // get a refusal frame they can read, then the server closes the connection.
    let answer = read_until_closed(&mut http, "the HTTP connection");
    assert_one_frame(&answer, "the answer to HTTP");
    let answer = read_until_closed(
        &mut not_hello,
        "the connection with a frame that is not a hello",
    );
    assert_one_frame(&answer, "the answer to a frame that is not a hello");

    let output = farm.run(&["worker-info", "--json"]);
    assert_success(&output, "`buildcat worker-info --json` after garbage");
    assert_eq!(text(&json(&output), "/worker/name"), "steady");

    read_until_closed(
        &mut random,
        &format!("the random-bytes connection (seed {seed})"),
    );
    read_until_closed(&mut silent, "the silent connection");

    farm.server().assert_running();
    let info = farm.info();
    assert_eq!(worker_count(&info), 1, "{info:#}");
    assert_eq!(
        worker(&info, "steady").expect("still registered")["state"],
        "idle"
    );
}

/// Fails the test unless `bytes` is one whole frame: a 4-byte big-endian length, then
/// that many bytes (at least one).
#[track_caller]
fn assert_one_frame(bytes: &[u8], what: &str) {
    assert!(bytes.len() > 4, "{what} is not a frame: {bytes:?}");
    let length = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    assert_eq!(
        length as usize,
        bytes.len() - 4,
        "{what} is not one frame: {bytes:?}"
    );
}

/// Reads until the server closes the connection (end of file, or a reset when it closed
/// with bytes unread) and returns what it sent; fails the test if it stays open past
/// [`PATIENCE`].
fn read_until_closed(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if error.kind() == ErrorKind::ConnectionReset => return received,
            Err(error) => panic!("{what}: the server did not close it ({error})"),
        }
    }
}

/// A seed that differs from run to run; printed on failure so a run can be repeated.
fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()) | 1
}

/// `count` pseudo-random bytes from `seed` (xorshift64).
fn random_bytes(seed: u64, count: usize) -> Vec<u8> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_be_bytes()[0]
        })
        .collect()
}
