//! The layout in the database: the schema a fresh database gets, and the version check of
//! an existing one against the `buildcat.migrations` table.
//!
//! Everything lives in the `buildcat` schema, so the database may hold other programs'
//! tables. Each layout version applied is a row of `migrations`, with the buildcat that
//! applied it, so a server that finds a newer layout can say which buildcat to run.

use buildcat_proto::SOFTWARE_VERSION;
use postgres::Transaction;

use super::errors::describe;
use crate::store::StoreError;

/// The version of the layout this buildcat writes, and the newest it reads.
///
/// 1: jobs with their tasks, task output, paused queues, the next job number and the term.
/// 2: what a job needs of a GPU (`jobs.gpus`, `jobs.gpu_memory_mib`; 0 for none).
pub const SCHEMA_VERSION: i32 = 2;

/// Version 1 to 2: jobs gain their GPU requirement, none (0) for every job stored so far.
const MIGRATE_TO_2: &str = "
    ALTER TABLE buildcat.jobs
        ADD COLUMN gpus BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN gpu_memory_mib BIGINT NOT NULL DEFAULT 0;
";

/// The tables of the current layout.
///
/// Ids are the 16 bytes of their UUID (v7, so byte order is submission order), as in
/// SQLite; dependencies, attempts and failures are blobs in the protocol's encoding.
/// `meta` is one row: the next job number, the term (bumped by every server that becomes
/// active, checked by every commit) and where the active server is reached.
const CREATE_TABLES: &str = "
    CREATE SCHEMA IF NOT EXISTS buildcat;
    CREATE TABLE buildcat.migrations (
        version INTEGER PRIMARY KEY,
        software TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE buildcat.meta (
        singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
        next_number BIGINT NOT NULL,
        term BIGINT NOT NULL,
        active_address TEXT,
        active_since BIGINT
    );
    CREATE TABLE buildcat.jobs (
        id BYTEA PRIMARY KEY,
        number BIGINT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        queue TEXT NOT NULL,
        kind TEXT NOT NULL,
        submitter TEXT NOT NULL,
        runs TEXT NOT NULL,
        timeout_ms BIGINT,
        max_attempts BIGINT NOT NULL,
        priority INTEGER NOT NULL,
        after BYTEA NOT NULL,
        paused BOOLEAN NOT NULL,
        created_at BIGINT NOT NULL,
        ended_at BIGINT,
        gpus BIGINT NOT NULL DEFAULT 0,
        gpu_memory_mib BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE buildcat.tasks (
        job BYTEA NOT NULL,
        idx BIGINT NOT NULL,
        frames TEXT,
        args BYTEA NOT NULL,
        state TEXT NOT NULL,
        max_attempts BIGINT NOT NULL,
        ended_at BIGINT,
        attempts BYTEA NOT NULL,
        result BYTEA,
        failure BYTEA,
        PRIMARY KEY (job, idx)
    );
    CREATE TABLE buildcat.output (
        job BYTEA NOT NULL,
        task BIGINT NOT NULL,
        byte_offset BIGINT NOT NULL,
        first_line BIGINT NOT NULL,
        lines BIGINT NOT NULL,
        text BYTEA NOT NULL,
        stderr BYTEA,
        PRIMARY KEY (job, task, byte_offset)
    );
    CREATE TABLE buildcat.paused_queues (
        queue TEXT PRIMARY KEY
    );
";

/// The number a fresh store gives its first job.
const FIRST_NUMBER: i64 = 1;

/// Creates the layout in a fresh database, or checks the version of an existing one.
///
/// Runs while this server holds the advisory lock, so two servers never create it at once.
pub(super) fn init(tx: &mut Transaction<'_>, shown: &str) -> Result<(), StoreError> {
    let open_err = |e: postgres::Error| StoreError::Open {
        path: shown.to_owned(),
        message: describe(&e),
    };
    let incompatible = |message: String| StoreError::Incompatible {
        path: shown.to_owned(),
        message,
    };
    let exists: bool = tx
        .query_one("SELECT to_regclass('buildcat.migrations') IS NOT NULL", &[])
        .and_then(|row| row.try_get(0))
        .map_err(open_err)?;
    if !exists {
        tx.batch_execute(CREATE_TABLES).map_err(open_err)?;
        tx.execute(
            "INSERT INTO buildcat.migrations (version, software) VALUES ($1, $2)",
            &[&SCHEMA_VERSION, &SOFTWARE_VERSION],
        )
        .map_err(open_err)?;
        tx.execute(
            "INSERT INTO buildcat.meta (next_number, term) VALUES ($1, 0)",
            &[&FIRST_NUMBER],
        )
        .map_err(open_err)?;
        return Ok(());
    }
    let newest = tx
        .query_opt(
            "SELECT version, software FROM buildcat.migrations ORDER BY version DESC LIMIT 1",
            &[],
        )
        .map_err(open_err)?;
    let Some(row) = newest else {
        return Err(incompatible(
            "its buildcat.migrations table is empty; the database is damaged, restore it \
             from a backup"
                .to_owned(),
        ));
    };
    let version: i32 = row.try_get(0).map_err(open_err)?;
    let software: String = row.try_get(1).map_err(open_err)?;
    if version > SCHEMA_VERSION {
        return Err(incompatible(format!(
            "it has schema version {version}, written by buildcat {software}; this buildcat \
             ({SOFTWARE_VERSION}) reads schema version {SCHEMA_VERSION} at most: run buildcat \
             {software} or later"
        )));
    }
    if version < 1 {
        return Err(incompatible(format!(
            "it has schema version {version}, which no buildcat writes; the database is \
             damaged, restore it from a backup"
        )));
    }
    if version < 2 {
        tx.batch_execute(MIGRATE_TO_2).map_err(open_err)?;
        tx.execute(
            "INSERT INTO buildcat.migrations (version, software) VALUES (2, $1)",
            &[&SOFTWARE_VERSION],
        )
        .map_err(open_err)?;
    }
    Ok(())
}
