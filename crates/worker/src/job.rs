//! One job running in its own task, so that the loop keeps heartbeating meanwhile.

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use buildcat_proto::{Assignment, Completion, Failure, JobId, Outcome};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument, Span, error, info, warn};

use crate::context::JobContext;
use crate::registry::Registry;

/// A job this loop is running. Dropping it aborts the job's task (and drops the handler's
/// future, with whatever it owns).
#[derive(Debug)]
pub(crate) struct RunningJob {
    /// The job.
    pub(crate) job: JobId,
    /// The attempt the server assigned.
    pub(crate) attempt: u32,
    /// The job's kind, for logs.
    kind: String,
    /// The task running the handler; it yields the outcome.
    task: JoinHandle<Outcome>,
}

impl RunningJob {
    /// Starts the handler for `assignment` in a task of its own.
    pub(crate) fn start(
        assignment: Assignment,
        registry: Arc<Registry>,
        root: PathBuf,
        worker: String,
    ) -> Self {
        let Assignment {
            job,
            attempt,
            queue,
            kind,
            args,
            timeout_ms,
        } = assignment;
        info!(job = %job, attempt, kind = %kind, queue = %queue, "job started");
        let context = JobContext::new(job, attempt, queue, root, worker);
        let limit = timeout_ms.map(Duration::from_millis);
        let running = run(registry, kind.clone(), args, context, limit);
        let task = tokio::spawn(running.instrument(Span::current()));
        RunningJob {
            job,
            attempt,
            kind,
            task,
        }
    }

    /// Waits for the job to end; cancel-safe, so it can sit in a `select!`.
    pub(crate) async fn finished(&mut self) -> Completion {
        let outcome = match (&mut self.task).await {
            Ok(outcome) => outcome,
            Err(join_error) => {
                let reason = if join_error.is_panic() {
                    format!(
                        "the handler panicked: {}",
                        panic_message(join_error.into_panic())
                    )
                } else {
                    "the job's task was canceled".to_owned()
                };
                error!(job = %self.job, kind = %self.kind, reason = %reason, "job failed");
                Outcome::Failed(Failure::new(reason))
            }
        };
        Completion {
            job: self.job,
            attempt: self.attempt,
            outcome,
        }
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        // Reached with the job still running only when it is abandoned or the whole worker
        // is torn down (its `run` future dropped); either way the job must not go on.
        self.task.abort();
    }
}

/// Runs the handler, enforcing the job's timeout, and logs how it ended.
async fn run(
    registry: Arc<Registry>,
    kind: String,
    args: Vec<u8>,
    context: JobContext,
    limit: Option<Duration>,
) -> Outcome {
    let job = context.job;
    let started = Instant::now();
    let handler = registry.run(&kind, &args, context);
    drop(args);
    let result = match limit {
        // Dropping the handler's future on timeout drops whatever it owns, e.g. a child
        // process spawned with `kill_on_drop`.
        Some(limit) => tokio::time::timeout(limit, handler)
            .await
            .unwrap_or_else(|_| Err(Failure::new(format!("the job timed out after {limit:?}")))),
        None => handler.await,
    };
    let duration = started.elapsed();
    match result {
        Ok(output) => {
            info!(job = %job, kind = %kind, duration = ?duration, "job finished");
            Outcome::Finished(output)
        }
        Err(failure) => {
            warn!(job = %job, kind = %kind, duration = ?duration, reason = %failure, "job failed");
            Outcome::Failed(failure)
        }
    }
}

/// The text of a panic payload, when it has one.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_owned(),
            Err(_) => "(no message)".to_owned(),
        },
    }
}
