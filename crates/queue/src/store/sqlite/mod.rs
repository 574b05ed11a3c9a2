//! SQLite storage: one file, in WAL mode, held exclusively by one server.
//!
//! `schema.rs` holds the layout and its version, `rows.rs` the encoding of a job as a row,
//! `output.rs` job output as chunks, `errors.rs` SQLite's failures in words. This file opens the store and implements
//! [`Store`].
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
mod output;
mod rows;
mod schema;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use buildcat_proto::codec::encode_value;
use buildcat_proto::{Attempt, JobId, LogPage};
use rusqlite::{CachedStatement, Connection, OpenFlags, TransactionBehavior};

use self::errors::{lowercase_first, open_error, write_error};
use self::rows::{DELETE_JOB, INSERT_JOB, SELECT_JOBS, UPDATE_JOB, decode_id, decode_row};
pub use self::schema::SCHEMA_VERSION;
use super::{Store, StoreError, StoreOp, StoredJob};

/// How long a statement waits for a lock held by another connection before failing.
///
/// Once open, the store holds the file exclusively, so this only matters while opening
/// (for instance a server restarting while the previous one is still closing the file). A
/// second server opening a file that is in use fails after waiting this long.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// The encoding of an empty attempts list, bound for new jobs without re-encoding it.
    no_attempts: Vec<u8>,
    /// A buffer reused to build the `after` column of inserted jobs.
    after: Vec<u8>,
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
        configure(&conn, &options, &file, &shown)?;
        schema::init_schema(&conn, &file, &shown)?;
        let no_attempts = encode_value(&Vec::<Attempt>::new()).map_err(|e| StoreError::Open {
            path: shown.clone(),
            message: format!("could not encode an empty attempts list: {e}"),
        })?;
        let watched = watch(&file, &shown)?;
        Ok(SqliteStore {
            conn,
            path: shown,
            file,
            watched,
            lost: None,
            no_attempts,
            after: Vec::new(),
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

/// Statements prepared at most once per commit, then reused for every op of the batch.
struct Statements<'conn> {
    /// The insert statement, once an insert was seen.
    insert: Option<CachedStatement<'conn>>,
    /// The update statement, once an update was seen.
    update: Option<CachedStatement<'conn>>,
    /// The delete statement, once a delete was seen.
    delete: Option<CachedStatement<'conn>>,
    /// Deletes a deleted job's output, once a delete was seen.
    delete_output: Option<CachedStatement<'conn>>,
    /// Appends output, once an append was seen.
    append_output: Option<CachedStatement<'conn>>,
    /// Drops the middle of an output, once a drop was seen.
    drop_output: Option<CachedStatement<'conn>>,
}

/// Fetches the statement in `slot`, preparing it from the cache on first use.
fn statement<'s, 'conn>(
    slot: &'s mut Option<CachedStatement<'conn>>,
    conn: &'conn Connection,
    sql: &str,
    path: &Path,
) -> Result<&'s mut CachedStatement<'conn>, StoreError> {
    match slot {
        Some(stmt) => Ok(stmt),
        None => {
            let stmt = conn
                .prepare_cached(sql)
                .map_err(|e| write_error(path, "could not prepare a statement", &e))?;
            Ok(slot.insert(stmt))
        }
    }
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Vec<StoredJob>, StoreError> {
        let read_err = |e: rusqlite::Error| {
            StoreError::Database(format!(
                "could not read jobs: {}",
                lowercase_first(&e.to_string())
            ))
        };
        let mut stmt = self.conn.prepare_cached(SELECT_JOBS).map_err(read_err)?;
        let mut rows = stmt.query([]).map_err(read_err)?;
        let mut jobs = Vec::new();
        while let Some(row) = rows.next().map_err(read_err)? {
            let id = decode_id(row.get_ref(0).map_err(read_err)?)
                .map_err(|message| self.incompatible(message))?;
            let job = decode_row(id, row)
                .map_err(|message| self.incompatible(format!("job {id}: {message}")))?;
            jobs.push(job);
        }
        drop(rows);
        drop(stmt);
        let mut extents = output::extents(&self.conn)?;
        for job in &mut jobs {
            if let Some(extent) = extents.remove(&job.status.id) {
                job.output = extent;
            }
        }
        Ok(jobs)
    }

    fn read_output(
        &mut self,
        job: JobId,
        from: u64,
        max_bytes: usize,
    ) -> Result<LogPage, StoreError> {
        if let Some(lost) = &self.lost {
            return Err(lost.clone());
        }
        output::read(&self.conn, job, from, max_bytes)
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
            no_attempts,
            after,
            ..
        } = self;
        let file = file.as_path();
        // On any error the transaction is dropped, which rolls it back.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| write_error(file, "could not begin a transaction", &e))?;
        {
            let mut statements = Statements {
                insert: None,
                update: None,
                delete: None,
                delete_output: None,
                append_output: None,
                drop_output: None,
            };
            for op in ops {
                match op {
                    StoreOp::Insert(job) => {
                        let stmt = statement(&mut statements.insert, &tx, INSERT_JOB, file)?;
                        rows::insert(stmt, job, no_attempts, after, file)?;
                    }
                    StoreOp::Update(status) => {
                        let stmt = statement(&mut statements.update, &tx, UPDATE_JOB, file)?;
                        rows::update(stmt, status, no_attempts, file)?;
                    }
                    StoreOp::Delete(id) => {
                        let stmt = statement(&mut statements.delete, &tx, DELETE_JOB, file)?;
                        // Deleting a job that is not stored is not an error: pruning twice
                        // leaves the same state.
                        stmt.execute([id.0.as_bytes()]).map_err(|e| {
                            write_error(file, &format!("could not delete job {id}"), &e)
                        })?;
                        let stmt = statement(
                            &mut statements.delete_output,
                            &tx,
                            output::DELETE_OUTPUT,
                            file,
                        )?;
                        stmt.execute([id.0.as_bytes()]).map_err(|e| {
                            write_error(file, &format!("could not delete output of job {id}"), &e)
                        })?;
                    }
                    StoreOp::AppendOutput {
                        job,
                        offset,
                        line,
                        lines,
                        text,
                    } => {
                        let stmt = statement(
                            &mut statements.append_output,
                            &tx,
                            output::APPEND_OUTPUT,
                            file,
                        )?;
                        output::append(stmt, *job, (*offset, *line, *lines, text), file)?;
                    }
                    StoreOp::DropOutput { job, from, to } => {
                        let stmt =
                            statement(&mut statements.drop_output, &tx, output::DROP_OUTPUT, file)?;
                        output::drop_range(stmt, *job, *from, *to, file)?;
                    }
                }
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
