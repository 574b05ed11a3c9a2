//! What a handler knows about the job it runs, and how it talks back while it runs: log
//! lines, progress, and the signals to stop (the job's deadline, a cancel from the server).
//!
//! In a worker loop, what a handler logs or reports goes to the server (see `worker_loop`).
//! Outside one, [`JobContext::new`] makes a context whose output goes nowhere, and
//! [`JobContext::monitored`] one whose output a [`JobMonitor`] reads and which it can cancel,
//! for a handler's own tests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use buildcat_proto::{JobId, JobProgress};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::leftovers::{GroupRecord, Recorded};
use crate::output::{Batch, JobOutput};

/// How long a process gets between SIGTERM and SIGKILL unless the worker is set otherwise.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);

/// The job a handler is running and the worker running it.
///
/// Paths in task arguments are relative to [`JobContext::root`]; resolve them there.
///
/// A handler that runs for long should end early when [`JobContext::cancelled`] resolves
/// or [`JobContext::deadline`] passes ([`run_process`](crate::process::run_process) does
/// both), and may stream what it does with [`JobContext::log`] and
/// [`JobContext::progress`]. Clones share all of this.
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
    /// Where log lines and progress go; `None` discards them.
    output: Option<Arc<JobOutput>>,
    /// Cancelled when the job is to stop (the server sent a cancel for this attempt).
    cancel: CancellationToken,
    /// When the job's time is up, and the limit it came from.
    deadline: Option<(Instant, Duration)>,
    /// How long processes get between SIGTERM and SIGKILL when they are stopped.
    kill_grace: Duration,
    /// Where the process runner records the job's process groups, so that the next worker
    /// of this name can kill them if this one dies with them running; none outside a loop.
    groups: Option<Arc<GroupRecord>>,
    /// How long the job's processes may run on while the worker is frozen: its lease (see
    /// `supervisor`); none outside a loop.
    lease: Option<Duration>,
}

impl JobContext {
    /// A context for running a handler outside a worker loop, e.g. in a handler's own tests:
    /// what the handler logs or reports goes nowhere, it is never cancelled and has no
    /// deadline. See [`JobContext::monitored`] and [`JobContext::with_timeout`].
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
            output: None,
            cancel: CancellationToken::new(),
            deadline: None,
            kill_grace: DEFAULT_KILL_GRACE,
            groups: None,
            lease: None,
        }
    }

    /// This context with its output kept for the returned monitor, which can also cancel it.
    pub fn monitored(mut self) -> (JobContext, JobMonitor) {
        let output = Arc::new(JobOutput::default());
        self.output = Some(Arc::clone(&output));
        self.cancel = CancellationToken::new();
        let monitor = JobMonitor {
            output,
            cancel: self.cancel.clone(),
        };
        (self, monitor)
    }

    /// This context with a deadline `limit` from now, as a job with that timeout gets.
    pub fn with_timeout(mut self, limit: Duration) -> Self {
        self.deadline = Some((Instant::now() + limit, limit));
        self
    }

    /// This context with another kill grace period (see [`JobContext::kill_grace`]).
    pub fn with_kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// This context with the worker loop's lease, which bounds how long the job's processes
    /// run on without the worker's beat.
    pub(crate) fn with_lease(mut self, lease: Option<Duration>) -> Self {
        self.lease = lease;
        self
    }

    /// The worker loop's lease, if the job runs in one.
    pub(crate) fn lease(&self) -> Option<Duration> {
        self.lease
    }

    /// The context of a job started by a worker loop.
    pub(crate) fn for_loop(
        mut self,
        output: Arc<JobOutput>,
        cancel: CancellationToken,
        timeout: Option<Duration>,
        kill_grace: Duration,
        groups: Arc<GroupRecord>,
    ) -> Self {
        self.groups = Some(groups);
        self.output = Some(output);
        self.cancel = cancel;
        self.deadline = timeout.map(|limit| (Instant::now() + limit, limit));
        self.kill_grace = kill_grace;
        self
    }

    /// Sends one line of output to the job's log (text holding line breaks is split into
    /// lines). Never blocks: past a bound, the oldest unsent lines are dropped and the log
    /// says how many.
    pub fn log(&self, line: impl Into<String>) {
        if let Some(output) = &self.output {
            output.log(line.into());
        }
    }

    /// Whether the job's unsent output is filling up: a writer that can wait for
    /// [`JobContext::output_taken`] should, rather than have lines dropped.
    pub(crate) fn output_filling(&self) -> bool {
        self.output
            .as_ref()
            .is_some_and(|output| output.is_filling())
    }

    /// Waits until some of the job's output is taken to be sent; never resolves for a
    /// context whose output goes nowhere.
    pub(crate) async fn output_taken(&self) {
        match &self.output {
            Some(output) => output.taken().await,
            None => std::future::pending().await,
        }
    }

    /// Reports how far the job is. Never blocks; only the latest report is sent (reports
    /// are coalesced to a few per second).
    pub fn progress(&self, progress: JobProgress) {
        if let Some(output) = &self.output {
            output.progress(progress);
        }
    }

    /// Resolves once the job is to stop because it was canceled (the server sent a cancel
    /// for this attempt); never resolves otherwise. The worker reports the job as canceled
    /// whatever the handler returns after that.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Whether the job was canceled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// When the job's time is up (from its timeout), if it has one. A handler should stop
    /// its work at the deadline and fail; the worker abandons it a little later (after the
    /// [kill grace period](JobContext::kill_grace) and a few seconds) if it does not.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.map(|(at, _)| at)
    }

    /// The job's timeout, which [`JobContext::deadline`] counts from.
    pub fn timeout(&self) -> Option<Duration> {
        self.deadline.map(|(_, limit)| limit)
    }

    /// How long a process being stopped gets between SIGTERM and SIGKILL (10 s unless the
    /// worker is built with another [`kill_grace`](crate::WorkerBuilder::kill_grace)).
    pub fn kill_grace(&self) -> Duration {
        self.kill_grace
    }

    /// Records the process group led by `leader` as this job's until the returned guard is
    /// dropped.
    pub(crate) fn record_group(&self, leader: Option<u32>) -> Option<Recorded> {
        self.groups.as_ref()?.remember(leader?)
    }

    /// The token cancelled when the job is to stop.
    pub(crate) fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }
}

/// The other end of a [`JobContext::monitored`] context: reads what the handler logged and
/// reported, and cancels it, as a worker loop would.
#[derive(Debug, Clone)]
pub struct JobMonitor {
    /// What the handler wrote.
    output: Arc<JobOutput>,
    /// The context's cancellation.
    cancel: CancellationToken,
}

impl JobMonitor {
    /// The lines logged since the last call, oldest first. If more were logged than the
    /// bound holds, the first line says how many were dropped.
    pub fn take_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let Batch { lines: batch, .. } = self.output.take_batch(usize::MAX, usize::MAX);
            if batch.is_empty() {
                return lines;
            }
            lines.extend(batch);
        }
    }

    /// The latest progress reported since the last call, if any.
    pub fn take_progress(&self) -> Option<JobProgress> {
        self.output.take_progress()
    }

    /// Waits until the handler logs or reports something new (returns at once if it did
    /// since the last wait).
    pub async fn changed(&self) {
        self.output.changed().await;
    }

    /// Cancels the job, as a cancel from the server does.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}
