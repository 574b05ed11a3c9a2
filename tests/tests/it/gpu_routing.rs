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

/// Guards the server and CLI side without any worker GPU option: a job needing more GPUs
/// than any host has (64 of 1 TiB each) waits, a CPU job submitted behind it runs on a
/// worker meanwhile, `status` shows the requirement, and `info` and the warning after
/// submitting say which GPUs no worker has. The requirement survives a server restart
/// (the store keeps it).
#[test]
fn a_job_needing_gpus_no_worker_has_waits_and_says_why() {
    let mut farm = Farm::start();
    let _worker = farm.worker(&["--name", "plain"]);
    farm.wait_for_info("the worker idle", |info| {
        worker(info, "plain").is_some_and(|w| w["state"] == "idle")
    });
    let submitted = farm.ok(&[
        "run",
        "--gpus",
        "64",
        "--gpu-memory",
        "1048576",
        "--",
        "true",
    ]);
    let warning = crate::harness::stderr(&submitted);
    assert!(
        warning.contains("no worker with 64 GPUs of 1024 GiB serves queue `default`"),
        "{warning}"
    );
    let gpu_job = crate::harness::job_number(&submitted);
    let cpu_job = farm.submit(&["--", "true"]);
    let done = farm.wait_for_status(&cpu_job, "finished", |s| s["state"] == "finished");
    assert_eq!(text(&done, "/worker"), "plain");
    assert_eq!(farm.status(&gpu_job)["state"], "queued");

    let info = farm.info();
    let unserved = &info["unserved"][0];
    assert_eq!(unserved["gpus"]["count"], 64, "{info:#}");
    assert_eq!(unserved["gpus"]["memory_mib"], 1_048_576, "{info:#}");
    assert_eq!(unserved["tasks"], 1, "{info:#}");
    let table = stdout(&farm.ok(&["info"]));
    assert!(
        table.contains("no worker with 64 GPUs of 1024 GiB serves queue `default`"),
        "{table}"
    );

    farm.kill_server();
    farm.start_server();
    let job = farm.job(&gpu_job);
    assert_eq!(job["gpus"]["text"], "64 GPUs of 1024 GiB", "{job:#}");
    let shown = stdout(&farm.ok(&["status", &gpu_job]));
    assert!(
        shown.contains("needs: 64 GPUs of 1024 GiB per task"),
        "{shown}"
    );
    let refused = farm.run(&["run", "--gpus", "65", "--", "true"]);
    assert!(!refused.status.success());
    assert!(
        crate::harness::stderr(&refused).contains("at most 64"),
        "{}",
        crate::harness::stderr(&refused)
    );
}
