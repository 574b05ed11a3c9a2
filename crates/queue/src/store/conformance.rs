//! What every [`Store`] must do, as a test suite any backend runs against itself.
//!
//! [`check_store`] runs every case on fresh, empty storage and reports all cases that fail
//! by name. SQLite runs it in `sqlite/tests.rs`; a PostgreSQL store will run it too
//! (against a database named by an environment variable). The cases assert only what the
//! trait promises: commits are atomic and durable, `load` returns every job in id order,
//! a refused change is not retryable, and storage is held by one store at a time.

use std::panic::{AssertUnwindSafe, catch_unwind};

use buildcat_proto::{
    Attempt, AttemptOutcome, Failure, JobId, JobOptions, JobState, JobStatus, Timestamp,
};

use super::{OutputExtent, Store, StoreError, StoreOp, StoredJob};

/// What a case returns: an error fails it, as does a panic.
pub(crate) type CaseResult = Result<(), Box<dyn std::error::Error>>;

/// Opens one case's storage; each call opens the same storage again, so a case can drop a
/// store and reopen it, or open a second one while the first is held.
pub(crate) type Opener<'a> = dyn FnMut() -> Result<Box<dyn Store>, StoreError> + 'a;

/// One case of the suite.
type Case = fn(&mut Opener<'_>) -> CaseResult;

/// Every case, by name.
const CASES: &[(&str, Case)] = &[
    (
        "round_trips_a_job_with_every_field",
        round_trips_a_job_with_every_field,
    ),
    ("update_survives_reopen", update_survives_reopen),
    (
        "insert_and_update_in_one_batch",
        insert_and_update_in_one_batch,
    ),
    ("delete_removes_the_job", delete_removes_the_job),
    ("load_orders_by_id", load_orders_by_id),
    ("empty_commit_is_a_no_op", empty_commit_is_a_no_op),
    (
        "failing_batch_rolls_back_entirely",
        failing_batch_rolls_back_entirely,
    ),
    (
        "update_of_a_missing_job_fails_and_rolls_back",
        update_of_a_missing_job_fails_and_rolls_back,
    ),
    (
        "second_open_fails_while_first_is_held",
        second_open_fails_while_first_is_held,
    ),
];

/// Runs every case, each on the storage of a fresh `fresh()`, and panics naming the cases
/// that failed (after running them all).
pub(crate) fn check_store<O>(mut fresh: impl FnMut() -> O)
where
    O: FnMut() -> Result<Box<dyn Store>, StoreError>,
{
    let mut failed = Vec::new();
    for (name, case) in CASES {
        let mut open = fresh();
        let outcome = catch_unwind(AssertUnwindSafe(|| case(&mut open)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failed.push(format!("{name}: {error}")),
            Err(_) => failed.push(format!("{name}: panicked (see above)")),
        }
    }
    assert!(
        failed.is_empty(),
        "the store fails {} of {} conformance cases:\n{}",
        failed.len(),
        CASES.len(),
        failed.join("\n")
    );
}

/// A job id made at `millis`, unique within `context`.
pub(crate) fn new_id(context: &uuid::ContextV7, millis: u64) -> JobId {
    JobId::new(Timestamp(millis), context)
}

/// A queued job with only the required fields.
pub(crate) fn plain_job(id: JobId) -> StoredJob {
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
        output: OutputExtent::default(),
    }
}

/// A job with every field filled.
pub(crate) fn full_job(id: JobId, deps: Vec<JobId>) -> StoredJob {
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
        output: OutputExtent::default(),
    }
}

/// Checks that `error` is a refusal of the change itself, which names `id`.
fn assert_refused(error: &StoreError, id: JobId) -> CaseResult {
    let message = error.to_string();
    if error.is_retryable() {
        return Err(format!("a refused change must not be retryable: {message}").into());
    }
    if !message.contains(&id.to_string()) {
        return Err(format!("the error does not name job {id}: {message}").into());
    }
    Ok(())
}

fn round_trips_a_job_with_every_field(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let deps = vec![new_id(&context, 1), new_id(&context, 2)];
    let job = full_job(new_id(&context, 3), deps);
    let plain = plain_job(new_id(&context, 4));
    {
        let mut store = open()?;
        store.commit(&[StoreOp::Insert(job.clone()), StoreOp::Insert(plain.clone())])?;
        assert_eq!(store.load()?, vec![job.clone(), plain.clone()]);
    }
    let mut store = open()?;
    assert_eq!(store.load()?, vec![job, plain]);
    Ok(())
}

fn update_survives_reopen(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let mut job = plain_job(new_id(&context, 10));
    {
        let mut store = open()?;
        store.commit(&[StoreOp::Insert(job.clone())])?;
        let full = full_job(job.status.id, Vec::new());
        job.status.state = full.status.state;
        job.status.ended_at = full.status.ended_at;
        job.status.attempts = full.status.attempts;
        job.status.result = full.status.result;
        job.status.failure = full.status.failure;
        job.status.options.max_attempts = 4;
        store.commit(&[StoreOp::Update(job.status.clone())])?;
    }
    let mut store = open()?;
    assert_eq!(store.load()?, vec![job.clone()]);

    // And back: fields cleared by an update are cleared in storage.
    job.status.state = JobState::Queued;
    job.status.ended_at = None;
    job.status.attempts.clear();
    job.status.result = None;
    job.status.failure = None;
    store.commit(&[StoreOp::Update(job.status.clone())])?;
    drop(store);
    let mut store = open()?;
    assert_eq!(store.load()?, vec![job]);
    Ok(())
}

fn insert_and_update_in_one_batch(open: &mut Opener<'_>) -> CaseResult {
    let mut store = open()?;
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

fn delete_removes_the_job(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let a = plain_job(new_id(&context, 1));
    let b = plain_job(new_id(&context, 2));
    let c = plain_job(new_id(&context, 3));
    {
        let mut store = open()?;
        store.commit(&[
            StoreOp::Insert(a.clone()),
            StoreOp::Insert(b.clone()),
            StoreOp::Insert(c.clone()),
        ])?;
        store.commit(&[StoreOp::Delete(b.status.id)])?;
        assert_eq!(store.load()?, vec![a.clone(), c.clone()]);
        // Deleting a job that is not stored is harmless: pruning twice leaves the same state.
        store.commit(&[StoreOp::Delete(b.status.id)])?;
    }
    let mut store = open()?;
    assert_eq!(store.load()?, vec![a, c]);
    Ok(())
}

fn load_orders_by_id(open: &mut Opener<'_>) -> CaseResult {
    let mut store = open()?;
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

fn empty_commit_is_a_no_op(open: &mut Opener<'_>) -> CaseResult {
    let mut store = open()?;
    store.commit(&[])?;
    assert!(store.load()?.is_empty());
    Ok(())
}

fn failing_batch_rolls_back_entirely(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let a = plain_job(new_id(&context, 1));
    let b = plain_job(new_id(&context, 2));
    let mut store = open()?;
    store.commit(&[StoreOp::Insert(a.clone())])?;

    // An update, an insert, then an insert of a job already stored, which is refused.
    let mut a_started = a.status.clone();
    a_started.state = JobState::Started;
    let result = store.commit(&[
        StoreOp::Update(a_started),
        StoreOp::Insert(b.clone()),
        StoreOp::Insert(a.clone()),
    ]);
    match result {
        Err(error) => assert_refused(&error, a.status.id)?,
        Ok(()) => return Err("inserting a job twice was accepted".into()),
    }
    assert_eq!(store.load()?, vec![a.clone()]);

    // The store is usable after the failure.
    store.commit(&[StoreOp::Insert(b.clone())])?;
    drop(store);
    let mut store = open()?;
    assert_eq!(store.load()?, vec![a, b]);
    Ok(())
}

fn update_of_a_missing_job_fails_and_rolls_back(open: &mut Opener<'_>) -> CaseResult {
    let mut store = open()?;
    let context = uuid::ContextV7::new();
    let a = plain_job(new_id(&context, 1));
    let missing = plain_job(new_id(&context, 2));
    let result = store.commit(&[StoreOp::Insert(a), StoreOp::Update(missing.status.clone())]);
    match result {
        Err(error) => assert_refused(&error, missing.status.id)?,
        Ok(()) => return Err("updating a job that is not stored was accepted".into()),
    }
    assert!(store.load()?.is_empty());
    Ok(())
}

fn second_open_fails_while_first_is_held(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let mut first = open()?;
    first.commit(&[StoreOp::Insert(plain_job(new_id(&context, 1)))])?;
    match open() {
        Err(StoreError::Open { .. }) => {}
        Err(other) => return Err(format!("expected an open error, got {other}").into()),
        Ok(_) => return Err("a second store opened storage the first one holds".into()),
    }
    // The first store is unaffected and keeps working.
    first.commit(&[StoreOp::Insert(plain_job(new_id(&context, 2)))])?;
    assert_eq!(first.load()?.len(), 2);
    drop(first);
    let mut second = open()?;
    assert_eq!(second.load()?.len(), 2);
    Ok(())
}
