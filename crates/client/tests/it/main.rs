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

use buildcat_client::{JobId, JobOptions, JobState, JobStatus};
use buildcat_proto::Timestamp;

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

/// The record of a `buildcat.worker.info` job in `state`, with nothing else set.
pub fn status(id: JobId, state: JobState) -> JobStatus {
    JobStatus {
        id,
        queue: "default".to_owned(),
        kind: "buildcat.worker.info".to_owned(),
        state,
        options: JobOptions::default(),
        created_at: Timestamp(1_718_000_000_000),
        ended_at: None,
        attempts: Vec::new(),
        result: None,
        failure: None,
        progress: None,
    }
}
