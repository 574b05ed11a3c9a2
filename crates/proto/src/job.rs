//! What a job and its tasks are: ids and the handles people type, the options a submitter
//! sets, states, and the records the server keeps.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A job's id: a UUID v7, so ids sort by the time they were made.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JobId(pub Uuid);

impl JobId {
    /// A new id for a job created at `at`.
    ///
    /// Ids made by one [`uuid::ContextV7`] are strictly increasing, even within a millisecond.
    pub fn new(at: Timestamp, context: &uuid::ContextV7) -> Self {
        let millis = at.0;
        let ts = uuid::Timestamp::from_unix(
            context,
            millis / 1000,
            u32::try_from((millis % 1000) * 1_000_000).unwrap_or(0),
        );
        JobId(Uuid::new_v7(ts))
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({self})")
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(JobId)
    }
}

/// Milliseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }

    /// This time plus `duration`, saturating.
    pub fn plus(self, duration: Duration) -> Self {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(millis))
    }

    /// How long after `earlier` this time is (zero if it is not after it).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.0)
    }
}

/// A task: job `job`'s task number `index` (0 for the first).
///
/// Shown as `JOB-UUID.INDEX`; people use the job's number instead (`42.3`, see [`TaskRef`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskId {
    /// The job it belongs to.
    pub job: JobId,
    /// Its place in the job, from 0.
    pub index: u32,
}

impl TaskId {
    /// Task `index` of `job`.
    pub fn new(job: JobId, index: u32) -> Self {
        TaskId { job, index }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.job, self.index)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({self})")
    }
}

/// A job as a person or a program names it: its farm-wide number (`42`) or its id.
///
/// Parsed from `42` or a full UUID; a UUID prefix is refused, since the leading characters
/// of UUID v7 ids are a timestamp that every job of the last hours shares.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum JobRef {
    /// By id.
    Id(JobId),
    /// By number.
    Number(u64),
}

impl fmt::Display for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobRef::Id(id) => id.fmt(f),
            JobRef::Number(number) => number.fmt(f),
        }
    }
}

impl fmt::Debug for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobRef({self})")
    }
}

impl From<JobId> for JobRef {
    fn from(id: JobId) -> Self {
        JobRef::Id(id)
    }
}

impl FromStr for JobRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(JobRef::Number).map_err(|_| {
                format!(
                    "job number `{s}` is too large; give the number `buildcat jobs` lists, or \
                     the job's full id"
                )
            });
        }
        if let Ok(id) = Uuid::parse_str(s) {
            return Ok(JobRef::Id(JobId(id)));
        }
        /// The length of a hyphenated UUID: anything shorter that reads like its start is
        /// taken for a prefix.
        const ID_LEN: usize = 36;
        let looks_like_a_prefix = s.len() < ID_LEN
            && s.starts_with(|c: char| c.is_ascii_hexdigit())
            && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if looks_like_a_prefix {
            return Err(format!(
                "`{s}` is only part of a job id; give the job's number (`42`, as `buildcat \
                 jobs` lists it) or its whole id (36 characters): ids made hours apart share \
                 their first characters, so a prefix is not accepted"
            ));
        }
        Err(format!(
            "`{s}` names no job: give the job's number (`42`, as `buildcat jobs` lists it) \
             or its full id"
        ))
    }
}

/// A job, or one of its tasks, as a person or a program names it: `42`, `42.3`, `UUID`,
/// `UUID.3`.
///
/// Without an index it names the whole job (cancel, requeue), or its only task where one
/// task is meant (`logs 42` of a job of one task).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskRef {
    /// The job.
    pub job: JobRef,
    /// The task's index in it, if one task is named.
    pub index: Option<u32>,
}

impl TaskRef {
    /// The whole job.
    pub fn job(job: impl Into<JobRef>) -> Self {
        TaskRef {
            job: job.into(),
            index: None,
        }
    }
}

impl From<TaskId> for TaskRef {
    fn from(task: TaskId) -> Self {
        TaskRef {
            job: JobRef::Id(task.job),
            index: Some(task.index),
        }
    }
}

impl From<JobRef> for TaskRef {
    fn from(job: JobRef) -> Self {
        TaskRef::job(job)
    }
}

impl From<JobId> for TaskRef {
    fn from(job: JobId) -> Self {
        TaskRef::job(job)
    }
}

impl fmt::Display for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(f, "{}.{index}", self.job),
            None => self.job.fmt(f),
        }
    }
}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskRef({self})")
    }
}

impl FromStr for TaskRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let Some((job, index)) = s.split_once('.') else {
            return Ok(TaskRef::job(s.parse::<JobRef>()?));
        };
        let no_task = || {
            format!(
                "`{s}` names no task: a task is its job and its index, as in `42.3` \
                 (`buildcat status 42` lists the tasks of job 42)"
            )
        };
        if job.is_empty() || index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return Err(no_task());
        }
        let index = index.parse().map_err(|_| no_task())?;
        Ok(TaskRef {
            job: job.parse()?,
            index: Some(index),
        })
    }
}

/// What a job waits for before its tasks may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Dependency {
    /// Every task of this job has finished.
    Job(JobId),
    /// This task has finished.
    Task(TaskId),
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dependency::Job(job) => job.fmt(f),
            Dependency::Task(task) => task.fmt(f),
        }
    }
}

/// Where a job is, derived from its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    /// No task runs yet; some wait for a worker or for dependencies.
    Queued,
    /// Some task runs.
    Running,
    /// Held by a person (the job or its queue): no task runs, none will start until resumed.
    Paused,
    /// Every task finished.
    Finished,
    /// Every task has ended and some failed.
    Failed,
    /// Every task has ended, some were canceled and none failed.
    Canceled,
}

impl JobState {
    /// Every state, in the order listings show them.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Paused,
        JobState::Finished,
        JobState::Failed,
        JobState::Canceled,
    ];

    /// Whether the job has ended: every task has ended (a requeue may start it again).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Finished | JobState::Failed | JobState::Canceled
        )
    }

    /// The lowercase name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Finished => "finished",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
        }
    }

    /// The job's state given its tasks' counts and whether it (or its queue) is paused.
    pub fn derive(counts: &TaskCounts, paused: bool) -> JobState {
        let ended = counts.finished + counts.failed + counts.canceled;
        if ended == counts.total {
            if counts.failed > 0 {
                JobState::Failed
            } else if counts.canceled > 0 {
                JobState::Canceled
            } else {
                JobState::Finished
            }
        } else if counts.started > 0 {
            JobState::Running
        } else if paused || counts.paused > 0 {
            JobState::Paused
        } else {
            JobState::Queued
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown job state `{s}`; expected one of queued, running, paused, \
                     finished, failed, canceled"
                )
            })
    }
}

/// Where a task is in its life.
///
/// `Deferred` and `Queued` lead to `Started`; `Started` ends in `Finished`, `Failed` or
/// `Canceled`, or goes back to `Queued` when its worker is lost and attempts remain.
/// `Paused` is a queued task of a paused job or queue; it is shown, never stored (the
/// task is stored as queued and the pause on its job or queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskState {
    /// Waiting for a worker.
    Queued,
    /// Running on a worker.
    Started,
    /// Ended with a result.
    Finished,
    /// Ended with a failure after its last attempt.
    Failed,
    /// Canceled by a person.
    Canceled,
    /// Waiting for the jobs or tasks it depends on.
    Deferred,
    /// Queued, but held: its job or its queue is paused.
    Paused,
}

impl TaskState {
    /// Every state, in the order `info` shows them.
    pub const ALL: [TaskState; 7] = [
        TaskState::Queued,
        TaskState::Started,
        TaskState::Finished,
        TaskState::Failed,
        TaskState::Canceled,
        TaskState::Deferred,
        TaskState::Paused,
    ];

    /// Whether the task has ended for good (until a requeue).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Finished | TaskState::Failed | TaskState::Canceled
        )
    }

    /// The lowercase name used on the command line, in JSON and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Started => "started",
            TaskState::Finished => "finished",
            TaskState::Failed => "failed",
            TaskState::Canceled => "canceled",
            TaskState::Deferred => "deferred",
            TaskState::Paused => "paused",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown task state `{s}`; expected one of queued, started, finished, \
                     failed, canceled, deferred, paused"
                )
            })
    }
}

/// How many of a job's (or a queue's) tasks are in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TaskCounts {
    /// Tasks in all.
    pub total: u64,
    /// Waiting for a worker.
    pub queued: u64,
    /// Running.
    pub started: u64,
    /// Finished.
    pub finished: u64,
    /// Failed.
    pub failed: u64,
    /// Canceled.
    pub canceled: u64,
    /// Waiting for dependencies.
    pub deferred: u64,
    /// Held by a pause of their job or queue.
    pub paused: u64,
}

impl TaskCounts {
    /// The count for one state.
    pub fn count(&self, state: TaskState) -> u64 {
        match state {
            TaskState::Queued => self.queued,
            TaskState::Started => self.started,
            TaskState::Finished => self.finished,
            TaskState::Failed => self.failed,
            TaskState::Canceled => self.canceled,
            TaskState::Deferred => self.deferred,
            TaskState::Paused => self.paused,
        }
    }

    /// The count for one state, to change it (`total` is not changed).
    pub fn count_mut(&mut self, state: TaskState) -> &mut u64 {
        match state {
            TaskState::Queued => &mut self.queued,
            TaskState::Started => &mut self.started,
            TaskState::Finished => &mut self.finished,
            TaskState::Failed => &mut self.failed,
            TaskState::Canceled => &mut self.canceled,
            TaskState::Deferred => &mut self.deferred,
            TaskState::Paused => &mut self.paused,
        }
    }

    /// Tasks that have ended (finished, failed or canceled).
    pub fn ended(&self) -> u64 {
        self.finished + self.failed + self.canceled
    }
}

/// The most tasks one job may have: its status lists every task in one reply (a task's
/// summary is bounded to well under a kilobyte), and a render of more frames than this is
/// submitted in chunks of several frames per task, or as several jobs. The server refuses
/// more; `buildcat-client` refuses the same before anything is encoded.
pub const MAX_TASKS: usize = 10_000;

/// The longest timeout a job may set, in milliseconds (365 days): a render that may run
/// longer has no timeout worth setting, and every timeout below it is a deadline the
/// server's clock and both of its stores keep (a `u64` past `i64::MAX` is not). The server
/// refuses more; `buildcat-client` refuses the same before sending.
pub const MAX_TIMEOUT_MS: u64 = 365 * 24 * 60 * 60 * 1000;

/// The most memory per GPU a job may require, in MiB (1 PiB): far beyond any GPU, and
/// within what the server's stores keep. The server refuses more; `buildcat-client` refuses
/// the same before sending.
pub const MAX_GPU_MEMORY_MIB: u64 = 1 << 30;

/// What a submitter may set on a job; it applies to each of its tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOptions {
    /// How long one attempt of a task may run before it is killed, in milliseconds; `None`
    /// for no limit.
    pub timeout_ms: Option<u64>,
    /// How many times each task may be started in all (at least 1).
    pub max_attempts: u32,
    /// Higher runs first within a queue; changed after submission with
    /// [`Request::SetPriority`](crate::Request::SetPriority).
    pub priority: i32,
    /// Jobs and tasks that must finish before this job's tasks may start.
    pub after: Vec<Dependency>,
    /// The GPUs each task needs on the slot that runs it (`--gpus N`, `--gpu-memory MIB`);
    /// the default needs none.
    pub gpus: crate::GpuRequirement,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            timeout_ms: None,
            max_attempts: 1,
            priority: 0,
            after: Vec::new(),
            gpus: crate::GpuRequirement::NONE,
        }
    }
}

/// One task of a job as a submitter describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTask {
    /// The frames it renders, as a frame spec (`1-3`, `1,5,9`), for renders; shown to people.
    pub frames: Option<String>,
    /// The encoded task arguments.
    pub args: Vec<u8>,
}

/// A job as a submitter describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    /// The queue it goes into (created on first use).
    pub queue: String,
    /// What kind of work its tasks are, e.g. `buildcat.worker.info`.
    pub kind: String,
    /// Its name for people (`shot.blend 1-240`); empty: the server names it after its kind.
    pub name: String,
    /// Who submitted it, `user@host`, set by the client.
    pub submitter: String,
    /// What it runs, in a form a person reads: the scene and frames, the ROP, the command
    /// line.
    pub runs: String,
    /// Timeout, attempts, priority and dependencies.
    pub options: JobOptions,
    /// Its tasks, at least one, in order: task `i` gets index `i`.
    pub tasks: Vec<NewTask>,
}

/// Why an attempt failed, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// One line saying what went wrong.
    pub reason: String,
    /// The exit code of the tool the task ran, when it ran one.
    pub exit_code: Option<i32>,
    /// The last lines the tool printed, when it ran one.
    pub output_tail: Vec<String>,
    /// What went wrong with a GPU, when the attempt failed because of one rather than
    /// because of the job (the renderer printed a CUDA out-of-memory or device-lost line,
    /// or NVML reports the GPU lost), e.g. `GPU 0 (NVIDIA H200): CUDA error: an illegal
    /// memory access was encountered`: the server counts such faults toward the worker's
    /// quarantine even when they are all in one job.
    pub gpu_fault: Option<String>,
}

impl Failure {
    /// A failure with only a reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Failure {
            reason: reason.into(),
            exit_code: None,
            output_tail: Vec::new(),
            gpu_fault: None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)?;
        if let Some(code) = self.exit_code {
            write!(f, " (exit code {code})")?;
        }
        Ok(())
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptOutcome {
    /// The handler returned a result.
    Finished,
    /// The handler failed.
    Failed(Failure),
    /// The worker went away while running it.
    WorkerLost,
    /// Canceled while running.
    Canceled,
    /// Stopped by its worker, which was shutting down; the task went back to its queue.
    Interrupted,
}

/// One start of a task on a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// The name of the worker that ran it.
    pub worker: String,
    /// When the worker was given the task.
    pub started_at: Timestamp,
    /// When the attempt ended, if it has.
    pub ended_at: Option<Timestamp>,
    /// How it ended, if it has.
    pub outcome: Option<AttemptOutcome>,
}

/// A job as listings show it: what it is and how many of its tasks are where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    /// Its id.
    pub id: JobId,
    /// Its farm-wide number: 1 for the farm's first job, never reused.
    pub number: u64,
    /// Its name.
    pub name: String,
    /// Its queue.
    pub queue: String,
    /// Its tasks' kind.
    pub kind: String,
    /// Who submitted it, `user@host`.
    pub submitter: String,
    /// What it runs, in words.
    pub runs: String,
    /// The options it was submitted with; `priority` as it is now.
    pub options: JobOptions,
    /// Derived from its tasks and whether it is paused.
    pub state: JobState,
    /// Whether a person paused it (its queue may be paused too: see `state`).
    pub paused: bool,
    /// When it was submitted.
    pub created_at: Timestamp,
    /// When its last task ended, once every one has.
    pub ended_at: Option<Timestamp>,
    /// Its tasks by state.
    pub tasks: TaskCounts,
}

/// A task as its job's status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// Its index in the job.
    pub index: u32,
    /// The frames it renders, for renders.
    pub frames: Option<String>,
    /// Where it is.
    pub state: TaskState,
    /// The worker of its latest attempt.
    pub worker: Option<String>,
    /// How many attempts it has had.
    pub attempts: u32,
    /// When its latest attempt started.
    pub started_at: Option<Timestamp>,
    /// When it ended, if it has.
    pub ended_at: Option<Timestamp>,
    /// Why it failed or was canceled, once it has.
    pub reason: Option<String>,
    /// How far its running attempt is, when it reports progress.
    pub progress: Option<TaskProgress>,
}

/// A job with its tasks, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job.
    pub job: JobSummary,
    /// Its tasks in index order.
    pub tasks: Vec<TaskSummary>,
}

/// Everything the server knows about one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The task.
    pub id: TaskId,
    /// Its job's number, so that it can be shown as `42.3`.
    pub number: u64,
    /// Its job's kind.
    pub kind: String,
    /// The frames it renders, for renders.
    pub frames: Option<String>,
    /// Its current state.
    pub state: TaskState,
    /// How many times it may be started in all: the job's, raised by requeues.
    pub max_attempts: u32,
    /// When it ended, if it has.
    pub ended_at: Option<Timestamp>,
    /// Every attempt so far, oldest first.
    pub attempts: Vec<Attempt>,
    /// The encoded output, once finished.
    pub result: Option<Vec<u8>>,
    /// Why it failed or was canceled, once it has.
    pub failure: Option<Failure>,
    /// How far the current attempt is, when the task reports progress (not stored).
    pub progress: Option<TaskProgress>,
}

/// How far a task is: frames done out of frames in the task, the files written, and how far
/// the current frame is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TaskProgress {
    /// Units (frames) done.
    pub done: u32,
    /// Units (frames) in the task.
    pub total: u32,
    /// Files written so far, relative to the root where possible.
    pub outputs: Vec<String>,
    /// How far the frame being rendered is, 0 to 100, where the tool says (`ALF_PROGRESS`):
    /// a long frame otherwise shows no movement until it ends. `None` when the tool says
    /// nothing, and again once a frame ends, until the next one reports.
    pub frame_percent: Option<u8>,
}

impl TaskStatus {
    /// The worker of the latest attempt.
    pub fn worker(&self) -> Option<&str> {
        self.attempts.last().map(|attempt| attempt.worker.as_str())
    }

    /// When the latest attempt started.
    pub fn started_at(&self) -> Option<Timestamp> {
        self.attempts.last().map(|attempt| attempt.started_at)
    }

    /// The task as `42.3`.
    pub fn label(&self) -> String {
        format!("{}.{}", self.number, self.id.index)
    }
}
