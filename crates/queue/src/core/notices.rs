//! Notices: what the core tells the shell happened, for measures and for the people it
//! notifies (task run time and queue wait histograms, a webhook when a job ends). Only made
//! when [`CoreConfig::notices`](super::CoreConfig::notices) is on, so a core nobody
//! watches pays nothing for them.

use std::sync::Arc;
use std::time::Duration;

use buildcat_proto::{AttemptOutcome, JobState, JobSummary, TaskId, TaskState, Timestamp};

use super::{Core, Effect};

/// Something that happened on the farm, for the shell's measures and notifications; it
/// changes nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A task was given to a worker.
    Started {
        /// Its job's queue.
        queue: Arc<str>,
        /// How long it waited in its queue: from when it could first be dispatched (its
        /// submission, its dependencies' end, its retry time or its job's resume) to this
        /// start. A pause in between does not restart the count.
        waited: Duration,
    },
    /// An attempt ended, however it did.
    AttemptEnded {
        /// Its job's queue.
        queue: Arc<str>,
        /// How: `finished`, `failed`, `worker_lost`, `canceled` or `interrupted`.
        outcome: &'static str,
        /// From its start to its end, by the server's clock.
        ran: Duration,
    },
    /// A job ended (every task has, each finished, failed or canceled); after a requeue it
    /// may end again, and is noticed again.
    JobEnded(Box<JobSummary>),
}

impl Notice {
    /// The label for an attempt's outcome, as metrics and logs name it.
    pub fn outcome_label(outcome: Option<&AttemptOutcome>) -> &'static str {
        match outcome {
            Some(AttemptOutcome::Finished) => "finished",
            Some(AttemptOutcome::Failed(_)) => "failed",
            Some(AttemptOutcome::WorkerLost) => "worker_lost",
            Some(AttemptOutcome::Canceled) => "canceled",
            Some(AttemptOutcome::Interrupted) | None => "interrupted",
        }
    }
}

/// Milliseconds between two timestamps as a duration; zero if the clock went back.
fn between(from: Timestamp, to: Timestamp) -> Duration {
    Duration::from_millis(to.0.saturating_sub(from.0))
}

impl Core {
    /// Notes a task's state change from `old` to `new` as a notice, when notices are on:
    /// called by `set_state` after the change.
    pub(super) fn notice_task(&mut self, id: TaskId, old: TaskState, new: TaskState) {
        if !self.config.notices || old == new {
            return;
        }
        let Some(job) = self.jobs.get_mut(&id.job) else {
            return;
        };
        let queue = job.queue.clone();
        let Some(task) = job.task_mut(id.index) else {
            return;
        };
        let notice = if new == TaskState::Started {
            let Some(attempt) = task.attempts.last() else {
                return;
            };
            let since = task.queued_at.take().unwrap_or(attempt.started_at);
            Notice::Started {
                queue,
                waited: between(since, attempt.started_at),
            }
        } else if old == TaskState::Started {
            let Some(attempt) = task.attempts.last() else {
                return;
            };
            let Some(ended) = attempt.ended_at else {
                // Put back without an end (its assignment could not be stored): it never ran.
                return;
            };
            Notice::AttemptEnded {
                queue,
                outcome: Notice::outcome_label(attempt.outcome.as_ref()),
                ran: between(attempt.started_at, ended),
            }
        } else {
            return;
        };
        self.effects.push(Effect::Notice(notice));
    }

    /// Notes that a task could be dispatched from `now` on, unless it already could (a
    /// priority change or a resume re-adds it without restarting its wait).
    pub(super) fn notice_dispatchable(&mut self, now: Timestamp, id: TaskId) {
        if !self.config.notices {
            return;
        }
        if let Some(task) = self
            .jobs
            .get_mut(&id.job)
            .and_then(|job| job.task_mut(id.index))
            && task.state == TaskState::Queued
            && task.queued_at.is_none()
        {
            task.queued_at = Some(now);
        }
    }

    /// Notes that job `id` ended, when notices are on: called by `settle` once per end.
    pub(super) fn notice_job_ended(&mut self, id: buildcat_proto::JobId) {
        if !self.config.notices {
            return;
        }
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let summary = job.summary(self.queue_paused(&job.queue));
        debug_assert!(matches!(
            summary.state,
            JobState::Finished | JobState::Failed | JobState::Canceled
        ));
        self.effects
            .push(Effect::Notice(Notice::JobEnded(Box::new(summary))));
    }
}
