//! Task output in the `output` table: chunks appended with their byte offset, the middle of
//! a long output dropped, and pages read back.
//!
//! A chunk's `text` holds its lines, each followed by a newline, so offsets count bytes of
//! the output as printed. Chunks of one task follow each other without overlap; a gap
//! between two is output dropped to keep the task within its bound. Rows are keyed by the
//! task's job and index, so a job's output goes with it by one range of the index. A
//! chunk's `stderr` lists which of its lines were stderr (NULL: none), as 4-byte
//! little-endian indexes.

use std::collections::HashMap;
use std::path::Path;

use buildcat_proto::{LogPage, TaskId};
use rusqlite::{CachedStatement, Connection, OptionalExtension, params};

use super::errors::{lowercase_first, write_error};
use super::rows::{decode_id, decode_index};
use crate::store::page::{self, Chunk};
use crate::store::{OutputExtent, StoreError};

/// Appends a chunk; the parameters are the columns in table order.
pub(super) const APPEND_OUTPUT: &str = "INSERT INTO output (job, task, offset, line, lines, \
    text, stderr) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Drops the chunks of task ?1.?2 that lie wholly within bytes ?3..?4.
pub(super) const DROP_OUTPUT: &str = "DELETE FROM output WHERE job = ?1 AND task = ?2 \
    AND offset >= ?3 AND offset < ?4 AND offset + length(text) <= ?4";

/// Deletes all the output of a job's tasks, with the job.
pub(super) const DELETE_OUTPUT: &str = "DELETE FROM output WHERE job = ?1";

/// Where each task's output ends.
const SELECT_EXTENTS: &str = "SELECT job, task, max(offset + length(text)), max(line + lines) \
    FROM output GROUP BY job, task";

/// The chunk of task ?1.?2 that starts at or before byte ?3, the latest such.
const SELECT_CHUNK_AT: &str = "SELECT offset, line, lines, text, stderr FROM output \
    WHERE job = ?1 AND task = ?2 AND offset <= ?3 ORDER BY offset DESC LIMIT 1";

/// The chunks of task ?1.?2 that start after byte ?3, in order.
const SELECT_CHUNKS_AFTER: &str = "SELECT offset, line, lines, text, stderr FROM output \
    WHERE job = ?1 AND task = ?2 AND offset > ?3 ORDER BY offset";

/// An integer column that must fit an `i64`, or the error that names it.
fn to_sql(value: u64, what: &str, task: TaskId) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::Database(format!(
            "could not store output of task {task}: {what} {value} is too large to store"
        ))
    })
}

/// Appends one chunk of a task's output.
pub(super) fn append(
    stmt: &mut CachedStatement<'_>,
    task: TaskId,
    chunk: (u64, u64, u64, &str, &[u32]),
    path: &Path,
) -> Result<(), StoreError> {
    let (offset, line, lines, text, stderr) = chunk;
    let streams = page::stderr_to_bytes(stderr);
    stmt.execute(params![
        task.job.0.as_bytes(),
        task.index,
        to_sql(offset, "offset", task)?,
        to_sql(line, "line", task)?,
        to_sql(lines, "line count", task)?,
        text.as_bytes(),
        streams,
    ])
    .map_err(|e| write_error(path, &format!("could not store output of task {task}"), &e))?;
    Ok(())
}

/// Drops the chunks of `task` wholly within `from..to`.
pub(super) fn drop_range(
    stmt: &mut CachedStatement<'_>,
    task: TaskId,
    from: u64,
    to: u64,
    path: &Path,
) -> Result<(), StoreError> {
    stmt.execute(params![
        task.job.0.as_bytes(),
        task.index,
        to_sql(from, "offset", task)?,
        to_sql(to, "offset", task)?,
    ])
    .map_err(|e| write_error(path, &format!("could not drop output of task {task}"), &e))?;
    Ok(())
}

/// A read failure in words.
fn read_error(e: &rusqlite::Error) -> StoreError {
    StoreError::Database(format!(
        "could not read task output: {}",
        lowercase_first(&e.to_string())
    ))
}

/// Where each task's output ends, for the tasks that have any.
pub(super) fn extents(conn: &Connection) -> Result<HashMap<TaskId, OutputExtent>, StoreError> {
    let mut stmt = conn
        .prepare_cached(SELECT_EXTENTS)
        .map_err(|e| read_error(&e))?;
    let mut rows = stmt.query([]).map_err(|e| read_error(&e))?;
    let mut extents = HashMap::new();
    while let Some(row) = rows.next().map_err(|e| read_error(&e))? {
        let job = decode_id(row.get_ref(0).map_err(|e| read_error(&e))?)
            .map_err(|message| StoreError::Database(format!("task output: {message}")))?;
        let index = decode_index(job, row.get_ref(1).map_err(|e| read_error(&e))?)
            .map_err(|message| StoreError::Database(format!("task output: {message}")))?;
        let bytes: i64 = row.get(2).map_err(|e| read_error(&e))?;
        let lines: i64 = row.get(3).map_err(|e| read_error(&e))?;
        let extent = OutputExtent {
            bytes: u64::try_from(bytes).unwrap_or(0),
            lines: u64::try_from(lines).unwrap_or(0),
        };
        extents.insert(TaskId::new(job, index), extent);
    }
    Ok(extents)
}

/// Reads a row of `offset, line, lines, text, stderr`.
fn chunk_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Chunk> {
    let offset: i64 = row.get(0)?;
    let line: i64 = row.get(1)?;
    let lines: i64 = row.get(2)?;
    Ok(Chunk {
        offset: u64::try_from(offset).unwrap_or(0),
        line: u64::try_from(line).unwrap_or(0),
        lines: u64::try_from(lines).unwrap_or(0),
        text: row.get(3)?,
        stderr: page::stderr_from_bytes(row.get(4)?),
    })
}

/// Up to about `max_bytes` of `task`'s output from byte `from`: see [`Store::read_output`].
///
/// [`Store::read_output`]: crate::store::Store::read_output
pub(super) fn read(
    conn: &Connection,
    task: TaskId,
    from: u64,
    max_bytes: usize,
) -> Result<LogPage, StoreError> {
    let from_sql = i64::try_from(from).unwrap_or(i64::MAX);
    let before = conn
        .prepare_cached(SELECT_CHUNK_AT)
        .map_err(|e| read_error(&e))?
        .query_row(
            params![task.job.0.as_bytes(), task.index, from_sql],
            chunk_from_row,
        )
        .optional()
        .map_err(|e| read_error(&e))?;
    let mut stmt = conn
        .prepare_cached(SELECT_CHUNKS_AFTER)
        .map_err(|e| read_error(&e))?;
    let mut rows = stmt
        .query(params![task.job.0.as_bytes(), task.index, from_sql])
        .map_err(|e| read_error(&e))?;
    page::fill(from, max_bytes, before, || {
        rows.next()
            .map_err(|e| read_error(&e))?
            .map(|row| chunk_from_row(row).map_err(|e| read_error(&e)))
            .transpose()
    })
}

#[cfg(test)]
mod tests {
    use buildcat_proto::TaskId;

    use super::super::{SqliteOptions, SqliteStore};
    use crate::store::conformance::{new_id, plain_job};
    use crate::store::{Store, StoreOp};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Chunk `index` of ten lines of ten bytes: offsets 100 apart, lines 10 apart.
    fn chunk(task: TaskId, index: u64) -> StoreOp {
        let text: String = (0..10)
            .map(|line| format!("{:09}\n", index * 10 + line))
            .collect();
        StoreOp::AppendOutput {
            task,
            offset: index * 100,
            line: index * 10,
            lines: 10,
            text,
            stderr: Vec::new(),
        }
    }

    #[test]
    fn pages_stop_at_a_gap_and_the_next_says_what_was_dropped() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut store = SqliteStore::open(&dir.path().join("b.db"), SqliteOptions::default())?;
        let job = new_id(&uuid::ContextV7::new(), 1);
        let task = TaskId::new(job, 0);
        let mut ops = vec![StoreOp::Insert(plain_job(job, 1))];
        ops.extend((0..10).map(|index| chunk(task, index)));
        // Chunks 2 to 6 go; chunk 7 reaches past 750, so it stays.
        ops.push(StoreOp::DropOutput {
            task,
            from: 200,
            to: 750,
        });
        store.commit(&ops)?;
        let head = store.read_output(task, 0, 10_000)?;
        assert_eq!(head.lines.len(), 20);
        assert_eq!((head.offset, head.next, head.dropped), (0, 200, None));
        let tail = store.read_output(task, head.next, 10_000)?;
        let dropped = tail.dropped.expect("the gap is reported");
        assert_eq!((dropped.bytes, dropped.lines), (500, 50));
        assert_eq!(tail.offset, 700);
        assert_eq!(tail.lines.first().map(String::as_str), Some("000000070"));
        assert_eq!((tail.lines.len(), tail.next), (30, 1_000));
        // From inside a line: the page starts at the next whole line.
        let inside = store.read_output(task, 105, 25)?;
        assert_eq!(inside.offset, 110);
        assert_eq!(inside.lines, ["000000011", "000000012"]);
        assert_eq!(inside.next, 130);
        // Past the end: nothing, and `next` stays.
        let past = store.read_output(task, 1_000, 100)?;
        assert!(past.lines.is_empty() && past.next == 1_000);
        // The extent survives a reopen; deleting the job deletes its output.
        drop(store);
        let mut store = SqliteStore::open(&dir.path().join("b.db"), SqliteOptions::default())?;
        let loaded = store.load()?;
        let extent = loaded.jobs[0].tasks[0].output;
        assert_eq!((extent.bytes, extent.lines), (1_000, 100));
        store.commit(&[StoreOp::Delete(job)])?;
        assert!(store.read_output(task, 0, 10_000)?.lines.is_empty());
        Ok(())
    }
}
