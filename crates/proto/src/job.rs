//! What a job is: its id, the options a submitter sets, its states and the record the server
//! keeps of it.

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

/// Where a job is in its life.
///
/// `Deferred` and `Queued` lead to `Started`; `Started` ends in `Finished`, `Failed` or
/// `Canceled`, or goes back to `Queued` when its worker is lost and attempts remain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
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
    /// Waiting for the jobs it depends on.
    Deferred,
}

impl JobState {
    /// Every state, in the order `info` shows them.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Started,
        JobState::Finished,
        JobState::Failed,
        JobState::Canceled,
        JobState::Deferred,
    ];

    /// Whether the job has ended for good.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Finished | JobState::Failed | JobState::Canceled
        )
    }

    /// The lowercase name used on the command line, in JSON and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Started => "started",
            JobState::Finished => "finished",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
            JobState::Deferred => "deferred",
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
                    "unknown job state `{s}`; expected one of queued, started, finished, failed, \
                     canceled, deferred"
                )
            })
    }
}

/// What a submitter may set on a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOptions {
    /// How long one attempt may run before it is killed, in milliseconds; `None` for no limit.
    pub timeout_ms: Option<u64>,
    /// How many times the job may be started in all (at least 1).
    pub max_attempts: u32,
    /// Higher runs first within a queue.
    pub priority: i32,
    /// Jobs that must finish before this one may start.
    pub after: Vec<JobId>,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            timeout_ms: None,
            max_attempts: 1,
            priority: 0,
            after: Vec::new(),
        }
    }
}

/// A job as a submitter describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    /// The queue it goes into (created on first use).
    pub queue: String,
    /// What kind of work it is, e.g. `buildcat.worker.info`.
    pub kind: String,
    /// The encoded task arguments.
    pub args: Vec<u8>,
    /// Timeout, attempts, priority and dependencies.
    pub options: JobOptions,
}

/// Why an attempt failed, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// One line saying what went wrong.
    pub reason: String,
    /// The exit code of the tool the job ran, when it ran one.
    pub exit_code: Option<i32>,
    /// The last lines the tool printed, when it ran one.
    pub output_tail: Vec<String>,
}

impl Failure {
    /// A failure with only a reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Failure {
            reason: reason.into(),
            exit_code: None,
            output_tail: Vec::new(),
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
    /// Stopped by its worker, which was shutting down; the job went back to its queue.
    Interrupted,
}

/// One start of a job on a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// The name of the worker that ran it.
    pub worker: String,
    /// When the worker was given the job.
    pub started_at: Timestamp,
    /// When the attempt ended, if it has.
    pub ended_at: Option<Timestamp>,
    /// How it ended, if it has.
    pub outcome: Option<AttemptOutcome>,
}

/// Everything the server knows about a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job's id.
    pub id: JobId,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// Its current state.
    pub state: JobState,
    /// The options it was submitted with.
    pub options: JobOptions,
    /// When it was submitted.
    pub created_at: Timestamp,
    /// When it ended, if it has.
    pub ended_at: Option<Timestamp>,
    /// Every attempt so far, oldest first.
    pub attempts: Vec<Attempt>,
    /// The encoded output, once finished.
    pub result: Option<Vec<u8>>,
    /// Why it failed or was canceled, once it has.
    pub failure: Option<Failure>,
    /// How far the current attempt is, when the job reports progress (not stored).
    pub progress: Option<JobProgress>,
}

/// How far a job is: frames done out of frames in the job, and the files written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobProgress {
    /// Units (frames) done.
    pub done: u32,
    /// Units (frames) in the job.
    pub total: u32,
    /// Files written so far, relative to the root where possible.
    pub outputs: Vec<String>,
}

impl JobStatus {
    /// The worker of the latest attempt.
    pub fn worker(&self) -> Option<&str> {
        self.attempts.last().map(|attempt| attempt.worker.as_str())
    }

    /// When the latest attempt started.
    pub fn started_at(&self) -> Option<Timestamp> {
        self.attempts.last().map(|attempt| attempt.started_at)
    }
}
