//! SQLite-only tests: the file format, pragmas, locking and error wording. What every store
//! must do is checked by the conformance suite, run from here for SQLite.

use std::path::PathBuf;

use rusqlite::Connection;

use super::errors::{cannot_open_hint, lowercase_first};
use super::*;
use crate::store::conformance::{self, new_id, plain_job};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Guards the promises every store makes (the suite in `store/conformance.rs`).
#[test]
fn sqlite_passes_the_conformance_suite() {
    conformance::check_store(|| {
        let dir = tempfile::tempdir().expect("could not make a temporary directory");
        move || {
            let store = open(&db_path(&dir))?;
            Ok(Box::new(store) as Box<dyn Store>)
        }
    });
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("buildcat.db")
}

fn open(path: &Path) -> Result<SqliteStore, StoreError> {
    SqliteStore::open(path, SqliteOptions::default())
}

#[test]
fn full_disk_is_reported_plainly_and_rolls_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut store = open(&db_path(&dir))?;
    let context = uuid::ContextV7::new();
    let small = plain_job(new_id(&context, 1), 1);
    store.commit(&[StoreOp::Insert(small.clone())])?;
    // Cap the file at its current size: the next page it needs is refused with
    // SQLITE_FULL, as on a full disk.
    let pages: i64 = store
        .conn
        .query_row("PRAGMA page_count", [], |row| row.get(0))?;
    store.conn.pragma_update(None, "max_page_count", pages)?;
    let mut big = plain_job(new_id(&context, 2), 2);
    big.tasks[0].args = vec![7; 1 << 20];
    let result = store.commit(&[StoreOp::Insert(big)]);
    match result {
        Err(error @ StoreError::Unavailable(_)) => {
            let message = error.to_string();
            assert!(message.contains("the disk is full"), "{message}");
            assert!(error.is_retryable(), "{message}");
        }
        other => panic!("expected storage to be unavailable, got {other:?}"),
    }
    assert_eq!(store.load()?.jobs, vec![small]);
    Ok(())
}

/// A job stored twice is named by what clashes: its id, or its number.
#[test]
fn a_clash_names_the_id_or_the_number() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut store = open(&db_path(&dir))?;
    let context = uuid::ContextV7::new();
    let first = plain_job(new_id(&context, 1), 7);
    store.commit(&[StoreOp::Insert(first.clone())])?;
    let mut same_id = first.clone();
    same_id.job.number = 8;
    let message = match store.commit(&[StoreOp::Insert(same_id)]) {
        Err(error) => error.to_string(),
        Ok(()) => panic!("a job stored twice was accepted"),
    };
    assert!(
        message.contains("a job with this id is already stored"),
        "{message}"
    );
    let same_number = plain_job(new_id(&context, 2), 7);
    let message = match store.commit(&[StoreOp::Insert(same_number)]) {
        Err(error) => error.to_string(),
        Ok(()) => panic!("a number stored twice was accepted"),
    };
    assert!(message.contains("has its number 7"), "{message}");
    Ok(())
}

#[test]
fn newer_schema_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_path(&dir);
    drop(open(&path)?);
    {
        let conn = Connection::open(&path)?;
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
            [SCHEMA_VERSION + 1],
        )?;
    }
    match open(&path) {
        Err(error @ StoreError::Incompatible { .. }) => {
            let message = error.to_string();
            let newer = format!("version {}", SCHEMA_VERSION + 1);
            assert!(message.contains(&newer), "{message}");
            let ours = format!("version {SCHEMA_VERSION}");
            assert!(message.contains(&ours), "{message}");
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
    first.commit(&[StoreOp::Insert(plain_job(new_id(&context, 1), 1))])?;
    match open(&path) {
        Err(error @ StoreError::Open { .. }) => {
            let message = error.to_string();
            assert!(message.contains("another buildcat server"), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        other => panic!("expected an open error, got {other:?}"),
    }
    // The first store is unaffected and keeps working.
    first.commit(&[StoreOp::Insert(plain_job(new_id(&context, 2), 2))])?;
    assert_eq!(first.load()?.jobs.len(), 2);
    drop(first);
    let mut second = open(&path)?;
    assert_eq!(second.load()?.jobs.len(), 2);
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

/// Opens the store at `path` after running `damage` on the file, and checks that `load`
/// refuses it as incompatible with a message holding every one of `expected`.
fn assert_damaged(path: &Path, damage: &str, expected: &[&str]) -> TestResult {
    {
        let conn = Connection::open(path)?;
        conn.execute_batch(damage)?;
    }
    let mut store = open(path)?;
    match store.load() {
        Err(error @ StoreError::Incompatible { .. }) => {
            let message = error.to_string();
            for part in expected {
                assert!(message.contains(part), "{damage}: {message}");
            }
        }
        other => panic!("{damage}: expected an incompatible error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn damaged_rows_are_incompatible_and_name_the_job() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_path(&dir);
    let context = uuid::ContextV7::new();
    let job = conformance::job_of(new_id(&context, 1), 1, 3);
    let id = job.job.id.to_string();
    {
        let mut store = open(&path)?;
        store.commit(&[StoreOp::Insert(job.clone())])?;
    }
    let task = format!("{id}.1");
    assert_damaged(
        &path,
        "UPDATE tasks SET state = 'exploded' WHERE idx = 1",
        &[&task, "exploded"],
    )?;
    // A pause is its job's or its queue's: a task stored as paused is damage.
    assert_damaged(
        &path,
        "UPDATE tasks SET state = 'paused' WHERE idx = 1",
        &[&task, "paused"],
    )?;
    assert_damaged(
        &path,
        "UPDATE tasks SET state = 'queued', attempts = x'ffffffff' WHERE idx = 1",
        &[&task, "attempts"],
    )?;
    assert_damaged(
        &path,
        "UPDATE tasks SET attempts = (SELECT attempts FROM tasks WHERE idx = 0); \
         CREATE TABLE saved AS SELECT after FROM jobs; UPDATE jobs SET after = x'ffffffff'",
        &[&id, "dependencies"],
    )?;
    assert_damaged(
        &path,
        "UPDATE jobs SET after = (SELECT after FROM saved), paused = 2",
        &[&id, "paused"],
    )?;
    Ok(())
}

#[test]
fn tasks_that_do_not_fit_their_jobs_are_damage() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_path(&dir);
    let context = uuid::ContextV7::new();
    let a = conformance::job_of(new_id(&context, 1), 1, 3);
    let b = conformance::job_of(new_id(&context, 2), 2, 1);
    let a_id = a.job.id.to_string();
    let b_id = b.job.id.to_string();
    {
        let mut store = open(&path)?;
        store.commit(&[StoreOp::Insert(a), StoreOp::Insert(b)])?;
    }
    // A gap in a job's tasks.
    assert_damaged(
        &path,
        "UPDATE tasks SET idx = 5 WHERE idx = 1",
        &[&a_id, "task 1 is missing"],
    )?;
    // A job without tasks.
    assert_damaged(
        &path,
        "UPDATE tasks SET idx = 1 WHERE idx = 5; \
         CREATE TABLE saved AS SELECT * FROM tasks WHERE idx = 0 AND job = (SELECT max(job) FROM tasks); \
         DELETE FROM tasks WHERE rowid IN (SELECT rowid FROM tasks WHERE job = (SELECT max(job) FROM tasks))",
        &[&b_id, "no tasks"],
    )?;
    // Tasks of a job that is not stored.
    assert_damaged(
        &path,
        "INSERT INTO tasks SELECT * FROM saved; DROP TABLE saved; \
         DELETE FROM jobs WHERE number = 2",
        &[&b_id, "belongs to no stored job"],
    )?;
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

/// Commits `count` plain jobs, one per commit, after `first` (millis), and returns them.
fn commit_jobs(
    store: &mut SqliteStore,
    context: &uuid::ContextV7,
    first: u64,
    count: u64,
) -> Result<Vec<StoredJob>, StoreError> {
    let mut jobs = Vec::new();
    for millis in first..first + count {
        let job = plain_job(new_id(context, millis), millis);
        store.commit(&[StoreOp::Insert(job.clone())])?;
        jobs.push(job);
    }
    Ok(jobs)
}

/// Asserts that `result` is the store noticing its file `what` (e.g. "was removed").
fn assert_lost(result: Result<(), StoreError>, what: &str) {
    match result {
        Err(error @ StoreError::Lost { .. }) => {
            let message = error.to_string();
            assert!(message.contains(what), "{message}");
            assert!(message.contains("restart the server"), "{message}");
            assert!(!error.is_retryable(), "{message}");
        }
        other => panic!("expected the store to notice its file {what}, got {other:?}"),
    }
}

/// Guards issue 9 item 6: `rm buildcat.db buildcat.db-wal` under a running server made it
/// acknowledge jobs into the removed file, and a restart found none of them.
#[test]
fn removed_database_fails_this_and_every_later_commit() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_path(&dir);
    let context = uuid::ContextV7::new();
    let mut store = open(&path)?;
    commit_jobs(&mut store, &context, 1, 3)?;
    std::fs::remove_file(&path)?;
    std::fs::remove_file(dir.path().join("buildcat.db-wal"))?;
    let job = plain_job(new_id(&context, 10), 10);
    assert_lost(store.commit(&[StoreOp::Insert(job.clone())]), "was removed");
    // Every later commit is refused too, even after a file appears at the path again.
    std::fs::write(&path, b"")?;
    assert_lost(store.commit(&[StoreOp::Insert(job)]), "was removed");
    drop(store);
    // A restart starts from what is at the path now: nothing was acknowledged into the
    // removed file after the removal.
    std::fs::remove_file(&path)?;
    assert!(open(&path)?.load()?.jobs.is_empty());
    Ok(())
}

#[test]
fn removed_wal_alone_is_noticed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_path(&dir);
    let context = uuid::ContextV7::new();
    let mut store = open(&path)?;
    commit_jobs(&mut store, &context, 1, 2)?;
    std::fs::remove_file(dir.path().join("buildcat.db-wal"))?;
    let job = plain_job(new_id(&context, 10), 10);
    assert_lost(
        store.commit(&[StoreOp::Insert(job)]),
        "buildcat.db-wal was removed",
    );
    Ok(())
}

#[test]
fn replaced_database_is_noticed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_path(&dir);
    let context = uuid::ContextV7::new();
    let mut store = open(&path)?;
    commit_jobs(&mut store, &context, 1, 2)?;
    // A backup restored over the live file: same name, another file.
    let restored = dir.path().join("restored.db");
    std::fs::copy(&path, &restored)?;
    std::fs::rename(&restored, &path)?;
    let job = plain_job(new_id(&context, 10), 10);
    assert_lost(store.commit(&[StoreOp::Insert(job)]), "was replaced");
    Ok(())
}

#[test]
fn healthy_store_survives_many_commits_with_the_file_check() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_path(&dir);
    let context = uuid::ContextV7::new();
    let jobs = {
        let mut store = open(&path)?;
        // Enough commits for SQLite to checkpoint the WAL into the database (every 1,000
        // pages by default), which must not count as the WAL being replaced.
        let mut jobs = Vec::new();
        for chunk in 0..40u64 {
            let batch: Vec<StoredJob> = (0..50)
                .map(|i| {
                    let mut job = plain_job(new_id(&context, chunk * 100 + i), chunk * 100 + i + 1);
                    job.tasks[0].args = vec![5; 4096];
                    job
                })
                .collect();
            let ops: Vec<StoreOp> = batch.iter().cloned().map(StoreOp::Insert).collect();
            store.commit(&ops)?;
            jobs.extend(batch);
        }
        jobs
    };
    assert_eq!(open(&path)?.load()?.jobs, jobs);
    Ok(())
}

#[test]
fn storage_errors_say_whether_a_retry_can_help() {
    let retryable = StoreError::Unavailable("the disk is full".to_owned());
    assert!(retryable.is_retryable());
    let refused = StoreError::Database("a job with this id is already stored".to_owned());
    assert!(!refused.is_retryable());
    let lost = StoreError::Lost {
        path: "buildcat.db".to_owned(),
        message: "it was removed".to_owned(),
    };
    assert!(!lost.is_retryable());
}

/// A directory the server may not write is named as such, at open and at commit, rather
/// than as SQLite's "unable to open database file" or "disk I/O error". Root passes
/// permission checks, so there the read-only case is covered by the end-to-end tests on a
/// read-only mount (tests/tests/it/storage.rs).
#[cfg(unix)]
#[test]
fn unwritable_directory_is_named() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked)?;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500))?;
    let restore = || std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700));
    if std::fs::write(locked.join("probe"), b"").is_ok() {
        restore()?;
        eprintln!("skipped: this user (root) may write a directory of mode 0500");
        return Ok(());
    }
    let result = open(&locked.join("buildcat.db"));
    restore()?;
    match result {
        Err(error @ StoreError::Open { .. }) => {
            let message = error.to_string();
            assert!(message.contains("permission denied"), "{message}");
        }
        other => panic!("expected an open error, got {other:?}"),
    }
    Ok(())
}
