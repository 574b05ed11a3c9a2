//! The job and task records the core keeps, and what it derives from them.

use std::cmp::Reverse;
use std::sync::Arc;

use buildcat_proto::{
    Attempt, AttemptOutcome, Failure, JobId, JobOptions, JobState, JobStatus, JobSummary, NewJob,
    NewTask, Outcome, TaskCounts, TaskId, TaskProgress, TaskState, TaskStatus, TaskSummary,
    Timestamp,
};

use crate::store::{JobRecord, OutputExtent, StoredJob, StoredTask};

/// A job as the core holds it: what a person submitted and steers, with its tasks.
#[derive(Debug, Clone)]
pub(super) struct Job {
    /// UUID v7: ordering by id is ordering by submission, which dispatch relies on.
    pub(super) id: JobId,
    /// Farm-wide, never reused: what people type.
    pub(super) number: u64,
    /// For people; `None` when the submitter gave none (then it is named after its kind,
    /// without a copy of the kind for every job: see [`Job::name`]).
    pub(super) name: Option<Box<str>>,
    /// `user@host`, for listings and `requeue --failed`'s default; interned like the queue
    /// (a farm has few submitters and many jobs).
    pub(super) submitter: Arc<str>,
    /// What it runs, in words, for `status`.
    pub(super) runs: Box<str>,
    /// Interned (one allocation per queue name, however many jobs).
    pub(super) queue: Arc<str>,
    /// Interned like the queue; decides which workers can run its tasks.
    pub(super) kind: Arc<str>,
    /// As submitted, except `priority`, which a person may change (and which is stored).
    pub(super) options: JobOptions,
    /// A person paused it: its queued tasks are not dispatched.
    pub(super) paused: bool,
    /// The time of the commit's `now`: shown to people.
    pub(super) created_at: Timestamp,
    /// When its last task ended, while every task has; retention counts from here.
    pub(super) ended_at: Option<Timestamp>,
    /// Its tasks by their state as the core keeps it (`paused` always 0 here: a held task
    /// is queued), kept by `Core::set_state`; `total` is `tasks.len()`.
    pub(super) counts: TaskCounts,
    /// Its tasks; task `i` at `i`.
    pub(super) tasks: Vec<Task>,
    /// Tasks its tasks' completions added ([`Outcome::FinishedWithTasks`]) whose commit
    /// the core awaits: they count against [`MAX_TASKS`] before they are in `tasks`, so
    /// that reports in flight together cannot pass the bound.
    pub(super) adding: u32,
}

/// A task as the core holds it: the piece of a job one worker slot runs.
#[derive(Debug, Clone)]
pub(super) struct Task {
    /// The frames it renders, for people.
    pub(super) frames: Option<Box<str>>,
    /// The encoded task, opaque to the server; shared so an assignment copies no bytes
    /// until it is encoded.
    pub(super) args: Arc<[u8]>,
    /// The job's `max_attempts`, raised for this task by a requeue (and stored).
    pub(super) max_attempts: u32,
    /// Changed only through `Core::set_state`, which keeps the counts and indexes true.
    /// Never `Paused` (that is a queued task of a paused job or queue, as shown).
    pub(super) state: TaskState,
    /// Set when it reached a terminal state.
    pub(super) ended_at: Option<Timestamp>,
    /// Every attempt so far, the current one last: its number is what a worker's report
    /// must name to be accepted.
    pub(super) attempts: Vec<Attempt>,
    /// The handler's encoded output, once finished; bounded when it arrives.
    pub(super) result: Option<Vec<u8>>,
    /// Why it failed or was canceled; boxed, since most tasks never fail.
    pub(super) failure: Option<Box<Failure>>,
    /// How far the current attempt is; kept in memory only (it is stale after a restart
    /// anyway), boxed since most tasks are not running.
    pub(super) progress: Option<Box<TaskProgress>>,
    /// How much the task's attempts have printed (the output itself is in the store); boxed
    /// and absent until the first line, since most tasks in a large queue have printed
    /// nothing yet.
    pub(super) output: Option<Box<OutputState>>,
    /// When a failed attempt's retry may start; the task is not in its queue's pending set
    /// until then.
    pub(super) retry_at: Option<Timestamp>,
    /// Completions of the current attempt whose commit the core awaits. While non-zero the
    /// task is started with no worker slot holding it: its end takes effect on commit. Zero
    /// whenever the task is not started.
    pub(super) completing: u16,
    /// The current attempt's record awaits its commit before the worker is sent the task:
    /// a worker never runs an attempt a restart would not find. Only while started.
    pub(super) assigning: bool,
    /// Since when it could be dispatched, while queued, for its queue wait; kept only
    /// with [`CoreConfig::notices`](super::CoreConfig::notices), in memory.
    pub(super) queued_at: Option<Timestamp>,
}

/// Where a job's stored output ends and how far its middle has been dropped.
#[derive(Debug, Clone, Default)]
pub(super) struct OutputState {
    /// Bytes and lines printed so far: where the next chunk goes.
    pub(super) extent: OutputExtent,
    /// The end of the last range dropped from the middle, so that a drop is asked of the
    /// store once per [`DROP_STEPS`]th of the bound rather than for every chunk. Zero after
    /// a restart: the first drop then covers whatever the last server left.
    pub(super) dropped_to: u64,
}

/// The share of a job's output bound kept from its start (one part in this many); the rest
/// keeps the newest output. A render's first lines say what it is (versions, scene,
/// settings) and its last ones how it ended, and the end matters more.
pub(super) const HEAD_SHARE: u64 = 4;

/// The middle of a long output is dropped in steps of this many parts of the bound, so the
/// store deletes chunks in batches; the output stored may exceed the bound by one step (and
/// one chunk).
pub(super) const DROP_STEPS: u64 = 16;

impl OutputState {
    /// The bytes of it the store keeps under the bound `max_bytes`, for the running count
    /// behind `buildcat_output_bytes`: all it printed less the middle dropped. Exact while
    /// one server runs, to within a chunk at each edge of a drop (a chunk across an edge
    /// stays). After a restart `dropped_to` is zero though the last server may have
    /// dropped a middle; no output that long is kept, so the bound is counted, within one
    /// step of the truth until the first drop makes it exact again. Output that has not
    /// reached the bound is counted exactly throughout.
    pub(super) fn kept(&self, max_bytes: u64) -> u64 {
        let head = max_bytes / HEAD_SHARE;
        let step = (max_bytes / DROP_STEPS).max(1);
        if self.dropped_to > head {
            self.extent.bytes.saturating_sub(self.dropped_to - head)
        } else {
            // Until its first drop, an output is under the bound plus one step.
            self.extent.bytes.min(max_bytes.saturating_add(step))
        }
    }

    /// After appending: the range to drop to keep within `max_bytes`, when a step is due.
    pub(super) fn due_drop(&mut self, max_bytes: u64) -> Option<(u64, u64)> {
        let head = max_bytes / HEAD_SHARE;
        let tail = max_bytes - head;
        let to = self.extent.bytes.saturating_sub(tail);
        let step = (max_bytes / DROP_STEPS).max(1);
        if to < self.dropped_to.max(head).saturating_add(step) {
            return None;
        }
        self.dropped_to = to;
        Some((head, to))
    }
}

impl Task {
    /// A task as loaded from storage.
    fn from_stored(stored: StoredTask) -> Task {
        let StoredTask {
            status,
            args,
            output,
        } = stored;
        Task {
            frames: status.frames.map(String::into_boxed_str),
            args: args.into(),
            max_attempts: status.max_attempts.max(1),
            // A paused state is never stored; read one as what it means.
            state: match status.state {
                TaskState::Paused => TaskState::Queued,
                state => state,
            },
            ended_at: status.ended_at,
            attempts: status.attempts,
            result: status.result,
            failure: status.failure.map(Box::new),
            progress: None,
            output: (output != OutputExtent::default()).then(|| {
                Box::new(OutputState {
                    extent: output,
                    dropped_to: 0,
                })
            }),
            retry_at: None,
            completing: 0,
            assigning: false,
            queued_at: None,
        }
    }

    /// A task not yet run, queued, as submitted or added by another task of its job.
    pub(super) fn new(task: NewTask, max_attempts: u32) -> Task {
        Task {
            frames: task.frames.map(String::into_boxed_str),
            args: task.args.into(),
            max_attempts,
            state: TaskState::Queued,
            ended_at: None,
            attempts: Vec::new(),
            result: None,
            failure: None,
            progress: None,
            output: None,
            retry_at: None,
            completing: 0,
            assigning: false,
            queued_at: None,
        }
    }

    /// Whether `worker` ran an attempt of this task that failed.
    pub(super) fn failed_on(&self, worker: &str) -> bool {
        self.attempts.iter().any(|attempt| {
            attempt.worker == worker && matches!(attempt.outcome, Some(AttemptOutcome::Failed(_)))
        })
    }

    /// Whether it is started and `attempt` is its current attempt.
    pub(super) fn runs(&self, attempt: u32) -> bool {
        self.state == TaskState::Started && self.current_attempt() == attempt
    }

    /// How much the task has printed.
    pub(super) fn output_extent(&self) -> OutputExtent {
        self.output
            .as_deref()
            .map_or_else(OutputExtent::default, |output| output.extent)
    }

    pub(super) fn current_attempt(&self) -> u32 {
        self.attempts.last().map_or(0, |attempt| attempt.number)
    }

    pub(super) fn worker_losses(&self) -> u32 {
        let lost = self
            .attempts
            .iter()
            .filter(|attempt| attempt.outcome == Some(AttemptOutcome::WorkerLost))
            .count();
        u32::try_from(lost).unwrap_or(u32::MAX)
    }

    pub(super) fn failed_attempts(&self) -> u32 {
        let failed = self
            .attempts
            .iter()
            .filter(|attempt| matches!(attempt.outcome, Some(AttemptOutcome::Failed(_))))
            .count();
        u32::try_from(failed).unwrap_or(u32::MAX)
    }
}

impl Job {
    /// A job as loaded from storage, its counts taken from its tasks and its end derived
    /// from them (the latest task's end, once every task has ended).
    pub(super) fn from_stored(
        stored: StoredJob,
        queue: Arc<str>,
        kind: Arc<str>,
        submitter: Arc<str>,
    ) -> Job {
        let StoredJob { job, tasks } = stored;
        let tasks: Vec<Task> = tasks.into_iter().map(Task::from_stored).collect();
        let mut counts = TaskCounts {
            total: tasks.len() as u64,
            ..TaskCounts::default()
        };
        for task in &tasks {
            *counts.count_mut(task.state) += 1;
        }
        let ended_at =
            (counts.ended() == counts.total).then(|| last_end(&tasks).unwrap_or(job.created_at));
        Job {
            id: job.id,
            number: job.number,
            name: (job.name != *kind).then(|| job.name.into_boxed_str()),
            submitter,
            runs: job.runs.into_boxed_str(),
            queue,
            kind,
            options: job.options,
            paused: job.paused,
            created_at: job.created_at,
            ended_at,
            counts,
            tasks,
            adding: 0,
        }
    }

    /// A job just submitted, not yet committed. Its `runs` text is cut to
    /// [`MAX_TEXT_BYTES`]: it is shown to people, and a long command line (thousands of
    /// file arguments) must still run.
    pub(super) fn submitted(
        id: JobId,
        number: u64,
        now: Timestamp,
        new: NewJob,
        queue: Arc<str>,
        kind: Arc<str>,
        submitter: Arc<str>,
    ) -> Job {
        let mut options = new.options;
        options.max_attempts = options.max_attempts.max(1);
        let tasks: Vec<Task> = new
            .tasks
            .into_iter()
            .map(|task| Task::new(task, options.max_attempts))
            .collect();
        let mut runs = new.runs;
        cut(&mut runs, MAX_TEXT_BYTES);
        let name =
            (!new.name.trim().is_empty() && new.name != *kind).then(|| new.name.into_boxed_str());
        Job {
            id,
            number,
            name,
            submitter,
            runs: runs.into_boxed_str(),
            queue,
            kind,
            options,
            paused: false,
            created_at: now,
            ended_at: None,
            counts: TaskCounts {
                total: tasks.len() as u64,
                queued: tasks.len() as u64,
                ..TaskCounts::default()
            },
            tasks,
            adding: 0,
        }
    }

    /// Its name: the one it was given, else its kind.
    pub(super) fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.kind)
    }

    /// When its latest task ended, if any has.
    pub(super) fn last_task_end(&self) -> Option<Timestamp> {
        last_end(&self.tasks)
    }

    /// Task `index`, if the job has it.
    pub(super) fn task(&self, index: u32) -> Option<&Task> {
        self.tasks.get(usize::try_from(index).ok()?)
    }

    /// Task `index`, to change it.
    pub(super) fn task_mut(&mut self, index: u32) -> Option<&mut Task> {
        self.tasks.get_mut(usize::try_from(index).ok()?)
    }

    /// The bytes of its tasks' output the store keeps under the bound `max_bytes` (see
    /// [`OutputState::kept`]).
    pub(super) fn output_kept(&self, max_bytes: u64) -> u64 {
        self.tasks
            .iter()
            .filter_map(|task| task.output.as_deref())
            .map(|output| output.kept(max_bytes))
            .sum()
    }

    /// Its tasks' ids with the tasks.
    pub(super) fn indexed(&self) -> impl Iterator<Item = (TaskId, &Task)> {
        let id = self.id;
        (0u32..)
            .zip(&self.tasks)
            .map(move |(index, task)| (TaskId::new(id, index), task))
    }

    /// Whether every task has ended.
    pub(super) fn ended(&self) -> bool {
        self.counts.ended() == self.counts.total
    }

    /// Its state, derived from its tasks; `queue_paused` says whether its queue is.
    pub(super) fn state(&self, queue_paused: bool) -> JobState {
        JobState::derive(
            &self.shown_counts(queue_paused),
            self.paused || queue_paused,
        )
    }

    /// Its counts as people see them: queued tasks held by a pause counted as paused.
    pub(super) fn shown_counts(&self, queue_paused: bool) -> TaskCounts {
        let mut counts = self.counts;
        if self.paused || queue_paused {
            counts.paused = counts.queued;
            counts.queued = 0;
        }
        counts
    }

    /// A task's state as people see it: a queued task of a paused job or queue is paused.
    pub(super) fn shown_state(&self, task: &Task, queue_paused: bool) -> TaskState {
        if task.state == TaskState::Queued && (self.paused || queue_paused) {
            TaskState::Paused
        } else {
            task.state
        }
    }

    /// The job as listings show it.
    pub(super) fn summary(&self, queue_paused: bool) -> JobSummary {
        JobSummary {
            id: self.id,
            number: self.number,
            name: self.name().to_owned(),
            queue: self.queue.to_string(),
            kind: self.kind.to_string(),
            submitter: self.submitter.to_string(),
            runs: self.runs.to_string(),
            options: self.options.clone(),
            state: self.state(queue_paused),
            paused: self.paused,
            created_at: self.created_at,
            ended_at: self.ended_at,
            tasks: self.shown_counts(queue_paused),
        }
    }

    /// One task as its job's status shows it; reasons cut and output lists shortened to
    /// the newest file, so that a job of many tasks fits in one reply.
    pub(super) fn task_summary(&self, index: u32, task: &Task, queue_paused: bool) -> TaskSummary {
        let reason = task.failure.as_deref().map(|failure| {
            let mut reason = failure.reason.clone();
            cut(&mut reason, MAX_SUMMARY_REASON_BYTES);
            reason
        });
        let progress = task.progress.as_deref().map(|progress| TaskProgress {
            done: progress.done,
            total: progress.total,
            outputs: progress.outputs.last().cloned().into_iter().collect(),
            frame_percent: progress.frame_percent,
        });
        TaskSummary {
            index,
            frames: task.frames.as_deref().map(str::to_owned),
            state: self.shown_state(task, queue_paused),
            worker: task.attempts.last().map(|attempt| attempt.worker.clone()),
            attempts: u32::try_from(task.attempts.len()).unwrap_or(u32::MAX),
            started_at: task.attempts.last().map(|attempt| attempt.started_at),
            ended_at: task.ended_at,
            reason,
            progress,
        }
    }

    /// The job with every task.
    pub(super) fn status(&self, queue_paused: bool) -> JobStatus {
        JobStatus {
            job: self.summary(queue_paused),
            tasks: (0u32..)
                .zip(&self.tasks)
                .map(|(index, task)| self.task_summary(index, task, queue_paused))
                .collect(),
        }
    }

    /// Everything about task `index`.
    pub(super) fn task_status(&self, index: u32, queue_paused: bool) -> Option<TaskStatus> {
        let task = self.task(index)?;
        Some(TaskStatus {
            id: TaskId::new(self.id, index),
            number: self.number,
            kind: self.kind.to_string(),
            frames: task.frames.as_deref().map(str::to_owned),
            state: self.shown_state(task, queue_paused),
            max_attempts: task.max_attempts,
            ended_at: task.ended_at,
            attempts: task.attempts.clone(),
            result: task.result.clone(),
            failure: task.failure.as_deref().cloned(),
            progress: task.progress.as_deref().cloned(),
        })
    }

    /// Task `index`'s record as stored (its state as kept, never paused).
    pub(super) fn stored_status(&self, index: u32) -> Option<TaskStatus> {
        let mut status = self.task_status(index, false)?;
        // As kept: a held task is stored queued, its pause is its job's.
        status.state = self.task(index)?.state;
        status.progress = None;
        Some(status)
    }

    /// The job's own fields as stored.
    pub(super) fn record(&self) -> JobRecord {
        JobRecord {
            id: self.id,
            number: self.number,
            name: self.name().to_owned(),
            queue: self.queue.to_string(),
            kind: self.kind.to_string(),
            submitter: self.submitter.to_string(),
            runs: self.runs.to_string(),
            options: self.options.clone(),
            paused: self.paused,
            created_at: self.created_at,
            ended_at: self.ended_at,
        }
    }

    /// The whole job as stored.
    pub(super) fn stored(&self) -> StoredJob {
        StoredJob {
            job: self.record(),
            tasks: (0u32..)
                .zip(&self.tasks)
                .filter_map(|(index, task)| {
                    Some(StoredTask {
                        status: self.stored_status(index)?,
                        args: task.args.to_vec(),
                        output: task.output_extent(),
                    })
                })
                .collect(),
        }
    }

    /// The stored records of `tasks` as they join this job: queued, not yet run, numbered
    /// after its last task and those awaiting their commit (the store numbers them again:
    /// see [`StoreOp::AppendTasks`](crate::store::StoreOp::AppendTasks)).
    pub(super) fn added_records(&self, tasks: &[NewTask]) -> Vec<StoredTask> {
        let max_attempts = self.options.max_attempts.max(1);
        let first = self.tasks.len() + self.adding as usize;
        (first..)
            .zip(tasks)
            .map(|(index, task)| StoredTask {
                status: TaskStatus {
                    id: TaskId::new(self.id, u32::try_from(index).unwrap_or(u32::MAX)),
                    number: self.number,
                    kind: self.kind.to_string(),
                    frames: task.frames.clone(),
                    state: TaskState::Queued,
                    max_attempts,
                    ended_at: None,
                    attempts: Vec::new(),
                    result: None,
                    failure: None,
                    progress: None,
                },
                args: task.args.clone(),
                output: OutputExtent::default(),
            })
            .collect()
    }

    /// Where task `index` stands in its queue's dispatch order.
    pub(super) fn queue_key(&self, index: u32) -> QueueKey {
        (Reverse(self.options.priority), TaskId::new(self.id, index))
    }
}

/// When the latest of `tasks` ended, if any has: a job's end, once every task has.
fn last_end(tasks: &[Task]) -> Option<Timestamp> {
    tasks.iter().filter_map(|task| task.ended_at).max()
}

/// The longest failure reason a job's status shows per task, in bytes (`status 42.3` shows
/// it whole): a job of many failed tasks must fit in one reply.
const MAX_SUMMARY_REASON_BYTES: usize = 256;

/// The submission limits shared with `buildcat-client` (which refuses the same before
/// sending), defined once in the protocol crate.
pub(super) use buildcat_proto::{MAX_GPU_MEMORY_MIB, MAX_TASKS, MAX_TIMEOUT_MS};

/// The longest job name or submitter accepted, and `runs` text kept, in bytes: they are
/// in every listing.
const MAX_TEXT_BYTES: usize = 4 << 10;

/// The most attempts a task may be given. Each attempt's record (with its failure)
/// is part of every task status reply, which must fit in a frame; a render that fails a hundred
/// times needs a person, not a hundred-and-first try.
pub(super) const MAX_ATTEMPTS: u32 = 100;

/// The most attempt records a job may collect before a requeue is refused: with
/// [`MAX_ATTEMPTS`], this leaves room for worker losses and interruptions, while the
/// job's status stays within a reply.
pub(super) const MAX_ATTEMPT_RECORDS: usize = 2 * MAX_ATTEMPTS as usize;

/// The longest queue or kind name, in bytes: names are in every status and listing entry.
pub(super) const MAX_NAME_BYTES: usize = 1 << 10;

/// The most jobs or tasks one job may depend on: each is about 20 bytes of every status
/// reply.
pub(super) const MAX_DEPENDENCIES: usize = 10_000;

/// The largest result the server keeps for a job, in bytes: the result goes into every
/// status reply beside the attempts, within one frame. Larger outputs belong in files in
/// the farm's root, with their paths as the result.
pub(super) const MAX_RESULT_BYTES: usize = 4 << 20;

/// The longest failure reason kept, in bytes.
const MAX_REASON_BYTES: usize = 2 << 10;

/// The bytes of a failure's output tail kept (its newest lines), and of any one line.
const MAX_TAIL_BYTES: usize = 16 << 10;

/// The longest line of a failure's output tail kept, in bytes.
const MAX_TAIL_LINE_BYTES: usize = 2 << 10;

/// What a worker reported, bounded so that the job's record (every attempt's failure and
/// the result) always fits in a status reply: long reasons and tail lines are cut, the
/// tail keeps its newest lines, and a result over [`MAX_RESULT_BYTES`] fails the attempt
/// with a reason that says so.
pub(super) fn bounded_outcome(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Finished(result) | Outcome::FinishedWithTasks { result, .. }
            if result.len() > MAX_RESULT_BYTES =>
        {
            Outcome::Failed(Failure::new(format!(
                "the job's result of {} bytes is over the server's limit of {MAX_RESULT_BYTES} \
                 bytes; write large outputs to files in the farm's root and return their paths",
                result.len()
            )))
        }
        Outcome::Failed(failure) => Outcome::Failed(bounded_failure(failure)),
        other => other,
    }
}

/// `failure` with its reason and output tail cut to their bounds.
fn bounded_failure(mut failure: Failure) -> Failure {
    cut(&mut failure.reason, MAX_REASON_BYTES);
    let mut kept = 0;
    let mut start = failure.output_tail.len();
    for line in failure.output_tail.iter_mut().rev() {
        cut(line, MAX_TAIL_LINE_BYTES);
        if kept + line.len() > MAX_TAIL_BYTES {
            break;
        }
        kept += line.len();
        start -= 1;
    }
    failure.output_tail.drain(..start);
    failure
}

/// Cuts `text` to at most `max` bytes, at a character boundary, marking the cut.
fn cut(text: &mut String, max: usize) {
    const MARK: &str = "…";
    if text.len() <= max {
        return;
    }
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(MARK);
}

/// Why a task of `job` may not add `tasks` to it, if it may not: at most [`MAX_TASKS`] in
/// one report and in the job in all (counting those whose commit is awaited), and frames
/// written as briefly as a submission's.
pub(super) fn check_added(job: &Job, tasks: &[NewTask]) -> Result<(), String> {
    let after = job.tasks.len() + job.adding as usize + tasks.len();
    if tasks.len() > MAX_TASKS || after > MAX_TASKS {
        return Err(format!(
            "a task of job {} tried to add {} tasks to its job, which has {}; a job may have              at most {MAX_TASKS} tasks: give each task more frames (a larger chunk)",
            job.number,
            tasks.len(),
            job.tasks.len() + job.adding as usize
        ));
    }
    check_frames(tasks)
}

/// Refuses a task whose frames are written in more than [`MAX_NAME_BYTES`].
fn check_frames(tasks: &[NewTask]) -> Result<(), String> {
    if let Some(frames) = tasks
        .iter()
        .filter_map(|task| task.frames.as_ref())
        .find(|frames| frames.len() > MAX_NAME_BYTES)
    {
        return Err(format!(
            "a task's frames may be written in at most {MAX_NAME_BYTES} bytes, not {}",
            frames.len()
        ));
    }
    Ok(())
}

/// Why `new` cannot be taken as submitted, if it cannot: limits that keep its record
/// within a status reply.
pub(super) fn check_bounds(new: &NewJob) -> Result<(), String> {
    for (what, name) in [("queue", &new.queue), ("kind", &new.kind)] {
        if name.len() > MAX_NAME_BYTES {
            return Err(format!(
                "a job's {what} name may be at most {MAX_NAME_BYTES} bytes, not {}",
                name.len()
            ));
        }
    }
    for (what, text) in [("name", &new.name), ("submitter", &new.submitter)] {
        if text.len() > MAX_TEXT_BYTES {
            return Err(format!(
                "a job's {what} may be at most {MAX_TEXT_BYTES} bytes, not {}",
                text.len()
            ));
        }
    }
    if new.tasks.is_empty() {
        return Err("a job needs at least one task".to_owned());
    }
    if new.tasks.len() > MAX_TASKS {
        return Err(format!(
            "a job may have at most {MAX_TASKS} tasks, not {}; give each task more frames \
             (a larger chunk) or submit several jobs",
            new.tasks.len()
        ));
    }
    check_frames(&new.tasks)?;
    if new.options.max_attempts > MAX_ATTEMPTS {
        return Err(format!(
            "a job may have at most {MAX_ATTEMPTS} attempts per task, not {}",
            new.options.max_attempts
        ));
    }
    if let Some(timeout) = new.options.timeout_ms
        && timeout > MAX_TIMEOUT_MS
    {
        return Err(format!(
            "a job's timeout may be at most {MAX_TIMEOUT_MS} ms ({} s, 365 days), not {timeout} \
             ms; give a shorter timeout, or none",
            MAX_TIMEOUT_MS / 1000
        ));
    }
    if new.options.gpus.memory_mib > MAX_GPU_MEMORY_MIB {
        return Err(format!(
            "a job may require at most {MAX_GPU_MEMORY_MIB} MiB of memory per GPU, not {}",
            new.options.gpus.memory_mib
        ));
    }
    if new.options.gpus.count > buildcat_proto::MAX_GPUS_REQUIRED {
        return Err(format!(
            "a job may require at most {} GPUs, not {}: no worker slot has more; ask for fewer with `--gpus`",
            buildcat_proto::MAX_GPUS_REQUIRED,
            new.options.gpus.count
        ));
    }
    if new.options.after.len() > MAX_DEPENDENCIES {
        return Err(format!(
            "a job may depend on at most {MAX_DEPENDENCIES} jobs or tasks, not {}; make it \
             depend on fewer jobs that depend on the rest",
            new.options.after.len()
        ));
    }
    Ok(())
}

/// The order tasks leave a queue: higher priority first, then older jobs first, then
/// tasks in index order.
pub(super) type QueueKey = (Reverse<i32>, TaskId);
