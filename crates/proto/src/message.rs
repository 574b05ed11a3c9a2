//! The frames exchanged after the handshake.
//!
//! A peer sends [`ClientFrame`]s, each a [`Request`] with an id of the peer's choosing. The
//! server sends [`ServerFrame`]s: a reply that echoes the id of the request it answers, or
//! a push the peer did not ask for (a job for a worker). Replies may come in any order, so
//! one connection carries many requests in flight.

use serde::{Deserialize, Serialize};

use crate::job::{Failure, JobId, JobProgress, JobState, JobStatus, NewJob, Timestamp};

/// The most jobs one [`Request::Cancel`] or [`Request::Requeue`] may name, and the most one
/// `Requeue(Failed)` requeues (ask again for the next ones): every job gets an entry in the
/// reply, which must fit in a frame.
pub const MAX_CHANGES_PER_REQUEST: usize = 10_000;

/// Chosen by the peer; echoed by the server's reply.
pub type RequestId = u64;

/// A request from a client or a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// Echoed in the reply.
    pub id: RequestId,
    /// What is asked.
    pub request: Request,
}

/// What a peer may ask of the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Queue jobs. Answered with [`Reply::Submitted`] once they are durable.
    Submit(Vec<NewJob>),
    /// Answered with [`Reply::Ended`] when the job has ended (at once if it already has).
    Wait(JobId),
    /// Answered with [`Reply::Job`]: what the server knows of the job now.
    Job(JobId),
    /// Answered with [`Reply::Info`]: queues and workers.
    Info,
    /// A worker introduces itself; answered with [`Reply::Registered`]. Workers only.
    Register(WorkerRegistration),
    /// A worker is alive. Answered with [`Reply::Ack`]. Workers only.
    Heartbeat,
    /// A worker reports how a job ended. Answered with [`Reply::Ack`] once durable.
    Complete(Completion),
    /// A worker sends output lines of a running job. Answered with [`Reply::Ack`].
    Log {
        /// The job.
        job: JobId,
        /// The attempt that printed them.
        attempt: u32,
        /// The lines, without line endings.
        lines: Vec<String>,
    },
    /// A worker reports how far a running job is. Answered with [`Reply::Ack`].
    Progress {
        /// The job.
        job: JobId,
        /// The attempt.
        attempt: u32,
        /// Frames done, frames in all, outputs written.
        progress: JobProgress,
    },
    /// Cancel jobs: queued ones are removed, running ones killed by their worker. Answered
    /// with [`Reply::Changes`].
    Cancel(Vec<JobId>),
    /// Put failed or canceled jobs back in their queue. Answered with [`Reply::Changes`].
    Requeue(RequeueTarget),
    /// List jobs, newest first. Answered with [`Reply::Jobs`], which stops short of the
    /// limit (and says so) where more would not fit in one frame.
    Jobs(JobQuery),
    /// A job's output from byte offset `from`, one page at a time. Without `follow` the
    /// answer is one [`Reply::Log`] page, which fits well within a frame; ask again from its
    /// `next` while it says `more`. With `follow`, the output from `from` on arrives as
    /// [`JobEvent::Log`] events, stored pages first and then new lines as they come, and the
    /// reply (an empty page at the end of the output) comes when the job ends.
    Logs {
        /// The job.
        job: JobId,
        /// Where to start, in bytes of the output as printed (each line ends in a newline):
        /// 0 for the beginning, or a page's `next` to carry on exactly where it stopped.
        from: u64,
        /// Keep streaming until the job ends.
        follow: bool,
    },
    /// Follow jobs: [`JobEvent::Progress`] and [`JobEvent::Ended`] events arrive as they
    /// happen; the reply ([`Reply::Ack`]) comes once every one has ended.
    Watch(Vec<JobId>),
    /// Let a quarantined worker (every connection of that name) take work again. Answered
    /// with [`Reply::Ack`], or [`RequestError::UnknownWorker`].
    EnableWorker(String),
}

impl Request {
    /// The request's name as the command line and the logs say it (`submit`, `cancel`).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Submit(_) => "submit",
            Request::Wait(_) => "wait",
            Request::Job(_) => "job",
            Request::Info => "info",
            Request::Register(_) => "register",
            Request::Heartbeat => "heartbeat",
            Request::Complete(_) => "complete",
            Request::Log { .. } => "log",
            Request::Progress { .. } => "progress",
            Request::Cancel(_) => "cancel",
            Request::Requeue(_) => "requeue",
            Request::Jobs(_) => "jobs",
            Request::Logs { .. } => "logs",
            Request::Watch(_) => "watch",
            Request::EnableWorker(_) => "worker-enable",
        }
    }
}

/// Which jobs to requeue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequeueTarget {
    /// These jobs.
    Jobs(Vec<JobId>),
    /// Every failed job, in one queue or in all.
    Failed {
        /// Only this queue.
        queue: Option<String>,
    },
}

/// Which jobs to list.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobQuery {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// At most this many (the server caps it at 1,000, and at what fits in one reply).
    pub limit: u32,
}

/// What a request did to one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobChange {
    /// The job.
    pub job: JobId,
    /// Its new state, or why nothing was done.
    pub result: Result<JobState, RequestError>,
}

/// Something that happened to a followed job, pushed with the id of the request that asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "events are built once and moved straight into a frame; boxing buys nothing"
)]
pub enum JobEvent {
    /// Output of the job: a stored page or lines just printed.
    Log {
        /// The job.
        job: JobId,
        /// The lines and where they are in the output.
        page: LogPage,
    },
    /// The job's progress changed.
    Progress {
        /// The job.
        job: JobId,
        /// Where it is now.
        progress: JobProgress,
    },
    /// The job ended; this is its final record.
    Ended(JobStatus),
}

/// How a worker introduces itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRegistration {
    /// A name unique on the farm, e.g. `render01.12345.1`.
    pub name: String,
    /// The host it runs on.
    pub host: String,
    /// Its root directory (absolute, as that host sees it).
    pub root: String,
    /// The queues it serves, highest priority first.
    pub queues: Vec<String>,
    /// The job kinds it can run.
    pub kinds: Vec<String>,
    /// The worker's process id.
    pub pid: u32,
    /// Its software version.
    pub version: String,
    /// Jobs it is still running from before a reconnect: (job, attempt).
    pub running: Vec<(JobId, u32)>,
}

/// A worker's report of how an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The job.
    pub job: JobId,
    /// The attempt number from the [`Assignment`]; a report for an older attempt is refused.
    pub attempt: u32,
    /// What happened.
    pub outcome: Outcome,
}

/// What a handler produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The encoded output.
    Finished(Vec<u8>),
    /// Why it failed.
    Failed(Failure),
    /// The worker stopped it after a [`ServerFrame::Cancel`].
    Canceled,
    /// The worker stopped it because the worker itself is stopping now (a second Ctrl-C):
    /// the job goes back to its queue at once, without using up an attempt.
    Interrupted,
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The answer to the request with this id.
    Reply {
        /// The request's id.
        id: RequestId,
        /// The answer, or why the request could not be served.
        reply: Result<Reply, RequestError>,
    },
    /// A job for a worker to run.
    Assign(Assignment),
    /// The server is closing this connection, and why.
    Closing(String),
    /// Stop running this job (it was canceled or timed out); the worker kills it.
    Cancel {
        /// The job.
        job: JobId,
        /// The attempt to stop.
        attempt: u32,
        /// Why, for the worker's log.
        reason: String,
    },
    /// An event for a `Logs { follow }` or `Watch` request.
    Event {
        /// The request being answered.
        id: RequestId,
        /// What happened.
        event: JobEvent,
    },
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The ids of the submitted jobs, in submission order.
    Submitted(Vec<JobId>),
    /// The job has ended; this is its final record.
    Ended(JobStatus),
    /// The job's record now.
    Job(JobStatus),
    /// Queues and workers.
    Info(FarmInfo),
    /// The worker is registered under this name.
    Registered {
        /// The name the server knows the worker by.
        name: String,
        /// How often the server expects a heartbeat, in milliseconds.
        heartbeat_ms: u64,
        /// How long the server keeps a job for this worker once it stops hearing from it
        /// (connection dropped, or silent), in milliseconds, counted from the last request
        /// it received; after that it hands the job to another worker. The worker stops its
        /// job itself before then (its lease), so that two copies never run.
        reconnect_grace_ms: u64,
    },
    /// Done.
    Ack,
    /// What a cancel or requeue did, one entry per job.
    Changes(Vec<JobChange>),
    /// Jobs, newest first (results left out).
    Jobs {
        /// The jobs.
        jobs: Vec<JobStatus>,
        /// Whether more jobs matched than were sent: the list stopped at the limit asked
        /// for or at what fits in one frame. Narrow the query (queue, state) to see others.
        more: bool,
    },
    /// A page of a job's output.
    Log(LogPage),
}

/// A stretch of a job's output, as [`Reply::Log`] and [`JobEvent::Log`] carry it.
///
/// Offsets count bytes of the output as printed, with a newline after each line, so a page
/// can be asked for again from any `next` and a follower that lost its connection carries
/// on exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogPage {
    /// Output the server dropped just before `lines` to keep the job within its bound (it
    /// keeps the first and the newest part of a long output); `None` when nothing was.
    pub dropped: Option<DroppedOutput>,
    /// Where the first of `lines` starts.
    pub offset: u64,
    /// The lines, without line endings.
    pub lines: Vec<String>,
    /// Where the output after these lines starts: the `from` of the next page.
    pub next: u64,
    /// Whether the server holds output after `next` already (ask again from `next`); when
    /// false, the page reached the end of what the job has printed so far.
    pub more: bool,
}

impl LogPage {
    /// A page with no lines at `offset`: nothing more after it yet.
    pub fn empty_at(offset: u64) -> Self {
        LogPage {
            offset,
            next: offset,
            ..LogPage::default()
        }
    }
}

/// Output the server did not keep, so that a job printing gigabytes cannot fill its disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DroppedOutput {
    /// Bytes dropped (each line counted with its newline).
    pub bytes: u64,
    /// Lines dropped.
    pub lines: u64,
}

/// Why a request could not be served. The connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No job with this id (it may have been pruned after its retention period).
    #[error("no job with id {0} (it may have been pruned after its retention period)")]
    UnknownJob(JobId),
    /// The request is only for workers, or only for clients.
    #[error("`{request}` is not allowed on a {role} connection")]
    WrongRole {
        /// The request's name.
        request: String,
        /// The role of the connection.
        role: String,
    },
    /// The request is malformed, e.g. an empty queue name.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The server could not store the change; nothing was acknowledged.
    #[error("the server could not store the change: {0}")]
    Storage(String),
    /// The server is shutting down and takes no new work.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A worker reported on an attempt that is no longer current.
    #[error("job {job} attempt {attempt} is no longer current; its result was not recorded")]
    StaleAttempt {
        /// The job.
        job: JobId,
        /// The attempt reported.
        attempt: u32,
    },
    /// The job is not in a state the request applies to.
    #[error("job {job} is {state}; {what}")]
    WrongState {
        /// The job.
        job: JobId,
        /// Its state.
        state: JobState,
        /// What could not be done.
        what: String,
    },
    /// Too many requests are in flight on this connection.
    #[error(
        "too many requests in flight on one connection (limit {limit}); wait for replies before sending more"
    )]
    TooManyInFlight {
        /// The limit.
        limit: u32,
    },
    /// No worker of that name is connected or known.
    #[error("no worker named {0} is known to the server; `buildcat info` lists the workers")]
    UnknownWorker(String),
}

/// A job handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The job.
    pub job: JobId,
    /// Which attempt this is (1 for the first); echo it in the [`Completion`].
    pub attempt: u32,
    /// The queue it came from.
    pub queue: String,
    /// Its kind, which picks the handler.
    pub kind: String,
    /// The encoded task arguments.
    pub args: Vec<u8>,
    /// How long it may run, in milliseconds.
    pub timeout_ms: Option<u64>,
}

/// The farm at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FarmInfo {
    /// Every queue that has ever held a job still on record, by name.
    pub queues: Vec<QueueSummary>,
    /// Every connected worker, by name.
    pub workers: Vec<WorkerSummary>,
    /// Queued jobs that no connected worker can run, by queue and kind.
    pub unserved: Vec<Unserved>,
    /// Whether entries were left out (from the ends of the longest lists) because the
    /// whole would not fit in one reply: a farm of very many queues or workers.
    pub truncated: bool,
}

/// Queued jobs of one kind in one queue that no connected worker serving that queue can
/// run (no worker has the tool, or none serves the queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unserved {
    /// The queue.
    pub queue: String,
    /// The job kind.
    pub kind: String,
    /// How many such jobs wait.
    pub jobs: u64,
}

/// Job counts of one queue.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueueSummary {
    /// The queue's name.
    pub name: String,
    /// Jobs waiting for a worker.
    pub queued: u64,
    /// Jobs running.
    pub started: u64,
    /// Jobs finished and still kept.
    pub finished: u64,
    /// Jobs failed and still kept.
    pub failed: u64,
    /// Jobs canceled and still kept.
    pub canceled: u64,
    /// Jobs waiting for their dependencies.
    pub deferred: u64,
}

impl QueueSummary {
    /// The count for one state.
    pub fn count(&self, state: JobState) -> u64 {
        match state {
            JobState::Queued => self.queued,
            JobState::Started => self.started,
            JobState::Finished => self.finished,
            JobState::Failed => self.failed,
            JobState::Canceled => self.canceled,
            JobState::Deferred => self.deferred,
        }
    }

    /// The count for one state, to change it.
    pub fn count_mut(&mut self, state: JobState) -> &mut u64 {
        match state {
            JobState::Queued => &mut self.queued,
            JobState::Started => &mut self.started,
            JobState::Finished => &mut self.finished,
            JobState::Failed => &mut self.failed,
            JobState::Canceled => &mut self.canceled,
            JobState::Deferred => &mut self.deferred,
        }
    }
}

/// One connected worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSummary {
    /// Its name.
    pub name: String,
    /// Its host.
    pub host: String,
    /// Its root directory.
    pub root: String,
    /// The queues it serves, highest priority first.
    pub queues: Vec<String>,
    /// Idle or busy.
    pub activity: WorkerActivity,
    /// The job it runs, if any.
    pub job: Option<JobId>,
    /// When it connected.
    pub connected_at: Timestamp,
    /// Why it gets no work, while quarantined (see [`WorkerActivity::Quarantined`]).
    pub quarantine: Option<String>,
}

/// What a worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerActivity {
    /// Waiting for a job.
    Idle,
    /// Running a job.
    Busy,
    /// Failed job after job, so the server gives it no work until it is enabled again
    /// (`buildcat worker-enable NAME`) or its cool-down ends.
    Quarantined,
}

impl WorkerActivity {
    /// `idle`, `busy` or `quarantined`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerActivity::Idle => "idle",
            WorkerActivity::Busy => "busy",
            WorkerActivity::Quarantined => "quarantined",
        }
    }
}
