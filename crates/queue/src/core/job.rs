//! The job record the core keeps, and what it derives from it.

use std::cmp::Reverse;
use std::sync::Arc;

use buildcat_proto::{
    Attempt, AttemptOutcome, Failure, JobId, JobOptions, JobProgress, JobState, JobStatus, NewJob,
    Outcome, Timestamp,
};

use crate::store::{OutputExtent, StoredJob};

/// A job as the core holds it. Queue and kind names are shared between jobs.
#[derive(Debug, Clone)]
pub(super) struct Job {
    /// UUID v7: ordering by id is ordering by submission, which dispatch relies on.
    pub(super) id: JobId,
    /// Interned (one allocation per queue name, however many jobs).
    pub(super) queue: Arc<str>,
    /// Interned like the queue; decides which workers can run it.
    pub(super) kind: Arc<str>,
    /// The encoded task, opaque to the server; shared so an assignment copies no bytes
    /// until it is encoded.
    pub(super) args: Arc<[u8]>,
    /// As submitted, except `max_attempts`, which a requeue raises (and stores).
    pub(super) options: JobOptions,
    /// Changed only through `set_state`, which keeps the queue counts and indexes true.
    pub(super) state: JobState,
    /// The time of the commit's `now`: shown to people, and the fallback end for pruning.
    pub(super) created_at: Timestamp,
    /// Set when it reached a terminal state; retention counts from here.
    pub(super) ended_at: Option<Timestamp>,
    /// Every attempt so far, the current one last: its number is what a worker's report
    /// must name to be accepted.
    pub(super) attempts: Vec<Attempt>,
    /// The handler's encoded output, once finished; bounded when it arrives.
    pub(super) result: Option<Vec<u8>>,
    /// Why it failed or was canceled; boxed, since most jobs never fail.
    pub(super) failure: Option<Box<Failure>>,
    /// How far the current attempt is; kept in memory only (it is stale after a restart
    /// anyway), boxed since most jobs are not running.
    pub(super) progress: Option<Box<JobProgress>>,
    /// How much the job's attempts have printed (the output itself is in the store); boxed
    /// and absent until the first line, since most jobs in a large queue have printed
    /// nothing yet.
    pub(super) output: Option<Box<OutputState>>,
    /// When a failed attempt's retry may start; the job is not in its queue's pending set
    /// until then.
    pub(super) retry_at: Option<Timestamp>,
    /// Completions of the current attempt whose commit the core awaits. While non-zero the
    /// job is started with no worker slot holding it: its end takes effect on commit. Zero
    /// whenever the job is not started.
    pub(super) completing: u16,
    /// The current attempt's record awaits its commit before the worker is sent the job:
    /// a worker never runs an attempt a restart would not find. Only while started.
    pub(super) assigning: bool,
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

impl Job {
    /// A job as loaded from storage.
    pub(super) fn from_stored(
        status: JobStatus,
        args: Vec<u8>,
        output: OutputExtent,
        queue: Arc<str>,
        kind: Arc<str>,
    ) -> Job {
        Job {
            id: status.id,
            queue,
            kind,
            args: args.into(),
            options: status.options,
            state: status.state,
            created_at: status.created_at,
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
        }
    }

    /// A job just submitted, not yet committed.
    pub(super) fn submitted(
        id: JobId,
        now: Timestamp,
        new: NewJob,
        queue: Arc<str>,
        kind: Arc<str>,
    ) -> Job {
        let mut options = new.options;
        options.max_attempts = options.max_attempts.max(1);
        Job {
            id,
            queue,
            kind,
            args: new.args.into(),
            options,
            state: JobState::Queued,
            created_at: now,
            ended_at: None,
            attempts: Vec::new(),
            result: None,
            failure: None,
            progress: None,
            output: None,
            retry_at: None,
            completing: 0,
            assigning: false,
        }
    }

    /// Whether `worker` ran an attempt of this job that failed.
    pub(super) fn failed_on(&self, worker: &str) -> bool {
        self.attempts.iter().any(|attempt| {
            attempt.worker == worker && matches!(attempt.outcome, Some(AttemptOutcome::Failed(_)))
        })
    }

    /// Whether it is started and `attempt` is its current attempt.
    pub(super) fn runs(&self, attempt: u32) -> bool {
        self.state == JobState::Started && self.current_attempt() == attempt
    }
    pub(super) fn status(&self) -> JobStatus {
        JobStatus {
            id: self.id,
            queue: self.queue.to_string(),
            kind: self.kind.to_string(),
            state: self.state,
            options: self.options.clone(),
            created_at: self.created_at,
            ended_at: self.ended_at,
            attempts: self.attempts.clone(),
            result: self.result.clone(),
            failure: self.failure.as_deref().cloned(),
            progress: self.progress.as_deref().cloned(),
        }
    }

    pub(super) fn stored(&self) -> StoredJob {
        StoredJob {
            status: self.status(),
            args: self.args.to_vec(),
            output: self.output_extent(),
        }
    }

    /// How much the job has printed.
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

    pub(super) fn queue_key(&self) -> QueueKey {
        (Reverse(self.options.priority), self.id)
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

/// The most attempts a job may be submitted with. Each attempt's record (with its failure)
/// is part of every status reply, which must fit in a frame; a render that fails a hundred
/// times needs a person, not a hundred-and-first try.
pub(super) const MAX_ATTEMPTS: u32 = 100;

/// The most attempt records a job may collect before a requeue is refused: with
/// [`MAX_ATTEMPTS`], this leaves room for worker losses and interruptions, while the
/// job's status stays within a reply.
pub(super) const MAX_ATTEMPT_RECORDS: usize = 2 * MAX_ATTEMPTS as usize;

/// The longest queue or kind name, in bytes: names are in every status and listing entry.
pub(super) const MAX_NAME_BYTES: usize = 1 << 10;

/// The most jobs one job may depend on: each is 17 bytes of every status reply.
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
        Outcome::Finished(result) if result.len() > MAX_RESULT_BYTES => {
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
    if new.options.max_attempts > MAX_ATTEMPTS {
        return Err(format!(
            "a job may have at most {MAX_ATTEMPTS} attempts, not {}",
            new.options.max_attempts
        ));
    }
    if new.options.after.len() > MAX_DEPENDENCIES {
        return Err(format!(
            "a job may depend on at most {MAX_DEPENDENCIES} jobs, not {}; make it depend on \
             fewer jobs that depend on the rest",
            new.options.after.len()
        ));
    }
    Ok(())
}

/// The order jobs leave a queue: higher priority first, then older first.
pub(super) type QueueKey = (Reverse<i32>, JobId);
