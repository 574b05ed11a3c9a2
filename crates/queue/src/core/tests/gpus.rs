//! GPU routing (issue 13): a job that requires GPUs goes only to a worker slot whose GPUs
//! meet it, never holds up the jobs behind it, says why it waits, and GPU faults count
//! toward the worker's quarantine.

use super::*;
use buildcat_proto::{Gpu, GpuRequirement, GpuVendor, MAX_GPUS, MAX_GPUS_REQUIRED};

/// A GPU of `memory_mib` MiB at `index`.
fn gpu(index: u32, memory_mib: u64) -> Gpu {
    Gpu {
        index,
        uuid: format!("GPU-{index:08x}"),
        name: "NVIDIA H200".to_owned(),
        memory_mib,
        driver: "550.54.15".to_owned(),
        vendor: GpuVendor::Nvidia,
    }
}

/// What a job of `count` GPUs of `memory_mib` MiB each asks for.
fn needs(count: u32, memory_mib: u64) -> JobOptions {
    JobOptions {
        gpus: GpuRequirement { count, memory_mib },
        ..JobOptions::default()
    }
}

impl Farm {
    /// Registers a worker serving `queues` (the info kind) whose slot owns `gpus`; the
    /// frames sent.
    fn gpu_worker(
        &mut self,
        conn: ConnId,
        name: &str,
        queues: &[&str],
        gpus: Vec<Gpu>,
    ) -> Vec<(ConnId, ServerFrame)> {
        self.handle(Input::Connected {
            conn,
            role: Role::Worker,
        });
        let registration = WorkerRegistration {
            name: name.to_owned(),
            host: "render01".to_owned(),
            root: "/mnt/farm".to_owned(),
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
            kinds: vec![INFO.to_owned()],
            pid: 42,
            version: "test".to_owned(),
            running: Vec::new(),
            tools: Vec::new(),
            gpus,
        };
        self.request(conn, Request::Register(registration))
    }
}

#[test]
fn a_gpu_job_waits_for_a_gpu_worker_while_a_cpu_job_behind_it_runs() {
    let mut farm = Farm::new();
    let (ids, _) = farm.submit(vec![
        job("render", INFO, needs(1, 0)),
        job("render", INFO, JobOptions::default()),
    ]);
    let (gpu_task, cpu_task) = (ids[0], ids[1]);
    let frames = farm.gpu_worker(10, "cpu", &["render"], Vec::new());
    assert_eq!(
        assignments(&frames),
        vec![(10, cpu_task, 1)],
        "the CPU worker skips the GPU job at the head of the queue"
    );
    assert_eq!(farm.state(gpu_task), TaskState::Queued);
    let frames = farm.gpu_worker(11, "gpu", &["render"], vec![gpu(0, 143_771)]);
    assert_eq!(assignments(&frames), vec![(11, gpu_task, 1)]);
}

#[test]
fn a_new_gpu_task_goes_to_the_idle_worker_with_the_gpus_not_the_longest_idle() {
    let mut farm = Farm::new();
    farm.gpu_worker(10, "cpu", &["render"], Vec::new());
    farm.gpu_worker(11, "gpu", &["render"], vec![gpu(0, 24_576), gpu(1, 24_576)]);
    let (ids, frames) = farm.submit(vec![job("render", INFO, needs(2, 0))]);
    assert_eq!(assignments(&frames), vec![(11, ids[0], 1)]);
}

#[test]
fn a_job_of_many_gpu_tasks_is_skipped_whole_by_a_cpu_worker() {
    let mut farm = Farm::new();
    let (submitted, _) = farm.submit_jobs(vec![
        job_of("render", INFO, needs(1, 0), 500),
        job("render", INFO, JobOptions::default()),
    ]);
    let frames = farm.gpu_worker(10, "cpu", &["render"], Vec::new());
    assert_eq!(
        assignments(&frames),
        vec![(10, TaskId::new(submitted[1].id, 0), 1)]
    );
}

#[test]
fn a_memory_requirement_needs_a_gpu_with_that_much_memory() {
    let mut farm = Farm::new();
    farm.gpu_worker(
        10,
        "small",
        &["render"],
        vec![gpu(0, 16_384), gpu(1, 16_384)],
    );
    let (ids, frames) = farm.submit(vec![job("render", INFO, needs(1, 24_576))]);
    assert!(
        assignments(&frames).is_empty(),
        "16 GiB GPUs do not hold 24 GiB"
    );
    // A memory requirement alone needs one GPU of that memory.
    let (alone, frames) = farm.submit(vec![job("render", INFO, needs(0, 8_192))]);
    assert_eq!(assignments(&frames), vec![(10, alone[0], 1)]);
    let frames = farm.gpu_worker(11, "big", &["render"], vec![gpu(0, 81_920)]);
    assert_eq!(assignments(&frames), vec![(11, ids[0], 1)]);
}

#[test]
fn info_says_which_gpus_no_worker_has() {
    let mut farm = Farm::new();
    farm.submit(vec![
        job("render", INFO, needs(2, 24_576)),
        job("render", INFO, needs(2, 24_576)),
        job("render", INFO, needs(1, 0)),
    ]);
    // Nobody serves the queue: the kind is the reason, GPUs or not, in one entry.
    let unserved = farm.core.info().unserved;
    assert_eq!(unserved.len(), 1, "{unserved:?}");
    assert_eq!(unserved[0].tasks, 3);
    assert!(unserved[0].gpus.is_none());
    // A worker of one 80 GiB GPU serves it: the single-GPU job runs, the other two wait
    // for two GPUs of 24 GiB.
    farm.gpu_worker(10, "one", &["render"], vec![gpu(0, 81_920)]);
    let unserved = farm.core.info().unserved;
    assert_eq!(unserved.len(), 1, "{unserved:?}");
    assert_eq!(unserved[0].queue, "render");
    assert_eq!(unserved[0].kind, INFO);
    assert_eq!(unserved[0].tasks, 2);
    assert_eq!(unserved[0].gpus.to_string(), "2 GPUs of 24 GiB");
    farm.gpu_worker(11, "two", &["render"], vec![gpu(0, 24_576), gpu(1, 24_576)]);
    assert!(farm.core.info().unserved.is_empty());
    assert_eq!(farm.core.info().workers[1].gpus.len(), 2);
}

#[test]
fn a_registration_with_too_many_or_oversized_gpus_is_refused() {
    let mut farm = Farm::new();
    let many = (0..=MAX_GPUS as u32)
        .map(|index| gpu(index, 1024))
        .collect();
    let frames = farm.gpu_worker(10, "many", &["render"], many);
    match replies(&frames, 10).pop() {
        Some(Err(RequestError::Invalid(why))) => assert!(why.contains("GPUs"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut long = gpu(0, 1024);
    long.name = "x".repeat(buildcat_proto::MAX_GPU_TEXT + 1);
    let frames = farm.gpu_worker(11, "long", &["render"], vec![long]);
    assert!(
        matches!(
            replies(&frames, 11).pop(),
            Some(Err(RequestError::Invalid(_)))
        ),
        "{frames:?}"
    );
    assert!(farm.core.info().workers.is_empty());
}

#[test]
fn a_job_requiring_more_gpus_than_any_slot_may_have_is_refused() {
    let mut farm = Farm::new();
    let frames = farm.request(
        CLIENT,
        Request::Submit(vec![job("render", INFO, needs(MAX_GPUS_REQUIRED + 1, 0))]),
    );
    match replies(&frames, CLIENT).pop() {
        Some(Err(RequestError::Invalid(why))) => {
            assert!(why.contains("at most 64 GPUs"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn gpu_faults_count_toward_quarantine_even_within_one_job() {
    let config = CoreConfig {
        quarantine_after: 3,
        quarantine_cooldown: Duration::ZERO,
        ..CoreConfig::default()
    };
    let mut farm = Farm::with(config);
    farm.gpu_worker(10, "w", &["render"], vec![gpu(0, 143_771)]);
    let (submitted, _) = farm.submit_jobs(vec![job_of("render", INFO, needs(1, 0), 3)]);
    let fault = "GPU 0 (NVIDIA H200): CUDA out of memory";
    for index in 0..3 {
        let mut failure = Failure::new("blender exited with code 1");
        failure.gpu_fault = Some(fault.to_owned());
        farm.complete(
            10,
            TaskId::new(submitted[0].id, index),
            1,
            Outcome::Failed(failure),
        );
    }
    assert!(farm.core.quarantined("w"), "three GPU faults in one job");
    let reason = farm.core.info().workers[0]
        .quarantine
        .clone()
        .unwrap_or_default();
    assert!(
        reason.contains(&format!("GPU faults: {fault}")),
        "the reason names the fault: {reason}"
    );
}
