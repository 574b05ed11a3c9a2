//! What a handler knows about the job it runs.

use std::path::PathBuf;

use buildcat_proto::JobId;

/// The job a handler is running and the worker running it.
///
/// Paths in task arguments are relative to [`JobContext::root`]; resolve them there.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobContext {
    /// The job's id, for logs and follow-up submissions.
    pub job: JobId,
    /// Which attempt this is (1 for the first), so a handler can tell a retry.
    pub attempt: u32,
    /// The queue the job came from.
    pub queue: String,
    /// The worker's root directory, absolute and canonical.
    pub root: PathBuf,
    /// The name the server knows this worker loop by.
    pub worker: String,
}

impl JobContext {
    /// A context for running a handler outside a worker loop, e.g. in a handler's own tests.
    pub fn new(
        job: JobId,
        attempt: u32,
        queue: impl Into<String>,
        root: impl Into<PathBuf>,
        worker: impl Into<String>,
    ) -> Self {
        JobContext {
            job,
            attempt,
            queue: queue.into(),
            root: root.into(),
            worker: worker.into(),
        }
    }
}
