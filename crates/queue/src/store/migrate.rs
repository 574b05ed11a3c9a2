//! Copying a farm's whole state from one store to another (`buildcat migrate`), through
//! the [`Store`] trait only, so every direction works (SQLite to PostgreSQL is the common
//! one).
//!
//! The source is read with [`Store::load`] and [`Store::read_output`]; the target gets the
//! same jobs, tasks (states, attempts, results, failures), output chunks (at their offsets
//! and line numbers, so a gap where output was dropped stays a gap), paused queues and the
//! next job number, through ordinary [`StoreOp`]s. A job and its output go in one commit, so
//! memory holds one job's output at a time rather than the farm's.
//!
//! Both stores are opened the way a server opens them, so each is held for the length of
//! the copy: a server running on the source makes its opening fail (its file's lock, its
//! advisory lock), and no server can start on the target half-way.

use buildcat_proto::{JobId, JobOptions, TaskId, TaskState, TaskStatus, Timestamp};

use super::{JobRecord, Loaded, OutputExtent, Store, StoreError, StoreOp, StoredJob, StoredTask};

/// How much output one page read from the source holds, and so one chunk written to the
/// target: large enough that a long log is a few hundred rows, small enough to keep the
/// commit of one job's output modest in memory.
const PAGE_BYTES: usize = 256 * 1024;

/// What a copy moved, for the command's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Copied {
    /// Jobs copied.
    pub jobs: u64,
    /// Tasks copied, over all jobs.
    pub tasks: u64,
    /// Tasks that had finished (done, failed or canceled), to compare with `jobs`' views.
    pub ended_tasks: u64,
    /// Chunks of task output copied.
    pub output_chunks: u64,
    /// Bytes of task output copied (what was dropped for being too long is not there).
    pub output_bytes: u64,
    /// Queues a person paused.
    pub paused_queues: u64,
    /// The number the next job gets in the target, as in the source.
    pub next_number: u64,
}

/// Why a copy did not happen or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The target holds a farm already: copying into it would mix two farms.
    #[error(
        "the target is not empty (it holds {jobs} jobs, {paused} paused queues, next job number {next}); \
         migrate copies into new storage only: give an empty database or a new file"
    )]
    TargetNotEmpty {
        /// Jobs the target holds.
        jobs: usize,
        /// Paused queues it holds.
        paused: usize,
        /// Its next job number (1 when new).
        next: u64,
    },
    /// Reading the source failed.
    #[error("could not read the source: {0}")]
    Source(#[source] StoreError),
    /// Writing the target failed after `copied` jobs went in.
    #[error(
        "could not write the target after {copied} of {total} jobs: {error}; the target holds \
         part of the farm now: empty it (drop and create the database again, or remove the \
         file) before migrating again"
    )]
    Target {
        /// Jobs committed before the failure.
        copied: u64,
        /// Jobs in the source.
        total: usize,
        /// What failed.
        #[source]
        error: StoreError,
    },
}

/// Whether `loaded` is what a new store holds.
fn is_empty(loaded: &Loaded) -> bool {
    loaded.jobs.is_empty() && loaded.paused_queues.is_empty() && loaded.next_number <= 1
}

/// Copies everything `from` holds into `to`, which must be empty.
///
/// # Errors
/// When `to` is not empty, reading `from` fails, or writing `to` fails (the target then
/// holds the jobs copied so far, as the error says).
pub fn copy(from: &mut dyn Store, to: &mut dyn Store) -> Result<Copied, MigrateError> {
    let target = to.load().map_err(|error| MigrateError::Target {
        copied: 0,
        total: 0,
        error,
    })?;
    if !is_empty(&target) {
        return Err(MigrateError::TargetNotEmpty {
            jobs: target.jobs.len(),
            paused: target.paused_queues.len(),
            next: target.next_number,
        });
    }
    let source = from.load().map_err(MigrateError::Source)?;
    let total = source.jobs.len();
    let mut copied = Copied::default();
    let target_err = |copied: &Copied, error| MigrateError::Target {
        copied: copied.jobs,
        total,
        error,
    };
    for job in &source.jobs {
        let mut ops = vec![StoreOp::Insert(job.clone())];
        for task in &job.tasks {
            copy_output(from, task, &mut ops, &mut copied)?;
            copied.tasks += 1;
            if task.status.state.is_terminal() {
                copied.ended_tasks += 1;
            }
        }
        to.commit(&ops)
            .map_err(|error| target_err(&copied, error))?;
        copied.jobs += 1;
    }
    let mut ops: Vec<StoreOp> = source
        .paused_queues
        .iter()
        .map(|queue| StoreOp::PauseQueue {
            queue: queue.clone(),
            paused: true,
        })
        .collect();
    copied.paused_queues = ops.len() as u64;
    let highest = source.jobs.iter().map(|job| job.job.number).max();
    if source.next_number > highest.map_or(1, |highest| highest + 1) {
        // Jobs deleted after the newest kept one had the numbers in between; the trait has
        // no op that sets the next number alone, so a stand-in for the last of them is
        // inserted and deleted in the same commit, which is what happened in the source.
        let stand_in = stand_in(source.next_number - 1);
        ops.push(StoreOp::Delete(stand_in.job.id));
        ops.insert(ops.len() - 1, StoreOp::Insert(stand_in));
    }
    to.commit(&ops)
        .map_err(|error| target_err(&copied, error))?;
    copied.next_number = source.next_number.max(1);
    Ok(copied)
}

/// Appends to `ops` the output `task` printed, read from `from` a page at a time, each page
/// one chunk at the offset and line it had.
fn copy_output(
    from: &mut dyn Store,
    task: &StoredTask,
    ops: &mut Vec<StoreOp>,
    copied: &mut Copied,
) -> Result<(), MigrateError> {
    let id = task.status.id;
    let OutputExtent { bytes: end, .. } = task.output;
    let (mut at, mut line) = (0u64, 0u64);
    while at < end {
        let page = from
            .read_output(id, at, PAGE_BYTES)
            .map_err(MigrateError::Source)?;
        if let Some(dropped) = &page.dropped {
            line += dropped.lines;
        }
        if page.lines.is_empty() || page.next <= at {
            break;
        }
        let lines = page.lines.len() as u64;
        let mut text = String::with_capacity(usize::try_from(page.next - page.offset).unwrap_or(0));
        for printed in &page.lines {
            text.push_str(printed);
            text.push('\n');
        }
        copied.output_chunks += 1;
        copied.output_bytes += text.len() as u64;
        ops.push(StoreOp::AppendOutput {
            task: id,
            offset: page.offset,
            line,
            lines,
            text,
            stderr: page.stderr,
        });
        line += lines;
        at = page.next;
    }
    Ok(())
}

/// A job that is inserted and deleted in one commit, only to move the target's next job
/// number past `number` as the source's deleted jobs did.
fn stand_in(number: u64) -> StoredJob {
    // The nil UUID is never a real job's id (those are v7), so it meets no stored job.
    let id = JobId(uuid::Uuid::nil());
    StoredJob {
        job: JobRecord {
            id,
            number,
            name: "migrate: deleted jobs' numbers".to_owned(),
            queue: "default".to_owned(),
            kind: "command".to_owned(),
            submitter: "buildcat migrate".to_owned(),
            runs: String::new(),
            options: JobOptions::default(),
            paused: false,
            created_at: Timestamp(0),
            ended_at: None,
        },
        tasks: vec![StoredTask {
            status: TaskStatus {
                id: TaskId::new(id, 0),
                number,
                kind: "command".to_owned(),
                frames: None,
                state: TaskState::Queued,
                max_attempts: 1,
                ended_at: None,
                attempts: Vec::new(),
                result: None,
                failure: None,
                progress: None,
            },
            args: Vec::new(),
            output: OutputExtent::default(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;
    use crate::store::sqlite::{SqliteOptions, SqliteStore};

    /// Guards issue 17's migrate: jobs, tasks, output with a dropped middle, paused queues
    /// and a next number past deleted jobs all arrive; a second copy into the same target
    /// is refused.
    #[test]
    fn copies_everything_and_refuses_a_non_empty_target() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut from = SqliteStore::open(&dir.path().join("from.db"), SqliteOptions::default())
            .expect("the source opens");
        let context = uuid::ContextV7::new();
        let id = |millis| conformance::new_id(&context, millis);
        let first = conformance::job_of(id(1), 1, 2);
        let second = conformance::full_job(id(2), 2, Vec::new());
        let deleted = conformance::plain_job(id(3), 3);
        let task = first.tasks[1].status.id;
        let text =
            |from: u64, to: u64| -> String { (from..to).map(|n| format!("line {n}\n")).collect() };
        from.commit(&[
            StoreOp::Insert(first.clone()),
            StoreOp::Insert(second.clone()),
            StoreOp::Insert(deleted.clone()),
            StoreOp::AppendOutput {
                task,
                offset: 0,
                line: 0,
                lines: 3,
                text: text(0, 3),
                stderr: vec![1],
            },
        ])
        .expect("the source takes jobs");
        let after_first: u64 = text(0, 3).len() as u64;
        let middle: String = text(3, 5);
        let last_at = after_first + middle.len() as u64;
        from.commit(&[
            StoreOp::AppendOutput {
                task,
                offset: after_first,
                line: 3,
                lines: 2,
                text: middle,
                stderr: Vec::new(),
            },
            StoreOp::AppendOutput {
                task,
                offset: last_at,
                line: 5,
                lines: 2,
                text: text(5, 7),
                stderr: vec![0],
            },
            StoreOp::DropOutput {
                task,
                from: after_first,
                to: last_at,
            },
            StoreOp::Delete(deleted.job.id),
            StoreOp::PauseQueue {
                queue: "night".to_owned(),
                paused: true,
            },
        ])
        .expect("the source takes output");
        let mut to = SqliteStore::open(&dir.path().join("to.db"), SqliteOptions::default())
            .expect("the target opens");
        let copied = copy(&mut from, &mut to).expect("the copy succeeds");
        assert_eq!(copied.jobs, 2);
        assert_eq!(copied.tasks, 2 + second.tasks.len() as u64);
        assert_eq!(copied.paused_queues, 1);
        assert_eq!(copied.next_number, 4);

        let source = from.load().expect("the source loads");
        let target = to.load().expect("the target loads");
        assert_eq!(target, source, "the target loads as the source does");
        for at in [0, after_first, last_at] {
            assert_eq!(
                to.read_output(task, at, PAGE_BYTES).expect("target output"),
                from.read_output(task, at, PAGE_BYTES)
                    .expect("source output"),
                "the page from {at} is the same"
            );
        }
        let again = copy(&mut from, &mut to).expect_err("a second copy is refused");
        assert!(
            matches!(again, MigrateError::TargetNotEmpty { jobs: 2, .. }),
            "{again}"
        );
    }
}
