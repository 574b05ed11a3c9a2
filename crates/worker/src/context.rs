//! What a handler knows about the task it runs, and how it talks back while it runs: log
//! lines, progress, and the signals to stop (the task's deadline, a cancel from the server).
//!
//! In a worker loop, what a handler logs or reports goes to the server (see `worker_loop`).
//! Outside one, [`JobContext::new`] makes a context whose output goes nowhere, and
//! [`JobContext::monitored`] one whose output a [`JobMonitor`] reads and which it can cancel,
//! for a handler's own tests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use buildcat_proto::gpu::Gpu;
use buildcat_proto::{NewTask, TaskId, TaskProgress, paths};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::gpu::{GpuFaultWatch, SlotGpus};
use crate::leftovers::{GroupRecord, Recorded};
use crate::output::{Batch, TaskOutput};
use crate::preview::{PreviewSlot, Source};

/// How long a process gets between SIGTERM and SIGKILL unless the worker is set otherwise.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);

/// The task a handler is running (one task of a job: a chunk of frames, one command) and the
/// worker running it.
/// (The name is older than tasks; it stays so that handlers need no change.)
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
    /// The task's id (its job's id and its index), for follow-up submissions that depend on
    /// it and for files that must not clash between tasks.
    pub task: TaskId,
    /// The task as people name it, `42.3` (its job's number and its index), for log lines;
    /// outside a worker loop, its id.
    pub label: String,
    /// Its job's name (`shot.blend 1-240`), for log lines; empty outside a worker loop.
    pub job_name: String,
    /// Which attempt this is (1 for the first), so a handler can tell a retry.
    pub attempt: u32,
    /// The queue the task came from.
    pub queue: String,
    /// The worker's root directory, absolute and canonical.
    pub root: PathBuf,
    /// The name the server knows this worker loop by.
    pub worker: String,
    /// Where log lines and progress go; `None` discards them.
    output: Option<Arc<TaskOutput>>,
    /// Cancelled when the task is to stop (the server sent a cancel for this attempt).
    cancel: CancellationToken,
    /// When the task's time is up, and the limit it came from.
    deadline: Option<(Instant, Duration)>,
    /// How long processes get between SIGTERM and SIGKILL when they are stopped.
    kill_grace: Duration,
    /// Where the process runner records the task's process groups, so that the next worker
    /// of this name can kill them if this one dies with them running; none outside a loop.
    groups: Option<Arc<GroupRecord>>,
    /// How long the task's processes may run on while the worker is frozen: its lease (see
    /// `supervisor`); none outside a loop.
    lease: Option<Duration>,
    /// Where previews of the frames the task saves are made and wait to be sent (the
    /// loop's); none outside a loop.
    previews: Option<Arc<PreviewSlot>>,
    /// Tasks the handler adds to its job ([`JobContext::add_tasks`]), sent with its result.
    added: AddedTasks,
    /// The worker slot's GPUs, and whether they are its own share: renderers pick their
    /// device from them, and the process runner limits task processes to an owned share.
    gpus: Arc<SlotGpus>,
    /// The first line of the task's processes that meant a GPU fault, for its failure.
    gpu_faults: GpuFaultWatch,
}

/// Tasks a handler adds to its own job, shared by the clones of its context and read once
/// it has returned.
#[derive(Debug, Clone, Default)]
pub(crate) struct AddedTasks(Arc<Mutex<Vec<NewTask>>>);

impl AddedTasks {
    /// The tasks added so far, leaving none.
    pub(crate) fn take(&self) -> Vec<NewTask> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl JobContext {
    /// A context for running a handler outside a worker loop, e.g. in a handler's own tests:
    /// what the handler logs or reports goes nowhere, it is never cancelled and has no
    /// deadline. See [`JobContext::monitored`] and [`JobContext::with_timeout`].
    pub fn new(
        task: TaskId,
        attempt: u32,
        queue: impl Into<String>,
        root: impl Into<PathBuf>,
        worker: impl Into<String>,
    ) -> Self {
        JobContext {
            task,
            label: task.to_string(),
            job_name: String::new(),
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
            previews: None,
            added: AddedTasks::default(),
            gpus: Arc::new(SlotGpus::default()),
            gpu_faults: GpuFaultWatch::default(),
        }
    }

    /// This context with its output kept for the returned monitor, which can also cancel it.
    pub fn monitored(mut self) -> (JobContext, JobMonitor) {
        let output = Arc::new(TaskOutput::default());
        self.output = Some(Arc::clone(&output));
        self.cancel = CancellationToken::new();
        self.added = AddedTasks::default();
        let monitor = JobMonitor {
            output,
            cancel: self.cancel.clone(),
            added: self.added.clone(),
        };
        (self, monitor)
    }

    /// This context with a deadline `limit` from now, as a task of a job with that timeout
    /// gets.
    pub fn with_timeout(mut self, limit: Duration) -> Self {
        self.deadline = Some((Instant::now() + limit, limit));
        self
    }

    /// This context with another kill grace period (see [`JobContext::kill_grace`]).
    pub fn with_kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// This context as a slot that owns `gpus` (`--gpus-per-slot`) sees it: renderers use
    /// them, and processes run through [`run_process`](crate::process::run_process) see
    /// only them (`CUDA_VISIBLE_DEVICES` and the rest).
    pub fn with_gpu_share(mut self, gpus: Vec<Gpu>) -> Self {
        self.gpus = Arc::new(SlotGpus { gpus, owned: true });
        self
    }

    /// This context with the worker slot's GPUs, owned or shared.
    pub(crate) fn with_slot_gpus(mut self, gpus: Arc<SlotGpus>) -> Self {
        self.gpus = gpus;
        self
    }

    /// The GPUs of the worker slot running the task, as it registered them: its own share
    /// with `--gpus-per-slot`, otherwise every GPU the worker kept (shared with its other
    /// slots); empty without GPUs.
    pub fn gpus(&self) -> &[Gpu] {
        &self.gpus.gpus
    }

    /// The slot's own share of GPUs (`--gpus-per-slot`), which its task processes are
    /// limited to; `None` when the slot shares the host's GPUs with the others.
    pub fn gpu_share(&self) -> Option<&[Gpu]> {
        self.gpus.owned.then_some(self.gpus.gpus.as_slice())
    }

    /// Notes a line of the task's output, keeping the first that means a GPU fault; a slot
    /// without GPUs has none to blame, and skips the check.
    pub(crate) fn check_gpu_line(&self, line: &str) {
        if !self.gpus.gpus.is_empty() {
            self.gpu_faults.check(line);
        }
    }

    /// What tells, once the task has failed, whether a GPU was at fault: the slot's GPUs
    /// and the first fault line seen.
    pub(crate) fn gpu_observer(&self) -> (Arc<SlotGpus>, GpuFaultWatch) {
        (Arc::clone(&self.gpus), self.gpu_faults.clone())
    }

    /// This context with the task's label (`42.3`) and its job's name, as the server gave
    /// them.
    pub(crate) fn named(mut self, label: String, job_name: String) -> Self {
        self.label = label;
        self.job_name = job_name;
        self
    }

    /// This context with the worker loop's lease, which bounds how long the task's processes
    /// run on without the worker's beat.
    pub(crate) fn with_lease(mut self, lease: Option<Duration>) -> Self {
        self.lease = lease;
        self
    }

    /// This context with the worker loop's preview slot, where saved frames become previews
    /// for the job's page.
    pub(crate) fn with_previews(mut self, previews: Arc<PreviewSlot>) -> Self {
        self.previews = Some(previews);
        self
    }

    /// The worker loop's lease, if the task runs in one.
    pub(crate) fn lease(&self) -> Option<Duration> {
        self.lease
    }

    /// The context of a task started by a worker loop.
    pub(crate) fn for_loop(
        mut self,
        output: Arc<TaskOutput>,
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

    /// Adds tasks to this task's own job, to run once this one has finished: they are sent
    /// with its result ([`Outcome::FinishedWithTasks`](buildcat_proto::Outcome)) and only
    /// if it finishes, so a failed or retried attempt adds nothing, and the server adds
    /// them in the same commit that records this task finished (once, however often the
    /// report is resent; not again when a requeue runs this task again). They run with
    /// the job's kind, queue, priority and options; the
    /// server refuses more than a job may hold (10,000 tasks), failing this attempt.
    pub fn add_tasks(&self, tasks: impl IntoIterator<Item = NewTask>) {
        self.added
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(tasks);
    }

    /// Where the tasks the handler adds are kept, for the runner to read once it returns.
    pub(crate) fn added_tasks(&self) -> AddedTasks {
        self.added.clone()
    }

    /// Sends one line of output to the task's log (text holding line breaks is split into
    /// lines). Never blocks: past a bound, the oldest unsent lines are dropped and the log
    /// says how many.
    pub fn log(&self, line: impl Into<String>) {
        if let Some(output) = &self.output {
            output.log_from(line.into(), false);
        }
    }

    /// Sends one line of a program's stderr to the task's log, as [`JobContext::log`] does
    /// for stdout: `buildcat run --wait` and `buildcat logs` print it on stderr.
    pub fn log_stderr(&self, line: impl Into<String>) {
        if let Some(output) = &self.output {
            output.log_from(line.into(), true);
        }
    }

    /// Whether the task's unsent output is filling up: a writer that can wait for
    /// [`JobContext::output_taken`] should, rather than have lines dropped.
    pub(crate) fn output_filling(&self) -> bool {
        self.output
            .as_ref()
            .is_some_and(|output| output.is_filling())
    }

    /// Waits until some of the task's output is taken to be sent; never resolves for a
    /// context whose output goes nowhere.
    pub(crate) async fn output_taken(&self) {
        match &self.output {
            Some(output) => output.taken().await,
            None => std::future::pending().await,
        }
    }

    /// Reports how far the task is. Never blocks; only the latest report is sent (reports
    /// are coalesced to a few per second).
    pub fn progress(&self, progress: TaskProgress) {
        if let Some(output) = &self.output {
            output.progress(progress);
        }
    }

    /// Says that the task saved `frame` as the image file at `path` (absolute under the
    /// root, or relative to it): the worker makes a small preview of it for the job's page
    /// and sends it to the server. Never blocks and never fails the task: the preview is made
    /// on another thread (only the newest frame's, when frames come faster), and a file that
    /// is outside the root, too large or not an image it reads (PNG, JPEG, TIFF, OpenEXR)
    /// gets a log line instead. Does nothing outside a worker loop.
    pub fn frame_saved(&self, frame: i64, path: &Path) {
        let Some(previews) = &self.previews else {
            return;
        };
        let relative = if path.is_absolute() {
            match path.strip_prefix(&self.root) {
                Ok(relative) => relative,
                Err(_) => {
                    debug!(task = %self.label, file = %path.display(), "no preview of a frame saved outside the root");
                    return;
                }
            }
        } else {
            path
        };
        // Resolved as the task's output paths are: inside the root, never climbing out.
        let resolved = relative
            .to_str()
            .ok_or_else(|| "the path is not valid UTF-8".to_owned())
            .and_then(|relative| {
                paths::resolve(&self.root, relative).map_err(|error| error.to_string())
            });
        match resolved {
            Ok(path) => previews.offer(Source {
                context: self.clone(),
                frame,
                path,
            }),
            Err(reason) => {
                debug!(task = %self.label, file = %path.display(), reason = %reason, "no preview of the frame");
            }
        }
    }

    /// Resolves once the task is to stop because it was canceled (the server sent a cancel
    /// for this attempt); never resolves otherwise. The worker reports the task as canceled
    /// whatever the handler returns after that.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Whether the task was canceled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// When the task's time is up (from its job's timeout), if it has one. A handler should stop
    /// its work at the deadline and fail; the worker abandons it a little later (after the
    /// [kill grace period](JobContext::kill_grace) and a few seconds) if it does not.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.map(|(at, _)| at)
    }

    /// The task's timeout (its job's), which [`JobContext::deadline`] counts from.
    pub fn timeout(&self) -> Option<Duration> {
        self.deadline.map(|(_, limit)| limit)
    }

    /// How long a process being stopped gets between SIGTERM and SIGKILL (10 s unless the
    /// worker is built with another [`kill_grace`](crate::WorkerBuilder::kill_grace)).
    pub fn kill_grace(&self) -> Duration {
        self.kill_grace
    }

    /// Records the process group led by `leader` as this task's until the returned guard is
    /// dropped.
    pub(crate) fn record_group(&self, leader: Option<u32>) -> Option<Recorded> {
        self.groups.as_ref()?.remember(leader?, &self.label)
    }

    /// The token cancelled when the task is to stop.
    pub(crate) fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }
}

/// The other end of a [`JobContext::monitored`] context: reads what the handler logged and
/// reported, and cancels it, as a worker loop would.
#[derive(Debug, Clone)]
pub struct JobMonitor {
    /// What the handler wrote.
    output: Arc<TaskOutput>,
    /// The context's cancellation.
    cancel: CancellationToken,
    /// What the handler added to its job.
    added: AddedTasks,
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

    /// The tasks the handler added to its job ([`JobContext::add_tasks`]) since the last
    /// call.
    pub fn take_added_tasks(&self) -> Vec<NewTask> {
        self.added.take()
    }

    /// The latest progress reported since the last call, if any.
    pub fn take_progress(&self) -> Option<TaskProgress> {
        self.output.take_progress()
    }

    /// Waits until the handler logs or reports something new (returns at once if it did
    /// since the last wait).
    pub async fn changed(&self) {
        self.output.changed().await;
    }

    /// Cancels the task, as a cancel from the server does.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}
