//! Stopping workers by hand (issue 9, item 12): the first Ctrl-C lets running jobs finish
//! and says how many there are and that a second Ctrl-C stops them now; the second kills
//! them, and the server puts them back in their queue.

use std::net::TcpStream;
use std::path::Path;

use crate::harness::{Farm, PATIENCE, Proc, Sleeper, buildcat_command};

/// What the first Ctrl-C says with one job running.
const FINISHING_ONE: &str =
    "finishing 1 running job; press Ctrl-C again to stop them now (they go back to their queue)";

/// What the second Ctrl-C says.
const STOPPING_NOW: &str = "stopping now: running jobs are killed";

/// The exit status after a second Ctrl-C cut jobs short (128 + SIGINT).
const STOPPED_NOW: i32 = 130;

/// A path as a command-line argument.
fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Sends SIGINT (what Ctrl-C sends) to `process`.
fn interrupt(process: &Proc) {
    let pid = libc::pid_t::try_from(process.id()).expect("a pid fits pid_t");
    // SAFETY: `kill` has no memory-safety preconditions; `pid` is a child this test started
    // and has not reaped.
    let result = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(result, 0, "could not send SIGINT to {pid}");
}

/// Guards the first Ctrl-C: the worker says it is finishing its one running job and how
/// to stop it now, keeps running it, and exits 0 once the job has finished and been
/// reported.
#[test]
fn the_first_ctrl_c_finishes_running_jobs_and_says_so() {
    let farm = Farm::start();
    let root = farm.make_dir("root");
    let mut worker = farm.worker(&["--root", arg(&root)]);
    let id = farm.submit(&["--", "sh", "-c", "while [ ! -e go ]; do sleep 0.05; done"]);
    farm.wait_for_status(&id, "started", |status| status["state"] == "started");

    interrupt(&worker);
    worker.wait_for_log(FINISHING_ONE);
    let status = farm.status(&id);
    assert_eq!(status["state"], "started", "{status:#}");
    std::fs::write(root.join("go"), b"").expect("could not create the file the job waits for");
    let exit = worker.wait_exit(PATIENCE);
    assert!(exit.success(), "{exit}\n{}", worker.logs());
    let status = farm.status(&id);
    assert_eq!(status["state"], "finished", "{status:#}");
}

/// Guards the second Ctrl-C: the worker stops at once with status 130, the job's process
/// is gone, and the job goes back to its queue at once, reported as interrupted (the
/// server's reconnect grace is left long, so only that report can requeue it in time).
#[test]
fn a_second_ctrl_c_stops_running_jobs_now_and_they_go_back_to_their_queue() {
    let farm = Farm::start_with(&["--reconnect-grace", "600"]);
    let root = farm.make_dir("root");
    let mut worker = farm.worker(&["--root", arg(&root)]);
    let sleeper = Sleeper::new();
    let id = farm.submit(&["--", "sleep", sleeper.arg()]);
    sleeper.wait_for(1, "the job's process runs");

    interrupt(&worker);
    worker.wait_for_log(FINISHING_ONE);
    interrupt(&worker);
    let exit = worker.wait_exit(PATIENCE);
    assert_eq!(exit.code(), Some(STOPPED_NOW), "{exit}\n{}", worker.logs());
    assert!(worker.log().contains(STOPPING_NOW), "{}", worker.logs());
    sleeper.wait_for(0, "the job's process is killed with its worker's stop");
    let status = farm.wait_for_status(&id, "back in its queue", |status| {
        status["state"] == "queued"
    });
    assert_eq!(
        status["attempts"][0]["outcome"], "interrupted",
        "{status:#}"
    );
}

/// Guards stopping `farm`: the first Ctrl-C says it is finishing the running job (counted
/// by the farm's own server), the second stops it now: its process is killed and the farm
/// exits with status 130.
#[test]
fn farm_stops_its_workers_then_its_server() {
    let farm = Farm::without_server();
    let root = farm.make_dir("farm-root");
    let port = farm.port.to_string();
    let mut command = buildcat_command(["farm", "--workers", "1", "--port", &port, "--storage"]);
    command.arg(farm.storage()).current_dir(&root);
    let mut process = Proc::spawn("farm", command, farm.path());
    let addr = ("127.0.0.1", farm.port);
    if let Err(logs) =
        process.wait_until("accepting connections", || TcpStream::connect(addr).is_ok())
    {
        panic!("`buildcat farm` exited during startup\n{logs}");
    }
    let sleeper = Sleeper::new();
    farm.submit(&["--", "sleep", sleeper.arg()]);
    sleeper.wait_for(1, "the job's process runs");

    interrupt(&process);
    process.wait_for_log(FINISHING_ONE);
    interrupt(&process);
    let exit = process.wait_exit(PATIENCE);
    assert_eq!(exit.code(), Some(STOPPED_NOW), "{exit}\n{}", process.logs());
    sleeper.wait_for(0, "the job's process is killed with the farm's stop");
}
