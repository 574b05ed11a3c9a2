//! Several workers on one farm (multiple-workers.rst: "simply start as many workers as you
//! need ... even the same host"): every worker loop gets work.

use std::collections::{BTreeMap, BTreeSet};

use crate::harness::{Farm, assert_success, count, json, text, worker, worker_count};

/// How many jobs are submitted, and how many client processes run at once.
const JOBS: usize = 50;
const AT_ONCE: usize = 10;

/// Guards the spread of work: with two `worker` processes and one `workers -n 3` process
/// (five loops), 50 worker-info jobs submitted ten at a time reach every one of the five,
/// since each new job goes to the worker idle longest. Also guards `workers -n`: its loops
/// are named `NAME.1` to `NAME.3` and share one process.
#[test]
fn fifty_jobs_reach_all_five_worker_loops() {
    let farm = Farm::start();
    let w1 = farm.worker(&["--name", "w1"]);
    let w2 = farm.worker(&["--name", "w2"]);
    let pool = farm.worker(&["workers", "-n", "3", "--name", "pool"]);
    let names = ["w1", "w2", "pool.1", "pool.2", "pool.3"];
    farm.wait_for_info("five idle workers", |info| {
        worker_count(info) == names.len()
            && names
                .iter()
                .all(|name| worker(info, name).is_some_and(|w| w["state"] == "idle"))
    });

    let mut reports = Vec::new();
    for _ in 0..JOBS / AT_ONCE {
        std::thread::scope(|scope| {
            let batch: Vec<_> = (0..AT_ONCE)
                .map(|_| scope.spawn(|| farm.run(&["worker-info", "--json"])))
                .collect();
            for client in batch {
                let output = client.join().expect("a client thread panicked");
                assert_success(&output, "`buildcat worker-info --json`");
                reports.push(json(&output));
            }
        });
    }

    let mut jobs_by_name: BTreeMap<String, usize> = BTreeMap::new();
    let mut pids: BTreeMap<String, u64> = BTreeMap::new();
    for report in &reports {
        let name = text(report, "/worker/name").to_owned();
        *jobs_by_name.entry(name.clone()).or_default() += 1;
        pids.insert(name, report["worker"]["pid"].as_u64().expect("a pid"));
    }
    let served: BTreeSet<&str> = jobs_by_name.keys().map(String::as_str).collect();
    assert_eq!(
        served,
        names.iter().copied().collect(),
        "jobs per worker: {jobs_by_name:?}"
    );
    assert_eq!(pids["w1"], u64::from(w1.id()));
    assert_eq!(pids["w2"], u64::from(w2.id()));
    for name in ["pool.1", "pool.2", "pool.3"] {
        assert_eq!(
            pids[name],
            u64::from(pool.id()),
            "{name} runs in the pool process"
        );
    }

    let info = farm.info();
    assert_eq!(count(&info, "default", "queued"), Some(0), "{info:#}");
    assert_eq!(
        count(&info, "default", "finished"),
        Some(JOBS as u64),
        "{info:#}"
    );
}
