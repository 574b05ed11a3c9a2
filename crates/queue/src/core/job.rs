//! The job record the core keeps, and what it derives from it.

use std::cmp::Reverse;
use std::sync::Arc;

use buildcat_proto::{
    Attempt, AttemptOutcome, Failure, JobId, JobOptions, JobProgress, JobState, JobStatus, NewJob,
    Timestamp,
};

use crate::store::StoredJob;

/// A job as the core holds it. Queue and kind names are shared between jobs.
#[derive(Debug, Clone)]
pub(super) struct Job {
    /// The job's id.
    pub(super) id: JobId,
    /// Its queue.
    pub(super) queue: Arc<str>,
    /// Its kind.
    pub(super) kind: Arc<str>,
    /// Its encoded arguments.
    pub(super) args: Arc<[u8]>,
    /// As submitted.
    pub(super) options: JobOptions,
    /// Where it is.
    pub(super) state: JobState,
    /// When it was submitted.
    pub(super) created_at: Timestamp,
    /// When it ended.
    pub(super) ended_at: Option<Timestamp>,
    /// Every attempt so far.
    pub(super) attempts: Vec<Attempt>,
    /// The output, once finished.
    pub(super) result: Option<Vec<u8>>,
    /// Why it failed or was canceled.
    pub(super) failure: Option<Box<Failure>>,
    /// How far the current attempt is (kept in memory only).
    pub(super) progress: Option<Box<JobProgress>>,
    /// The output of the job's attempts (kept in memory only).
    pub(super) log: Option<Box<JobLog>>,
    /// When a failed attempt's retry may start; the job is not in its queue's pending set
    /// until then.
    pub(super) retry_at: Option<Timestamp>,
    /// Completions of the current attempt whose commit the core awaits. While non-zero the
    /// job is started with no worker slot holding it: its end takes effect on commit. Zero
    /// whenever the job is not started.
    pub(super) completing: u16,
}

/// A job's output, bounded.
#[derive(Debug, Clone, Default)]
pub(super) struct JobLog {
    /// The newest lines.
    pub(super) lines: std::collections::VecDeque<String>,
    /// Older lines dropped to stay within the bound.
    pub(super) dropped: u64,
}

impl Job {
    /// A job as loaded from storage.
    pub(super) fn from_stored(
        status: JobStatus,
        args: Vec<u8>,
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
            log: None,
            retry_at: None,
            completing: 0,
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
            log: None,
            retry_at: None,
            completing: 0,
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
        }
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

/// The order jobs leave a queue: higher priority first, then older first.
pub(super) type QueueKey = (Reverse<i32>, JobId);
