//! How a job, its tasks and their output are written to and read from rows in PostgreSQL,
//! with the same encodings as SQLite's (`store/sqlite/rows.rs`): ids as their 16 bytes,
//! dependencies, attempts and failures in the protocol's encoding, times as milliseconds.

use buildcat_proto::codec::{decode_value, encode_value};
use buildcat_proto::{
    Attempt, Dependency, Failure, JobId, JobOptions, TaskId, TaskState, TaskStatus, Timestamp,
};
use postgres::Row;
use uuid::Uuid;

use crate::store::blobs::{decode_attempts, decode_failure};
use crate::store::page::Chunk;
use crate::store::{JobRecord, OutputExtent, StoreError, StoredTask};

/// Inserts a job; the parameters are the columns in table order.
pub(super) const INSERT_JOB: &str = "INSERT INTO buildcat.jobs (id, number, name, queue, kind, \
    submitter, runs, timeout_ms, max_attempts, priority, after, paused, created_at, ended_at, \
    gpus, gpu_memory_mib) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

/// Inserts a task; the parameters are the columns in table order.
pub(super) const INSERT_TASK: &str = "INSERT INTO buildcat.tasks (job, idx, frames, args, \
    state, max_attempts, ended_at, attempts, result, failure) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// The highest task index of a job (NULL when the job has no tasks stored).
pub(super) const LAST_TASK_INDEX: &str = "SELECT max(idx) FROM buildcat.tasks WHERE job = $1";

/// Updates a job's mutable columns.
pub(super) const UPDATE_JOB: &str =
    "UPDATE buildcat.jobs SET priority = $2, paused = $3, ended_at = $4 WHERE id = $1";

/// Updates a task's mutable columns.
pub(super) const UPDATE_TASK: &str = "UPDATE buildcat.tasks SET state = $3, max_attempts = $4, \
    ended_at = $5, attempts = $6, result = $7, failure = $8 WHERE job = $1 AND idx = $2";

/// Deletes a job's own row.
pub(super) const DELETE_JOB: &str = "DELETE FROM buildcat.jobs WHERE id = $1";

/// Deletes a job's tasks.
pub(super) const DELETE_TASKS: &str = "DELETE FROM buildcat.tasks WHERE job = $1";

/// Deletes a job's output.
pub(super) const DELETE_OUTPUT: &str = "DELETE FROM buildcat.output WHERE job = $1";

/// Moves the next job number to $1 unless it is past it already.
pub(super) const RAISE_NEXT_NUMBER: &str =
    "UPDATE buildcat.meta SET next_number = GREATEST(next_number, $1)";

/// Marks a queue paused.
pub(super) const PAUSE_QUEUE: &str =
    "INSERT INTO buildcat.paused_queues (queue) VALUES ($1) ON CONFLICT DO NOTHING";

/// Lets a paused queue go.
pub(super) const RESUME_QUEUE: &str = "DELETE FROM buildcat.paused_queues WHERE queue = $1";

/// Appends a chunk of output; the parameters are the columns in table order.
pub(super) const APPEND_OUTPUT: &str = "INSERT INTO buildcat.output (job, task, byte_offset, \
    first_line, lines, text, stderr) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Drops the chunks of task $1.$2 that lie wholly within bytes $3..$4.
pub(super) const DROP_OUTPUT: &str = "DELETE FROM buildcat.output WHERE job = $1 AND task = $2 \
    AND byte_offset >= $3 AND byte_offset < $4 AND byte_offset + length(text) <= $4";

/// Fences a commit: holds the meta row while the commit runs, and finds it only while the
/// term is still this server's. A server that became active since has bumped it (and a
/// bump waits for this lock), so the commit of a server that lost its place finds nothing.
pub(super) const CHECK_TERM: &str = "SELECT 1 FROM buildcat.meta WHERE term = $1 FOR SHARE";

/// Reads every job in id order; the columns are in table order.
pub(super) const SELECT_JOBS: &str = "SELECT id, number, name, queue, kind, submitter, runs, \
    timeout_ms, max_attempts, priority, after, paused, created_at, ended_at, gpus, \
    gpu_memory_mib FROM buildcat.jobs ORDER BY id";

/// Reads every task in job order, then index order; the columns are in table order.
pub(super) const SELECT_TASKS: &str = "SELECT job, idx, frames, args, state, max_attempts, \
    ended_at, attempts, result, failure FROM buildcat.tasks ORDER BY job, idx";

/// Where each task's output ends.
pub(super) const SELECT_EXTENTS: &str = "SELECT job, task, max(byte_offset + length(text)), \
    max(first_line + lines) FROM buildcat.output GROUP BY job, task";

/// The chunk of task $1.$2 that starts at or before byte $3, the latest such.
pub(super) const SELECT_CHUNK_AT: &str = "SELECT byte_offset, first_line, lines, text, \
    stderr FROM buildcat.output WHERE job = $1 AND task = $2 AND byte_offset <= $3 \
    ORDER BY byte_offset DESC LIMIT 1";

/// The chunks of task $1.$2 that start after byte $3, in order.
pub(super) const SELECT_CHUNKS_AFTER: &str = "SELECT byte_offset, first_line, lines, text, \
    stderr FROM buildcat.output WHERE job = $1 AND task = $2 AND byte_offset > $3 \
    ORDER BY byte_offset";

/// A `u64` as a PostgreSQL `BIGINT`, or the error that names it.
pub(super) fn to_sql(
    value: u64,
    what: &str,
    subject: &dyn std::fmt::Display,
) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::Database(format!(
            "could not store {subject}: {what} {value} is too large to store"
        ))
    })
}

/// An optional timestamp as a `BIGINT`.
pub(super) fn to_sql_time(
    time: Option<Timestamp>,
    what: &str,
    subject: &dyn std::fmt::Display,
) -> Result<Option<i64>, StoreError> {
    time.map(|t| to_sql(t.0, what, subject)).transpose()
}

/// Encodes a value of a row (dependencies, attempts, a failure).
pub(super) fn encode<T: serde::Serialize>(
    value: &T,
    what: &str,
    subject: &dyn std::fmt::Display,
) -> Result<Vec<u8>, StoreError> {
    encode_value(value)
        .map_err(|e| StoreError::Database(format!("could not encode the {what} of {subject}: {e}")))
}

/// Decodes an id column.
pub(super) fn decode_id(bytes: &[u8]) -> Result<JobId, String> {
    <[u8; 16]>::try_from(bytes)
        .map(|bytes| JobId(Uuid::from_bytes(bytes)))
        .map_err(|_| format!("a job has an id of {} bytes, expected 16", bytes.len()))
}

/// Column `index` of `row` as `T`, the error naming the column.
fn get<'a, T: postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
    name: &str,
) -> Result<T, String> {
    row.try_get(index)
        .map_err(|e| format!("its {name} cannot be read ({e})"))
}

/// A `BIGINT` column as an unsigned type, the error naming the column.
fn unsigned<T: TryFrom<i64>>(value: i64, name: &str) -> Result<T, String> {
    T::try_from(value).map_err(|_| format!("its {name} {value} is out of range"))
}

/// Decodes a job's row but for its id, which the caller decoded to name the job in errors.
pub(super) fn decode_job(id: JobId, row: &Row) -> Result<JobRecord, String> {
    let after: Vec<u8> = get(row, 10, "after")?;
    let after: Vec<Dependency> =
        decode_value(&after).map_err(|e| format!("its dependencies cannot be decoded: {e}"))?;
    let timeout: Option<i64> = get(row, 7, "timeout")?;
    let ended: Option<i64> = get(row, 13, "ended_at")?;
    Ok(JobRecord {
        id,
        number: unsigned(get(row, 1, "number")?, "number")?,
        name: get(row, 2, "name")?,
        queue: get(row, 3, "queue")?,
        kind: get(row, 4, "kind")?,
        submitter: get(row, 5, "submitter")?,
        runs: get(row, 6, "runs")?,
        options: JobOptions {
            timeout_ms: timeout.map(|t| unsigned(t, "timeout")).transpose()?,
            max_attempts: unsigned(get(row, 8, "max_attempts")?, "max_attempts")?,
            priority: get(row, 9, "priority")?,
            after,
            gpus: buildcat_proto::GpuRequirement {
                count: unsigned(get(row, 14, "gpus")?, "gpus")?,
                memory_mib: unsigned(get(row, 15, "gpu_memory_mib")?, "gpu_memory_mib")?,
            },
        },
        paused: get(row, 11, "paused")?,
        created_at: Timestamp(unsigned(get(row, 12, "created_at")?, "created_at")?),
        ended_at: ended
            .map(|t| unsigned(t, "ended_at").map(Timestamp))
            .transpose()?,
    })
}

/// Decodes a task's row but for its job and index, which the caller decoded to find its
/// job.
pub(super) fn decode_task(id: TaskId, job: &JobRecord, row: &Row) -> Result<StoredTask, String> {
    let state = get::<String>(row, 4, "state")?.parse::<TaskState>()?;
    if state == TaskState::Paused {
        return Err(
            "its state is paused, which is never stored (a pause belongs to its job or queue)"
                .to_owned(),
        );
    }
    let attempts: Vec<u8> = get(row, 7, "attempts")?;
    let attempts: Vec<Attempt> = decode_attempts(&attempts)?;
    let failure: Option<Vec<u8>> = get(row, 9, "failure")?;
    let failure: Option<Failure> = failure.map(|bytes| decode_failure(&bytes)).transpose()?;
    let ended: Option<i64> = get(row, 6, "ended_at")?;
    Ok(StoredTask {
        status: TaskStatus {
            id,
            number: job.number,
            kind: job.kind.clone(),
            frames: get(row, 2, "frames")?,
            state,
            max_attempts: unsigned(get(row, 5, "max_attempts")?, "max_attempts")?,
            ended_at: ended
                .map(|t| unsigned(t, "ended_at").map(Timestamp))
                .transpose()?,
            attempts,
            result: get(row, 8, "result")?,
            failure,
            progress: None,
        },
        args: get(row, 3, "args")?,
        output: OutputExtent::default(),
    })
}

/// Decodes a task's job and index (columns 0 and 1).
pub(super) fn decode_task_id(row: &Row) -> Result<TaskId, String> {
    let job: Vec<u8> = get(row, 0, "job")?;
    let job = decode_id(&job)?;
    let index: i64 = get(row, 1, "index")?;
    let index = u32::try_from(index)
        .map_err(|_| format!("job {job} has a task of index {index}, out of range"))?;
    Ok(TaskId::new(job, index))
}

/// Decodes a row of `byte_offset, first_line, lines, text, stderr`.
pub(super) fn decode_chunk(row: &Row) -> Result<Chunk, String> {
    Ok(Chunk {
        offset: unsigned(get(row, 0, "offset")?, "offset")?,
        line: unsigned(get(row, 1, "line")?, "line")?,
        lines: unsigned(get(row, 2, "line count")?, "line count")?,
        text: get(row, 3, "text")?,
        stderr: crate::store::page::stderr_from_bytes(get(row, 4, "stderr")?),
    })
}

/// The task's status as the parameters of [`UPDATE_TASK`] after its id: state,
/// max_attempts, ended_at, attempts, result, failure.
pub(super) struct TaskColumns {
    /// The state's name, as the table stores it.
    pub(super) state: &'static str,
    /// The attempts a requeue may have raised.
    pub(super) max_attempts: i64,
    /// When it ended, if it has.
    pub(super) ended_at: Option<i64>,
    /// The encoded attempts.
    pub(super) attempts: Vec<u8>,
    /// The encoded failure, if any.
    pub(super) failure: Option<Vec<u8>>,
}

impl TaskColumns {
    /// Encodes the mutable part of `status`, refusing a state that is never stored.
    pub(super) fn of(status: &TaskStatus) -> Result<TaskColumns, StoreError> {
        let id = status.id;
        if status.state == TaskState::Paused {
            return Err(StoreError::Database(format!(
                "could not store task {id}: its state is paused, which is never stored (a \
                 paused task is stored as queued and the pause on its job or queue)"
            )));
        }
        let subject = format!("task {id}");
        Ok(TaskColumns {
            state: status.state.as_str(),
            max_attempts: i64::from(status.max_attempts),
            ended_at: to_sql_time(status.ended_at, "end time", &subject)?,
            attempts: encode(&status.attempts, "attempts", &subject)?,
            failure: status
                .failure
                .as_ref()
                .map(|failure| encode(failure, "failure", &subject))
                .transpose()?,
        })
    }
}
