//! How a job and its tasks are written to and read from rows of the `jobs` and `tasks`
//! tables.
//!
//! Options and timestamps are plain columns; ids are the 16 bytes of their UUID (v7, so
//! byte order is submission order); a job's dependencies (`after`) and a task's attempts
//! and failure are blobs encoded with [`buildcat_proto::codec::encode_value`]. What a task
//! shares with its job (number, kind) is stored once, with the job, and filled in when the
//! task is read.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use buildcat_proto::codec::{decode_value, encode_value};
use buildcat_proto::{
    Attempt, Dependency, Failure, JobId, JobOptions, TaskId, TaskState, TaskStatus, Timestamp,
};
use rusqlite::types::ValueRef;
use rusqlite::{CachedStatement, Row, params};
use uuid::Uuid;

use super::errors::write_error;
use crate::store::blobs::{decode_attempts, decode_failure};
use crate::store::{JobRecord, OutputExtent, StoreError, StoredJob, StoredTask};

/// Bytes of a job id.
pub(super) const ID_LEN: usize = 16;

/// Inserts a job; the parameters are the columns in table order.
pub(super) const INSERT_JOB: &str = "INSERT INTO jobs (id, number, name, queue, kind, \
    submitter, runs, timeout_ms, max_attempts, priority, after, paused, created_at, ended_at, \
    gpus, gpu_memory_mib) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

/// Inserts a task; the parameters are the columns in table order.
pub(super) const INSERT_TASK: &str = "INSERT INTO tasks (job, idx, frames, args, state, \
    max_attempts, ended_at, attempts, result, failure) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// The highest task index of job ?1 (`NULL` when the job has no tasks stored, i.e. it is
/// not stored: every stored job has one).
pub(super) const LAST_TASK_INDEX: &str = "SELECT max(idx) FROM tasks WHERE job = ?1";

/// Updates a job's mutable columns.
pub(super) const UPDATE_JOB: &str =
    "UPDATE jobs SET priority = ?2, paused = ?3, ended_at = ?4 WHERE id = ?1";

/// Updates a task's mutable columns.
pub(super) const UPDATE_TASK: &str = "UPDATE tasks SET state = ?3, max_attempts = ?4, \
    ended_at = ?5, attempts = ?6, result = ?7, failure = ?8 WHERE job = ?1 AND idx = ?2";

/// Deletes a job's own row.
pub(super) const DELETE_JOB: &str = "DELETE FROM jobs WHERE id = ?1";

/// Deletes a job's tasks.
pub(super) const DELETE_TASKS: &str = "DELETE FROM tasks WHERE job = ?1";

/// Moves the next job number to ?1 unless it is past it already.
pub(super) const RAISE_NEXT_NUMBER: &str =
    "UPDATE meta SET value = max(value, ?1) WHERE key = 'next_number'";

/// The next job number.
pub(super) const SELECT_NEXT_NUMBER: &str = "SELECT value FROM meta WHERE key = 'next_number'";

/// Reads every job in id order; the columns are in table order.
pub(super) const SELECT_JOBS: &str = "SELECT id, number, name, queue, kind, submitter, runs, \
    timeout_ms, max_attempts, priority, after, paused, created_at, ended_at, gpus, \
    gpu_memory_mib FROM jobs ORDER BY id";

/// Reads every task in job order, then index order; the columns are in table order.
pub(super) const SELECT_TASKS: &str = "SELECT job, idx, frames, args, state, max_attempts, \
    ended_at, attempts, result, failure FROM tasks ORDER BY job, idx";

/// Marks a queue paused.
pub(super) const PAUSE_QUEUE: &str = "INSERT OR IGNORE INTO paused_queues (queue) VALUES (?1)";

/// Lets a paused queue go.
pub(super) const RESUME_QUEUE: &str = "DELETE FROM paused_queues WHERE queue = ?1";

/// Reads the paused queues.
pub(super) const SELECT_PAUSED_QUEUES: &str = "SELECT queue FROM paused_queues ORDER BY queue";

/// What a row is about, for error messages.
#[derive(Clone, Copy)]
pub(super) enum Subject {
    /// A job.
    Job(JobId),
    /// A task.
    Task(TaskId),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Job(id) => write!(f, "job {id}"),
            Subject::Task(id) => write!(f, "task {id}"),
        }
    }
}

/// A `u64` as an SQLite integer, or an error naming what it is.
pub(super) fn to_sql_int(value: u64, what: &str, subject: Subject) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::Database(format!(
            "could not store {subject}: {what} {value} is too large to store"
        ))
    })
}

/// An optional timestamp as an SQLite integer.
fn to_sql_time(
    time: Option<Timestamp>,
    what: &str,
    subject: Subject,
) -> Result<Option<i64>, StoreError> {
    time.map(|t| to_sql_int(t.0, what, subject)).transpose()
}

/// The encodings of empty lists, bound for the many rows that have one without encoding
/// it again.
#[derive(Debug)]
pub(super) struct Encodings {
    /// An empty attempts list: every new task's.
    no_attempts: Vec<u8>,
    /// An empty dependency list: most jobs'.
    no_dependencies: Vec<u8>,
}

impl Encodings {
    /// Encodes the empty lists once.
    pub(super) fn new() -> Result<Encodings, String> {
        Ok(Encodings {
            no_attempts: encode_value(&Vec::<Attempt>::new())
                .map_err(|e| format!("could not encode an empty attempts list: {e}"))?,
            no_dependencies: encode_value(&Vec::<Dependency>::new())
                .map_err(|e| format!("could not encode an empty dependency list: {e}"))?,
        })
    }

    /// Encodes an attempts list, reusing the encoding of an empty one.
    fn attempts<'a>(
        &'a self,
        attempts: &[Attempt],
        subject: Subject,
    ) -> Result<Cow<'a, [u8]>, StoreError> {
        if attempts.is_empty() {
            return Ok(Cow::Borrowed(&self.no_attempts));
        }
        encode_value(&attempts).map(Cow::Owned).map_err(|e| {
            StoreError::Database(format!("could not encode the attempts of {subject}: {e}"))
        })
    }

    /// Encodes a dependency list, reusing the encoding of an empty one.
    pub(super) fn dependencies<'a>(
        &'a self,
        after: &[Dependency],
        subject: Subject,
    ) -> Result<Cow<'a, [u8]>, StoreError> {
        if after.is_empty() {
            return Ok(Cow::Borrowed(&self.no_dependencies));
        }
        encode_value(&after).map(Cow::Owned).map_err(|e| {
            StoreError::Database(format!(
                "could not encode the dependencies of {subject}: {e}"
            ))
        })
    }
}

/// Encodes the failure, if any.
fn encode_failure(
    failure: Option<&Failure>,
    subject: Subject,
) -> Result<Option<Vec<u8>>, StoreError> {
    failure
        .map(|failure| {
            encode_value(failure).map_err(|e| {
                StoreError::Database(format!("could not encode the failure of {subject}: {e}"))
            })
        })
        .transpose()
}

/// Refuses a task state that is never stored: a pause belongs to the task's job or queue.
pub(in crate::store) fn check_state(state: TaskState, task: TaskId) -> Result<(), StoreError> {
    if state == TaskState::Paused {
        return Err(StoreError::Database(format!(
            "could not store task {task}: its state is paused, which is never stored (a \
             paused task is stored as queued and the pause on its job or queue)"
        )));
    }
    Ok(())
}

/// Refuses a job that cannot be stored as it is: one without tasks, or with tasks that are
/// not its own `0, 1, 2..` in order.
pub(in crate::store) fn check_new_job(job: &StoredJob) -> Result<(), StoreError> {
    let id = job.job.id;
    if job.tasks.is_empty() {
        return Err(StoreError::Database(format!(
            "could not insert job {id}: it has no tasks (a job has at least one)"
        )));
    }
    for (index, task) in job.tasks.iter().enumerate() {
        let expected = u32::try_from(index)
            .ok()
            .map(|index| TaskId::new(id, index));
        if Some(task.status.id) != expected {
            return Err(StoreError::Database(format!(
                "could not insert job {id}: its task at place {index} is task {}, expected \
                 {id}.{index} (tasks are given in index order)",
                task.status.id
            )));
        }
        check_state(task.status.state, task.status.id)?;
    }
    Ok(())
}

/// Whether `error` is a constraint of kind `code` (an `SQLITE_CONSTRAINT_*` extended code).
fn is_constraint(error: &rusqlite::Error, code: std::ffi::c_int) -> bool {
    error
        .sqlite_error()
        .is_some_and(|error| error.extended_code == code)
}

/// Runs the insert statement for a job's own row.
pub(super) fn insert_job(
    stmt: &mut CachedStatement<'_>,
    job: &JobRecord,
    encodings: &Encodings,
    path: &Path,
) -> Result<(), StoreError> {
    let id = job.id;
    let subject = Subject::Job(id);
    let after = encodings.dependencies(&job.options.after, subject)?;
    let timeout_ms = job
        .options
        .timeout_ms
        .map(|t| to_sql_int(t, "timeout", subject))
        .transpose()?;
    stmt.execute(params![
        id.0.as_bytes(),
        to_sql_int(job.number, "number", subject)?,
        job.name,
        job.queue,
        job.kind,
        job.submitter,
        job.runs,
        timeout_ms,
        job.options.max_attempts,
        job.options.priority,
        after.as_ref(),
        job.paused,
        to_sql_int(job.created_at.0, "creation time", subject)?,
        to_sql_time(job.ended_at, "end time", subject)?,
        job.options.gpus.count,
        to_sql_int(job.options.gpus.memory_mib, "GPU memory", subject)?,
    ])
    .map_err(|e| {
        if is_constraint(&e, rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) {
            StoreError::Database(format!(
                "could not insert job {id}: a job with this id is already stored"
            ))
        } else if is_constraint(&e, rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE) {
            StoreError::Database(format!(
                "could not insert job {id}: another stored job has its number {}",
                job.number
            ))
        } else {
            write_error(path, &format!("could not insert job {id}"), &e)
        }
    })?;
    Ok(())
}

/// Runs the insert statement for one task of a job just inserted.
pub(super) fn insert_task(
    stmt: &mut CachedStatement<'_>,
    task: &StoredTask,
    encodings: &Encodings,
    path: &Path,
) -> Result<(), StoreError> {
    let status = &task.status;
    let id = status.id;
    let subject = Subject::Task(id);
    let attempts = encodings.attempts(&status.attempts, subject)?;
    let failure = encode_failure(status.failure.as_ref(), subject)?;
    stmt.execute(params![
        id.job.0.as_bytes(),
        id.index,
        status.frames,
        task.args,
        status.state.as_str(),
        status.max_attempts,
        to_sql_time(status.ended_at, "end time", subject)?,
        attempts.as_ref(),
        status.result.as_deref(),
        failure,
    ])
    .map_err(|e| {
        if is_constraint(&e, rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE) {
            StoreError::Database(format!(
                "could not insert task {id}: a task with this id is already stored"
            ))
        } else {
            write_error(path, &format!("could not insert task {id}"), &e)
        }
    })?;
    Ok(())
}

/// Runs the update statement for a job's own row; the job must be stored.
pub(super) fn update_job(
    stmt: &mut CachedStatement<'_>,
    job: &JobRecord,
    path: &Path,
) -> Result<(), StoreError> {
    let id = job.id;
    let changed = stmt
        .execute(params![
            id.0.as_bytes(),
            job.options.priority,
            job.paused,
            to_sql_time(job.ended_at, "end time", Subject::Job(id))?,
        ])
        .map_err(|e| write_error(path, &format!("could not update job {id}"), &e))?;
    if changed == 0 {
        return Err(StoreError::Database(format!(
            "could not update job {id}: it is not stored"
        )));
    }
    Ok(())
}

/// Runs the update statement for a task; the task must be stored.
pub(super) fn update_task(
    stmt: &mut CachedStatement<'_>,
    status: &TaskStatus,
    encodings: &Encodings,
    path: &Path,
) -> Result<(), StoreError> {
    let id = status.id;
    let subject = Subject::Task(id);
    check_state(status.state, id)?;
    let attempts = encodings.attempts(&status.attempts, subject)?;
    let failure = encode_failure(status.failure.as_ref(), subject)?;
    let changed = stmt
        .execute(params![
            id.job.0.as_bytes(),
            id.index,
            status.state.as_str(),
            status.max_attempts,
            to_sql_time(status.ended_at, "end time", subject)?,
            attempts.as_ref(),
            status.result.as_deref(),
            failure,
        ])
        .map_err(|e| write_error(path, &format!("could not update task {id}"), &e))?;
    if changed == 0 {
        return Err(StoreError::Database(format!(
            "could not update task {id}: it is not stored"
        )));
    }
    Ok(())
}

/// The columns of one row, read with the error saying which column is wrong.
struct Columns<'a, 'stmt> {
    /// The row.
    row: &'a Row<'stmt>,
}

impl Columns<'_, '_> {
    /// Column `index` as SQLite has it.
    fn value(&self, index: usize) -> Result<ValueRef<'_>, String> {
        self.row
            .get_ref(index)
            .map_err(|e| format!("column {index} is missing ({e})"))
    }

    /// A text column that may be null.
    fn optional_text(&self, index: usize, name: &str) -> Result<Option<String>, String> {
        match self.value(index)? {
            ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec())
                .map(Some)
                .map_err(|_| format!("its {name} is not valid utf-8")),
            ValueRef::Null => Ok(None),
            other => Err(format!("its {name} is of type {}", other.data_type())),
        }
    }

    /// A text column.
    fn text(&self, index: usize, name: &str) -> Result<String, String> {
        self.optional_text(index, name)?
            .ok_or_else(|| format!("its {name} is null"))
    }

    /// A blob column that may be null.
    fn blob(&self, index: usize, name: &str) -> Result<Option<&[u8]>, String> {
        match self.value(index)? {
            ValueRef::Blob(bytes) => Ok(Some(bytes)),
            ValueRef::Null => Ok(None),
            other => Err(format!("its {name} is of type {}", other.data_type())),
        }
    }

    /// An integer column that may be null.
    fn optional_int(&self, index: usize, name: &str) -> Result<Option<i64>, String> {
        match self.value(index)? {
            ValueRef::Integer(value) => Ok(Some(value)),
            ValueRef::Null => Ok(None),
            other => Err(format!("its {name} is of type {}", other.data_type())),
        }
    }

    /// An integer column of type `T` that may be null.
    fn optional<T: TryFrom<i64>>(&self, index: usize, name: &str) -> Result<Option<T>, String> {
        self.optional_int(index, name)?
            .map(|value| {
                T::try_from(value).map_err(|_| format!("its {name} {value} is out of range"))
            })
            .transpose()
    }

    /// An integer column of type `T`.
    fn required<T: TryFrom<i64>>(&self, index: usize, name: &str) -> Result<T, String> {
        self.optional(index, name)?
            .ok_or_else(|| format!("its {name} is null"))
    }
}

/// Decodes a job's row but for its id (column 0), which the caller decoded to name the job
/// in errors; the error says which column is wrong.
pub(super) fn decode_job(id: JobId, row: &Row<'_>) -> Result<JobRecord, String> {
    let columns = Columns { row };
    let after = match columns.blob(10, "after")? {
        Some(bytes) => decode_value::<Vec<Dependency>>(bytes)
            .map_err(|e| format!("its dependencies cannot be decoded: {e}"))?,
        None => Vec::new(),
    };
    let paused = match columns.required::<i64>(11, "paused")? {
        0 => false,
        1 => true,
        other => return Err(format!("its paused flag is {other}, not 0 or 1")),
    };
    Ok(JobRecord {
        id,
        number: columns.required(1, "number")?,
        name: columns.text(2, "name")?,
        queue: columns.text(3, "queue")?,
        kind: columns.text(4, "kind")?,
        submitter: columns.text(5, "submitter")?,
        runs: columns.text(6, "runs")?,
        options: JobOptions {
            timeout_ms: columns.optional(7, "timeout")?,
            max_attempts: columns.required(8, "max_attempts")?,
            priority: columns.required(9, "priority")?,
            after,
            gpus: buildcat_proto::GpuRequirement {
                count: columns.required(14, "gpus")?,
                memory_mib: columns.required(15, "gpu_memory_mib")?,
            },
        },
        paused,
        created_at: Timestamp(columns.required(12, "created_at")?),
        ended_at: columns.optional(13, "ended_at")?.map(Timestamp),
    })
}

/// Decodes a task's row but for its job and index (columns 0 and 1), which the caller
/// decoded to find its job; the error says which column is wrong.
pub(super) fn decode_task(
    id: TaskId,
    job: &JobRecord,
    row: &Row<'_>,
) -> Result<StoredTask, String> {
    let columns = Columns { row };
    let state = columns.text(4, "state")?.parse::<TaskState>()?;
    if state == TaskState::Paused {
        return Err(
            "its state is paused, which is never stored (a pause belongs to its job or queue)"
                .to_owned(),
        );
    }
    let attempts: Vec<Attempt> = match columns.blob(7, "attempts")? {
        Some(bytes) => decode_attempts(bytes)?,
        None => Vec::new(),
    };
    let failure: Option<Failure> = columns
        .blob(9, "failure")?
        .map(decode_failure)
        .transpose()?;
    Ok(StoredTask {
        status: TaskStatus {
            id,
            number: job.number,
            kind: job.kind.clone(),
            frames: columns.optional_text(2, "frames")?,
            state,
            max_attempts: columns.required(5, "max_attempts")?,
            ended_at: columns.optional(6, "ended_at")?.map(Timestamp),
            attempts,
            result: columns.blob(8, "result")?.map(<[u8]>::to_vec),
            failure,
            progress: None,
        },
        args: columns.blob(3, "args")?.unwrap_or_default().to_vec(),
        output: OutputExtent::default(),
    })
}

/// Decodes an id column; the error says what is wrong with it.
pub(super) fn decode_id(value: ValueRef<'_>) -> Result<JobId, String> {
    let bytes = match value {
        ValueRef::Blob(bytes) => bytes,
        other => {
            return Err(format!(
                "a job has an id of type {}, expected a blob",
                other.data_type()
            ));
        }
    };
    <[u8; ID_LEN]>::try_from(bytes)
        .map(|bytes| JobId(Uuid::from_bytes(bytes)))
        .map_err(|_| {
            format!(
                "a job has an id of {} bytes, expected {ID_LEN}",
                bytes.len()
            )
        })
}

/// Decodes a task index column; the error says what is wrong with it.
pub(super) fn decode_index(job: JobId, value: ValueRef<'_>) -> Result<u32, String> {
    match value {
        ValueRef::Integer(index) => u32::try_from(index)
            .map_err(|_| format!("job {job} has a task of index {index}, out of range")),
        other => Err(format!(
            "job {job} has a task index of type {}, expected an integer",
            other.data_type()
        )),
    }
}
