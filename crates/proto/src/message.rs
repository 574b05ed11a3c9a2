//! The frames exchanged after the handshake.
//!
//! A peer sends [`ClientFrame`]s, each a [`Request`] with an id of the peer's choosing. The
//! server sends [`ServerFrame`]s: a reply that echoes the id of the request it answers, or
//! a push the peer did not ask for (a task for a worker). Replies may come in any order, so
//! one connection carries many requests in flight.
//!
//! People and clients name jobs and tasks with [`JobRef`] and [`TaskRef`] (`42`, `42.3`, a
//! UUID); workers, which are handed tasks, name them with their [`TaskId`].

use serde::{Deserialize, Serialize};

use crate::job::{
    Failure, JobId, JobRef, JobState, JobStatus, JobSummary, NewJob, NewTask, TaskCounts, TaskId,
    TaskProgress, TaskRef, TaskState, TaskStatus, TaskSummary, Timestamp,
};
use crate::preview::{FramePreview, JobPreviews};

/// The most jobs or tasks one request that changes them ([`Request::Cancel`],
/// [`Request::Requeue`], [`Request::Pause`], ...) may name, and the most jobs one
/// [`Requeue::Failed`] requeues (ask again for the next ones): each gets an entry in the
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
    /// Queue jobs, each with its tasks. Answered with [`Reply::Submitted`] once they are
    /// durable.
    Submit(Vec<NewJob>),
    /// Answered with [`Reply::Ended`] when every task of the job has ended (at once if they
    /// have).
    Wait(JobRef),
    /// Answered with [`Reply::Job`]: the job and its tasks now.
    Job(JobRef),
    /// Answered with [`Reply::Task`]: everything known of one task (attempts, result). A
    /// [`TaskRef`] without an index names the only task of a job of one task.
    Task(TaskRef),
    /// Answered with [`Reply::Info`]: queues and workers.
    Info,
    /// A worker introduces itself; answered with [`Reply::Registered`]. Workers only.
    Register(WorkerRegistration),
    /// A worker is alive. Answered with [`Reply::Ack`]. Workers only.
    Heartbeat,
    /// A worker reports how a task's attempt ended. Answered with [`Reply::Ack`] once
    /// durable. Workers only.
    Complete(Completion),
    /// A worker sends output lines of a running task. Answered with [`Reply::Ack`].
    Log {
        /// The task.
        task: TaskId,
        /// The attempt that printed them.
        attempt: u32,
        /// The lines, without line endings.
        lines: Vec<String>,
        /// Which of `lines` the program wrote to stderr, as indexes into `lines` in
        /// ascending order (the others are stdout), so that `run --wait` and `logs` can
        /// print each line where the program did. Indexes rather than a flag per line: most
        /// output is stdout, and an empty list costs one byte.
        stderr: Vec<u32>,
    },
    /// A worker reports how far a running task is. Answered with [`Reply::Ack`].
    Progress {
        /// The task.
        task: TaskId,
        /// The attempt.
        attempt: u32,
        /// Frames done, frames in all, outputs written.
        progress: TaskProgress,
    },
    /// Cancel jobs (every task that has not ended) or single tasks: queued tasks end at
    /// once, running ones are killed by their worker. Answered with [`Reply::Changes`].
    Cancel(Vec<TaskRef>),
    /// Put tasks back in their queue. Answered with [`Reply::Changes`].
    Requeue(Requeue),
    /// Hold jobs: their queued tasks do not start, running ones finish. Answered with
    /// [`Reply::Changes`].
    Pause(Vec<JobRef>),
    /// Let paused jobs' tasks start again. Answered with [`Reply::Changes`].
    Resume(Vec<JobRef>),
    /// Hold (or let go) every job of a queue. Answered with [`Reply::Ack`]; a queue not on
    /// record is held for the jobs that come to it.
    PauseQueue {
        /// The queue.
        queue: String,
        /// `true` to hold, `false` to let go.
        paused: bool,
    },
    /// Change a job's priority. Answered with [`Reply::Changes`] (one entry).
    SetPriority {
        /// The job.
        job: JobRef,
        /// Its new priority: higher runs first within its queue.
        priority: i32,
    },
    /// Remove ended jobs now, with their tasks' output and results. Answered with
    /// [`Reply::Changes`]; a job that has not ended is refused ([`RequestError::WrongState`]).
    Delete(Vec<JobRef>),
    /// List jobs, newest first. Answered with [`Reply::Jobs`], which stops short of the
    /// limit (and says so) where more would not fit in one frame.
    Jobs(JobQuery),
    /// A task's output from byte offset `from`, one page at a time. Without `follow` the
    /// answer is one [`Reply::Log`] page, which fits well within a frame; ask again from its
    /// `next` while it says `more`. With `follow`, the output from `from` on arrives as
    /// [`JobEvent::Log`] events, stored pages first and then new lines as they come, and the
    /// reply (an empty page at the end of the output) comes when the task ends.
    Logs {
        /// The task; without an index, the only task of a job of one task.
        task: TaskRef,
        /// Where to start, in bytes of the output as printed (each line ends in a newline):
        /// 0 for the beginning, or a page's `next` to carry on exactly where it stopped.
        from: u64,
        /// Keep streaming until the task ends.
        follow: bool,
    },
    /// Follow jobs: [`JobEvent::Task`], [`JobEvent::Progress`] and [`JobEvent::Ended`]
    /// events arrive as they happen; the reply ([`Reply::Ack`]) comes once every job has
    /// ended.
    Watch(Vec<JobRef>),
    /// Let a quarantined worker (every connection of that name) take work again. Answered
    /// with [`Reply::Ack`], or [`RequestError::UnknownWorker`].
    EnableWorker(String),
    /// A worker sends a small picture of a frame its task saved. Answered with
    /// [`Reply::Ack`]; kept only from the worker of the task's current attempt, and only
    /// within [`FramePreview::check`]'s sizes ([`RequestError::Invalid`] otherwise). Workers
    /// only.
    Preview(FramePreview),
    /// A job's previews, newest first. Answered with [`Reply::Previews`]; with `image`, the
    /// newest one's image comes too.
    Previews {
        /// The job.
        job: JobRef,
        /// Whether to send the newest preview's image (a listing does without).
        image: bool,
    },
    /// A registered worker's tools with the versions it has read since it registered:
    /// a worker registers at once with what it knows (tools without versions) and asks its
    /// tools their versions meanwhile, so a slow tool never delays its first task. Replaces
    /// the list the registration gave, within the same bounds ([`MAX_TOOLS`],
    /// [`MAX_TOOL_TEXT`]; [`RequestError::Invalid`] otherwise). Answered with
    /// [`Reply::Ack`]. Workers only.
    UpdateTools(Vec<ToolVersion>),
    /// Pause a worker (every connection of that name): it finishes the task it runs and
    /// takes no new one until it is resumed; or resume it, and it is offered work at once.
    /// Kept by name in the server's memory, so it holds across the worker's reconnects but
    /// not across a server restart. Answered with [`Reply::Ack`], or
    /// [`RequestError::UnknownWorker`] for a name the server has never seen.
    PauseWorker {
        /// The worker's name, as `info` lists it.
        name: String,
        /// `true` to pause, `false` to resume.
        paused: bool,
    },
}

impl Request {
    /// The request's name as the command line and the logs say it (`submit`, `cancel`).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Submit(_) => "submit",
            Request::Wait(_) => "wait",
            Request::Job(_) => "job",
            Request::Task(_) => "task",
            Request::Info => "info",
            Request::Register(_) => "register",
            Request::Heartbeat => "heartbeat",
            Request::Complete(_) => "complete",
            Request::Log { .. } => "log",
            Request::Progress { .. } => "progress",
            Request::Cancel(_) => "cancel",
            Request::Requeue(_) => "requeue",
            Request::Pause(_) => "pause",
            Request::Resume(_) => "resume",
            Request::PauseQueue { paused: true, .. } => "pause --queue",
            Request::PauseQueue { paused: false, .. } => "resume --queue",
            Request::SetPriority { .. } => "priority",
            Request::Delete(_) => "delete",
            Request::Jobs(_) => "jobs",
            Request::Logs { .. } => "logs",
            Request::Watch(_) => "watch",
            Request::EnableWorker(_) => "worker-enable",
            Request::Preview(_) => "preview",
            Request::Previews { .. } => "previews",
            Request::UpdateTools(_) => "update-tools",
            Request::PauseWorker { paused: true, .. } => "worker-pause",
            Request::PauseWorker { paused: false, .. } => "worker-resume",
        }
    }
}

/// Which tasks to put back in their queue. Running tasks are never touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Requeue {
    /// These jobs' or tasks' failed and canceled tasks; with `all`, finished ones too (to
    /// render again after a fix).
    Tasks {
        /// Jobs (their tasks) or single tasks.
        targets: Vec<TaskRef>,
        /// Finished tasks too.
        all: bool,
    },
    /// The failed and canceled tasks of every failed job of one submitter, in one queue or
    /// in all.
    Failed {
        /// Only this queue.
        queue: Option<String>,
        /// Only jobs of this submitter: `user@host`, or `user` for that user on any host.
        /// Clients send the caller's own unless told otherwise.
        user: Option<String>,
    },
}

/// Which jobs to list.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobQuery {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this submitter: `user@host`, or `user` for that user on any host.
    pub user: Option<String>,
    /// At most this many (the server caps it at 1,000, and at what fits in one reply).
    pub limit: u32,
}

/// What a request did to one job or task it named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The job or task as the request named it.
    pub target: TaskRef,
    /// What was done, or why nothing was.
    pub result: Result<Changed, RequestError>,
}

/// A change made to a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    /// The job's id.
    pub job: JobId,
    /// Its number.
    pub number: u64,
    /// How many of its tasks the request changed (0 where there was nothing to do, such
    /// as a requeue of a job with no failed task).
    pub tasks: u32,
    /// The job's state after the change.
    pub state: JobState,
}

/// Something that happened to a followed job, pushed with the id of the request that asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "events are built once and moved straight into a frame; boxing buys nothing"
)]
pub enum JobEvent {
    /// Output of a task: a stored page or lines just printed.
    Log {
        /// The task.
        task: TaskId,
        /// The lines and where they are in the output.
        page: LogPage,
    },
    /// A task's progress changed.
    Progress {
        /// The task.
        task: TaskId,
        /// Where it is now.
        progress: TaskProgress,
    },
    /// A task changed state (started, ended, went back to its queue).
    Task {
        /// Its job.
        job: JobId,
        /// The task now.
        task: TaskSummary,
    },
    /// The job ended: every task has; this is its final record.
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
    /// Tasks it is still running from before a reconnect: (task, attempt).
    pub running: Vec<(TaskId, u32)>,
    /// The tools it found, with their versions, so `info` and the web page can say what
    /// each worker can render with (at most [`MAX_TOOLS`]; each text at most
    /// [`MAX_TOOL_TEXT`] bytes, or the server refuses the registration).
    pub tools: Vec<ToolVersion>,
    /// The GPUs this slot owns (its share of the host's, `--gpus-per-slot`), so the server
    /// sends it only jobs whose [`GpuRequirement`](crate::GpuRequirement) they meet; empty
    /// without GPUs (at most [`MAX_GPUS`](crate::MAX_GPUS), each within
    /// [`Gpu::is_within_limits`](crate::Gpu::is_within_limits), or the server refuses the
    /// registration).
    pub gpus: Vec<crate::Gpu>,
}

/// The most tools a worker may list at registration: far more than the integrations there
/// are, yet small enough that a peer cannot make every `info` reply huge.
pub const MAX_TOOLS: usize = 32;

/// The most bytes a tool's name or version may have: version strings are short
/// (`3.4.1`, `20.5.410`); a longer one is a peer's mistake or abuse.
pub const MAX_TOOL_TEXT: usize = 256;

/// One tool a worker found and the version it reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolVersion {
    /// The tool as the worker's toolbox names it: `blender`, `hython`, `mantra`, `modo_cl`,
    /// `redshiftCmdLine`; what a person matches against the kinds they submit.
    pub name: String,
    /// The version it printed, e.g. `3.4.1`; empty if it could not be read (the tool did
    /// not answer in time or printed nothing the worker understood), so a person knows the
    /// tool is there but not which release.
    pub version: String,
}

/// A worker's report of how an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The task.
    pub task: TaskId,
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
    /// the task goes back to its queue at once, without using up an attempt.
    Interrupted,
    /// Finished, and adds `tasks` to its own job (a task that plans the rest of its job,
    /// such as a render that reads its frame range from the scene). The server appends them
    /// after the job's last task in the same transaction that records this one finished, so
    /// they are added exactly once; they run with the job's kind, queue, priority and
    /// options. A task that finished before (run again by a requeue of finished tasks,
    /// which runs those it added again too) adds none. Bounded: at most as many per report, and in the job in all, as a submission
    /// may hold; more is refused with [`RequestError::Invalid`] and fails the attempt.
    FinishedWithTasks {
        /// The encoded output, as [`Outcome::Finished`] carries it.
        result: Vec<u8>,
        /// The tasks to add, in order.
        tasks: Vec<NewTask>,
    },
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
    /// A task for a worker to run.
    Assign(Assignment),
    /// The server is closing this connection, and why.
    Closing(String),
    /// Stop running this task (it was canceled or timed out); the worker kills it.
    Cancel {
        /// The task.
        task: TaskId,
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
    /// The submitted jobs, in submission order.
    Submitted(Vec<Submitted>),
    /// The job has ended (every task has); this is its final record.
    Ended(JobStatus),
    /// The job and its tasks now.
    Job(JobStatus),
    /// One task's record now.
    Task(TaskStatus),
    /// Queues and workers.
    Info(FarmInfo),
    /// The worker is registered under this name.
    Registered {
        /// The name the server knows the worker by.
        name: String,
        /// How often the server expects a heartbeat, in milliseconds.
        heartbeat_ms: u64,
        /// How long the server keeps a task for this worker once it stops hearing from it
        /// (connection dropped, or silent), in milliseconds, counted from the last request
        /// it received; after that it hands the task to another worker. The worker stops its
        /// task itself before then (its lease), so that two copies never run.
        reconnect_grace_ms: u64,
    },
    /// Done.
    Ack,
    /// What a cancel, requeue, pause, resume, priority or delete did, one entry per job or
    /// task named (for [`Requeue::Failed`], per job requeued).
    Changes(Vec<Change>),
    /// Jobs, newest first.
    Jobs {
        /// The jobs.
        jobs: Vec<JobSummary>,
        /// Whether more jobs matched than were sent: the list stopped at the limit asked
        /// for or at what fits in one frame. Narrow the query (queue, state) to see others.
        more: bool,
    },
    /// A page of a task's output.
    Log(LogPage),
    /// A job's previews.
    Previews(JobPreviews),
}

/// A job the server took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// Its id.
    pub id: JobId,
    /// Its farm-wide number, never reused.
    pub number: u64,
    /// How many tasks it has.
    pub tasks: u32,
}

/// A stretch of a task's output, as [`Reply::Log`] and [`JobEvent::Log`] carry it.
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
    /// Which of `lines` the program wrote to stderr, as indexes into `lines` in ascending
    /// order; the others are stdout (as is all output stored before streams were kept), so
    /// a reader can print each line where the program did.
    pub stderr: Vec<u32>,
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

    /// Whether line `index` of `lines` was written to stderr.
    pub fn is_stderr(&self, index: usize) -> bool {
        u32::try_from(index).is_ok_and(|index| self.stderr.binary_search(&index).is_ok())
    }

    /// The lines, each with whether it was written to stderr.
    pub fn lines_with_streams(&self) -> impl Iterator<Item = (&str, bool)> + '_ {
        self.lines
            .iter()
            .enumerate()
            .map(|(index, line)| (line.as_str(), self.is_stderr(index)))
    }
}

/// Output the server did not keep, so that a task printing gigabytes cannot fill its disk.
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
    /// No such job (it may have been deleted, or removed after its retention period).
    #[error(
        "no job {0} (it may have been deleted, or removed after its retention period); \
         `buildcat jobs` lists the jobs"
    )]
    UnknownJob(JobRef),
    /// The job has no task of that index.
    #[error("job {job} has no task {index}: its tasks are {job}.0 to {job}.{last}", last = tasks.saturating_sub(1))]
    UnknownTask {
        /// The job as named.
        job: JobRef,
        /// The index asked for.
        index: u32,
        /// How many tasks it has.
        tasks: u32,
    },
    /// One task was meant, and the job has several: name one.
    #[error(
        "job {job} has {tasks} tasks; name one as {job}.INDEX (`buildcat status {job}` lists them)"
    )]
    WhichTask {
        /// The job as named.
        job: JobRef,
        /// How many tasks it has.
        tasks: u32,
    },
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
    #[error("task {task} attempt {attempt} is no longer current; its result was not recorded")]
    StaleAttempt {
        /// The task.
        task: TaskId,
        /// The attempt reported.
        attempt: u32,
    },
    /// The job or task is not in a state the request applies to.
    #[error("{target} is {state}; {what}")]
    WrongState {
        /// The job or task, as named (`job 42`, `task 42.3`).
        target: String,
        /// Its state (a job's or a task's).
        state: String,
        /// What could not be done, and what to do instead.
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
    /// Another live worker holds the name a worker registered with (protocol 9). Retrying
    /// does not help while that worker runs, so a worker given its name explicitly stops.
    #[error(
        "a worker named `{name}` is already connected ({holder}); two workers may not share a name: give this one another --name, or stop the other first"
    )]
    NameTaken {
        /// The name asked for.
        name: String,
        /// Which process holds it (`pid 4242 on render01`), so the person can find it.
        holder: String,
    },
}

/// A task handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The task.
    pub task: TaskId,
    /// Its job's number, so that logs can say `42.3`.
    pub number: u64,
    /// Its job's name, for the worker's log.
    pub name: String,
    /// The frames it renders, for renders.
    pub frames: Option<String>,
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

impl Assignment {
    /// The task as `42.3`.
    pub fn label(&self) -> String {
        format!("{}.{}", self.number, self.task.index)
    }
}

/// The farm at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FarmInfo {
    /// Every queue that has ever held a job still on record, by name.
    pub queues: Vec<QueueSummary>,
    /// Every connected worker, by name.
    pub workers: Vec<WorkerSummary>,
    /// Queued tasks that no connected worker can run, by queue and kind.
    pub unserved: Vec<Unserved>,
    /// Whether entries were left out (from the ends of the longest lists) because the
    /// whole would not fit in one reply: a farm of very many queues or workers.
    pub truncated: bool,
    /// Bytes of task output (log lines) the server keeps for every job on record, as a
    /// running count the server updates as lines arrive, middles are dropped and jobs go,
    /// so monitoring can watch the store grow without a scan per question.
    pub output_bytes: u64,
}

/// Queued tasks of one kind in one queue that no connected worker serving that queue can
/// run (no worker has the tool, or none serves the queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unserved {
    /// The queue.
    pub queue: String,
    /// The kind.
    pub kind: String,
    /// How many such tasks wait.
    pub tasks: u64,
    /// What their jobs need of a GPU ([`GpuRequirement::NONE`](crate::GpuRequirement::NONE)
    /// when nothing): when workers serve the queue and kind but none has these GPUs, this
    /// is why the tasks wait ("no worker with 2 GPUs of 24 GiB").
    pub gpus: crate::GpuRequirement,
}

/// One queue: its jobs not ended, its tasks by state, and whether it is paused.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueueSummary {
    /// The queue's name.
    pub name: String,
    /// Jobs in it that have not ended.
    pub jobs: u64,
    /// Its tasks still kept, by state (paused: queued tasks held by a pause).
    pub tasks: TaskCounts,
    /// Whether a person paused the whole queue (`pause --queue`).
    pub paused: bool,
}

impl QueueSummary {
    /// The count of tasks in one state.
    pub fn count(&self, state: TaskState) -> u64 {
        self.tasks.count(state)
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
    /// The task it runs, if any.
    pub task: Option<RunningTask>,
    /// When it connected.
    pub connected_at: Timestamp,
    /// Why it gets no work, while quarantined (see [`WorkerActivity::Quarantined`]).
    pub quarantine: Option<String>,
    /// The tools it found with their versions, as it registered them: what it can render
    /// with, so a person can tell why a job waits or which release made a frame.
    pub tools: Vec<ToolVersion>,
    /// The GPUs the worker slot owns, as it registered them, so a person sees which slot
    /// renders on which GPU and why a GPU job waits.
    pub gpus: Vec<crate::Gpu>,
    /// A person paused it (`buildcat worker-pause`): it finishes the task it runs and
    /// takes no new one until resumed. Shown apart from `activity`, which stays `Busy`
    /// while the last task runs, so a script can tell a draining worker from a busy one.
    pub paused: bool,
}

/// The task a worker runs, as `info` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningTask {
    /// The task.
    pub id: TaskId,
    /// Its job's number.
    pub number: u64,
}

impl std::fmt::Display for RunningTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.number, self.id.index)
    }
}

/// What a worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerActivity {
    /// Waiting for a task.
    Idle,
    /// Running a task.
    Busy,
    /// Failed task after task of different jobs, so the server gives it no work until it is enabled again
    /// (`buildcat worker-enable NAME`) or its cool-down ends.
    Quarantined,
    /// Paused by a person (`buildcat worker-pause NAME`) and running nothing: it takes no
    /// work until `buildcat worker-resume NAME`. A quarantined worker shows as quarantined
    /// even when paused, since that needs looking at.
    Paused,
}

impl WorkerActivity {
    /// `idle`, `busy`, `quarantined` or `paused`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerActivity::Idle => "idle",
            WorkerActivity::Busy => "busy",
            WorkerActivity::Quarantined => "quarantined",
            WorkerActivity::Paused => "paused",
        }
    }
}
