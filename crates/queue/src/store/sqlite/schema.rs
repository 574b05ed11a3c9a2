//! The layout of the file: the schema a fresh file gets and the version check of an existing
//! one.
//!
//! Later layouts go here as a ladder of migrations: read every past version, write the
//! newest.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::errors::describe_open;
use crate::store::StoreError;
use std::path::Path;

/// The version of the layout this buildcat writes, and the newest it reads.
///
/// 1: jobs. 2: job output (the `output` table), which version 1 kept in memory only.
pub const SCHEMA_VERSION: i64 = 2;

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

/// The job output table, added by version 2.
///
/// One row per chunk of output as the server received it (a worker's batch of lines), keyed
/// by its job and byte offset, so a page is read by a range scan of the index and the middle
/// of a long output is dropped by one. `text` is a blob holding the lines, each followed by
/// a newline, so its length is the chunk's size in bytes. An ordinary rowid table: chunks
/// of tens of kilobytes would weigh down a clustered index.
const CREATE_OUTPUT: &str = "
    CREATE TABLE output (
        job BLOB NOT NULL,
        offset INTEGER NOT NULL,
        line INTEGER NOT NULL,
        lines INTEGER NOT NULL,
        text BLOB NOT NULL
    ) STRICT;
    CREATE UNIQUE INDEX output_by_job ON output (job, offset);
";

/// Creates the schema of a fresh file, or checks the version of an existing one.
///
/// This runs in a write transaction, so by the time it returns the connection holds the
/// file's exclusive lock for good.
pub(super) fn init_schema(conn: &Connection, path: &Path, shown: &str) -> Result<(), StoreError> {
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
            Some(StoredVersion::Int(1)) => {
                // Version 1 kept output in memory: add its table.
                tx.execute_batch(CREATE_OUTPUT).map_err(open_err)?;
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                    [SCHEMA_VERSION],
                )
                .map_err(open_err)?;
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
        tx.execute_batch(CREATE_SCHEMA).map_err(open_err)?;
        tx.execute_batch(CREATE_OUTPUT).map_err(open_err)?;
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
