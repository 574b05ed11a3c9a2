//! What every [`Store`] must do, as a test suite any backend runs against itself.
//!
//! [`check_store`] runs every case on fresh, empty storage and reports all cases that fail
//! by name. SQLite runs it in `sqlite/tests.rs`; a PostgreSQL store will run it too
//! (against a database named by an environment variable). The cases assert only what the
//! trait promises: commits are atomic and durable, `load` returns every job with its tasks
//! in id order, job numbers are never given out twice, a refused change is not retryable,
//! and storage is held by one store at a time.

use std::panic::{AssertUnwindSafe, catch_unwind};

use buildcat_proto::{
    Attempt, AttemptOutcome, Dependency, Failure, JobId, JobOptions, TaskId, TaskState, TaskStatus,
    Timestamp,
};

use super::{JobRecord, Loaded, OutputExtent, Store, StoreError, StoreOp, StoredJob, StoredTask};

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
        "round_trips_a_job_of_many_tasks_with_every_field",
        round_trips_a_job_of_many_tasks_with_every_field,
    ),
    ("update_job_survives_reopen", update_job_survives_reopen),
    ("update_task_survives_reopen", update_task_survives_reopen),
    (
        "insert_and_update_in_one_batch",
        insert_and_update_in_one_batch,
    ),
    (
        "delete_removes_the_job_its_tasks_and_output",
        delete_removes_the_job_its_tasks_and_output,
    ),
    (
        "numbers_are_never_reused_after_delete_and_reopen",
        numbers_are_never_reused_after_delete_and_reopen,
    ),
    ("paused_queues_survive_reopen", paused_queues_survive_reopen),
    (
        "output_of_tasks_of_one_job_does_not_mix",
        output_of_tasks_of_one_job_does_not_mix,
    ),
    ("load_orders_by_id", load_orders_by_id),
    ("empty_commit_is_a_no_op", empty_commit_is_a_no_op),
    (
        "failing_batch_rolls_back_entirely",
        failing_batch_rolls_back_entirely,
    ),
    (
        "a_number_stored_twice_is_refused",
        a_number_stored_twice_is_refused,
    ),
    (
        "update_of_a_missing_job_or_task_fails_and_rolls_back",
        update_of_a_missing_job_or_task_fails_and_rolls_back,
    ),
    (
        "malformed_jobs_and_paused_tasks_are_refused",
        malformed_jobs_and_paused_tasks_are_refused,
    ),
    (
        "second_open_fails_while_first_is_held",
        second_open_fails_while_first_is_held,
    ),
    (
        "appended_tasks_follow_the_last_and_survive_reopen",
        appended_tasks_follow_the_last_and_survive_reopen,
    ),
    (
        "appending_to_a_job_not_stored_is_refused_and_rolls_back",
        appending_to_a_job_not_stored_is_refused_and_rolls_back,
    ),
    (
        "pages_keep_which_lines_were_stderr",
        pages_keep_which_lines_were_stderr,
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

/// A queued task `index` of `job` with only the required fields.
pub(crate) fn plain_task(job: &JobRecord, index: u32) -> StoredTask {
    StoredTask {
        status: TaskStatus {
            id: TaskId::new(job.id, index),
            number: job.number,
            kind: job.kind.clone(),
            frames: None,
            state: TaskState::Queued,
            max_attempts: job.options.max_attempts,
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

/// A queued job numbered `number` with only the required fields and `tasks` queued tasks.
pub(crate) fn job_of(id: JobId, number: u64, tasks: u32) -> StoredJob {
    let job = JobRecord {
        id,
        number,
        name: String::new(),
        queue: "default".to_owned(),
        kind: "buildcat.test".to_owned(),
        submitter: "unknown".to_owned(),
        runs: String::new(),
        options: JobOptions::default(),
        paused: false,
        created_at: Timestamp(1_700_000_000_000),
        ended_at: None,
    };
    let tasks = (0..tasks).map(|index| plain_task(&job, index)).collect();
    StoredJob { job, tasks }
}

/// A queued job of one task numbered `number`, with only the required fields.
pub(crate) fn plain_job(id: JobId, number: u64) -> StoredJob {
    job_of(id, number, 1)
}

/// A failure with every field set.
fn failure() -> Failure {
    Failure {
        reason: "blender exited with an error".to_owned(),
        exit_code: Some(3),
        output_tail: vec!["line one".to_owned(), "line two".to_owned()],
        gpu_fault: Some("GPU 0 (NVIDIA H200): CUDA out of memory".to_owned()),
    }
}

/// Three attempts, the last failed.
fn attempts() -> Vec<Attempt> {
    vec![
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
            outcome: Some(AttemptOutcome::Interrupted),
        },
        Attempt {
            number: 3,
            worker: "host-c".to_owned(),
            started_at: Timestamp(1_700_000_005_000),
            ended_at: Some(Timestamp(1_700_000_100_000)),
            outcome: Some(AttemptOutcome::Failed(failure())),
        },
    ]
}

/// A paused render job numbered `number` with every field set and a task in each stored
/// state, each task with every field it can have in that state.
pub(crate) fn full_job(id: JobId, number: u64, after: Vec<Dependency>) -> StoredJob {
    let job = JobRecord {
        id,
        number,
        name: "shot.blend 1-240".to_owned(),
        queue: "render".to_owned(),
        kind: "buildcat.blender.render".to_owned(),
        submitter: "ana@studio-ws-12".to_owned(),
        runs: "blender -b shot.blend -f 1-240 (chunks of 40) ünïcödé".to_owned(),
        options: JobOptions {
            timeout_ms: Some(90_000),
            max_attempts: 3,
            priority: -7,
            after,
            // Issue 13: the requirement is kept.
            gpus: buildcat_proto::GpuRequirement {
                count: 2,
                memory_mib: 24_576,
            },
        },
        paused: true,
        created_at: Timestamp(1_700_000_000_123),
        ended_at: Some(Timestamp(1_700_000_200_000)),
    };
    let states = [
        TaskState::Finished,
        TaskState::Failed,
        TaskState::Canceled,
        TaskState::Started,
        TaskState::Queued,
        TaskState::Deferred,
    ];
    let tasks = (0u32..)
        .zip(states)
        .map(|(index, state)| {
            let mut task = plain_task(&job, index);
            let first = u64::from(index) * 40 + 1;
            task.status.frames = Some(format!("{first}-{}", first + 39));
            task.status.state = state;
            task.status.max_attempts = 3 + index;
            task.args = vec![0xde, 0xad, 0xbe, 0xef, u8::try_from(index).unwrap_or(0)];
            match state {
                TaskState::Finished => {
                    task.status.attempts = attempts();
                    task.status.ended_at = Some(Timestamp(1_700_000_100_000));
                    task.status.result = Some(vec![9, 8, 7, 0, 255]);
                }
                TaskState::Failed | TaskState::Canceled => {
                    task.status.attempts = attempts();
                    task.status.ended_at = Some(Timestamp(1_700_000_100_000));
                    task.status.failure = Some(failure());
                }
                TaskState::Started => {
                    task.status.attempts = attempts();
                    if let Some(last) = task.status.attempts.last_mut() {
                        last.ended_at = None;
                        last.outcome = None;
                    }
                }
                _ => {}
            }
            task
        })
        .collect();
    StoredJob { job, tasks }
}

/// The jobs `store` loads.
fn jobs(store: &mut Box<dyn Store>) -> Result<Vec<StoredJob>, StoreError> {
    Ok(store.load()?.jobs)
}

/// Checks that `error` is a refusal of the change itself, which names `what`.
fn assert_refused(error: &StoreError, what: &str) -> CaseResult {
    let message = error.to_string();
    if error.is_retryable() {
        return Err(format!("a refused change must not be retryable: {message}").into());
    }
    if !message.contains(what) {
        return Err(format!("the error does not name {what}: {message}").into());
    }
    Ok(())
}

/// Checks that `result` is a refused change naming `what`.
fn expect_refused(result: Result<(), StoreError>, what: &str, change: &str) -> CaseResult {
    match result {
        Err(error) => assert_refused(&error, what),
        Ok(()) => Err(format!("{change} was accepted").into()),
    }
}

/// One chunk of output for `task`: `lines` lines starting at byte `offset` and line `line`.
fn chunk(task: TaskId, offset: u64, line: u64, lines: &[&str]) -> StoreOp {
    StoreOp::AppendOutput {
        task,
        offset,
        line,
        lines: lines.len() as u64,
        text: lines.iter().map(|line| format!("{line}\n")).collect(),
        stderr: Vec::new(),
    }
}

/// [`chunk`] whose lines at `stderr` (indexes into `lines`) were stderr.
fn chunk_with_stderr(
    task: TaskId,
    offset: u64,
    line: u64,
    lines: &[&str],
    stderr: &[u32],
) -> StoreOp {
    match chunk(task, offset, line, lines) {
        StoreOp::AppendOutput {
            task,
            offset,
            line,
            lines,
            text,
            ..
        } => StoreOp::AppendOutput {
            task,
            offset,
            line,
            lines,
            text,
            stderr: stderr.to_vec(),
        },
        other => other,
    }
}

/// Issue 14: a page says which of its lines were stderr, counted from the page's first line
/// whatever chunks it spans or starts inside, across a reopen.
fn pages_keep_which_lines_were_stderr(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let job = plain_job(new_id(&context, 1), 1);
    let task = TaskId::new(job.job.id, 0);
    {
        let mut store = open()?;
        store.commit(&[
            StoreOp::Insert(job.clone()),
            chunk_with_stderr(task, 0, 0, &["out 1", "err 1", "out 2"], &[1]),
            chunk(task, 18, 3, &["out 3"]),
            chunk_with_stderr(task, 24, 4, &["err 2", "err 3"], &[0, 1]),
        ])?;
    }
    let mut store = open()?;
    let page = store.read_output(task, 0, 10_000)?;
    assert_eq!(
        page.lines,
        ["out 1", "err 1", "out 2", "out 3", "err 2", "err 3"]
    );
    assert_eq!(page.stderr, [1, 4, 5]);
    // From the second line on: indexes count from the page's first line.
    let page = store.read_output(task, 6, 10_000)?;
    assert_eq!(page.lines.first().map(String::as_str), Some("err 1"));
    assert_eq!(page.stderr, [0, 3, 4]);
    // A page cut short keeps only its own lines' streams.
    let page = store.read_output(task, 12, 10)?;
    assert_eq!(page.lines, ["out 2"]);
    assert!(page.stderr.is_empty(), "{:?}", page.stderr);
    Ok(())
}

fn round_trips_a_job_of_many_tasks_with_every_field(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let earlier = new_id(&context, 1);
    let after = vec![
        Dependency::Job(earlier),
        Dependency::Task(TaskId::new(new_id(&context, 2), 7)),
    ];
    let job = full_job(new_id(&context, 3), 1, after);
    let plain = plain_job(new_id(&context, 4), 2);
    let expected = Loaded {
        jobs: vec![job.clone(), plain.clone()],
        next_number: 3,
        paused_queues: Vec::new(),
    };
    {
        let mut store = open()?;
        store.commit(&[StoreOp::Insert(job), StoreOp::Insert(plain)])?;
        assert_eq!(store.load()?, expected);
    }
    let mut store = open()?;
    assert_eq!(store.load()?, expected);
    Ok(())
}

fn update_job_survives_reopen(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let mut job = job_of(new_id(&context, 10), 1, 3);
    {
        let mut store = open()?;
        store.commit(&[StoreOp::Insert(job.clone())])?;
        job.job.options.priority = 50;
        job.job.paused = true;
        job.job.ended_at = Some(Timestamp(1_700_000_500_000));
        store.commit(&[StoreOp::UpdateJob(job.job.clone())])?;
    }
    let mut store = open()?;
    assert_eq!(jobs(&mut store)?, vec![job.clone()]);

    // And back: fields cleared by an update are cleared in storage.
    job.job.options.priority = -3;
    job.job.paused = false;
    job.job.ended_at = None;
    store.commit(&[StoreOp::UpdateJob(job.job.clone())])?;
    drop(store);
    let mut store = open()?;
    assert_eq!(jobs(&mut store)?, vec![job]);
    Ok(())
}

fn update_task_survives_reopen(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let mut job = job_of(new_id(&context, 10), 1, 3);
    let full = full_job(job.job.id, 1, Vec::new());
    {
        let mut store = open()?;
        store.commit(&[StoreOp::Insert(job.clone())])?;
        // Task 1 fails, with everything a failed task has; its neighbours stay as they are.
        let task = &mut job.tasks[1].status;
        let failed = &full.tasks[1].status;
        task.state = failed.state;
        task.ended_at = failed.ended_at;
        task.attempts = failed.attempts.clone();
        task.result = Some(vec![4, 2]);
        task.failure = failed.failure.clone();
        task.max_attempts = 4;
        let update = task.clone();
        store.commit(&[StoreOp::UpdateTask(update)])?;
    }
    let mut store = open()?;
    assert_eq!(jobs(&mut store)?, vec![job.clone()]);

    // And back: fields cleared by an update (a requeue) are cleared in storage.
    let task = &mut job.tasks[1].status;
    task.state = TaskState::Queued;
    task.ended_at = None;
    task.attempts.clear();
    task.result = None;
    task.failure = None;
    let update = task.clone();
    store.commit(&[StoreOp::UpdateTask(update)])?;
    drop(store);
    let mut store = open()?;
    assert_eq!(jobs(&mut store)?, vec![job]);
    Ok(())
}

fn insert_and_update_in_one_batch(open: &mut Opener<'_>) -> CaseResult {
    let mut store = open()?;
    let context = uuid::ContextV7::new();
    let mut job = job_of(new_id(&context, 10), 1, 2);
    let inserted = job.clone();
    job.tasks[0].status.state = TaskState::Started;
    job.job.options.priority = 9;
    store.commit(&[
        StoreOp::Insert(inserted),
        StoreOp::UpdateTask(job.tasks[0].status.clone()),
        StoreOp::UpdateJob(job.job.clone()),
    ])?;
    assert_eq!(jobs(&mut store)?, vec![job]);
    Ok(())
}

fn delete_removes_the_job_its_tasks_and_output(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let a = job_of(new_id(&context, 1), 1, 2);
    let b = job_of(new_id(&context, 2), 2, 3);
    let c = job_of(new_id(&context, 3), 3, 1);
    let b_task = TaskId::new(b.job.id, 2);
    {
        let mut store = open()?;
        store.commit(&[
            StoreOp::Insert(a.clone()),
            StoreOp::Insert(b.clone()),
            StoreOp::Insert(c.clone()),
            chunk(b_task, 0, 0, &["rendering", "done"]),
        ])?;
        store.commit(&[StoreOp::Delete(b.job.id)])?;
        assert_eq!(jobs(&mut store)?, vec![a.clone(), c.clone()]);
        if !store.read_output(b_task, 0, 10_000)?.lines.is_empty() {
            return Err("a deleted job's output can still be read".into());
        }
        // Deleting a job that is not stored is harmless: pruning twice leaves the same state.
        store.commit(&[StoreOp::Delete(b.job.id)])?;
    }
    let mut store = open()?;
    assert_eq!(jobs(&mut store)?, vec![a.clone(), c.clone()]);
    // Nothing of the job is left behind: a job of the same id (under a new number) can be
    // stored again and comes back with only its own tasks and no output.
    let again = job_of(b.job.id, 4, 1);
    store.commit(&[StoreOp::Insert(again.clone())])?;
    let loaded = jobs(&mut store)?;
    assert_eq!(loaded, vec![a, again, c]);
    if !store.read_output(b_task, 0, 10_000)?.lines.is_empty() {
        return Err("a deleted job's output came back with a job of its id".into());
    }
    Ok(())
}

fn numbers_are_never_reused_after_delete_and_reopen(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    {
        let mut store = open()?;
        assert_eq!(store.load()?.next_number, 1, "a new store starts at 1");
        let first: Vec<StoredJob> = (1..=3)
            .map(|number| plain_job(new_id(&context, number), number))
            .collect();
        store.commit(
            &first
                .iter()
                .cloned()
                .map(StoreOp::Insert)
                .collect::<Vec<_>>(),
        )?;
        assert_eq!(store.load()?.next_number, 4);
        // The newest job deleted: its number is still taken.
        store.commit(&[StoreOp::Delete(first[2].job.id)])?;
        assert_eq!(store.load()?.next_number, 4);
    }
    let mut store = open()?;
    assert_eq!(store.load()?.next_number, 4, "after delete and reopen");
    // Numbers given out of order in one batch: the next is past the highest.
    store.commit(&[
        StoreOp::Insert(plain_job(new_id(&context, 10), 10)),
        StoreOp::Insert(plain_job(new_id(&context, 11), 5)),
    ])?;
    assert_eq!(store.load()?.next_number, 11);
    // Everything deleted: the numbers stay taken, across a reopen too.
    let ids: Vec<JobId> = jobs(&mut store)?.iter().map(|job| job.job.id).collect();
    store.commit(&ids.into_iter().map(StoreOp::Delete).collect::<Vec<_>>())?;
    drop(store);
    let mut store = open()?;
    let loaded = store.load()?;
    assert!(loaded.jobs.is_empty());
    assert_eq!(loaded.next_number, 11);
    Ok(())
}

fn paused_queues_survive_reopen(open: &mut Opener<'_>) -> CaseResult {
    let pause = |queue: &str, paused: bool| StoreOp::PauseQueue {
        queue: queue.to_owned(),
        paused,
    };
    {
        let mut store = open()?;
        store.commit(&[pause("render", true), pause("comp", true)])?;
        // Pausing twice and letting go of a queue that is not paused are harmless.
        store.commit(&[
            pause("comp", true),
            pause("sim", false),
            pause("render", false),
        ])?;
        assert_eq!(store.load()?.paused_queues, ["comp"]);
    }
    let mut store = open()?;
    assert_eq!(store.load()?.paused_queues, ["comp"]);
    store.commit(&[pause("comp", false), pause("ünïcödé queue", true)])?;
    drop(store);
    let mut store = open()?;
    assert_eq!(store.load()?.paused_queues, ["ünïcödé queue"]);
    Ok(())
}

fn output_of_tasks_of_one_job_does_not_mix(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let mut job = job_of(new_id(&context, 1), 1, 3);
    let first = TaskId::new(job.job.id, 0);
    let second = TaskId::new(job.job.id, 1);
    {
        let mut store = open()?;
        store.commit(&[
            StoreOp::Insert(job.clone()),
            chunk(first, 0, 0, &["first 1", "first 2"]),
            chunk(second, 0, 0, &["second 1"]),
            chunk(first, 16, 2, &["first 3"]),
            chunk(second, 9, 1, &["second 2", "second 3"]),
        ])?;
    }
    let mut store = open()?;
    let page = store.read_output(first, 0, 10_000)?;
    assert_eq!(page.lines, ["first 1", "first 2", "first 3"]);
    assert_eq!(page.next, 24);
    let page = store.read_output(second, 0, 10_000)?;
    assert_eq!(page.lines, ["second 1", "second 2", "second 3"]);
    assert_eq!(page.next, 27);
    // The third task printed nothing.
    let page = store.read_output(TaskId::new(job.job.id, 2), 0, 10_000)?;
    assert!(page.lines.is_empty() && page.next == 0);
    // Each task's extent comes back with it.
    job.tasks[0].output = OutputExtent {
        bytes: 24,
        lines: 3,
    };
    job.tasks[1].output = OutputExtent {
        bytes: 27,
        lines: 3,
    };
    assert_eq!(jobs(&mut store)?, vec![job]);
    // Dropping the middle of one task's output leaves the other's alone.
    store.commit(&[StoreOp::DropOutput {
        task: second,
        from: 0,
        to: 9,
    }])?;
    assert_eq!(store.read_output(first, 0, 10_000)?.lines.len(), 3);
    let page = store.read_output(second, 0, 10_000)?;
    assert_eq!(page.lines, ["second 2", "second 3"]);
    Ok(())
}

fn load_orders_by_id(open: &mut Opener<'_>) -> CaseResult {
    let mut store = open()?;
    let context = uuid::ContextV7::new();
    // Ids across milliseconds and within one, inserted out of order, of 1 to 3 tasks.
    let mut all: Vec<StoredJob> = (0..50u64)
        .map(|i| {
            let tasks = u32::try_from(i % 3 + 1).unwrap_or(1);
            job_of(new_id(&context, 1_700_000_000_000 + i / 5), i + 1, tasks)
        })
        .collect();
    let mut shuffled = all.clone();
    shuffled.reverse();
    shuffled.swap(3, 40);
    for chunk in shuffled.chunks(7) {
        let ops: Vec<StoreOp> = chunk.iter().cloned().map(StoreOp::Insert).collect();
        store.commit(&ops)?;
    }
    all.sort_by_key(|job| job.job.id);
    assert_eq!(jobs(&mut store)?, all);
    Ok(())
}

fn empty_commit_is_a_no_op(open: &mut Opener<'_>) -> CaseResult {
    let mut store = open()?;
    store.commit(&[])?;
    assert_eq!(
        store.load()?,
        Loaded {
            jobs: Vec::new(),
            next_number: 1,
            paused_queues: Vec::new(),
        }
    );
    Ok(())
}

fn failing_batch_rolls_back_entirely(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let a = job_of(new_id(&context, 1), 1, 2);
    let b = plain_job(new_id(&context, 2), 2);
    let mut store = open()?;
    store.commit(&[StoreOp::Insert(a.clone())])?;
    let before = store.load()?;

    // Changes of every kind, then an insert of a job already stored, which is refused.
    let mut a_started = a.tasks[0].status.clone();
    a_started.state = TaskState::Started;
    let mut a_record = a.job.clone();
    a_record.paused = true;
    let result = store.commit(&[
        StoreOp::UpdateTask(a_started),
        StoreOp::UpdateJob(a_record),
        StoreOp::Insert(b.clone()),
        chunk(TaskId::new(a.job.id, 1), 0, 0, &["lost"]),
        StoreOp::PauseQueue {
            queue: "default".to_owned(),
            paused: true,
        },
        StoreOp::Insert(a.clone()),
    ]);
    expect_refused(result, &a.job.id.to_string(), "inserting a job twice")?;
    assert_eq!(store.load()?, before);
    if !store
        .read_output(TaskId::new(a.job.id, 1), 0, 10_000)?
        .lines
        .is_empty()
    {
        return Err("output of a failed commit was stored".into());
    }

    // The store is usable after the failure.
    store.commit(&[StoreOp::Insert(b.clone())])?;
    drop(store);
    let mut store = open()?;
    let loaded = store.load()?;
    assert_eq!(loaded.jobs, vec![a, b]);
    assert_eq!(loaded.next_number, 3);
    Ok(())
}

fn a_number_stored_twice_is_refused(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let a = plain_job(new_id(&context, 1), 7);
    let b = plain_job(new_id(&context, 2), 7);
    let mut store = open()?;
    store.commit(&[StoreOp::Insert(a.clone())])?;
    let result = store.commit(&[StoreOp::Insert(b.clone())]);
    expect_refused(result, &b.job.id.to_string(), "a second job numbered 7")?;
    assert_eq!(jobs(&mut store)?, vec![a]);
    Ok(())
}

fn update_of_a_missing_job_or_task_fails_and_rolls_back(open: &mut Opener<'_>) -> CaseResult {
    let mut store = open()?;
    let context = uuid::ContextV7::new();
    let a = job_of(new_id(&context, 1), 1, 2);
    let missing = plain_job(new_id(&context, 2), 2);
    let result = store.commit(&[
        StoreOp::Insert(a.clone()),
        StoreOp::UpdateJob(missing.job.clone()),
    ]);
    expect_refused(
        result,
        &missing.job.id.to_string(),
        "updating a job that is not stored",
    )?;
    let result = store.commit(&[
        StoreOp::Insert(a.clone()),
        StoreOp::UpdateTask(missing.tasks[0].status.clone()),
    ]);
    expect_refused(
        result,
        &missing.tasks[0].status.id.to_string(),
        "updating a task of a job that is not stored",
    )?;
    // A task past the last of a stored job.
    let beyond = plain_task(&a.job, 2).status;
    let result = store.commit(&[StoreOp::Insert(a), StoreOp::UpdateTask(beyond.clone())]);
    expect_refused(
        result,
        &beyond.id.to_string(),
        "updating a task its job does not have",
    )?;
    assert!(jobs(&mut store)?.is_empty());
    assert_eq!(store.load()?.next_number, 1);
    Ok(())
}

fn malformed_jobs_and_paused_tasks_are_refused(open: &mut Opener<'_>) -> CaseResult {
    let mut store = open()?;
    let context = uuid::ContextV7::new();
    let good = job_of(new_id(&context, 1), 1, 2);
    store.commit(&[StoreOp::Insert(good.clone())])?;

    let mut no_tasks = plain_job(new_id(&context, 2), 2);
    no_tasks.tasks.clear();
    let id = no_tasks.job.id.to_string();
    expect_refused(
        store.commit(&[StoreOp::Insert(no_tasks)]),
        &id,
        "a job without tasks",
    )?;

    let mut out_of_order = job_of(new_id(&context, 3), 3, 2);
    out_of_order.tasks.swap(0, 1);
    let id = out_of_order.job.id.to_string();
    expect_refused(
        store.commit(&[StoreOp::Insert(out_of_order)]),
        &id,
        "a job with its tasks out of order",
    )?;

    let mut foreign = job_of(new_id(&context, 4), 4, 2);
    foreign.tasks[1] = plain_task(&good.job, 1);
    let id = foreign.job.id.to_string();
    expect_refused(
        store.commit(&[StoreOp::Insert(foreign)]),
        &id,
        "a job with another job's task",
    )?;

    // A paused task is stored as queued, with the pause on its job or queue.
    let mut paused = job_of(new_id(&context, 5), 5, 1);
    paused.tasks[0].status.state = TaskState::Paused;
    let id = paused.job.id.to_string();
    expect_refused(
        store.commit(&[StoreOp::Insert(paused)]),
        &id,
        "a task stored as paused",
    )?;
    let mut update = good.tasks[1].status.clone();
    update.state = TaskState::Paused;
    let id = update.id.to_string();
    expect_refused(
        store.commit(&[StoreOp::UpdateTask(update)]),
        &id,
        "a task updated to paused",
    )?;

    assert_eq!(
        store.load()?,
        Loaded {
            jobs: vec![good],
            next_number: 2,
            paused_queues: Vec::new(),
        }
    );
    Ok(())
}

fn second_open_fails_while_first_is_held(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let mut first = open()?;
    first.commit(&[StoreOp::Insert(plain_job(new_id(&context, 1), 1))])?;
    match open() {
        Err(StoreError::Open { .. }) => {}
        Err(other) => return Err(format!("expected an open error, got {other}").into()),
        Ok(_) => return Err("a second store opened storage the first one holds".into()),
    }
    // The first store is unaffected and keeps working.
    first.commit(&[StoreOp::Insert(plain_job(new_id(&context, 2), 2))])?;
    assert_eq!(jobs(&mut first)?.len(), 2);
    drop(first);
    let mut second = open()?;
    assert_eq!(jobs(&mut second)?.len(), 2);
    Ok(())
}

/// Issue 11: a task's completion adds tasks to its job. They are numbered after the job's
/// last task by the store (the index in the op is not read), in the same commit as the
/// update that finishes the task that added them, and load back with the job.
fn appended_tasks_follow_the_last_and_survive_reopen(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let mut job = job_of(new_id(&context, 1), 1, 1);
    let other = plain_job(new_id(&context, 2), 2);
    let added = |index: u32, frames: &str| {
        let mut task = plain_task(&job.job, index);
        task.status.frames = Some(frames.to_owned());
        task.args = frames.as_bytes().to_vec();
        task
    };
    // Wrong indexes in the op: the store numbers the tasks itself.
    let first = vec![added(7, "3"), added(7, "5")];
    let second = vec![added(0, "7")];
    {
        let mut store = open()?;
        store.commit(&[StoreOp::Insert(job.clone()), StoreOp::Insert(other.clone())])?;
        let mut finished = job.tasks[0].status.clone();
        finished.state = TaskState::Finished;
        finished.ended_at = Some(Timestamp(1_700_000_100_000));
        store.commit(&[
            StoreOp::UpdateTask(finished.clone()),
            StoreOp::AppendTasks {
                job: job.job.id,
                tasks: first.clone(),
            },
        ])?;
        store.commit(&[StoreOp::AppendTasks {
            job: job.job.id,
            tasks: second.clone(),
        }])?;
        job.tasks[0].status = finished;
    }
    for (index, mut task) in (1u32..).zip(first.into_iter().chain(second)) {
        task.status.id = TaskId::new(job.job.id, index);
        job.tasks.push(task);
    }
    let mut store = open()?;
    assert_eq!(jobs(&mut store)?, vec![job.clone(), other]);
    // An added task is updated like any other.
    let mut started = job.tasks[2].status.clone();
    started.state = TaskState::Started;
    store.commit(&[StoreOp::UpdateTask(started.clone())])?;
    let loaded = jobs(&mut store)?;
    if loaded[0].tasks[2].status != started {
        return Err("an update of an added task was not stored".into());
    }
    Ok(())
}

/// Issue 11: tasks for a job the store does not hold are refused with the whole batch.
fn appending_to_a_job_not_stored_is_refused_and_rolls_back(open: &mut Opener<'_>) -> CaseResult {
    let context = uuid::ContextV7::new();
    let a = plain_job(new_id(&context, 1), 1);
    let missing = plain_job(new_id(&context, 2), 2);
    let mut store = open()?;
    let result = store.commit(&[
        StoreOp::Insert(a.clone()),
        StoreOp::AppendTasks {
            job: missing.job.id,
            tasks: vec![plain_task(&missing.job, 1)],
        },
    ]);
    expect_refused(
        result,
        &missing.job.id.to_string(),
        "adding tasks to a job that is not stored",
    )?;
    assert!(jobs(&mut store)?.is_empty());
    Ok(())
}
