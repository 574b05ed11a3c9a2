//! SQLite storage: one file, in WAL mode, held exclusively by one server.
//!
//! `schema.rs` holds the layout and its version, `migrate.rs` the rewriting of files of past
//! versions, `rows.rs` the encoding of a job and its tasks as rows, `output.rs` task output
//! as chunks, `errors.rs` SQLite's failures in words. This file opens the store and
//! implements [`Store`].
//!
//! # Locking
//!
//! The connection runs with `PRAGMA locking_mode=EXCLUSIVE`, set before the first access to
//! the file, and takes a write transaction while opening. In WAL mode this makes SQLite take
//! an exclusive lock on the database file when it first reads it and hold it until the
//! connection closes; the WAL index then lives in the process's memory instead of a `-shm`
//! file. Any other connection, in this process or another, gets `SQLITE_BUSY` as long as
//! the store is open, which [`SqliteStore::open`] reports as the file being in use by
//! another server. The lock is SQLite's own, so it is released when the process dies and
//! needs no sidecar file that could be left behind.
//!
//! # The file stays the file
//!
//! A lock does not stop anyone from removing the file (`rm buildcat.db buildcat.db-wal`)
//! or putting another in its place. The store would go on writing into the removed file,
//! which nobody reads again, and a restart would find none of it. So the store notes which
//! file (device and inode) the database and its WAL are when it opens them, and after
//! every commit checks that the paths still name those files. If not, the commit fails
//! with [`StoreError::Lost`], and so does every later one: nothing is acknowledged that a
//! restart would not find.
//!
//! # Durability
//!
//! With [`SqliteOptions::sync`] (the default) the journal is synced on every commit
//! (`synchronous=FULL`): a commit is durable when [`Store::commit`] returns. Without it
//! (`synchronous=OFF`) nothing is synced: a crash of the machine may lose or corrupt
//! recent commits. That mode exists for benchmarks only.

mod errors;
mod migrate;
mod output;
pub(super) mod rows;
mod schema;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use buildcat_proto::{LogPage, TaskId};
use rusqlite::types::ValueRef;
use rusqlite::{CachedStatement, Connection, OpenFlags, TransactionBehavior, params};

use self::errors::{lowercase_first, open_error, write_error};
use self::rows::{Encodings, decode_id, decode_index, decode_job, decode_task};
pub use self::schema::SCHEMA_VERSION;
use super::{Loaded, Store, StoreError, StoreOp, StoredJob};

/// How long a statement waits for a lock held by another connection before failing.
///
/// Once open, the store holds the file exclusively, so this only matters while opening
/// (for instance a server restarting while the previous one is still closing the file). A
/// second server opening a file that is in use fails after waiting this long.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// How many prepared statements the connection keeps: every statement the store runs
/// (about twenty), so that none is prepared again after the first use. SQLite's default of
/// 16 would evict some on every commit that touches them all.
const STATEMENT_CACHE: usize = 32;

/// How a [`SqliteStore`] is opened.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Sync every commit to disk (`synchronous=FULL`). Turning it off (`synchronous=OFF`)
    /// is unsafe: a crash of the machine may lose or corrupt recent commits. It is meant for
    /// benchmarks only.
    pub sync: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions { sync: true }
    }
}

/// Jobs kept in a SQLite file, which the store holds exclusively while it is open.
#[derive(Debug)]
pub struct SqliteStore {
    /// The open connection, in WAL mode with an exclusive lock on the file.
    conn: Connection,
    /// The file, as given to [`SqliteStore::open`], for error messages.
    path: String,
    /// The file, made absolute at open, so that hints and probes look at the right place.
    file: PathBuf,
    /// The files the store writes (the database and its WAL) as they were at open, checked
    /// after every commit so that a removed or replaced file is noticed.
    watched: Vec<Watched>,
    /// Why the store can no longer commit, once it noticed its file removed or replaced:
    /// every later commit fails with it rather than writing into a file nobody reads.
    lost: Option<StoreError>,
    /// The encodings of empty lists, bound for new jobs and tasks without encoding them
    /// again.
    encodings: Encodings,
}

/// A file the store writes, and which file it was at open.
#[derive(Debug)]
struct Watched {
    /// Where the file is.
    path: PathBuf,
    /// Which file was at `path` at open.
    identity: FileIdentity,
}

/// Which file a path names: a file removed and created again, or replaced by a rename, has
/// another identity even if its name and contents are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    /// The device that holds the file.
    device: u64,
    /// The file's inode on that device.
    inode: u64,
}

impl FileIdentity {
    /// The identity of the file at `path`, or the error that says why there is none.
    #[cfg(unix)]
    fn of(path: &Path) -> std::io::Result<FileIdentity> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path)?;
        Ok(FileIdentity {
            device: metadata.dev(),
            inode: metadata.ino(),
        })
    }

    /// Only whether a file is there: other systems have no inode number in `std`.
    #[cfg(not(unix))]
    fn of(path: &Path) -> std::io::Result<FileIdentity> {
        std::fs::metadata(path).map(|_| FileIdentity {
            device: 0,
            inode: 0,
        })
    }
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file and its schema if it does not exist.
    ///
    /// The parent directory must exist. Fails if another server (or any other program)
    /// has the file open, if it is not a SQLite database, if its schema is newer than
    /// this buildcat's, or if the file system refuses writes (read-only, no permission).
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let shown = path.display().to_string();
        let file = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&file, flags).map_err(|e| open_error(&file, &shown, &e))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        configure(&conn, &options, &file, &shown)?;
        let encodings = Encodings::new().map_err(|message| StoreError::Open {
            path: shown.clone(),
            message,
        })?;
        schema::init_schema(&conn, &file, &shown, &encodings)?;
        let watched = watch(&file, &shown)?;
        Ok(SqliteStore {
            conn,
            path: shown,
            file,
            watched,
            lost: None,
            encodings,
        })
    }

    /// An `Incompatible` error about this store's file.
    fn incompatible(&self, message: String) -> StoreError {
        StoreError::Incompatible {
            path: self.path.clone(),
            message,
        }
    }

    /// Checks that the watched files are still the ones opened; the error says which one
    /// was removed or replaced.
    fn check_files(&self) -> Result<(), StoreError> {
        for watched in &self.watched {
            let what = match FileIdentity::of(&watched.path) {
                Ok(identity) if identity == watched.identity => continue,
                Ok(_) => "was replaced by another file",
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "was removed",
                // A path that cannot be looked at (a directory made unreadable, a network
                // mount gone) cannot be vouched for either.
                Err(_) => "can no longer be looked at",
            };
            let name = watched.path.file_name().map_or_else(
                || watched.path.display().to_string(),
                |name| name.to_string_lossy().into_owned(),
            );
            return Err(StoreError::Lost {
                path: self.path.clone(),
                message: format!(
                    "{name} {what} while the server was running, so nothing more can be \
                     stored; restart the server (it starts from the file at that path then, \
                     a fresh one if there is none: jobs stored before were only in the \
                     removed file)"
                ),
            });
        }
        Ok(())
    }
}

/// The files to watch once the store is open: the database, and its WAL, which holds the
/// latest commits until they are checkpointed into the database.
fn watch(file: &Path, shown: &str) -> Result<Vec<Watched>, StoreError> {
    let mut wal = file.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    let mut watched = Vec::with_capacity(2);
    for path in [file.to_owned(), wal] {
        match FileIdentity::of(&path) {
            Ok(identity) => watched.push(Watched { path, identity }),
            // SQLite keeps the WAL while the connection is open, but a file system it
            // cannot create one on has already failed `configure`; the database alone is
            // still worth watching.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !watched.is_empty() => {}
            Err(e) => {
                return Err(StoreError::Open {
                    path: shown.to_owned(),
                    message: format!(
                        "could not look at {} after opening it: {}",
                        path.display(),
                        lowercase_first(&e.to_string())
                    ),
                });
            }
        }
    }
    Ok(watched)
}

/// Sets the pragmas: exclusive locking first (it must precede the first read of the file to
/// keep the WAL index in memory), then WAL, the sync level and the busy timeout.
fn configure(
    conn: &Connection,
    options: &SqliteOptions,
    path: &Path,
    shown: &str,
) -> Result<(), StoreError> {
    let err = |e: rusqlite::Error| open_error(path, shown, &e);
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
        .map_err(err)?;
    // The first statement that reads the file: a garbage file or a file held by another
    // connection fails here.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Open {
            path: shown.to_owned(),
            message: format!(
                "sqlite kept journal mode `{mode}` instead of switching to wal; give the path of \
                 a file on a local disk"
            ),
        });
    }
    let synchronous = if options.sync { "FULL" } else { "OFF" };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(err)?;
    Ok(())
}

/// A statement of the commit path.
#[derive(Debug, Clone, Copy)]
enum Write {
    /// [`rows::INSERT_JOB`].
    InsertJob,
    /// [`rows::INSERT_TASK`].
    InsertTask,
    /// [`rows::RAISE_NEXT_NUMBER`].
    RaiseNextNumber,
    /// [`rows::UPDATE_JOB`].
    UpdateJob,
    /// [`rows::UPDATE_TASK`].
    UpdateTask,
    /// [`rows::DELETE_JOB`].
    DeleteJob,
    /// [`rows::DELETE_TASKS`].
    DeleteTasks,
    /// [`output::DELETE_OUTPUT`].
    DeleteOutput,
    /// [`rows::PAUSE_QUEUE`].
    PauseQueue,
    /// [`rows::RESUME_QUEUE`].
    ResumeQueue,
    /// [`output::APPEND_OUTPUT`].
    AppendOutput,
    /// [`output::DROP_OUTPUT`].
    DropOutput,
    /// [`rows::LAST_TASK_INDEX`].
    LastTaskIndex,
}

impl Write {
    /// How many there are: the size of [`Statements`] (a statement without a slot fails
    /// its commit, and the conformance suite with it).
    const COUNT: usize = 13;

    /// Its SQL.
    fn sql(self) -> &'static str {
        match self {
            Write::InsertJob => rows::INSERT_JOB,
            Write::InsertTask => rows::INSERT_TASK,
            Write::RaiseNextNumber => rows::RAISE_NEXT_NUMBER,
            Write::UpdateJob => rows::UPDATE_JOB,
            Write::UpdateTask => rows::UPDATE_TASK,
            Write::DeleteJob => rows::DELETE_JOB,
            Write::DeleteTasks => rows::DELETE_TASKS,
            Write::DeleteOutput => output::DELETE_OUTPUT,
            Write::PauseQueue => rows::PAUSE_QUEUE,
            Write::ResumeQueue => rows::RESUME_QUEUE,
            Write::AppendOutput => output::APPEND_OUTPUT,
            Write::DropOutput => output::DROP_OUTPUT,
            Write::LastTaskIndex => rows::LAST_TASK_INDEX,
        }
    }
}

/// Statements prepared at most once per commit (from the connection's cache), then reused
/// for every op of the batch.
struct Statements<'conn> {
    /// The connection they are prepared on.
    conn: &'conn Connection,
    /// The file, for error messages.
    path: &'conn Path,
    /// Each [`Write`]'s statement, once it was used.
    slots: [Option<CachedStatement<'conn>>; Write::COUNT],
}

impl<'conn> Statements<'conn> {
    /// No statement prepared yet.
    fn new(conn: &'conn Connection, path: &'conn Path) -> Self {
        Statements {
            conn,
            path,
            slots: std::array::from_fn(|_| None),
        }
    }

    /// The statement of `which`, prepared from the cache on first use.
    fn get(&mut self, which: Write) -> Result<&mut CachedStatement<'conn>, StoreError> {
        let Some(slot) = self.slots.get_mut(which as usize) else {
            return Err(StoreError::Database(format!(
                "statement {which:?} has no slot (Write::COUNT is {}); this is a bug in \
                 buildcat, please report it",
                Write::COUNT
            )));
        };
        match slot {
            Some(stmt) => Ok(stmt),
            None => {
                let stmt = self
                    .conn
                    .prepare_cached(which.sql())
                    .map_err(|e| write_error(self.path, "could not prepare a statement", &e))?;
                Ok(slot.insert(stmt))
            }
        }
    }

    /// Runs a statement keyed by a job id alone.
    fn execute_for_job(
        &mut self,
        which: Write,
        id: buildcat_proto::JobId,
        what: &str,
    ) -> Result<usize, StoreError> {
        let path = self.path;
        self.get(which)?
            .execute([id.0.as_bytes()])
            .map_err(|e| write_error(path, &format!("could not {what} of job {id}"), &e))
    }

    /// Applies one op.
    fn apply(
        &mut self,
        op: &StoreOp,
        encodings: &Encodings,
        next_number: &mut Option<i64>,
    ) -> Result<(), StoreError> {
        let path = self.path;
        match op {
            StoreOp::Insert(job) => {
                rows::check_new_job(job)?;
                let record = &job.job;
                rows::insert_job(self.get(Write::InsertJob)?, record, encodings, path)?;
                let stmt = self.get(Write::InsertTask)?;
                for task in &job.tasks {
                    rows::insert_task(stmt, task, encodings, path)?;
                }
                let past = record
                    .number
                    .checked_add(1)
                    .and_then(|past| i64::try_from(past).ok())
                    .ok_or_else(|| {
                        StoreError::Database(format!(
                            "could not insert job {}: its number {} is too large to store",
                            record.id, record.number
                        ))
                    })?;
                *next_number = Some(next_number.map_or(past, |next| next.max(past)));
            }
            StoreOp::AppendTasks { job, tasks } => {
                let last: Option<i64> = self
                    .get(Write::LastTaskIndex)?
                    .query_row([job.0.as_bytes()], |row| row.get(0))
                    .map_err(|e| {
                        write_error(path, &format!("could not read the tasks of job {job}"), &e)
                    })?;
                let stmt = self.get(Write::InsertTask)?;
                for task in super::number_added(*job, last, tasks)? {
                    rows::insert_task(stmt, &task, encodings, path)?;
                }
            }
            StoreOp::UpdateJob(record) => {
                rows::update_job(self.get(Write::UpdateJob)?, record, path)?;
            }
            StoreOp::UpdateTask(status) => {
                rows::update_task(self.get(Write::UpdateTask)?, status, encodings, path)?;
            }
            StoreOp::Delete(id) => {
                // Deleting a job that is not stored is not an error: pruning twice leaves
                // the same state.
                self.execute_for_job(Write::DeleteJob, *id, "delete the record")?;
                self.execute_for_job(Write::DeleteTasks, *id, "delete the tasks")?;
                self.execute_for_job(Write::DeleteOutput, *id, "delete the output")?;
            }
            StoreOp::PauseQueue { queue, paused } => {
                let which = if *paused {
                    Write::PauseQueue
                } else {
                    Write::ResumeQueue
                };
                self.get(which)?.execute([queue]).map_err(|e| {
                    write_error(
                        path,
                        &format!("could not store the pause of queue {queue}"),
                        &e,
                    )
                })?;
            }
            StoreOp::AppendOutput {
                task,
                offset,
                line,
                lines,
                text,
                stderr,
            } => {
                let stmt = self.get(Write::AppendOutput)?;
                output::append(stmt, *task, (*offset, *line, *lines, text, stderr), path)?;
            }
            StoreOp::DropOutput { task, from, to } => {
                let stmt = self.get(Write::DropOutput)?;
                output::drop_range(stmt, *task, *from, *to, path)?;
            }
        }
        Ok(())
    }

    /// Moves the next job number past `past` (the number after the batch's highest).
    fn raise_next_number(&mut self, past: i64) -> Result<(), StoreError> {
        let path = self.path;
        let changed = self
            .get(Write::RaiseNextNumber)?
            .execute(params![past])
            .map_err(|e| write_error(path, "could not store the next job number", &e))?;
        if changed == 0 {
            return Err(StoreError::Database(
                "could not store the next job number: the meta table has none; the file is \
                 damaged, restore it from a backup"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

impl SqliteStore {
    /// Every job with its tasks, in id order; each task's output extent is filled in by
    /// the caller.
    fn load_jobs(&self) -> Result<Vec<StoredJob>, StoreError> {
        let read_err = |e: rusqlite::Error| {
            StoreError::Database(format!(
                "could not read jobs: {}",
                lowercase_first(&e.to_string())
            ))
        };
        let mut jobs = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached(rows::SELECT_JOBS)
                .map_err(read_err)?;
            let mut rows = stmt.query([]).map_err(read_err)?;
            while let Some(row) = rows.next().map_err(read_err)? {
                let id = decode_id(row.get_ref(0).map_err(read_err)?)
                    .map_err(|message| self.incompatible(message))?;
                let job = decode_job(id, row)
                    .map_err(|message| self.incompatible(format!("job {id}: {message}")))?;
                jobs.push(StoredJob {
                    job,
                    tasks: Vec::new(),
                });
            }
        }
        // Tasks come in the jobs' order, so one pass over both pairs them.
        let mut stmt = self
            .conn
            .prepare_cached(rows::SELECT_TASKS)
            .map_err(read_err)?;
        let mut rows = stmt.query([]).map_err(read_err)?;
        let mut place = 0;
        while let Some(row) = rows.next().map_err(read_err)? {
            let job_id = decode_id(row.get_ref(0).map_err(read_err)?)
                .map_err(|message| self.incompatible(format!("a task: {message}")))?;
            let index = decode_index(job_id, row.get_ref(1).map_err(read_err)?)
                .map_err(|message| self.incompatible(message))?;
            let id = TaskId::new(job_id, index);
            while jobs.get(place).is_some_and(|job| job.job.id < job_id) {
                place += 1;
            }
            let Some(job) = jobs.get_mut(place).filter(|job| job.job.id == job_id) else {
                return Err(self.incompatible(format!(
                    "task {id} belongs to no stored job; the file is damaged"
                )));
            };
            if usize::try_from(index).ok() != Some(job.tasks.len()) {
                // Indexes are unique and come in order, so a wrong one means a gap.
                return Err(self.incompatible(format!(
                    "job {job_id}: its tasks are not numbered 0, 1, 2.. (task {} is missing); \
                     the file is damaged",
                    job.tasks.len()
                )));
            }
            let task = decode_task(id, &job.job, row)
                .map_err(|message| self.incompatible(format!("task {id}: {message}")))?;
            job.tasks.push(task);
        }
        if let Some(job) = jobs.iter().find(|job| job.tasks.is_empty()) {
            return Err(self.incompatible(format!(
                "job {} has no tasks; the file is damaged",
                job.job.id
            )));
        }
        Ok(jobs)
    }

    /// The next job number, as stored.
    fn load_next_number(&self) -> Result<u64, StoreError> {
        let value = self
            .conn
            .prepare_cached(rows::SELECT_NEXT_NUMBER)
            .and_then(|mut stmt| {
                stmt.query_row([], |row| {
                    Ok(match row.get_ref(0)? {
                        ValueRef::Integer(value) => u64::try_from(value).ok(),
                        _ => None,
                    })
                })
            })
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => {
                    self.incompatible("its meta table has no next_number".to_owned())
                }
                e => StoreError::Database(format!(
                    "could not read the next job number: {}",
                    lowercase_first(&e.to_string())
                )),
            })?;
        value.ok_or_else(|| {
            self.incompatible("its next_number is not a job number; the file is damaged".to_owned())
        })
    }

    /// The paused queues, by name.
    fn load_paused_queues(&self) -> Result<Vec<String>, StoreError> {
        let read_err = |e: rusqlite::Error| {
            StoreError::Database(format!(
                "could not read the paused queues: {}",
                lowercase_first(&e.to_string())
            ))
        };
        let mut stmt = self
            .conn
            .prepare_cached(rows::SELECT_PAUSED_QUEUES)
            .map_err(read_err)?;
        let queues = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(read_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_err)?;
        Ok(queues)
    }
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Loaded, StoreError> {
        let mut jobs = self.load_jobs()?;
        let mut extents = output::extents(&self.conn)?;
        for job in &mut jobs {
            for task in &mut job.tasks {
                if let Some(extent) = extents.remove(&task.status.id) {
                    task.output = extent;
                }
            }
        }
        Ok(Loaded {
            jobs,
            next_number: self.load_next_number()?,
            paused_queues: self.load_paused_queues()?,
        })
    }

    fn read_output(
        &mut self,
        task: TaskId,
        from: u64,
        max_bytes: usize,
    ) -> Result<LogPage, StoreError> {
        if let Some(lost) = &self.lost {
            return Err(lost.clone());
        }
        output::read(&self.conn, task, from, max_bytes)
    }

    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if let Some(lost) = &self.lost {
            return Err(lost.clone());
        }
        if ops.is_empty() {
            return Ok(());
        }
        let SqliteStore {
            conn,
            file,
            encodings,
            ..
        } = self;
        let file = file.as_path();
        // On any error the transaction is dropped, which rolls it back.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| write_error(file, "could not begin a transaction", &e))?;
        {
            let mut statements = Statements::new(&tx, file);
            // The number after the batch's highest, written once for the whole batch.
            let mut next_number = None;
            for op in ops {
                statements.apply(op, encodings, &mut next_number)?;
            }
            if let Some(past) = next_number {
                statements.raise_next_number(past)?;
            }
        }
        tx.commit()
            .map_err(|e| write_error(file, "could not commit", &e))?;
        // Checked after the commit, so that a file removed at any moment before it is
        // noticed: what this commit wrote went to the removed file and must not be
        // acknowledged.
        if let Err(lost) = self.check_files() {
            self.lost = Some(lost.clone());
            return Err(lost);
        }
        Ok(())
    }
}
