//! Rewrites a file of a past layout to the current one, keeping every job.
//!
//! Versions 1 and 2 kept one row per job, and a job was what one worker ran. Each such job
//! becomes a job of one task: the job keeps its id, queue, kind and options and gets a
//! number (1, 2, 3.. in id order, which is submission order), a name made from its kind,
//! the submitter `unknown` (nobody recorded it) and an empty `runs`; its task 0 keeps the
//! state, attempts, result, failure, arguments and output (version 2). Dependencies, which
//! named jobs, name the same jobs. The next job number is past them all.
//!
//! Version 3 became version 4 by one column: `output.stderr`, which says which lines of a
//! chunk were stderr; the chunks stored before it hold NULL there and read as stdout
//! ([`output_streams`]).
//!
//! The migration runs in the transaction that read the file's version, so a crash or an
//! error part way leaves the file as it was, readable by the buildcat that wrote it.

use std::path::Path;

use buildcat_proto::Dependency;
use rusqlite::{Connection, params};

use super::errors::describe_open;
use super::rows::{Encodings, ID_LEN, Subject, decode_id};
use super::schema::{CREATE_TABLES, SCHEMA_VERSION};
use crate::store::StoreError;

/// The submitter of jobs stored before submitters were recorded.
pub(super) const UNKNOWN_SUBMITTER: &str = "unknown";

/// The prefix of buildcat's own task kinds, left out of the names made from them.
const OWN_KIND_PREFIX: &str = "buildcat.";

/// Rewrites a file of schema version `version` (1 or 2) to the current version.
pub(super) fn to_current(
    conn: &Connection,
    version: i64,
    path: &Path,
    shown: &str,
    encodings: &Encodings,
) -> Result<(), StoreError> {
    let open_err = |e: rusqlite::Error| StoreError::Open {
        path: shown.to_owned(),
        message: format!(
            "could not migrate it from schema version {version}: {}",
            describe_open(path, &e)
        ),
    };
    let incompatible = |message: String| StoreError::Incompatible {
        path: shown.to_owned(),
        message: format!(
            "could not migrate it from schema version {version}: {message}; the file is \
             damaged"
        ),
    };
    // The old tables step aside for the new ones, which take their names.
    conn.execute_batch("ALTER TABLE jobs RENAME TO old_jobs;")
        .map_err(open_err)?;
    if version >= 2 {
        conn.execute_batch("ALTER TABLE output RENAME TO old_output;")
            .map_err(open_err)?;
    }
    conn.execute_batch(CREATE_TABLES).map_err(open_err)?;

    let mut count: i64 = 0;
    {
        let mut read = conn
            .prepare("SELECT id, kind, after FROM old_jobs ORDER BY id")
            .map_err(open_err)?;
        let mut insert = conn
            .prepare(
                "INSERT INTO jobs (id, number, name, queue, kind, submitter, runs, timeout_ms, \
                 max_attempts, priority, after, paused, created_at, ended_at) \
                 SELECT id, ?2, ?3, queue, kind, ?4, '', timeout_ms, max_attempts, priority, \
                 ?5, 0, created_at, ended_at FROM old_jobs WHERE id = ?1",
            )
            .map_err(open_err)?;
        let mut rows = read.query([]).map_err(open_err)?;
        while let Some(row) = rows.next().map_err(open_err)? {
            let id = decode_id(row.get_ref(0).map_err(open_err)?).map_err(incompatible)?;
            let kind: String = row.get(1).map_err(open_err)?;
            let old_after: Vec<u8> = row.get(2).map_err(open_err)?;
            let after = old_dependencies(&old_after)
                .map_err(|message| incompatible(format!("job {id}: {message}")))?;
            let after = encodings
                .dependencies(&after, Subject::Job(id))
                .map_err(|e| incompatible(format!("job {id}: {e}")))?;
            count += 1;
            insert
                .execute(params![
                    id.0.as_bytes(),
                    count,
                    name_from_kind(&kind),
                    UNKNOWN_SUBMITTER,
                    after.as_ref(),
                ])
                .map_err(open_err)?;
        }
    }
    conn.execute_batch(
        "INSERT INTO tasks (job, idx, frames, args, state, max_attempts, ended_at, attempts, \
             result, failure) \
         SELECT id, 0, NULL, args, state, max_attempts, ended_at, attempts, result, failure \
         FROM old_jobs;
         DROP TABLE old_jobs;",
    )
    .map_err(open_err)?;
    if version >= 2 {
        conn.execute_batch(
            "INSERT INTO output (job, task, offset, line, lines, text) \
             SELECT job, 0, offset, line, lines, text FROM old_output;
             DROP TABLE old_output;",
        )
        .map_err(open_err)?;
    }
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_number', ?1)",
        [count + 1],
    )
    .map_err(open_err)?;
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
        [SCHEMA_VERSION],
    )
    .map_err(open_err)?;
    Ok(())
}

/// Rewrites a file of schema version 3 to version 4: the `output` table gains its `stderr`
/// column, NULL (all stdout) for every chunk stored so far.
pub(super) fn output_streams(
    conn: &Connection,
    path: &Path,
    shown: &str,
) -> Result<(), StoreError> {
    let open_err = |e: rusqlite::Error| StoreError::Open {
        path: shown.to_owned(),
        message: format!(
            "could not migrate it from schema version 3: {}",
            describe_open(path, &e)
        ),
    };
    conn.execute_batch("ALTER TABLE output ADD COLUMN stderr BLOB;")
        .map_err(open_err)?;
    conn.execute("UPDATE meta SET value = 4 WHERE key = 'schema_version'", [])
        .map_err(open_err)?;
    Ok(())
}

/// Rewrites a file of schema version 4 to version 5: jobs gain their GPU requirement
/// (`gpus`, `gpu_memory_mib`), none (0) for every job stored so far, which ran anywhere.
pub(super) fn gpu_requirements(
    conn: &Connection,
    path: &Path,
    shown: &str,
) -> Result<(), StoreError> {
    let open_err = |e: rusqlite::Error| StoreError::Open {
        path: shown.to_owned(),
        message: format!(
            "could not migrate it from schema version 4: {}",
            describe_open(path, &e)
        ),
    };
    conn.execute_batch(
        "ALTER TABLE jobs ADD COLUMN gpus INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE jobs ADD COLUMN gpu_memory_mib INTEGER NOT NULL DEFAULT 0;",
    )
    .map_err(open_err)?;
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
        [SCHEMA_VERSION],
    )
    .map_err(open_err)?;
    Ok(())
}

/// The dependencies of a job of a past version: the ids of the jobs it waited for,
/// concatenated.
fn old_dependencies(bytes: &[u8]) -> Result<Vec<Dependency>, String> {
    if !bytes.len().is_multiple_of(ID_LEN) {
        return Err(format!(
            "its dependency list is {} bytes, not a multiple of {ID_LEN}",
            bytes.len()
        ));
    }
    bytes
        .chunks_exact(ID_LEN)
        .map(|chunk| decode_id(rusqlite::types::ValueRef::Blob(chunk)).map(Dependency::Job))
        .collect()
}

/// A name for a job of a past version, which had none: a buildcat kind read as the command
/// that submits such jobs (`buildcat.blender.render` is `blender-render`,
/// `buildcat.worker.info` is `worker-info`), any other kind as it is (as the server names a
/// job submitted without a name).
pub(super) fn name_from_kind(kind: &str) -> String {
    match kind.strip_prefix(OWN_KIND_PREFIX) {
        Some(rest) if !rest.is_empty() => rest.replace(['.', '_'], "-"),
        _ => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use buildcat_proto::codec::encode_value;
    use buildcat_proto::{
        Attempt, AttemptOutcome, Dependency, Failure, GpuRequirement, JobId, JobOptions, TaskId,
        TaskState, TaskStatus, Timestamp,
    };
    use rusqlite::{Connection, params};

    use super::super::{SCHEMA_VERSION, SqliteOptions, SqliteStore};
    use super::name_from_kind;
    use crate::store::conformance::{new_id, plain_job};
    use crate::store::{
        JobRecord, Loaded, OutputExtent, Store, StoreError, StoreOp, StoredJob, StoredTask,
    };

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// The layout of schema versions 1 and 2, as those buildcats wrote it (`jobs` is
    /// version 1; version 2 added `output`).
    const OLD_JOBS: &str = "
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

    /// The output table of schema version 2.
    const OLD_OUTPUT: &str = "
        CREATE TABLE output (
            job BLOB NOT NULL,
            offset INTEGER NOT NULL,
            line INTEGER NOT NULL,
            lines INTEGER NOT NULL,
            text BLOB NOT NULL
        ) STRICT;
        CREATE UNIQUE INDEX output_by_job ON output (job, offset);
    ";

    /// Three jobs of a past version: a finished render, a deferred job waiting for it, and
    /// a failed job of another program's kind; as they must load after the migration.
    fn expected_jobs(ids: [JobId; 3]) -> Vec<StoredJob> {
        let failure = Failure {
            reason: "thumbnail tool crashed".to_owned(),
            exit_code: Some(139),
            output_tail: vec!["segmentation fault".to_owned()],
            gpu_fault: None,
        };
        let job = |id: JobId, number: u64, name: &str, kind: &str, options: JobOptions| JobRecord {
            id,
            number,
            name: name.to_owned(),
            queue: "render".to_owned(),
            kind: kind.to_owned(),
            submitter: "unknown".to_owned(),
            runs: String::new(),
            options,
            paused: false,
            created_at: Timestamp(1_700_000_000_000 + number),
            ended_at: None,
        };
        let task = |job: &JobRecord, state: TaskState| StoredTask {
            status: TaskStatus {
                id: TaskId::new(job.id, 0),
                number: job.number,
                kind: job.kind.clone(),
                frames: None,
                state,
                max_attempts: job.options.max_attempts,
                ended_at: None,
                attempts: Vec::new(),
                result: None,
                failure: None,
                progress: None,
            },
            args: vec![u8::try_from(job.number).unwrap_or(0); 3],
            output: OutputExtent::default(),
        };

        let mut render = job(
            ids[0],
            1,
            "blender-render",
            "buildcat.blender.render",
            JobOptions {
                timeout_ms: Some(90_000),
                max_attempts: 3,
                priority: 5,
                after: Vec::new(),
                gpus: buildcat_proto::GpuRequirement::NONE,
            },
        );
        render.ended_at = Some(Timestamp(1_700_000_050_000));
        let mut render_task = task(&render, TaskState::Finished);
        render_task.status.ended_at = render.ended_at;
        render_task.status.attempts = vec![Attempt {
            number: 1,
            worker: "host-a".to_owned(),
            started_at: Timestamp(1_700_000_010_000),
            ended_at: render.ended_at,
            outcome: Some(AttemptOutcome::Finished),
        }];
        render_task.status.result = Some(vec![7, 7]);
        render_task.output = OutputExtent {
            bytes: 18,
            lines: 3,
        };

        let info = job(
            ids[1],
            2,
            "worker-info",
            "buildcat.worker.info",
            JobOptions {
                after: vec![Dependency::Job(ids[0])],
                ..JobOptions::default()
            },
        );
        let info_task = task(&info, TaskState::Deferred);

        let mut thumbnail = job(
            ids[2],
            3,
            "studio.thumbnail",
            "studio.thumbnail",
            JobOptions::default(),
        );
        thumbnail.ended_at = Some(Timestamp(1_700_000_060_000));
        let mut thumbnail_task = task(&thumbnail, TaskState::Failed);
        thumbnail_task.status.ended_at = thumbnail.ended_at;
        thumbnail_task.status.failure = Some(failure);
        thumbnail_task.output = OutputExtent { bytes: 6, lines: 1 };

        vec![
            StoredJob {
                job: render,
                tasks: vec![render_task],
            },
            StoredJob {
                job: info,
                tasks: vec![info_task],
            },
            StoredJob {
                job: thumbnail,
                tasks: vec![thumbnail_task],
            },
        ]
    }

    /// Writes `jobs` (each of one task) into a file of schema `version` at `path` the way
    /// that version did, by SQL; the output of version 2 too.
    fn write_old_file(path: &Path, version: i64, jobs: &[StoredJob]) -> TestResult {
        let conn = Connection::open(path)?;
        conn.execute_batch(OLD_JOBS)?;
        if version >= 2 {
            conn.execute_batch(OLD_OUTPUT)?;
        }
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
            [version],
        )?;
        // Inserted newest first: numbers follow ids, not the order of the rows.
        for stored in jobs.iter().rev() {
            let job = &stored.job;
            let task = &stored.tasks[0].status;
            let after: Vec<u8> = job
                .options
                .after
                .iter()
                .flat_map(|dependency| match dependency {
                    Dependency::Job(id) => id.0.as_bytes().to_vec(),
                    Dependency::Task(_) => Vec::new(),
                })
                .collect();
            let failure = task.failure.as_ref().map(encode_value).transpose()?;
            conn.execute(
                "INSERT INTO jobs (id, queue, kind, args, timeout_ms, max_attempts, priority, \
                 after, state, created_at, ended_at, attempts, result, failure) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    job.id.0.as_bytes(),
                    job.queue,
                    job.kind,
                    stored.tasks[0].args,
                    job.options.timeout_ms.map(|t| t as i64),
                    job.options.max_attempts,
                    job.options.priority,
                    after,
                    task.state.as_str(),
                    job.created_at.0 as i64,
                    task.ended_at.map(|t| t.0 as i64),
                    encode_value(&task.attempts)?,
                    task.result,
                    failure,
                ],
            )?;
        }
        if version >= 2 {
            let chunks: [(JobId, i64, i64, i64, &str); 3] = [
                (jobs[0].job.id, 0, 0, 2, "frame 1\nframe 2\n"),
                (jobs[2].job.id, 0, 0, 1, "crash\n"),
                (jobs[0].job.id, 16, 2, 1, "3\n"),
            ];
            for (job, offset, line, lines, text) in chunks {
                conn.execute(
                    "INSERT INTO output (job, offset, line, lines, text) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![job.0.as_bytes(), offset, line, lines, text.as_bytes()],
                )?;
            }
        }
        Ok(())
    }

    /// The schema version the file at `path` has.
    fn version_of(path: &Path) -> Result<i64, rusqlite::Error> {
        Connection::open(path)?.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
    }

    fn three_ids() -> [JobId; 3] {
        let context = uuid::ContextV7::new();
        [1, 2, 3].map(|millis| new_id(&context, millis))
    }

    #[test]
    fn a_version_2_file_keeps_every_job_and_its_output() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("old.db");
        let expected = expected_jobs(three_ids());
        write_old_file(&path, 2, &expected)?;

        let mut store = SqliteStore::open(&path, SqliteOptions::default())?;
        let loaded = store.load()?;
        assert_eq!(
            loaded,
            Loaded {
                jobs: expected.clone(),
                next_number: 4,
                paused_queues: Vec::new(),
            }
        );
        let render = TaskId::new(expected[0].job.id, 0);
        let page = store.read_output(render, 0, 10_000)?;
        assert_eq!(page.lines, ["frame 1", "frame 2", "3"]);
        let thumbnail = TaskId::new(expected[2].job.id, 0);
        assert_eq!(store.read_output(thumbnail, 0, 10_000)?.lines, ["crash"]);

        // The migrated file takes new jobs, numbered after the old ones, and output.
        let new = plain_job(new_id(&uuid::ContextV7::new(), 1_800_000_000_000), 4);
        store.commit(&[
            StoreOp::Insert(new.clone()),
            StoreOp::AppendOutput {
                task: render,
                offset: 18,
                line: 3,
                lines: 1,
                text: "4\n".to_owned(),
                stderr: vec![0],
            },
        ])?;
        drop(store);
        assert_eq!(version_of(&path)?, SCHEMA_VERSION);
        let left: i64 = Connection::open(&path)?.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name IN ('old_jobs', 'old_output')",
            [],
            |row| row.get(0),
        )?;
        assert_eq!(left, 0, "the old tables are dropped");
        let mut store = SqliteStore::open(&path, SqliteOptions::default())?;
        let loaded = store.load()?;
        assert_eq!(loaded.next_number, 5);
        assert_eq!(loaded.jobs.len(), 4);
        assert_eq!(loaded.jobs[3], new);
        let page = store.read_output(render, 0, 10_000)?;
        assert_eq!(page.lines.len(), 4);
        assert_eq!(
            page.stderr,
            [3],
            "old lines read as stdout, the new one as stderr"
        );
        Ok(())
    }

    /// A file written by a buildcat that kept output in memory (schema version 1).
    #[test]
    fn a_version_1_file_keeps_every_job() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("old.db");
        let mut expected = expected_jobs(three_ids());
        write_old_file(&path, 1, &expected)?;
        for job in &mut expected {
            job.tasks[0].output = OutputExtent::default();
        }

        let mut store = SqliteStore::open(&path, SqliteOptions::default())?;
        let loaded = store.load()?;
        assert_eq!(loaded.jobs, expected);
        assert_eq!(loaded.next_number, 4);
        let task = TaskId::new(expected[1].job.id, 0);
        store.commit(&[StoreOp::AppendOutput {
            task,
            offset: 0,
            line: 0,
            lines: 1,
            text: "cpu: 16 cores\n".to_owned(),
            stderr: Vec::new(),
        }])?;
        assert_eq!(store.read_output(task, 0, 10_000)?.lines.len(), 1);
        drop(store);
        assert_eq!(version_of(&path)?, SCHEMA_VERSION);
        Ok(())
    }

    /// A migration that fails part way leaves the file as the old buildcat wrote it.
    #[test]
    fn a_failed_migration_changes_nothing() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("old.db");
        let expected = expected_jobs(three_ids());
        write_old_file(&path, 2, &expected)?;
        Connection::open(&path)?.execute(
            "UPDATE jobs SET after = x'0102' WHERE kind = 'buildcat.worker.info'",
            [],
        )?;
        match SqliteStore::open(&path, SqliteOptions::default()) {
            Err(error @ StoreError::Incompatible { .. }) => {
                let message = error.to_string();
                assert!(message.contains("schema version 2"), "{message}");
                assert!(
                    message.contains(&expected[1].job.id.to_string()),
                    "{message}"
                );
                assert!(message.contains("dependency list"), "{message}");
            }
            other => panic!("expected an incompatible error, got {other:?}"),
        }
        assert_eq!(version_of(&path)?, 2);
        let conn = Connection::open(&path)?;
        let (jobs, chunks): (i64, i64) = conn.query_row(
            "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM output)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        assert_eq!((jobs, chunks), (3, 3));
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'tasks'",
            [],
            |row| row.get(0),
        )?;
        assert_eq!(tables, 0);
        Ok(())
    }

    /// Issue 14: a file of schema version 3 (output without streams) becomes version 4; its
    /// lines read as stdout, and new chunks keep their stderr lines.
    #[test]
    fn a_version_3_file_reads_its_output_as_stdout() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("old.db");
        let job = plain_job(new_id(&uuid::ContextV7::new(), 1), 1);
        let task = TaskId::new(job.job.id, 0);
        {
            let mut store = SqliteStore::open(&path, SqliteOptions::default())?;
            store.commit(&[
                StoreOp::Insert(job.clone()),
                StoreOp::AppendOutput {
                    task,
                    offset: 0,
                    line: 0,
                    lines: 2,
                    text: "old 1\nold 2\n".to_owned(),
                    stderr: Vec::new(),
                },
            ])?;
        }
        // Version 3's layout is this one without `output.stderr` and the jobs' GPUs.
        {
            let conn = Connection::open(&path)?;
            conn.execute_batch(
                "ALTER TABLE output DROP COLUMN stderr;
                 ALTER TABLE jobs DROP COLUMN gpus;
                 ALTER TABLE jobs DROP COLUMN gpu_memory_mib;
                 UPDATE meta SET value = 3 WHERE key = 'schema_version';",
            )?;
        }
        let mut store = SqliteStore::open(&path, SqliteOptions::default())?;
        let page = store.read_output(task, 0, 10_000)?;
        assert_eq!(page.lines, ["old 1", "old 2"]);
        assert!(page.stderr.is_empty(), "{:?}", page.stderr);
        store.commit(&[StoreOp::AppendOutput {
            task,
            offset: 12,
            line: 2,
            lines: 2,
            text: "new out\nnew err\n".to_owned(),
            stderr: vec![1],
        }])?;
        drop(store);
        assert_eq!(version_of(&path)?, SCHEMA_VERSION);
        let mut store = SqliteStore::open(&path, SqliteOptions::default())?;
        assert_eq!(store.load()?.jobs.len(), 1);
        let page = store.read_output(task, 0, 10_000)?;
        assert_eq!(page.lines, ["old 1", "old 2", "new out", "new err"]);
        assert_eq!(page.stderr, [3]);
        Ok(())
    }

    /// Issue 13: a file of schema version 4 (jobs without a GPU requirement) becomes
    /// version 5; its jobs need no GPU, and new jobs keep theirs.
    #[test]
    fn a_version_4_file_reads_its_jobs_as_needing_no_gpu() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("old.db");
        let ids = uuid::ContextV7::new();
        let old = plain_job(new_id(&ids, 1), 1);
        {
            let mut store = SqliteStore::open(&path, SqliteOptions::default())?;
            store.commit(&[StoreOp::Insert(old.clone())])?;
        }
        // Version 4's layout is this one without the jobs' GPUs.
        {
            let conn = Connection::open(&path)?;
            conn.execute_batch(
                "ALTER TABLE jobs DROP COLUMN gpus;
                 ALTER TABLE jobs DROP COLUMN gpu_memory_mib;
                 UPDATE meta SET value = 4 WHERE key = 'schema_version';",
            )?;
        }
        let mut store = SqliteStore::open(&path, SqliteOptions::default())?;
        let loaded = store.load()?;
        assert_eq!(loaded.jobs.len(), 1);
        assert_eq!(loaded.jobs[0].job.options.gpus, GpuRequirement::NONE);
        let mut new = plain_job(new_id(&ids, 2), 2);
        new.job.options.gpus = GpuRequirement {
            count: 2,
            memory_mib: 24_576,
        };
        store.commit(&[StoreOp::Insert(new.clone())])?;
        drop(store);
        assert_eq!(version_of(&path)?, SCHEMA_VERSION);
        let mut store = SqliteStore::open(&path, SqliteOptions::default())?;
        let loaded = store.load()?;
        assert_eq!(loaded.jobs[1].job.options.gpus, new.job.options.gpus);
        Ok(())
    }

    #[test]
    fn names_of_old_jobs_read_like_commands() {
        assert_eq!(name_from_kind("buildcat.worker.info"), "worker-info");
        assert_eq!(name_from_kind("buildcat.blender.render"), "blender-render");
        assert_eq!(name_from_kind("buildcat.hou.render_hip"), "hou-render-hip");
        assert_eq!(name_from_kind("studio.thumbnail"), "studio.thumbnail");
        assert_eq!(name_from_kind("buildcat."), "buildcat.");
    }
}
