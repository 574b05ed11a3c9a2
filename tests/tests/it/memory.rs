//! The server's memory under hostile peers (issue 9, item 10): peers that stall in the
//! middle of maximal frames and a client that pipelines listings without reading them are
//! bounded in bytes, and the memory comes back once they leave.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use buildcat_proto::codec::{decode_value, encode_frame};
use buildcat_proto::{
    ClientFrame, Hello, HelloReply, JobOptions, JobQuery, NewJob, NewTask, Reply, Request, Role,
    ServerFrame,
};

use crate::harness::{Farm, PATIENCE};

/// Jobs stored before the listings: each listing of them is a reply of a few hundred KiB.
const STORED_JOBS: usize = 1_000;

/// Listings the flooding client pipelines and never reads.
const LISTINGS: u64 = 1_500;

/// Peers that each stall in the middle of a maximal frame.
const STALLED_PEERS: usize = 20;

/// The largest frame the server accepts by default: each stalled peer announces one.
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// How much of its frame's body each stalled peer sends before it stops.
const STALLED_BODY: usize = 15 * 1024 * 1024;

/// The bound on the server's memory while the hostile peers are there: twice its idle size
/// plus this. Issue 9 set 64 MiB when a listing entry was a bare job record; since jobs are
/// made of tasks an entry also carries the job's number, name, submitter, what it runs and
/// its task counts, and the 64 listings a peer that reads nothing may have waiting (the
/// `unsent_frames` bound) of 1,000 entries each came to about 10 MiB more: peaks of 129-157
/// MiB against 144-148 MiB here. The bound still proves what it is for (the flood does not
/// grow the server without limit); `BENCHMARKS.md` proposes bounding unsent frames in bytes.
const HOSTILE_ALLOWANCE_KB: u64 = 80 * 1024;

/// What the server may keep above its idle size once the peers have left: its allocator
/// keeps some freed memory for reuse, but not the hostile peers' buffers.
const RETURNED_ALLOWANCE_KB: u64 = 16 * 1024;

#[cfg(target_os = "linux")]
/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|error| panic!("could not read the status of {pid}: {error}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in the status of {pid}:\n{status}"))
}

/// Reads one frame's body; `None` when the connection closed.
pub(crate) fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// A connection that has said hello as a client and been welcomed.
pub(crate) fn connect(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("a read timeout");
    stream
        .set_write_timeout(Some(PATIENCE))
        .expect("a write timeout");
    stream
        .write_all(&encode_frame(&Hello::new(Role::Client)).expect("a hello encodes"))
        .expect("send a hello");
    let reply = read_frame(&mut stream).expect("a hello reply");
    let reply: HelloReply = decode_value(&reply).expect("a hello reply decodes");
    assert!(matches!(reply, HelloReply::Welcome(_)), "{reply:?}");
    stream
}

/// Stores [`STORED_JOBS`] jobs in a queue no worker serves, so they stay.
pub(crate) fn store_jobs(port: u16) {
    let mut stream = connect(port);
    let jobs = (0..STORED_JOBS)
        .map(|n| NewJob {
            queue: "stored".to_owned(),
            kind: "memory.test".to_owned(),
            name: format!("stored {n}"),
            submitter: "memory@test".to_owned(),
            runs: "nothing: no worker serves its queue".to_owned(),
            options: JobOptions::default(),
            tasks: vec![NewTask {
                frames: None,
                args: format!("job number {n}, with a few bytes of arguments").into_bytes(),
            }],
        })
        .collect();
    let submit = ClientFrame {
        id: 1,
        request: Request::Submit(jobs),
    };
    stream
        .write_all(&encode_frame(&submit).expect("a submission encodes"))
        .expect("send the submission");
    let reply = read_frame(&mut stream).expect("a reply to the submission");
    match decode_value::<ServerFrame>(&reply).expect("a server frame") {
        ServerFrame::Reply {
            reply: Ok(Reply::Submitted(ids)),
            ..
        } => assert_eq!(ids.len(), STORED_JOBS),
        other => panic!("the submission was not accepted: {other:?}"),
    }
}

/// A peer that says hello, announces a maximal frame, sends most of it and stalls. The
/// server either holds the frame (within its budget) or closes the connection; both are
/// fine here, so errors from a closed connection are ignored.
fn stall_in_a_frame(port: u16) -> TcpStream {
    let mut stream = connect(port);
    let mut bytes = u32::try_from(MAX_FRAME - 1)
        .expect("a frame length")
        .to_be_bytes()
        .to_vec();
    bytes.resize(4 + STALLED_BODY, 0xab);
    if let Err(error) = stream.write_all(&bytes) {
        assert!(
            matches!(
                error.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
            ),
            "sending a large frame failed: {error}"
        );
    }
    stream
}

/// A client that pipelines [`LISTINGS`] listings of every job and reads nothing.
fn flood_with_listings(port: u16) -> TcpStream {
    let mut stream = connect(port);
    let mut bytes = Vec::new();
    for id in 1..=LISTINGS {
        let request = ClientFrame {
            id,
            request: Request::Jobs(JobQuery {
                queue: None,
                state: None,
                user: None,
                limit: 1_000,
            }),
        };
        bytes.extend(encode_frame(&request).expect("a listing encodes"));
    }
    if let Err(error) = stream.write_all(&bytes) {
        assert!(
            matches!(
                error.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
            ),
            "sending the listings failed: {error}"
        );
    }
    stream
}

/// Guards the server's memory against hostile peers (issue 9, item 10): 20 peers each
/// stalled 1 MiB short of a 16 MiB frame, and a client that pipelines 1,500 listings of
/// 1,000 jobs without reading, keep the server under twice its idle size plus 64 MiB (the
/// frames are paid for from a shared budget, and a peer that reads nothing is dropped once
/// a few MiB wait for it); once they leave, the memory comes back.
#[cfg(target_os = "linux")]
#[test]
fn hostile_peers_cannot_blow_up_the_servers_memory() {
    let mut farm = Farm::start();
    let port = farm.port;
    let pid = farm.server().id();
    store_jobs(port);
    let idle = status_kb(pid, "VmRSS");

    let stalled: Vec<TcpStream> = (0..STALLED_PEERS).map(|_| stall_in_a_frame(port)).collect();
    let flood = flood_with_listings(port);
    farm.server().wait_for_log("peer reads too slowly");
    let during = status_kb(pid, "VmRSS");
    let peak = status_kb(pid, "VmHWM");
    let bound = 2 * idle + HOSTILE_ALLOWANCE_KB;
    eprintln!(
        "server memory: idle {idle} KiB, with the hostile peers {during} KiB, peak {peak} KiB"
    );
    assert!(
        peak < bound,
        "the server grew to {peak} KiB with hostile peers (idle {idle} KiB, bound {bound} KiB)"
    );

    drop(stalled);
    drop(flood);
    let limit = idle + RETURNED_ALLOWANCE_KB;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = status_kb(pid, "VmRSS");
        if now <= limit {
            eprintln!("server memory after the peers left: {now} KiB");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server still holds {now} KiB after the hostile peers left (idle {idle} KiB)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    farm.server().assert_running();
}
