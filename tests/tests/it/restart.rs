//! A server killed outright keeps its queued jobs: they are on disk before they are
//! acknowledged, and a worker started later runs them.

use crate::harness::{Farm, PATIENCE, count, describe, worker_count};

/// How many jobs are left queued before the crash.
const JOBS: u64 = 5;

/// Guards durability across a crash: five jobs submitted with no worker are queued; after
/// the server is killed with SIGKILL and started again on the same storage they are still
/// queued; a worker started with `--max-jobs 5` runs all five and exits with status 0, and
/// the queue shows none queued and five finished.
#[test]
fn queued_jobs_survive_a_killed_server() {
    let mut farm = Farm::start();
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..JOBS)
            .map(|_| scope.spawn(|| farm.run(&["worker-info", "--timeout", "0.5"])))
            .collect();
        for client in clients {
            let output = client.join().expect("a client thread panicked");
            assert_eq!(
                output.status.code(),
                Some(1),
                "worker-info with no worker must give up after its timeout\n{}",
                describe(&output)
            );
        }
    });
    let info = farm.info();
    assert_eq!(count(&info, "default", "queued"), Some(JOBS), "{info:#}");

    farm.kill_server();
    farm.start_server();
    let info = farm.info();
    assert_eq!(
        count(&info, "default", "queued"),
        Some(JOBS),
        "after the restart: {info:#}\n{}",
        farm.server_logs()
    );
    assert_eq!(count(&info, "default", "finished"), Some(0), "{info:#}");

    let mut worker = farm.worker(&["--max-jobs", "5"]);
    let status = worker.wait_exit(PATIENCE);
    assert!(
        status.success(),
        "the worker did not exit cleanly after five jobs\n{}\n{}",
        worker.logs(),
        farm.server_logs()
    );
    let info = farm.info();
    assert_eq!(count(&info, "default", "queued"), Some(0), "{info:#}");
    assert_eq!(count(&info, "default", "started"), Some(0), "{info:#}");
    assert_eq!(count(&info, "default", "finished"), Some(JOBS), "{info:#}");
    farm.wait_for_info("the worker that exited is gone", |info| {
        worker_count(info) == 0
    });
}
