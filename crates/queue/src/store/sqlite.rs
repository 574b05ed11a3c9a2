//! SQLite storage: one file, in WAL mode, held exclusively by one server.
//!
//! # Layout
//!
//! A `meta` table holds `schema_version` ([`SCHEMA_VERSION`]). The `jobs` table has one row
//! per job: the options and timestamps are plain columns, the id is the 16 bytes of its
//! UUID (v7, so byte order is submission order), `after` is the dependency ids concatenated
//! (16 bytes each), and the attempts list and the failure are blobs encoded with
//! [`buildcat_proto::codec::encode_value`].
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
//! # Durability
//!
//! With [`SqliteOptions::sync`] (the default) the journal is synced on every commit
//! (`synchronous=FULL`): a commit is durable when [`Store::commit`] returns. Without it
//! (`synchronous=OFF`) nothing is synced: a crash of the machine may lose or corrupt
//! recent commits. That mode exists for benchmarks only.

use std::path::Path;
use std::time::Duration;

use buildcat_proto::codec::{decode_value, encode_value};
use buildcat_proto::{Attempt, Failure, JobId, JobOptions, JobState, JobStatus, Timestamp};
use rusqlite::types::ValueRef;
use rusqlite::{
    CachedStatement, Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior,
    params,
};
use uuid::Uuid;

use super::{Store, StoreError, StoreOp, StoredJob};

/// The version of the layout this buildcat writes, and the newest it reads.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for a lock held by another connection before failing.
///
/// Once open, the store holds the file exclusively, so this only matters while opening
/// (for instance a server restarting while the previous one is still closing the file). A
/// second server opening a file that is in use fails after waiting this long.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes of a job id.
const ID_LEN: usize = 16;

/// The statements that create a fresh file's schema.
///
/// `jobs` is an ordinary rowid table with an index on `id`: measured against `WITHOUT
/// ROWID`, it inserts and updates as fast for small arguments and much faster for
/// arguments of a few kilobytes, which a clustered index would have to move around.
const CREATE_SCHEMA: &str = "
    CREATE TABLE meta (
        key TEXT PRIMARY KEY NOT NULL,
        value ANY NOT NULL
    ) STRICT;
    CREATE TABLE jobs (
        id BLOB PRIMARY KEY NOT NULL,
        queue TEXT NOT NULL,
        kind TEXT NOT NULL,
        args BLOB NOT NULL,
        timeout_ms INTEGER,
        max_attempts INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        after BLOB NOT NULL,
        state TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        ended_at INTEGER,
        attempts BLOB NOT NULL,
        result BLOB,
        failure BLOB
    ) STRICT;
";

/// Inserts a job; the parameters are the columns in table order.
const INSERT_JOB: &str = "INSERT INTO jobs (id, queue, kind, args, timeout_ms, max_attempts, \
    priority, after, state, created_at, ended_at, attempts, result, failure) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

/// Updates a job's mutable columns.
const UPDATE_JOB: &str = "UPDATE jobs SET state = ?2, ended_at = ?3, attempts = ?4, \
    result = ?5, failure = ?6, max_attempts = ?7 WHERE id = ?1";

/// Deletes a job.
const DELETE_JOB: &str = "DELETE FROM jobs WHERE id = ?1";

/// Reads every job in id order; the columns are in table order.
const SELECT_JOBS: &str = "SELECT id, queue, kind, args, timeout_ms, max_attempts, priority, \
    after, state, created_at, ended_at, attempts, result, failure FROM jobs ORDER BY id";

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
    /// The encoding of an empty attempts list, bound for new jobs without re-encoding it.
    no_attempts: Vec<u8>,
    /// A buffer reused to build the `after` column of inserted jobs.
    after: Vec<u8>,
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file and its schema if it does not exist.
    ///
    /// The parent directory must exist. Fails if another server (or any other program)
    /// has the file open, if it is not a SQLite database, or if its schema is newer than
    /// this buildcat's.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let shown = path.display().to_string();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(path, flags).map_err(|e| open_error(path, &shown, &e))?;
        configure(&conn, &options, path, &shown)?;
        init_schema(&conn, &shown)?;
        let no_attempts = encode_value(&Vec::<Attempt>::new()).map_err(|e| StoreError::Open {
            path: shown.clone(),
            message: format!("could not encode an empty attempts list: {e}"),
        })?;
        Ok(SqliteStore {
            conn,
            path: shown,
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

/// Creates the schema of a fresh file, or checks the version of an existing one.
///
/// This runs in a write transaction, so by the time it returns the connection holds the
/// file's exclusive lock for good.
fn init_schema(conn: &Connection, path: &str) -> Result<(), StoreError> {
    let open_err = |e: rusqlite::Error| StoreError::Open {
        path: path.to_owned(),
        message: describe_open(&e),
    };
    let incompatible = |message: String| StoreError::Incompatible {
        path: path.to_owned(),
        message,
    };
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(open_err)?;
    let has_meta: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta')",
            [],
            |row| row.get(0),
        )
        .map_err(open_err)?;
    if has_meta {
        let version: Option<StoredVersion> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |row| {
                    Ok(match row.get_ref(0)? {
                        ValueRef::Integer(v) => StoredVersion::Int(v),
                        _ => StoredVersion::NotInt,
                    })
                },
            )
            .optional()
            .map_err(open_err)?;
        match version {
            Some(StoredVersion::Int(SCHEMA_VERSION)) => {}
            Some(StoredVersion::Int(v)) if v > SCHEMA_VERSION => {
                return Err(incompatible(format!(
                    "it has schema version {v}, written by a newer buildcat; this buildcat \
                     reads schema version {SCHEMA_VERSION} at most"
                )));
            }
            Some(StoredVersion::Int(v)) => {
                return Err(incompatible(format!(
                    "it has schema version {v}, which no buildcat writes (this one writes \
                     version {SCHEMA_VERSION}); the file is damaged"
                )));
            }
            Some(StoredVersion::NotInt) | None => {
                return Err(incompatible(
                    "its meta table has no valid schema_version; the file is damaged or not \
                     buildcat storage"
                        .to_owned(),
                ));
            }
        }
    } else {
        let tables: i64 = tx
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |row| row.get(0),
            )
            .map_err(open_err)?;
        if tables > 0 {
            return Err(incompatible(
                "it is a SQLite database of another program (it has tables but no buildcat \
                 meta table); use another file"
                    .to_owned(),
            ));
        }
        tx.execute_batch(CREATE_SCHEMA).map_err(open_err)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
            [SCHEMA_VERSION],
        )
        .map_err(open_err)?;
    }
    tx.commit().map_err(open_err)
}

/// The stored `schema_version`, before it is checked.
enum StoredVersion {
    /// An integer, as written.
    Int(i64),
    /// Anything else: the file is damaged.
    NotInt,
}

/// An `Open` error for `path` with a hint that fits `error`.
fn open_error(path: &Path, shown: &str, error: &rusqlite::Error) -> StoreError {
    let message = match error.sqlite_error_code() {
        Some(ErrorCode::CannotOpen) => cannot_open_hint(path, error),
        _ => describe_open(error),
    };
    StoreError::Open {
        path: shown.to_owned(),
        message,
    }
}

/// What went wrong opening the file, in words with a hint.
fn describe_open(error: &rusqlite::Error) -> String {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "it is in use by another buildcat server (or another program); stop that server \
             or give this one another file"
                .to_owned()
        }
        Some(ErrorCode::NotADatabase) => {
            "it is not a SQLite database; check the path, or move the file away to start with \
             an empty store"
                .to_owned()
        }
        Some(ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => format!(
            "permission denied; the user running buildcat must be able to read and write the \
             file and its directory ({error})"
        ),
        Some(ErrorCode::DiskFull) => "the disk is full".to_owned(),
        Some(ErrorCode::DatabaseCorrupt) => {
            format!("the database is damaged ({error}); restore it from a backup")
        }
        _ => lowercase_first(&error.to_string()),
    }
}

/// A hint for `SQLITE_CANTOPEN`, found by looking at the path.
fn cannot_open_hint(path: &Path, error: &rusqlite::Error) -> String {
    if path.is_dir() {
        return "it is a directory; give the path of a file inside it".to_owned();
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            return format!(
                "directory {} does not exist; create it first",
                parent.display()
            );
        }
        if !parent.is_dir() {
            return format!("{} is not a directory", parent.display());
        }
    }
    format!(
        "{}; check that the user running buildcat may read and write the file and create \
         files in its directory",
        lowercase_first(&error.to_string())
    )
}

/// `text` with its first letter lowercased, unless the first word is an acronym or in
/// capitals (SQLite says "UNIQUE constraint failed", rusqlite "Query returned no rows").
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_uppercase() && !second.is_uppercase() => {
            let mut lowered = String::with_capacity(text.len());
            lowered.extend(first.to_lowercase());
            lowered.push_str(&text[first.len_utf8()..]);
            lowered
        }
        _ => text.to_owned(),
    }
}

/// A `Database` error for a failed write: `context` says what was being done.
fn write_error(context: &str, error: &rusqlite::Error) -> StoreError {
    let what = match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => "the disk is full".to_owned(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            format!("the database is locked by another program ({error})")
        }
        Some(ErrorCode::SystemIoFailure) => format!("disk i/o error ({error})"),
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            format!("the file cannot be written ({error})")
        }
        Some(ErrorCode::DatabaseCorrupt) => format!("the database is damaged ({error})"),
        _ => lowercase_first(&error.to_string()),
    };
    StoreError::Database(format!("{context}: {what}"))
}

/// A `u64` as an SQLite integer, or an error naming what it is.
fn to_sql_int(value: u64, what: &str, id: JobId) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::Database(format!(
            "could not store job {id}: {what} {value} is too large to store"
        ))
    })
}

/// Statements prepared at most once per commit, then reused for every op of the batch.
struct Statements<'conn> {
    /// The insert statement, once an insert was seen.
    insert: Option<CachedStatement<'conn>>,
    /// The update statement, once an update was seen.
    update: Option<CachedStatement<'conn>>,
    /// The delete statement, once a delete was seen.
    delete: Option<CachedStatement<'conn>>,
}

/// Fetches the statement in `slot`, preparing it from the cache on first use.
fn statement<'s, 'conn>(
    slot: &'s mut Option<CachedStatement<'conn>>,
    conn: &'conn Connection,
    sql: &str,
) -> Result<&'s mut CachedStatement<'conn>, StoreError> {
    match slot {
        Some(stmt) => Ok(stmt),
        None => {
            let stmt = conn
                .prepare_cached(sql)
                .map_err(|e| write_error("could not prepare a statement", &e))?;
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
            let id = match row.get_ref(0).map_err(read_err)? {
                ValueRef::Blob(bytes) => bytes,
                other => {
                    return Err(self.incompatible(format!(
                        "a job has an id of type {}, expected a blob",
                        other.data_type()
                    )));
                }
            };
            let id = match <[u8; ID_LEN]>::try_from(id) {
                Ok(bytes) => JobId(Uuid::from_bytes(bytes)),
                Err(_) => {
                    return Err(self.incompatible(format!(
                        "a job has an id of {} bytes, expected {ID_LEN}",
                        id.len()
                    )));
                }
            };
            let job = decode_row(id, row)
                .map_err(|message| self.incompatible(format!("job {id}: {message}")))?;
            jobs.push(job);
        }
        Ok(jobs)
    }

    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let SqliteStore {
            conn,
            no_attempts,
            after,
            ..
        } = self;
        // On any error the transaction is dropped, which rolls it back.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| write_error("could not begin a transaction", &e))?;
        {
            let mut statements = Statements {
                insert: None,
                update: None,
                delete: None,
            };
            for op in ops {
                match op {
                    StoreOp::Insert(job) => {
                        let stmt = statement(&mut statements.insert, &tx, INSERT_JOB)?;
                        insert(stmt, job, no_attempts, after)?;
                    }
                    StoreOp::Update(status) => {
                        let stmt = statement(&mut statements.update, &tx, UPDATE_JOB)?;
                        update(stmt, status, no_attempts)?;
                    }
                    StoreOp::Delete(id) => {
                        let stmt = statement(&mut statements.delete, &tx, DELETE_JOB)?;
                        // Deleting a job that is not stored is not an error: pruning twice
                        // leaves the same state.
                        stmt.execute([id.0.as_bytes()])
                            .map_err(|e| write_error(&format!("could not delete job {id}"), &e))?;
                    }
                }
            }
        }
        tx.commit().map_err(|e| write_error("could not commit", &e))
    }
}

/// Encodes the attempts list, reusing the encoding of an empty list.
fn encode_attempts<'a>(
    attempts: &[Attempt],
    no_attempts: &'a [u8],
    id: JobId,
) -> Result<std::borrow::Cow<'a, [u8]>, StoreError> {
    if attempts.is_empty() {
        return Ok(std::borrow::Cow::Borrowed(no_attempts));
    }
    encode_value(&attempts)
        .map(std::borrow::Cow::Owned)
        .map_err(|e| {
            StoreError::Database(format!("could not encode the attempts of job {id}: {e}"))
        })
}

/// Encodes the failure, if any.
fn encode_failure(failure: Option<&Failure>, id: JobId) -> Result<Option<Vec<u8>>, StoreError> {
    failure
        .map(|failure| {
            encode_value(failure).map_err(|e| {
                StoreError::Database(format!("could not encode the failure of job {id}: {e}"))
            })
        })
        .transpose()
}

/// Runs the insert statement for `job`, building its `after` column in `after`.
fn insert(
    stmt: &mut CachedStatement<'_>,
    job: &StoredJob,
    no_attempts: &[u8],
    after: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let status = &job.status;
    let id = status.id;
    after.clear();
    for dep in &status.options.after {
        after.extend_from_slice(dep.0.as_bytes());
    }
    let timeout_ms = status
        .options
        .timeout_ms
        .map(|t| to_sql_int(t, "timeout", id))
        .transpose()?;
    let ended_at = status
        .ended_at
        .map(|t| to_sql_int(t.0, "end time", id))
        .transpose()?;
    let attempts = encode_attempts(&status.attempts, no_attempts, id)?;
    let failure = encode_failure(status.failure.as_ref(), id)?;
    stmt.execute(params![
        id.0.as_bytes(),
        status.queue,
        status.kind,
        job.args,
        timeout_ms,
        status.options.max_attempts,
        status.options.priority,
        after.as_slice(),
        status.state.as_str(),
        to_sql_int(status.created_at.0, "creation time", id)?,
        ended_at,
        attempts.as_ref(),
        status.result.as_deref(),
        failure,
    ])
    .map_err(|e| {
        let duplicate = e.sqlite_error().is_some_and(|error| {
            error.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || error.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        });
        if duplicate {
            StoreError::Database(format!(
                "could not insert job {id}: a job with this id is already stored"
            ))
        } else {
            write_error(&format!("could not insert job {id}"), &e)
        }
    })?;
    Ok(())
}

/// Runs the update statement for `status`; the job must be stored.
fn update(
    stmt: &mut CachedStatement<'_>,
    status: &JobStatus,
    no_attempts: &[u8],
) -> Result<(), StoreError> {
    let id = status.id;
    let ended_at = status
        .ended_at
        .map(|t| to_sql_int(t.0, "end time", id))
        .transpose()?;
    let attempts = encode_attempts(&status.attempts, no_attempts, id)?;
    let failure = encode_failure(status.failure.as_ref(), id)?;
    let changed = stmt
        .execute(params![
            id.0.as_bytes(),
            status.state.as_str(),
            ended_at,
            attempts.as_ref(),
            status.result.as_deref(),
            failure,
            status.options.max_attempts,
        ])
        .map_err(|e| write_error(&format!("could not update job {id}"), &e))?;
    if changed == 0 {
        return Err(StoreError::Database(format!(
            "could not update job {id}: it is not stored"
        )));
    }
    Ok(())
}

/// Decodes the columns after the id; the error says which column is wrong.
fn decode_row(id: JobId, row: &Row<'_>) -> Result<StoredJob, String> {
    let col = |index: usize| {
        row.get_ref(index)
            .map_err(|e| format!("column {index} is missing ({e})"))
    };
    let text = |index: usize, name: &str| -> Result<String, String> {
        match col(index)? {
            ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec())
                .map_err(|_| format!("its {name} is not valid utf-8")),
            other => Err(format!("its {name} is of type {}", other.data_type())),
        }
    };
    let blob = |index: usize, name: &str| -> Result<Option<&[u8]>, String> {
        match col(index)? {
            ValueRef::Blob(bytes) => Ok(Some(bytes)),
            ValueRef::Null => Ok(None),
            other => Err(format!("its {name} is of type {}", other.data_type())),
        }
    };
    let int = |index: usize, name: &str| -> Result<Option<i64>, String> {
        match col(index)? {
            ValueRef::Integer(value) => Ok(Some(value)),
            ValueRef::Null => Ok(None),
            other => Err(format!("its {name} is of type {}", other.data_type())),
        }
    };
    let required =
        |value: Option<i64>, name: &str| value.ok_or_else(|| format!("its {name} is null"));
    let unsigned = |value: i64, name: &str| {
        u64::try_from(value).map_err(|_| format!("its {name} is negative ({value})"))
    };

    let queue = text(1, "queue")?;
    let kind = text(2, "kind")?;
    let args = blob(3, "args")?.unwrap_or_default().to_vec();
    let timeout_ms = int(4, "timeout")?
        .map(|t| unsigned(t, "timeout"))
        .transpose()?;
    let max_attempts = required(int(5, "max_attempts")?, "max_attempts")?;
    let max_attempts = u32::try_from(max_attempts)
        .map_err(|_| format!("its max_attempts {max_attempts} is out of range"))?;
    let priority = required(int(6, "priority")?, "priority")?;
    let priority =
        i32::try_from(priority).map_err(|_| format!("its priority {priority} is out of range"))?;
    let after_bytes = blob(7, "after")?.unwrap_or_default();
    if after_bytes.len() % ID_LEN != 0 {
        return Err(format!(
            "its dependency list is {} bytes, not a multiple of {ID_LEN}",
            after_bytes.len()
        ));
    }
    let after = after_bytes
        .chunks_exact(ID_LEN)
        .map(|chunk| {
            <[u8; ID_LEN]>::try_from(chunk)
                .map(|bytes| JobId(Uuid::from_bytes(bytes)))
                .map_err(|_| "its dependency list is damaged".to_owned())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let state = match col(8)? {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map_err(|_| "its state is not valid utf-8".to_owned())?
            .parse::<JobState>()?,
        other => return Err(format!("its state is of type {}", other.data_type())),
    };
    let created_at = Timestamp(unsigned(
        required(int(9, "created_at")?, "created_at")?,
        "created_at",
    )?);
    let ended_at = int(10, "ended_at")?
        .map(|t| unsigned(t, "ended_at").map(Timestamp))
        .transpose()?;
    let attempts: Vec<Attempt> = match blob(11, "attempts")? {
        Some(bytes) => {
            decode_value(bytes).map_err(|e| format!("its attempts cannot be decoded: {e}"))?
        }
        None => Vec::new(),
    };
    let result = blob(12, "result")?.map(<[u8]>::to_vec);
    let failure: Option<Failure> = blob(13, "failure")?
        .map(|bytes| decode_value(bytes).map_err(|e| format!("its failure cannot be decoded: {e}")))
        .transpose()?;

    Ok(StoredJob {
        status: JobStatus {
            id,
            queue,
            kind,
            state,
            options: JobOptions {
                timeout_ms,
                max_attempts,
                priority,
                after,
            },
            created_at,
            ended_at,
            attempts,
            result,
            failure,
            progress: None,
        },
        args,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use buildcat_proto::AttemptOutcome;

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn new_id(context: &uuid::ContextV7, millis: u64) -> JobId {
        JobId::new(Timestamp(millis), context)
    }

    /// A queued job with only the required fields.
    fn plain_job(id: JobId) -> StoredJob {
        StoredJob {
            status: JobStatus {
                id,
                queue: "default".to_owned(),
                kind: "buildcat.test".to_owned(),
                state: JobState::Queued,
                options: JobOptions::default(),
                created_at: Timestamp(1_700_000_000_000),
                ended_at: None,
                attempts: Vec::new(),
                result: None,
                failure: None,
                progress: None,
            },
            args: vec![1, 2, 3],
        }
    }

    /// A job with every field filled.
    fn full_job(id: JobId, deps: Vec<JobId>) -> StoredJob {
        let failure = Failure {
            reason: "blender exited with an error".to_owned(),
            exit_code: Some(3),
            output_tail: vec!["line one".to_owned(), "line two".to_owned()],
        };
        StoredJob {
            status: JobStatus {
                id,
                queue: "render".to_owned(),
                kind: "buildcat.blender.render".to_owned(),
                state: JobState::Failed,
                options: JobOptions {
                    timeout_ms: Some(90_000),
                    max_attempts: 3,
                    priority: -7,
                    after: deps,
                },
                created_at: Timestamp(1_700_000_000_123),
                ended_at: Some(Timestamp(1_700_000_100_000)),
                attempts: vec![
                    Attempt {
                        number: 1,
                        worker: "host-a".to_owned(),
                        started_at: Timestamp(1_700_000_001_000),
                        ended_at: Some(Timestamp(1_700_000_002_000)),
                        outcome: Some(AttemptOutcome::WorkerLost),
                    },
                    Attempt {
                        number: 2,
                        worker: "host-b".to_owned(),
                        started_at: Timestamp(1_700_000_003_000),
                        ended_at: Some(Timestamp(1_700_000_004_000)),
                        outcome: Some(AttemptOutcome::Finished),
                    },
                    Attempt {
                        number: 3,
                        worker: "host-c".to_owned(),
                        started_at: Timestamp(1_700_000_005_000),
                        ended_at: Some(Timestamp(1_700_000_100_000)),
                        outcome: Some(AttemptOutcome::Failed(failure.clone())),
                    },
                ],
                result: Some(vec![9, 8, 7, 0, 255]),
                failure: Some(failure),
                progress: None,
            },
            args: vec![0xde, 0xad, 0xbe, 0xef],
        }
    }

    fn db_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("buildcat.db")
    }

    fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open(path, SqliteOptions::default())
    }

    #[test]
    fn round_trips_a_job_with_every_field() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = db_path(&dir);
        let context = uuid::ContextV7::new();
        let deps = vec![new_id(&context, 1), new_id(&context, 2)];
        let job = full_job(new_id(&context, 3), deps);
        let plain = plain_job(new_id(&context, 4));
        {
            let mut store = open(&path)?;
            store.commit(&[StoreOp::Insert(job.clone()), StoreOp::Insert(plain.clone())])?;
            assert_eq!(store.load()?, vec![job.clone(), plain.clone()]);
        }
        let mut store = open(&path)?;
        assert_eq!(store.load()?, vec![job, plain]);
        Ok(())
    }

    #[test]
    fn update_survives_reopen() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = db_path(&dir);
        let context = uuid::ContextV7::new();
        let mut job = plain_job(new_id(&context, 10));
        {
            let mut store = open(&path)?;
            store.commit(&[StoreOp::Insert(job.clone())])?;
            let full = full_job(job.status.id, Vec::new());
            job.status.state = full.status.state;
            job.status.ended_at = full.status.ended_at;
            job.status.attempts = full.status.attempts;
            job.status.result = full.status.result;
            job.status.failure = full.status.failure;
            store.commit(&[StoreOp::Update(job.status.clone())])?;
        }
        let mut store = open(&path)?;
        assert_eq!(store.load()?, vec![job.clone()]);

        // And back: fields cleared by an update are cleared in storage.
        job.status.state = JobState::Queued;
        job.status.ended_at = None;
        job.status.attempts.clear();
        job.status.result = None;
        job.status.failure = None;
        store.commit(&[StoreOp::Update(job.status.clone())])?;
        drop(store);
        let mut store = open(&path)?;
        assert_eq!(store.load()?, vec![job]);
        Ok(())
    }

    #[test]
    fn insert_and_update_in_one_batch() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut store = open(&db_path(&dir))?;
        let context = uuid::ContextV7::new();
        let mut job = plain_job(new_id(&context, 10));
        let inserted = job.clone();
        job.status.state = JobState::Started;
        store.commit(&[
            StoreOp::Insert(inserted),
            StoreOp::Update(job.status.clone()),
        ])?;
        assert_eq!(store.load()?, vec![job]);
        Ok(())
    }

    #[test]
    fn delete_removes_the_job() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = db_path(&dir);
        let context = uuid::ContextV7::new();
        let a = plain_job(new_id(&context, 1));
        let b = plain_job(new_id(&context, 2));
        let c = plain_job(new_id(&context, 3));
        {
            let mut store = open(&path)?;
            store.commit(&[
                StoreOp::Insert(a.clone()),
                StoreOp::Insert(b.clone()),
                StoreOp::Insert(c.clone()),
            ])?;
            store.commit(&[StoreOp::Delete(b.status.id)])?;
            assert_eq!(store.load()?, vec![a.clone(), c.clone()]);
            // Deleting a job that is not stored is harmless.
            store.commit(&[StoreOp::Delete(b.status.id)])?;
        }
        let mut store = open(&path)?;
        assert_eq!(store.load()?, vec![a, c]);
        Ok(())
    }

    #[test]
    fn load_orders_by_id() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut store = open(&db_path(&dir))?;
        let context = uuid::ContextV7::new();
        // Ids across milliseconds and within one, inserted out of order.
        let mut jobs: Vec<StoredJob> = (0..50u64)
            .map(|i| plain_job(new_id(&context, 1_700_000_000_000 + i / 5)))
            .collect();
        let mut shuffled = jobs.clone();
        shuffled.reverse();
        shuffled.swap(3, 40);
        for chunk in shuffled.chunks(7) {
            let ops: Vec<StoreOp> = chunk.iter().cloned().map(StoreOp::Insert).collect();
            store.commit(&ops)?;
        }
        jobs.sort_by_key(|job| job.status.id);
        assert_eq!(store.load()?, jobs);
        Ok(())
    }

    #[test]
    fn empty_commit_is_a_no_op() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut store = open(&db_path(&dir))?;
        store.commit(&[])?;
        assert!(store.load()?.is_empty());
        Ok(())
    }

    #[test]
    fn failing_batch_rolls_back_entirely() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = db_path(&dir);
        let context = uuid::ContextV7::new();
        let a = plain_job(new_id(&context, 1));
        let b = plain_job(new_id(&context, 2));
        let mut store = open(&path)?;
        store.commit(&[StoreOp::Insert(a.clone())])?;

        let mut a_started = a.status.clone();
        a_started.state = JobState::Started;
        let result = store.commit(&[
            StoreOp::Update(a_started),
            StoreOp::Insert(b.clone()),
            StoreOp::Insert(a.clone()),
        ]);
        match result {
            Err(StoreError::Database(message)) => {
                assert!(message.contains(&a.status.id.to_string()), "{message}");
                assert!(message.contains("already stored"), "{message}");
            }
            other => panic!("expected a database error, got {other:?}"),
        }
        assert_eq!(store.load()?, vec![a.clone()]);

        // The store is usable after the failure.
        store.commit(&[StoreOp::Insert(b.clone())])?;
        drop(store);
        let mut store = open(&path)?;
        assert_eq!(store.load()?, vec![a, b]);
        Ok(())
    }

    #[test]
    fn update_of_a_missing_job_fails_and_rolls_back() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut store = open(&db_path(&dir))?;
        let context = uuid::ContextV7::new();
        let a = plain_job(new_id(&context, 1));
        let missing = plain_job(new_id(&context, 2));
        let result = store.commit(&[StoreOp::Insert(a), StoreOp::Update(missing.status.clone())]);
        match result {
            Err(StoreError::Database(message)) => {
                assert!(message.contains("not stored"), "{message}");
                assert!(
                    message.contains(&missing.status.id.to_string()),
                    "{message}"
                );
            }
            other => panic!("expected a database error, got {other:?}"),
        }
        assert!(store.load()?.is_empty());
        Ok(())
    }

    #[test]
    fn full_disk_is_reported_plainly_and_rolls_back() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut store = open(&db_path(&dir))?;
        let context = uuid::ContextV7::new();
        let small = plain_job(new_id(&context, 1));
        store.commit(&[StoreOp::Insert(small.clone())])?;
        // Cap the file at its current size: the next page it needs is refused with
        // SQLITE_FULL, as on a full disk.
        let pages: i64 = store
            .conn
            .query_row("PRAGMA page_count", [], |row| row.get(0))?;
        store.conn.pragma_update(None, "max_page_count", pages)?;
        let mut big = plain_job(new_id(&context, 2));
        big.args = vec![7; 1 << 20];
        let result = store.commit(&[StoreOp::Insert(big)]);
        match result {
            Err(StoreError::Database(message)) => {
                assert!(message.contains("the disk is full"), "{message}");
            }
            other => panic!("expected a database error, got {other:?}"),
        }
        assert_eq!(store.load()?, vec![small]);
        Ok(())
    }

    #[test]
    fn newer_schema_is_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = db_path(&dir);
        drop(open(&path)?);
        {
            let conn = Connection::open(&path)?;
            conn.execute("UPDATE meta SET value = 2 WHERE key = 'schema_version'", [])?;
        }
        match open(&path) {
            Err(error @ StoreError::Incompatible { .. }) => {
                let message = error.to_string();
                assert!(message.contains("version 2"), "{message}");
                assert!(message.contains("version 1"), "{message}");
                assert!(message.contains("newer buildcat"), "{message}");
                assert!(message.contains(&path.display().to_string()), "{message}");
            }
            other => panic!("expected an incompatible error, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn fresh_file_gets_schema_version() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = open(&db_path(&dir))?;
        let version: i64 = store.conn.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )?;
        assert_eq!(version, SCHEMA_VERSION);
        Ok(())
    }

    #[test]
    fn journal_mode_is_wal() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = db_path(&dir);
        let store = open(&path)?;
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        assert_eq!(mode, "wal");
        drop(store);
        // WAL is recorded in the file header (bytes 18 and 19 are 2 for WAL).
        let header = std::fs::read(&path)?;
        assert_eq!(header.get(18..20), Some(&[2u8, 2][..]));
        Ok(())
    }

    #[test]
    fn sync_option_sets_synchronous() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = db_path(&dir);
        let synchronous = |store: &SqliteStore| -> rusqlite::Result<i64> {
            store
                .conn
                .query_row("PRAGMA synchronous", [], |row| row.get(0))
        };
        let store = open(&path)?;
        assert_eq!(synchronous(&store)?, 2); // FULL
        drop(store);
        let store = SqliteStore::open(&path, SqliteOptions { sync: false })?;
        assert_eq!(synchronous(&store)?, 0); // OFF
        Ok(())
    }

    #[test]
    fn second_open_fails_while_first_is_open() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = db_path(&dir);
        let context = uuid::ContextV7::new();
        let mut first = open(&path)?;
        first.commit(&[StoreOp::Insert(plain_job(new_id(&context, 1)))])?;
        match open(&path) {
            Err(error @ StoreError::Open { .. }) => {
                let message = error.to_string();
                assert!(message.contains("another buildcat server"), "{message}");
                assert!(message.contains(&path.display().to_string()), "{message}");
            }
            other => panic!("expected an open error, got {other:?}"),
        }
        // The first store is unaffected and keeps working.
        first.commit(&[StoreOp::Insert(plain_job(new_id(&context, 2)))])?;
        assert_eq!(first.load()?.len(), 2);
        drop(first);
        let mut second = open(&path)?;
        assert_eq!(second.load()?.len(), 2);
        Ok(())
    }

    #[test]
    fn garbage_file_is_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = db_path(&dir);
        std::fs::write(
            &path,
            b"this is not a database, just some text\n".repeat(200),
        )?;
        match open(&path) {
            Err(error @ StoreError::Open { .. }) => {
                let message = error.to_string();
                assert!(message.contains("not a SQLite database"), "{message}");
                assert!(message.contains(&path.display().to_string()), "{message}");
            }
            other => panic!("expected an open error, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn other_programs_database_is_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = db_path(&dir);
        {
            let conn = Connection::open(&path)?;
            conn.execute_batch("CREATE TABLE photos (name TEXT)")?;
        }
        match open(&path) {
            Err(error @ StoreError::Incompatible { .. }) => {
                let message = error.to_string();
                assert!(message.contains("another program"), "{message}");
            }
            other => panic!("expected an incompatible error, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn missing_directory_is_named() -> TestResult {
        let dir = tempfile::tempdir()?;
        let missing = dir.path().join("no-such-dir");
        let path = missing.join("buildcat.db");
        match open(&path) {
            Err(error @ StoreError::Open { .. }) => {
                let message = error.to_string();
                assert!(
                    message.contains(&format!("directory {} does not exist", missing.display())),
                    "{message}"
                );
            }
            other => panic!("expected an open error, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn directory_path_is_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        match open(dir.path()) {
            Err(error @ StoreError::Open { .. }) => {
                let message = error.to_string();
                assert!(message.contains("is a directory"), "{message}");
            }
            other => panic!("expected an open error, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn damaged_row_is_incompatible_and_names_the_job() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = db_path(&dir);
        let context = uuid::ContextV7::new();
        let job = plain_job(new_id(&context, 1));
        {
            let mut store = open(&path)?;
            store.commit(&[StoreOp::Insert(job.clone())])?;
        }
        {
            let conn = Connection::open(&path)?;
            conn.execute("UPDATE jobs SET state = 'exploded'", [])?;
        }
        let mut store = open(&path)?;
        match store.load() {
            Err(error @ StoreError::Incompatible { .. }) => {
                let message = error.to_string();
                assert!(message.contains(&job.status.id.to_string()), "{message}");
                assert!(message.contains("exploded"), "{message}");
            }
            other => panic!("expected an incompatible error, got {other:?}"),
        }
        drop(store);
        {
            let conn = Connection::open(&path)?;
            conn.execute(
                "UPDATE jobs SET state = 'queued', attempts = x'ffffffff'",
                [],
            )?;
        }
        let mut store = open(&path)?;
        match store.load() {
            Err(error @ StoreError::Incompatible { .. }) => {
                let message = error.to_string();
                assert!(message.contains(&job.status.id.to_string()), "{message}");
                assert!(message.contains("attempts"), "{message}");
            }
            other => panic!("expected an incompatible error, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn bare_file_name_is_not_a_missing_directory() -> TestResult {
        // `Path::parent` of a bare file name is empty; it must not be taken for a missing
        // directory. Exercised through the hint helper to avoid changing the working
        // directory of the test process.
        let error = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            None,
        );
        let hint = cannot_open_hint(Path::new("surely-not-here.db"), &error);
        assert!(!hint.contains("does not exist"), "{hint}");
        Ok(())
    }

    #[test]
    fn messages_are_lowercased_but_not_capitals() {
        assert_eq!(
            lowercase_first("Query returned no rows"),
            "query returned no rows"
        );
        assert_eq!(
            lowercase_first("UNIQUE constraint failed: jobs.id"),
            "UNIQUE constraint failed: jobs.id"
        );
        assert_eq!(lowercase_first("disk I/O error"), "disk I/O error");
        assert_eq!(lowercase_first(""), "");
    }
}
