//! Integration tests of `buildcat-client` against a scripted fake server over loopback TCP.
//!
//! The fake server ([`fake`]) speaks the real codec and does exactly what each test tells
//! it, so a test can answer out of order, refuse the hello, garble a reply or hang up at a
//! chosen moment. Each module tests one area; nothing sleeps, and every wait has a generous
//! upper bound ([`within`]).

mod connect;
mod fake;
mod jobs;
mod reconnect;
mod requests;

use std::future::IntoFuture;
use std::time::Duration;

use buildcat_client::{
    JobId, JobOptions, JobState, JobStatus, JobSummary, TaskId, TaskState, TaskStatus, TaskSummary,
};
use buildcat_proto::{TaskCounts, Timestamp};

/// Awaits `future`, failing the test if it takes more than ten seconds: an upper bound for
/// something that should happen at once, never a wait for something to happen.
pub async fn within<F: IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("did not complete within 10 s")
}

/// A fixed job id, distinct for each `n`.
pub fn job_id(n: u128) -> JobId {
    JobId(uuid::Uuid::from_u128(
        0x0190_00c7_9c00_7c4e_8f00_0000_0000_0000 | n,
    ))
}

/// The record of a `buildcat.worker.info` job number `number` with one task per entry of
/// `tasks`, in those states; its state and counts derived from them.
pub fn job_status(id: JobId, number: u64, tasks: &[TaskState]) -> JobStatus {
    let mut counts = TaskCounts {
        total: tasks.len() as u64,
        ..TaskCounts::default()
    };
    for &state in tasks {
        *counts.count_mut(state) += 1;
    }
    let created_at = Timestamp(1_718_000_000_000);
    JobStatus {
        job: JobSummary {
            id,
            number,
            name: "worker-info".to_owned(),
            queue: "default".to_owned(),
            kind: "buildcat.worker.info".to_owned(),
            submitter: "render@ws01".to_owned(),
            runs: String::new(),
            options: JobOptions::default(),
            state: JobState::derive(&counts, false),
            paused: false,
            created_at,
            ended_at: None,
            tasks: counts,
        },
        tasks: tasks
            .iter()
            .zip(0..)
            .map(|(&state, index)| TaskSummary {
                index,
                frames: None,
                state,
                worker: None,
                attempts: 0,
                started_at: None,
                ended_at: None,
                reason: None,
                progress: None,
            })
            .collect(),
    }
}

/// The record of task `index` of a `buildcat.worker.info` job in `state`, with nothing else
/// set.
pub fn task_status(id: JobId, number: u64, index: u32, state: TaskState) -> TaskStatus {
    TaskStatus {
        id: TaskId::new(id, index),
        number,
        kind: "buildcat.worker.info".to_owned(),
        frames: None,
        state,
        max_attempts: 1,
        ended_at: None,
        attempts: Vec::new(),
        result: None,
        failure: None,
        progress: None,
    }
}
