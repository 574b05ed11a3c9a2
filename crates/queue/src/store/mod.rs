//! Durable storage of jobs and their tasks, behind a trait so that the core does not know
//! SQLite.
//!
//! The server holds its state in memory and writes every change through a [`Store`]. At
//! start it rebuilds the state from [`Store::load`]. One writer task owns the store and
//! calls [`Store::commit`] with every change gathered since the last commit (group commit),
//! so durability costs one sync per batch rather than one per job.
//!
//! A job is stored with its tasks ([`StoreOp::Insert`]); later changes touch the job's own
//! record ([`StoreOp::UpdateJob`]: priority, pause, end) or one task
//! ([`StoreOp::UpdateTask`]); tasks a task added to its job are appended after the others
//! ([`StoreOp::AppendTasks`]). Job numbers are farm-wide and never reused: the store keeps
//! the next one ([`Loaded::next_number`]), past every number it was given, deleted jobs'
//! too. Paused queues are kept the same way ([`StoreOp::PauseQueue`]).
//!
//! Task output is stored as chunks appended with their byte offset
//! ([`StoreOp::AppendOutput`]) and dropped from the middle when a task prints more than its
//! bound ([`StoreOp::DropOutput`]); it goes with its job when the job is deleted, and is
//! read back a page at a time with [`Store::read_output`].

use buildcat_proto::{JobId, JobOptions, LogPage, TaskId, TaskStatus, Timestamp};

mod blobs;
#[cfg(test)]
pub(crate) mod conformance;
pub mod migrate;
mod page;
pub mod postgres;
pub mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A job as stored: its own record and its tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredJob {
    /// The job's own fields.
    pub job: JobRecord,
    /// Its tasks, in index order (task `i` at `i`).
    pub tasks: Vec<StoredTask>,
}

/// A job's own fields, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// Its farm-wide number.
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
    /// As submitted; `priority` changes ([`StoreOp::UpdateJob`]).
    pub options: JobOptions,
    /// Whether a person paused it.
    pub paused: bool,
    /// When it was submitted.
    pub created_at: Timestamp,
    /// When its last task ended, once every one has; retention counts from here.
    pub ended_at: Option<Timestamp>,
}

/// A task as stored: its record, its arguments and how much it has printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTask {
    /// Everything but the arguments (`progress` is not stored: it is `None` when loaded).
    /// Its `state` is never `Paused` (a pause is its job's or its queue's).
    pub status: TaskStatus,
    /// The encoded task arguments.
    pub args: Vec<u8>,
    /// How much output the task has printed, so that a restarted server appends after it
    /// and knows where a follower is; ignored by [`StoreOp::Insert`] (a new task has none).
    pub output: OutputExtent,
}

/// Everything a store holds, as [`Store::load`] gives it back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loaded {
    /// Every job on record, in id order (which is submission order).
    pub jobs: Vec<StoredJob>,
    /// The number the next job gets: 1 for a new store, else past every number ever
    /// inserted (deleted jobs' included).
    pub next_number: u64,
    /// Queues a person paused, by name.
    pub paused_queues: Vec<String>,
}

/// The size of a task's output: where the next chunk starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputExtent {
    /// Bytes printed, each line counted with its newline, dropped bytes included.
    pub bytes: u64,
    /// Lines printed, dropped lines included.
    pub lines: u64,
}

/// The tasks of a [`StoreOp::AppendTasks`] with their ids: numbered after `last`, the
/// highest task index the store holds for `job` (`None`: the job is not stored, which is
/// refused), each checked to be in a state a new task may have.
///
/// # Errors
/// When the job is not stored, an index would not fit a `u32`, or a task's state is not
/// one a stored task may start in.
pub(crate) fn number_added(
    job: JobId,
    last: Option<i64>,
    tasks: &[StoredTask],
) -> Result<Vec<StoredTask>, StoreError> {
    let Some(last) = last else {
        return Err(StoreError::Database(format!(
            "could not add tasks to job {job}: the job is not stored"
        )));
    };
    (1i64..)
        .zip(tasks)
        .map(|(offset, task)| {
            let index = u32::try_from(last + offset).map_err(|_| {
                StoreError::Database(format!(
                    "could not add tasks to job {job}: task index {} is too large",
                    last + offset
                ))
            })?;
            let mut task = task.clone();
            task.status.id = buildcat_proto::TaskId::new(job, index);
            sqlite::rows::check_state(task.status.state, task.status.id)?;
            Ok(task)
        })
        .collect()
}

/// One change to storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// A new job with its tasks. Its number moves the store's next number past it.
    Insert(StoredJob),
    /// A job's mutable fields changed: `options.priority`, `paused` and `ended_at`. The
    /// others never change after insert.
    UpdateJob(JobRecord),
    /// A task's mutable parts changed: state, max_attempts (raised by a requeue), ended_at,
    /// attempts, result and failure. Its frames, kind and args never change after insert.
    UpdateTask(TaskStatus),
    /// Tasks added to a stored job after its submission (a task's completion carried them:
    /// [`Outcome::FinishedWithTasks`](buildcat_proto::Outcome::FinishedWithTasks)),
    /// appended after the job's last task, in order. The store numbers them (the index
    /// after the job's highest), not the op: the core numbers them the same way when it
    /// learns the commit succeeded, so tasks of a commit that failed leave no gap between
    /// those of a later one. The index in each task's `status.id` is not read, nor its
    /// `output` (a new task has none). A job not stored is refused.
    AppendTasks {
        /// The job.
        job: JobId,
        /// The tasks, in the order they get their indexes.
        tasks: Vec<StoredTask>,
    },
    /// A job is removed (deleted, or pruned after its retention period), with its tasks
    /// and their output. Its number is not given out again.
    Delete(JobId),
    /// A queue was paused (`true`) or let go (`false`).
    PauseQueue {
        /// The queue.
        queue: String,
        /// Whether it is paused now.
        paused: bool,
    },
    /// Output lines of a task, appended after what it printed before.
    AppendOutput {
        /// The task.
        task: TaskId,
        /// Where the chunk starts: the task's output bytes before it.
        offset: u64,
        /// The number of the chunk's first line (0 for the task's first line).
        line: u64,
        /// How many lines `text` holds.
        lines: u64,
        /// The lines, each followed by a newline.
        text: String,
        /// Which of the chunk's lines the program wrote to stderr, as indexes into the
        /// chunk's lines in ascending order (the others are stdout), so a page read back
        /// prints each line where the program did.
        stderr: Vec<u32>,
    },
    /// Drops a task's output chunks that lie wholly within `from..to`: the middle of an
    /// output longer than its bound. A chunk that reaches outside stays.
    DropOutput {
        /// The task.
        task: TaskId,
        /// The first byte that may go (the end of the part kept from the start).
        from: u64,
        /// The first byte that must stay (the start of the newest part kept).
        to: u64,
    },
}

/// What an op costs in memory beyond its large parts, for [`StoreOp::size_hint`]: the record's
/// fixed fields and strings, roughly.
const OP_OVERHEAD: usize = 256;

impl StoreOp {
    /// About how many bytes this op holds in memory: its large parts (output text, task
    /// arguments, results, attempt records) plus a fixed overhead. For bounding what waits
    /// to be stored in bytes rather than in ops, since one op may hold a 256 KiB chunk of
    /// output and another a few dozen bytes.
    pub fn size_hint(&self) -> usize {
        let status = |status: &TaskStatus| {
            status.result.as_ref().map_or(0, Vec::len)
                + status.attempts.len() * OP_OVERHEAD
                + status.failure.as_ref().map_or(0, |failure| {
                    failure.reason.len()
                        + failure.output_tail.iter().map(String::len).sum::<usize>()
                })
        };
        let record =
            |job: &JobRecord| job.name.len() + job.runs.len() + job.options.after.len() * 24;
        OP_OVERHEAD
            + match self {
                StoreOp::Insert(job) => {
                    record(&job.job)
                        + job
                            .tasks
                            .iter()
                            .map(|task| OP_OVERHEAD + task.args.len() + status(&task.status))
                            .sum::<usize>()
                }
                StoreOp::AppendTasks { tasks, .. } => tasks
                    .iter()
                    .map(|task| OP_OVERHEAD + task.args.len() + status(&task.status))
                    .sum::<usize>(),
                StoreOp::UpdateJob(job) => record(job),
                StoreOp::UpdateTask(task) => status(task),
                StoreOp::AppendOutput { text, stderr, .. } => text.len() + stderr.len() * 4,
                StoreOp::Delete(_) | StoreOp::DropOutput { .. } | StoreOp::PauseQueue { .. } => 0,
            }
    }
}

/// Why storage failed.
///
/// `Clone`, because one failed commit is reported to every request that waited on it.
/// [`StoreError::is_retryable`] says whether the same change may succeed if tried again.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened.
    #[error("could not open storage {path}: {message}")]
    Open {
        /// The file, so that the message names what to fix.
        path: String,
        /// What went wrong, with a hint.
        message: String,
    },
    /// The stored data is from a newer buildcat or is damaged.
    #[error("storage {path} is not readable by this buildcat: {message}")]
    Incompatible {
        /// The file, so that the message names what to fix.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A read or write failed for a reason that trying the same change again cannot fix:
    /// the store refused the change itself (a job id or number stored twice, a value out
    /// of range)
    /// or the stored data is damaged.
    #[error("storage error: {0}")]
    Database(String),
    /// Storage cannot take changes for now, for a reason outside the change that may pass:
    /// a full disk, a lock held by another program, a read-only or failing disk, a lost
    /// connection to a database server. The same change may succeed once that is fixed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The storage the server opened is no longer where it was (its file was removed or
    /// replaced): nothing written now would be found by a restart, so every change is
    /// refused until the server is restarted.
    #[error("storage {path} is lost: {message}")]
    Lost {
        /// The storage as the server was told it, so that the message names what to fix.
        path: String,
        /// What happened to it and what to do.
        message: String,
    },
    /// Another server took the storage over (a standby became the active server and
    /// started a new term), so this server's changes are refused by the database itself and
    /// it must stop serving: what it would acknowledge now would not be in the state the
    /// new active server serves.
    #[error("storage {path} was taken over by another server: {message}")]
    Superseded {
        /// The storage as the server was told it, so that the message names what to check.
        path: String,
        /// Which term this server had and what to do.
        message: String,
    },
}

impl StoreError {
    /// Whether trying the same change again later may succeed without restarting the
    /// server (true only for [`StoreError::Unavailable`]).
    ///
    /// A caller may retry a retryable failure after a pause; any other failure repeats
    /// until a person changes something (the file, the data, the server).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Where jobs are kept durably.
///
/// A store is held exclusively by one server while it is open: opening storage that another
/// server holds fails with [`StoreError::Open`] (SQLite: the file's exclusive lock;
/// PostgreSQL: a session advisory lock, and a term that fences off a server that lost it).
/// The conformance suite in `store/conformance.rs` states what every store must do.
pub trait Store: Send + 'static {
    /// Every job on record with its tasks, in id order (which is submission order), the
    /// next job number and the paused queues.
    fn load(&mut self) -> Result<Loaded, StoreError>;

    /// Applies `ops` in order as one transaction, durable when this returns `Ok`.
    ///
    /// On error nothing of `ops` is applied.
    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError>;

    /// Up to about `max_bytes` of task `task`'s output from byte `from` on, in whole lines
    /// (at least one, if there is any), as committed so far.
    ///
    /// Where output was dropped just after `from`, the page says so in `dropped` and starts
    /// after the gap; a page never spans a gap, so the reader can mark it in place. `more`
    /// is left false: the caller knows how much the task has printed. A task without output
    /// (or unknown) gives an empty page whose `next` is `from`.
    fn read_output(
        &mut self,
        task: TaskId,
        from: u64,
        max_bytes: usize,
    ) -> Result<LogPage, StoreError>;
}
