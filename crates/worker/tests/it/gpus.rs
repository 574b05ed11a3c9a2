//! A worker's GPUs through its loops (issue 13): each slot registers its own share, its
//! task processes see only that share, and a failure that printed a GPU fault says so.

use std::collections::BTreeMap;

use buildcat_proto::RunCommand;
use buildcat_proto::gpu::{Gpu, GpuVendor};
use buildcat_worker::gpu::GpusPerSlot;

use crate::fake::{FakeServer, QUIET_HEARTBEAT_MS, assignment, builder, failure, start, temp_root};

/// A GPU as NVML would list it.
fn gpu(index: u32) -> Gpu {
    Gpu {
        index,
        uuid: format!("GPU-{index}aaa"),
        name: "Fake GPU".to_owned(),
        memory_mib: 24_576,
        driver: "570.86.15".to_owned(),
        vendor: GpuVendor::Nvidia,
    }
}

/// A `RunCommand` of `sh -c script`.
fn sh(script: &str) -> RunCommand {
    RunCommand {
        program: "sh".to_owned(),
        args: vec!["-c".to_owned(), script.to_owned()],
    }
}

#[tokio::test]
async fn each_slot_registers_its_own_share() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(
        builder(&server, &root)
            .concurrency(2)
            .gpu_inventory(vec![gpu(0), gpu(1), gpu(2)])
            .gpus_per_slot(GpusPerSlot::Each(1)),
    );
    let mut registered = BTreeMap::new();
    for _ in 0..2 {
        let connection = server.accept(QUIET_HEARTBEAT_MS).await;
        registered.insert(
            connection.registration.name.clone(),
            connection.registration.gpus.clone(),
        );
    }
    assert_eq!(
        registered,
        BTreeMap::from([
            ("test-worker.1".to_owned(), vec![gpu(0)]),
            ("test-worker.2".to_owned(), vec![gpu(1)]),
        ])
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_shared_worker_registers_every_gpu_on_every_slot() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(
        builder(&server, &root)
            .concurrency(2)
            .gpu_inventory(vec![gpu(0), gpu(1)]),
    );
    for _ in 0..2 {
        let connection = server.accept(QUIET_HEARTBEAT_MS).await;
        assert_eq!(connection.registration.gpus, [gpu(0), gpu(1)]);
    }
    worker.stop().await;
}

#[tokio::test]
async fn a_slot_s_processes_see_its_gpu_and_a_gpu_fault_is_reported() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(
        builder(&server, &root)
            .gpu_inventory(vec![gpu(3)])
            .gpus_per_slot(GpusPerSlot::Auto),
    );
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    assert_eq!(connection.registration.gpus, [gpu(3)]);

    // A job cannot widen its view: the slot's variables are set last.
    connection
        .assign(assignment(&sh(
            "echo \"$CUDA_VISIBLE_DEVICES $CUDA_DEVICE_ORDER $BUILDCAT_GPUS\"; \
             echo 'CUDA error: out of memory' >&2; echo 'cleaning up'; exit 1",
        )))
        .await;
    let report = connection.expect_report().await;
    // stdout and stderr are read apart, so their lines may interleave either way.
    let lines = report.lines();
    assert!(
        lines.iter().any(|line| line == "GPU-3aaa PCI_BUS_ID 3"),
        "{lines:?}"
    );
    let failed = failure(report.completion());
    assert_eq!(failed.exit_code, Some(1));
    assert_eq!(
        failed.gpu_fault.as_deref(),
        Some("GPU 3 (Fake GPU): CUDA error: out of memory")
    );

    // A failure that printed no such line is the scene's, not the GPU's.
    connection
        .assign(assignment(&sh("echo 'Error: Cannot read file'; exit 2")))
        .await;
    let report = connection.expect_report().await;
    assert_eq!(failure(report.completion()).gpu_fault, None);
    worker.stop().await;
}

#[tokio::test]
async fn a_worker_without_gpus_blames_no_gpu() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root).gpu_inventory(Vec::new()));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    assert!(connection.registration.gpus.is_empty());
    connection
        .assign(assignment(&sh(
            "echo \"[$CUDA_VISIBLE_DEVICES]\"; echo 'CUDA error: out of memory'; exit 1",
        )))
        .await;
    let report = connection.expect_report().await;
    // The environment is left alone, and the line is a job's talk, not this worker's fault.
    assert_eq!(report.lines()[0], "[]");
    assert_eq!(failure(report.completion()).gpu_fault, None);
    worker.stop().await;
}
