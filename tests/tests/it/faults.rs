//! The worker under faults (issue 9, items 2 and 3): a job's processes die with a worker
//! killed outright, and a worker cut off from the server for longer than its lease stops its
//! copy of the job before the server hands it on; either way the job runs to its end once.
//!
//! Each run of the job appends `run` to a file in the root when it starts and `done` when it
//! ends, and `overlap` if another run's marked `sleep` is still alive when it starts; it
//! ends once the test creates `release`.

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{Farm, PATIENCE, Proc, Sleeper, buildcat_command, processes_running, worker};

/// How often the polls here look again.
const POLL: Duration = Duration::from_millis(25);

/// The job's script: one `run` line per start, a marked `sleep` in its process group, and a
/// `done` line once `release` exists.
fn script(sleeper: &Sleeper) -> String {
    let marker = sleeper.arg();
    format!(
        "pgrep -x -f 'sleep {marker}' >/dev/null && echo overlap >> runs; \
         echo run >> runs; sleep {marker} & \
         while [ ! -e release ]; do sleep 0.05; done; kill $!; echo done >> runs"
    )
}

/// Polls `condition` until it holds; fails the test with `context()` after [`PATIENCE`].
#[track_caller]
fn poll_until(what: &str, mut condition: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {PATIENCE:?}\n{}",
            context()
        );
        thread::sleep(POLL);
    }
}

/// The lines of the `runs` file in `root`.
fn runs(root: &Path) -> Vec<String> {
    fs::read_to_string(root.join("runs"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Guards issue 9 item 2: `kill -9` of a worker running `sh -c` with a `sleep` in its tree
/// leaves no process of the job behind (the shell and the sleep are gone from /proc), and
/// the job, handed to another worker, runs to its end there exactly once.
#[test]
fn a_killed_workers_job_dies_with_it_and_runs_once_elsewhere() {
    let farm = Farm::start_with(&["--reconnect-grace", "1"]);
    let root = farm.path().to_owned();
    let state = farm.make_dir("state");
    let state = state.to_str().expect("a UTF-8 path");
    let sleeper = Sleeper::new();
    let script = script(&sleeper);
    let job = farm.submit(&["--", "sh", "-c", &script]);

    let mut first = farm.worker(&["--name", "faults-kill-a", "--state-dir", state]);
    sleeper.wait_for(1, "the job running on the first worker");
    assert_eq!(processes_running(&["sh", "-c", &script]).len(), 1);
    first.kill();
    sleeper.wait_for(0, "the job's sleep gone with its worker");
    poll_until(
        "the job's shell gone with its worker",
        || processes_running(&["sh", "-c", &script]).is_empty(),
        || first.logs(),
    );

    let second = farm.worker(&["--name", "faults-kill-b", "--state-dir", state]);
    poll_until(
        "the job started again on the second worker",
        || runs(&root).len() == 2,
        || {
            format!(
                "{:?}\n{}\n{}",
                runs(&root),
                second.logs(),
                farm.server_logs()
            )
        },
    );
    sleeper.wait_for(1, "the job running on the second worker");
    fs::write(root.join("release"), "").expect("cannot create the release file");
    let status = farm.wait_for_status(&job, "finished", |status| status["state"] == "finished");
    assert_eq!(runs(&root), ["run", "run", "done"], "{status:#}");
    sleeper.wait_for(0, "nothing of the job left");
}

/// A loopback TCP relay between workers and the server that the test can cut: while cut,
/// bytes on open connections are dropped (the peers see silence, not a close) and new
/// connections are closed at once.
struct Relay {
    /// Where workers connect.
    port: u16,
    /// Whether the relay forwards nothing.
    cut: Arc<AtomicBool>,
    /// Set when the relay is dropped, so its accept thread ends.
    closed: Arc<AtomicBool>,
    /// Both ends of every relayed connection, to shut them down on drop.
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    /// A relay to the server on `server_port`.
    fn start(server_port: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind the relay");
        let port = listener.local_addr().expect("the relay's address").port();
        let relay = Relay {
            port,
            cut: Arc::new(AtomicBool::new(false)),
            closed: Arc::new(AtomicBool::new(false)),
            streams: Arc::new(Mutex::new(Vec::new())),
        };
        let (cut, closed, streams) = (
            Arc::clone(&relay.cut),
            Arc::clone(&relay.closed),
            Arc::clone(&relay.streams),
        );
        thread::spawn(move || {
            for incoming in listener.incoming() {
                if closed.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(worker) = incoming else { continue };
                if cut.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else {
                    continue;
                };
                let ends = (worker.try_clone(), server.try_clone());
                let (Ok(worker_end), Ok(server_end)) = ends else {
                    continue;
                };
                streams
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend([worker_end, server_end]);
                let (Ok(worker_reader), Ok(server_reader)) =
                    (worker.try_clone(), server.try_clone())
                else {
                    continue;
                };
                pump(worker_reader, server, Arc::clone(&cut));
                pump(server_reader, worker, Arc::clone(&cut));
            }
        });
        relay
    }

    /// Stops forwarding.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    /// Forwards again (new connections; those open while cut stay silent).
    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        // Wakes the accept thread so it sees `closed`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for stream in self
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` on a thread of its own, dropping what arrives while `cut` is set;
/// ends when either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream, cut: Arc<AtomicBool>) {
    thread::spawn(move || {
        let mut buffer = [0u8; 16 << 10];
        loop {
            let count = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(count) => count,
            };
            if cut.load(Ordering::SeqCst) {
                continue;
            }
            if to.write_all(&buffer[..count]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Guards issue 9 item 3: a worker whose connection goes silent (a relay that stops
/// forwarding) for longer than its lease kills its copy of the job before the server hands
/// the job to another worker; no two copies ever run at once, and the job runs to its end
/// exactly once. Heartbeats of 1 s and a grace of 3 s make the lease 2.4 s.
#[test]
fn a_worker_cut_off_past_its_lease_stops_its_job_and_the_job_runs_once() {
    let farm = Farm::start_with(&["--heartbeat", "1", "--reconnect-grace", "3"]);
    let root = farm.path().to_owned();
    let state = farm.make_dir("state");
    let state = state.to_str().expect("a UTF-8 path");
    let relay = Relay::start(farm.port);
    let sleeper = Sleeper::new();
    let script = script(&sleeper);
    let job = farm.submit(&["--", "sh", "-c", &script]);

    let relay_port = relay.port.to_string();
    let mut command = buildcat_command([
        "worker",
        "--port",
        &relay_port,
        "--name",
        "faults-cut-a",
        "--state-dir",
        state,
    ]);
    command.current_dir(&root);
    let mut cut_off = Proc::spawn("worker faults-cut-a (relayed)", command, &root);
    sleeper.wait_for(1, "the job running on the relayed worker");
    let direct = farm.worker(&["--name", "faults-cut-b", "--state-dir", state]);

    relay.cut();
    // Watch the handover closely: never two copies at once.
    let mut worst = 0;
    poll_until(
        "the job started again on the other worker",
        || {
            worst = worst.max(sleeper.pids().len());
            runs(&root).len() == 2
        },
        || {
            format!(
                "{:?}\n{}\n{}\n{}",
                runs(&root),
                cut_off.logs(),
                direct.logs(),
                farm.server_logs()
            )
        },
    );
    assert!(worst <= 1, "two copies of the job ran at once");
    assert!(
        !runs(&root).contains(&"overlap".to_owned()),
        "the second copy started while the first still ran: {:?}\n{}",
        runs(&root),
        cut_off.logs()
    );
    assert!(
        cut_off.log().contains("within the lease"),
        "the cut-off worker did not say it stopped its job\n{}",
        cut_off.logs()
    );
    cut_off.assert_running();

    // The network comes back; the cut-off worker reconnects and its report is refused.
    relay.heal();
    sleeper.wait_for(1, "the job running on the other worker only");
    fs::write(root.join("release"), "").expect("cannot create the release file");
    let status = farm.wait_for_status(&job, "finished", |status| status["state"] == "finished");
    assert_eq!(runs(&root), ["run", "run", "done"], "{status:#}");
    // Back on the farm: registered, its stale report refused, and idle. (The server used to
    // send the stop before the registration's reply, which the worker refuses, so it
    // failed to register again and again.)
    let info = farm.wait_for_info("the cut-off worker back and idle", |info| {
        worker(info, "faults-cut-a").is_some_and(|w| w["state"] == "idle")
    });
    assert!(
        !cut_off
            .log()
            .contains("before the registration was answered"),
        "the cut-off worker's registration was refused\n{info:#}\n{}",
        cut_off.logs()
    );
    cut_off.assert_running();
}

/// Sends `signal` to the process `process` runs.
fn signal(process: &Proc, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(process.id()).expect("a pid fits pid_t");
    // SAFETY: `kill` has no memory-safety preconditions; `pid` is a child this test started
    // and has not reaped.
    let result = unsafe { libc::kill(pid, signal) };
    assert_eq!(result, 0, "could not send signal {signal} to {pid}");
}

/// Found trying the farm as a new user: a worker frozen with SIGSTOP (a paused VM, a
/// machine swapped to a halt) for longer than the server's grace let its job's processes
/// run on while the server handed the job on: two copies at once for seconds. The job's
/// supervisor now kills the group once the worker has not beaten for its lease, before the
/// server hands the job on; the thawed worker neither reports nor names the job, and takes
/// work again.
#[test]
fn a_frozen_workers_job_stops_before_it_is_handed_on_and_runs_once() {
    let farm = Farm::start_with(&["--reconnect-grace", "3", "--heartbeat", "0.5"]);
    let root = farm.path().to_owned();
    let state = farm.make_dir("state");
    let state = state.to_str().expect("a UTF-8 path");
    let sleeper = Sleeper::new();
    let script = script(&sleeper);
    let job = farm.submit(&["--", "sh", "-c", &script]);
    let first = farm.worker(&["--name", "faults-frozen-a", "--state-dir", state]);
    sleeper.wait_for(1, "the job running on the first worker");
    let second = farm.worker(&["--name", "faults-frozen-b", "--state-dir", state]);

    signal(&first, libc::SIGSTOP);
    poll_until(
        "the job started again on the second worker",
        || runs(&root).len() == 2,
        || {
            format!(
                "{:?}\n{}\n{}",
                runs(&root),
                second.logs(),
                farm.server_logs()
            )
        },
    );
    // The second copy found no first one running: the script writes `overlap` otherwise.
    assert_eq!(runs(&root), ["run", "run"]);
    signal(&first, libc::SIGCONT);
    fs::write(root.join("release"), "").expect("cannot create the release file");
    let status = farm.wait_for_status(&job, "finished", |status| status["state"] == "finished");
    assert_eq!(runs(&root), ["run", "run", "done"], "{status:#}");
    assert_eq!(
        status["attempts"][0]["outcome"], "worker lost",
        "{status:#}"
    );
    // Thawed, the first worker registers again and takes work.
    let next = farm.submit(&["--", "sh", "-c", "echo thawed"]);
    farm.wait_for_status(&next, "finished", |status| status["state"] == "finished");
}
