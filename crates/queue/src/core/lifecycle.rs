//! A job's life: submitted, committed, admitted, completed, retried, lost, ended.

use buildcat_proto::{
    AttemptOutcome, Completion, Failure, JobEvent, JobId, JobState, NewJob, Outcome, Reply,
    RequestError, RequestId, Timestamp,
};

use super::job::Job;
use super::{ConnId, Core, MAX_WORKER_LOSSES, Token};
use crate::store::StoreOp;

/// What the core waits on a commit for.
#[derive(Debug)]
pub(super) enum AwaitingCommit {
    /// Jobs to make visible and acknowledge.
    Submit {
        /// Who submitted.
        conn: ConnId,
        /// Their request.
        id: RequestId,
        /// The jobs, not yet visible.
        jobs: Vec<Job>,
    },
    /// A completion to acknowledge, and a job end to announce.
    Complete {
        /// The worker.
        conn: ConnId,
        /// Its request.
        id: RequestId,
        /// The job, if it ended for good.
        ended: Option<JobId>,
    },
}

impl Core {
    pub(super) fn insert_loaded(&mut self, mut job: Job, now: Timestamp) {
        if job.state == JobState::Started {
            // The server stopped while this ran; its worker has lost it.
            if let Some(attempt) = job.attempts.last_mut() {
                attempt.ended_at = Some(now);
                attempt.outcome = Some(AttemptOutcome::WorkerLost);
            }
            job.state = JobState::Queued;
            self.ops.push(StoreOp::Update(job.status()));
        }
        let id = job.id;
        let state = job.state;
        if state == JobState::Finished {
            self.finished
                .insert((job.ended_at.unwrap_or(job.created_at), id));
        }
        let key = job.queue_key();
        let queue = self.queue_mut(&job.queue);
        *queue.summary.count_mut(state) += 1;
        if state == JobState::Queued {
            queue.push(key, &job.kind);
        }
        if state == JobState::Deferred {
            for dependency in &job.options.after {
                self.dependents.entry(*dependency).or_default().push(id);
            }
        }
        self.jobs.insert(id, Box::new(job));
    }

    pub(super) fn submit(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        id: RequestId,
        new_jobs: Vec<NewJob>,
    ) {
        if let Err(message) = self.validate(&new_jobs) {
            self.reply(conn, id, Err(RequestError::Invalid(message)));
            return;
        }
        let mut jobs = Vec::with_capacity(new_jobs.len());
        for new in new_jobs {
            let mut options = new.options;
            options.max_attempts = options.max_attempts.max(1);
            let job = Job {
                id: JobId::new(now, &self.id_context),
                queue: self.intern_queue(&new.queue),
                kind: self.intern_kind(&new.kind),
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
            };
            self.ops.push(StoreOp::Insert(job.stored()));
            jobs.push(job);
        }
        let token = self.next_token;
        self.next_token += 1;
        self.pending
            .insert(token, AwaitingCommit::Submit { conn, id, jobs });
        self.flush_ops(Some(token));
    }

    pub(super) fn validate(&self, jobs: &[NewJob]) -> Result<(), String> {
        for job in jobs {
            if job.queue.trim().is_empty() {
                return Err("queue name is empty".to_owned());
            }
            if job.kind.trim().is_empty() {
                return Err("job kind is empty".to_owned());
            }
            for dependency in &job.options.after {
                if !self.jobs.contains_key(dependency) {
                    return Err(format!(
                        "job depends on {dependency}, which the server does not know"
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn persisted(&mut self, now: Timestamp, token: Token, error: Option<&str>) {
        let Some(pending) = self.pending.remove(&token) else {
            return;
        };
        match pending {
            AwaitingCommit::Submit { conn, id, jobs } => {
                if let Some(error) = error {
                    self.reply(conn, id, Err(RequestError::Storage(error.to_owned())));
                    return;
                }
                let ids = jobs.iter().map(|job| job.id).collect();
                self.reply(conn, id, Ok(Reply::Submitted(ids)));
                for job in jobs {
                    self.admit(now, job);
                }
            }
            AwaitingCommit::Complete { conn, id, ended } => {
                let reply = match error {
                    None => Ok(Reply::Ack),
                    Some(error) => Err(RequestError::Storage(error.to_owned())),
                };
                if self.connections.contains_key(&conn) {
                    self.reply(conn, id, reply);
                }
                if let Some(job) = ended {
                    self.announce_end(job);
                }
            }
        }
    }

    /// Makes a committed job visible: deferred, failed for a failed dependency, or queued.
    pub(super) fn admit(&mut self, now: Timestamp, mut job: Job) {
        let mut waiting_on = Vec::new();
        let mut broken = None;
        for dependency in &job.options.after {
            match self.jobs.get(dependency).map(|d| d.state) {
                Some(JobState::Finished) | None => {}
                Some(state @ (JobState::Failed | JobState::Canceled)) => {
                    broken = Some(format!("dependency {dependency} {state}"));
                }
                Some(_) => waiting_on.push(*dependency),
            }
        }
        let id = job.id;
        if let Some(reason) = broken {
            job.state = JobState::Failed;
            job.ended_at = Some(now);
            job.failure = Some(Box::new(Failure::new(reason)));
            self.ops.push(StoreOp::Update(job.status()));
        } else if !waiting_on.is_empty() {
            job.state = JobState::Deferred;
            self.ops.push(StoreOp::Update(job.status()));
            for dependency in waiting_on {
                self.dependents.entry(dependency).or_default().push(id);
            }
        }
        let state = job.state;
        let queue = job.queue.clone();
        *self.queue_mut(&queue).summary.count_mut(state) += 1;
        self.jobs.insert(id, Box::new(job));
        if state == JobState::Queued {
            self.enqueue(now, id);
        }
    }

    pub(super) fn set_state(&mut self, id: JobId, state: JobState) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut job.state, state);
        if state == JobState::Finished {
            self.finished
                .insert((job.ended_at.unwrap_or(job.created_at), id));
        }
        let queue = job.queue.clone();
        let summary = &mut self.queue_mut(&queue).summary;
        *summary.count_mut(old) = summary.count(old).saturating_sub(1);
        *summary.count_mut(state) += 1;
    }

    pub(super) fn complete(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        id: RequestId,
        completion: Completion,
    ) {
        let Completion {
            job: job_id,
            attempt,
            outcome,
        } = completion;
        if let Some(worker) = self.workers.get_mut(&conn)
            && worker.current == Some((job_id, attempt))
        {
            worker.current = None;
        }
        // The job was canceled while it ran: the worker's report of that attempt is expected
        // and needs no warning; whatever it carries is not recorded.
        if self
            .jobs
            .get(&job_id)
            .is_some_and(|job| job.state == JobState::Canceled && job.current_attempt() == attempt)
        {
            self.reply(conn, id, Ok(Reply::Ack));
            self.worker_ready(now, conn);
            return;
        }
        let current = self.jobs.get(&job_id).is_some_and(|job| {
            job.current_attempt() == attempt
                && (job.state == JobState::Started
                    || (job.state == JobState::Queued
                        && job.attempts.last().and_then(|a| a.outcome.as_ref())
                            == Some(&AttemptOutcome::WorkerLost)))
        });
        if !current {
            tracing::warn!(job = %job_id, attempt, "refused a result for an attempt that is not current");
            self.reply(
                conn,
                id,
                Err(RequestError::StaleAttempt {
                    job: job_id,
                    attempt,
                }),
            );
            self.worker_ready(now, conn);
            return;
        }
        // A worker that interrupts its job is on its way out: it gets no more work.
        let leaving = outcome == Outcome::Interrupted;
        self.unqueue(job_id);
        let ended = self.end_attempt(now, job_id, outcome);
        let token = self.next_token;
        self.next_token += 1;
        self.pending.insert(
            token,
            AwaitingCommit::Complete {
                conn,
                id,
                ended: ended.then_some(job_id),
            },
        );
        self.flush_ops(Some(token));
        if !leaving {
            self.worker_ready(now, conn);
        }
    }

    /// Records how the current attempt ended; returns whether the job ended for good.
    pub(super) fn end_attempt(&mut self, now: Timestamp, id: JobId, outcome: Outcome) -> bool {
        let Some(job) = self.jobs.get_mut(&id) else {
            return false;
        };
        let (attempt_outcome, result, failure) = match outcome {
            Outcome::Finished(result) => (AttemptOutcome::Finished, Some(result), None),
            Outcome::Failed(failure) => {
                (AttemptOutcome::Failed(failure.clone()), None, Some(failure))
            }
            Outcome::Canceled => (
                AttemptOutcome::Canceled,
                None,
                Some(Failure::new("canceled")),
            ),
            Outcome::Interrupted => (AttemptOutcome::Interrupted, None, None),
        };
        let interrupted = attempt_outcome == AttemptOutcome::Interrupted;
        let canceled = attempt_outcome == AttemptOutcome::Canceled;
        if let Some(last) = job.attempts.last_mut() {
            last.ended_at = Some(now);
            last.outcome = Some(attempt_outcome);
        }
        let state = match (&result, &failure) {
            (Some(_), _) => JobState::Finished,
            _ if interrupted => JobState::Queued,
            _ if canceled => JobState::Canceled,
            _ if job.failed_attempts() < job.options.max_attempts => JobState::Queued,
            _ => JobState::Failed,
        };
        job.progress = None;
        if state.is_terminal() {
            job.ended_at = Some(now);
            job.result = result;
            job.failure = failure.map(Box::new);
        }
        self.set_state(id, state);
        self.record(id);
        if interrupted {
            // Not the job's fault: back in line at once, no attempt used up.
            self.enqueue(now, id);
            return false;
        }
        if state == JobState::Queued {
            self.schedule_retry(now, id);
            return false;
        }
        self.release_dependents(now, id);
        true
    }

    /// A failed attempt will be retried: after a backoff that doubles with each failure.
    pub(super) fn schedule_retry(&mut self, now: Timestamp, id: JobId) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let failures = job.failed_attempts().max(1);
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        let wait = self
            .config
            .retry_backoff
            .saturating_mul(factor)
            .min(self.config.max_retry_backoff);
        if wait.is_zero() {
            self.enqueue(now, id);
            return;
        }
        let due = now.plus(wait);
        job.retry_at = Some(due);
        self.delayed.insert((due, id));
    }

    /// Tells every client waiting on `id` that it ended.
    pub(super) fn announce_end(&mut self, id: JobId) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let status = job.status();
        let dropped = job.log.as_ref().map_or(0, |log| log.dropped);
        for (conn, request) in self.waiters.remove(&id).unwrap_or_default() {
            self.reply(conn, request, Ok(Reply::Ended(status.clone())));
        }
        for (conn, request) in self.log_followers.remove(&id).unwrap_or_default() {
            let reply = Reply::Log {
                lines: Vec::new(),
                dropped,
            };
            self.reply(conn, request, Ok(reply));
        }
        for (conn, request) in self.watchers.remove(&id).unwrap_or_default() {
            self.event(conn, request, JobEvent::Ended(status.clone()));
            self.watch_done(conn, request);
        }
    }

    /// A job ended: wake or fail the jobs that were waiting on it.
    pub(super) fn release_dependents(&mut self, now: Timestamp, id: JobId) {
        let Some(dependents) = self.dependents.remove(&id) else {
            return;
        };
        let Some(state) = self.jobs.get(&id).map(|job| job.state) else {
            return;
        };
        for dependent in dependents {
            let Some(job) = self.jobs.get(&dependent) else {
                continue;
            };
            if job.state != JobState::Deferred {
                continue;
            }
            if state == JobState::Finished {
                let ready = job.options.after.iter().all(|dep| {
                    self.jobs
                        .get(dep)
                        .is_none_or(|d| d.state == JobState::Finished)
                });
                if ready {
                    self.set_state(dependent, JobState::Queued);
                    self.record(dependent);
                    self.enqueue(now, dependent);
                }
            } else {
                let reason = format!("dependency {id} {state}");
                if let Some(job) = self.jobs.get_mut(&dependent) {
                    job.ended_at = Some(now);
                    job.failure = Some(Box::new(Failure::new(reason)));
                }
                self.set_state(dependent, JobState::Failed);
                self.record(dependent);
                self.announce_end(dependent);
                self.release_dependents(now, dependent);
            }
        }
    }

    /// The worker running `id` is gone for good: requeue the job, or fail it after too many
    /// losses.
    pub(super) fn worker_lost(&mut self, now: Timestamp, id: JobId, attempt: u32, worker: &str) {
        tracing::warn!(worker = %worker, job = %id, attempt, "worker lost while running a job");
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.state != JobState::Started || job.current_attempt() != attempt {
            return;
        }
        if let Some(last) = job.attempts.last_mut() {
            last.ended_at = Some(now);
            last.outcome = Some(AttemptOutcome::WorkerLost);
        }
        if job.worker_losses() < MAX_WORKER_LOSSES {
            self.set_state(id, JobState::Queued);
            self.record(id);
            self.enqueue(now, id);
        } else {
            let reason = format!(
                "worker lost: {MAX_WORKER_LOSSES} workers were lost while running this job, the \
                 last was {worker}"
            );
            job.ended_at = Some(now);
            job.failure = Some(Box::new(Failure::new(reason)));
            self.set_state(id, JobState::Failed);
            self.record(id);
            self.announce_end(id);
            self.release_dependents(now, id);
        }
    }
}
