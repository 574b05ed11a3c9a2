//! The layout of the file: the schema a fresh file gets and the version check of an existing
//! one.
//!
//! Past layouts are read as a ladder of migrations (`migrate.rs`): a file of any past
//! version is rewritten to the newest when it is opened, in the same transaction that
//! checks its version, so a crash during the migration leaves the old file as it was.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::errors::describe_open;
use super::migrate;
use super::rows::Encodings;
use crate::store::StoreError;
use std::path::Path;

/// The version of the layout this buildcat writes, and the newest it reads.
///
/// 1: jobs. 2: job output (the `output` table), which version 1 kept in memory only.
/// 3: jobs made of tasks (the `tasks` table), job numbers, paused queues.
/// 4: which output lines were stderr (`output.stderr`).
/// 5: what a job needs of a GPU (`jobs.gpus`, `jobs.gpu_memory_mib`).
pub const SCHEMA_VERSION: i64 = 5;

/// The `meta` table: the schema version and the next job number, as key and value.
const CREATE_META: &str = "
    CREATE TABLE meta (
        key TEXT PRIMARY KEY NOT NULL,
        value ANY NOT NULL
    ) STRICT;
";

/// The tables of the current layout, which a fresh file gets and a migration writes.
///
/// `jobs` and `tasks` are ordinary rowid tables with a unique index on their key: measured
/// against `WITHOUT ROWID`, an ordinary table inserts and updates as fast for small rows and
/// much faster for task arguments of a few kilobytes, which a clustered index would have to
/// move around. `jobs.after` holds the encoded `Vec<Dependency>`, and `tasks.attempts`,
/// `tasks.failure` the encoded attempts and failure (see `rows.rs`).
///
/// `output` holds one row per chunk of a task's output as the server received it (a worker's
/// batch of lines), keyed by its task and byte offset, so a page is read by a range scan of
/// the index and the middle of a long output is dropped by one; `text` holds the lines,
/// each followed by a newline, so its length is the chunk's size in bytes; `stderr` the
/// indexes of the chunk's lines written to stderr, each a 4-byte little-endian integer, in
/// ascending order, or NULL when all are stdout (as are the chunks stored before version 4).
/// A rowid table too: chunks of tens of kilobytes would weigh down a clustered index.
///
/// `jobs.gpus` and `jobs.gpu_memory_mib` are the job's GPU requirement (`--gpus`,
/// `--gpu-memory`), 0 for none: last, with defaults, as version 5 added them to the rows
/// of older files.
///
/// `paused_queues` is a handful of short names, looked up by name only: `WITHOUT ROWID`.
pub(super) const CREATE_TABLES: &str = "
    CREATE TABLE jobs (
        id BLOB PRIMARY KEY NOT NULL,
        number INTEGER NOT NULL UNIQUE,
        name TEXT NOT NULL,
        queue TEXT NOT NULL,
        kind TEXT NOT NULL,
        submitter TEXT NOT NULL,
        runs TEXT NOT NULL,
        timeout_ms INTEGER,
        max_attempts INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        after BLOB NOT NULL,
        paused INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        ended_at INTEGER,
        gpus INTEGER NOT NULL DEFAULT 0,
        gpu_memory_mib INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE tasks (
        job BLOB NOT NULL,
        idx INTEGER NOT NULL,
        frames TEXT,
        args BLOB NOT NULL,
        state TEXT NOT NULL,
        max_attempts INTEGER NOT NULL,
        ended_at INTEGER,
        attempts BLOB NOT NULL,
        result BLOB,
        failure BLOB
    ) STRICT;
    CREATE UNIQUE INDEX tasks_by_job ON tasks (job, idx);
    CREATE TABLE output (
        job BLOB NOT NULL,
        task INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        line INTEGER NOT NULL,
        lines INTEGER NOT NULL,
        text BLOB NOT NULL,
        stderr BLOB
    ) STRICT;
    CREATE UNIQUE INDEX output_by_task ON output (job, task, offset);
    CREATE TABLE paused_queues (
        queue TEXT PRIMARY KEY NOT NULL
    ) STRICT, WITHOUT ROWID;
";

/// The number a fresh store gives its first job.
pub(super) const FIRST_NUMBER: i64 = 1;

/// Creates the schema of a fresh file, or checks the version of an existing one and
/// migrates it from a past version.
///
/// This runs in a write transaction, so by the time it returns the connection holds the
/// file's exclusive lock for good.
pub(super) fn init_schema(
    conn: &Connection,
    path: &Path,
    shown: &str,
    encodings: &Encodings,
) -> Result<(), StoreError> {
    let open_err = |e: rusqlite::Error| StoreError::Open {
        path: shown.to_owned(),
        message: describe_open(path, &e),
    };
    let incompatible = |message: String| StoreError::Incompatible {
        path: shown.to_owned(),
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
            Some(StoredVersion::Int(old @ (1 | 2))) => {
                migrate::to_current(&tx, old, path, shown, encodings)?;
            }
            Some(StoredVersion::Int(3)) => {
                migrate::output_streams(&tx, path, shown)?;
                migrate::gpu_requirements(&tx, path, shown)?;
            }
            Some(StoredVersion::Int(4)) => {
                migrate::gpu_requirements(&tx, path, shown)?;
            }
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
        tx.execute_batch(CREATE_META).map_err(open_err)?;
        tx.execute_batch(CREATE_TABLES).map_err(open_err)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('next_number', ?2)",
            [SCHEMA_VERSION, FIRST_NUMBER],
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
