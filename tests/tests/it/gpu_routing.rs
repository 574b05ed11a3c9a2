//! GPU routing (issue 13) with the real binary: a job that requires GPUs goes only to a
//! worker slot that registered them, a CPU job queued behind it runs meanwhile on a worker
//! without, and `info` says which GPUs no worker has.
//!
//! The workers declare their GPUs with `worker --gpus LIST` (`none`: no GPU; `0`: GPU 0,
//! known by index only where nothing detects it), so the test needs no GPU.

use crate::harness::{Farm, stdout, text, worker};

/// Guards requirement routing end to end: two workers with different GPU lists; the GPU
/// job waits for the GPU worker while the CPU job behind it runs on the CPU worker; a job
/// needing two GPUs is reported as waiting for them.
#[test]
#[ignore = "needs `worker --gpus` from the worker side of issue 13 (branch wip-gpu-worker); un-ignore when both are merged"]
fn gpu_jobs_go_only_to_workers_with_the_gpus() {
    let farm = Farm::start();
    let _cpu = farm.worker(&["--name", "cpu", "--gpus", "none"]);
    farm.wait_for_info("the CPU worker idle", |info| {
        worker(info, "cpu").is_some_and(|w| w["state"] == "idle")
    });
    let gpu_job = farm.submit(&["--gpus", "1", "--", "true"]);
    let cpu_job = farm.submit(&["--", "true"]);
    let cpu_done = farm.wait_for_status(&cpu_job, "finished", |s| s["state"] == "finished");
    assert_eq!(text(&cpu_done, "/worker"), "cpu");
    let waiting = farm.status(&gpu_job);
    assert_eq!(waiting["state"], "queued", "{waiting:#}");
    let job = farm.job(&gpu_job);
    assert_eq!(job["gpus"]["count"], 1, "{job:#}");

    let wide_job = farm.submit(&["--gpus", "2", "--", "true"]);
    let _gpu = farm.worker(&["--name", "gpu", "--gpus", "0"]);
    let gpu_done = farm.wait_for_status(&gpu_job, "finished", |s| s["state"] == "finished");
    assert_eq!(text(&gpu_done, "/worker"), "gpu");
    let info = farm.wait_for_info("the GPU worker listing its GPU", |info| {
        worker(info, "gpu").is_some_and(|w| w["gpus"][0]["index"] == 0)
    });
    let unserved = &info["unserved"][0];
    assert_eq!(unserved["gpus"]["count"], 2, "{info:#}");
    assert_eq!(unserved["gpus"]["text"], "2 GPUs", "{info:#}");
    assert_eq!(farm.status(&wide_job)["state"], "queued");
    let table = stdout(&farm.ok(&["info"]));
    assert!(
        table.contains("no worker with 2 GPUs serves queue `default`"),
        "{table}"
    );
    assert!(table.contains("gpu: GPU 0"), "{table}");
}
