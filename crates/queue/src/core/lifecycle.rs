//! A job's life: submitted, committed, admitted, completed, retried, lost, ended.

use buildcat_proto::{
    Assignment, AttemptOutcome, Completion, Failure, JobEvent, JobId, JobState, JobStatus, NewJob,
    Outcome, Reply, RequestError, RequestId, Timestamp,
};

use super::connections::Orphan;
use super::job::Job;
use super::{ConnId, Core, MAX_WORKER_LOSSES, Token};
use crate::store::{StoreError, StoreOp};

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
    /// A completion to apply, acknowledge and announce once its record is stored.
    Complete {
        /// The worker's connection.
        conn: ConnId,
        /// Its request.
        id: RequestId,
        /// The job.
        job: JobId,
        /// The attempt reported.
        attempt: u32,
        /// How it ended.
        outcome: Outcome,
        /// When it was reported: the time the job's record says it ended.
        at: Timestamp,
        /// The worker's name, for its failure count.
        worker: String,
    },
    /// A reply to a change people asked for (cancel, requeue), sent once it is stored.
    Reply {
        /// Who asked.
        conn: ConnId,
        /// Their request.
        id: RequestId,
        /// The answer, once stored.
        reply: Reply,
    },
    /// An attempt's record, before its worker is sent the job.
    Assign {
        /// The worker's connection.
        conn: ConnId,
        /// The attempt's number.
        attempt: u32,
        /// What to send once stored.
        assignment: Assignment,
    },
}

/// How an attempt's end changes its job: computed once, written to the stored record at
/// report time and to the job in memory at commit, so the two cannot differ.
struct Conclusion {
    /// What the attempt's record says.
    attempt: AttemptOutcome,
    /// The job's state after it.
    state: JobState,
    /// The job's result, when it finished.
    result: Option<Vec<u8>>,
    /// Why it failed or was canceled, when it ended so.
    failure: Option<Failure>,
}

impl Conclusion {
    /// What `outcome` does to `job` (whose attempt it reports).
    fn of(job: &Job, outcome: Outcome) -> Conclusion {
        let (attempt, result, failure) = match outcome {
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
        // Counting this attempt's failure, if it is one.
        let failed =
            job.failed_attempts() + u32::from(matches!(attempt, AttemptOutcome::Failed(_)));
        let state = match attempt {
            AttemptOutcome::Finished => JobState::Finished,
            AttemptOutcome::Canceled => JobState::Canceled,
            AttemptOutcome::Failed(_) if failed >= job.options.max_attempts => JobState::Failed,
            // A retry, or back in line at once after an interruption or a loss.
            _ => JobState::Queued,
        };
        Conclusion {
            attempt,
            state,
            result,
            failure,
        }
    }

    /// The job's stored record as it will be.
    fn status(&self, job: &Job, at: Timestamp) -> JobStatus {
        let mut status = job.status();
        if let Some(last) = status.attempts.last_mut() {
            last.ended_at = Some(at);
            last.outcome = Some(self.attempt.clone());
        }
        status.state = self.state;
        status.progress = None;
        if self.state.is_terminal() {
            status.ended_at = Some(at);
            status.result = self.result.clone();
            status.failure = self.failure.clone();
        }
        status
    }
}

impl Core {
    /// Adds a job read from storage. A job found started ran when the server stopped: its
    /// worker may still run it and come back, so it waits `reconnect_grace` as an orphan.
    pub(super) fn insert_loaded(&mut self, job: Job, now: Timestamp) {
        let id = job.id;
        let started = (job.state == JobState::Started).then(|| {
            let worker = job
                .attempts
                .last()
                .map(|attempt| attempt.worker.clone())
                .unwrap_or_default();
            (worker, job.current_attempt())
        });
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
        if let Some((worker, attempt)) = started {
            self.orphan(now, now, id, attempt, worker);
        }
    }

    /// `id`'s attempt `attempt` has no worker holding it: wait for `worker` to come back for
    /// it until `reconnect_grace` after `since` (when the server last heard from it), or
    /// count the worker lost now if that is already past.
    pub(super) fn orphan(
        &mut self,
        now: Timestamp,
        since: Timestamp,
        id: JobId,
        attempt: u32,
        worker: String,
    ) {
        let deadline = since.plus(self.config.reconnect_grace);
        if deadline <= now {
            self.worker_lost(now, id, attempt, &worker);
            return;
        }
        self.orphans.insert(
            id,
            Orphan {
                worker,
                attempt,
                deadline,
            },
        );
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
            let queue = self.intern_queue(&new.queue);
            let kind = self.intern_kind(&new.kind);
            let job = Job::submitted(self.ids.next(now), now, new, queue, kind);
            self.ops.push(StoreOp::Insert(job.stored()));
            jobs.push(job);
        }
        let token = self.next_token();
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
            super::job::check_bounds(job)?;
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

    /// A commit the core waited on is done (`error`: it failed, and none of it is stored).
    pub(super) fn persisted(&mut self, now: Timestamp, token: Token, error: Option<&StoreError>) {
        let Some(pending) = self.pending.remove(&token) else {
            return;
        };
        match pending {
            AwaitingCommit::Submit { conn, id, jobs } => {
                if let Some(error) = error {
                    self.reply(conn, id, Err(RequestError::Storage(error.to_string())));
                    return;
                }
                let ids = jobs.iter().map(|job| job.id).collect();
                self.reply(conn, id, Ok(Reply::Submitted(ids)));
                for job in jobs {
                    self.admit(now, job);
                }
            }
            AwaitingCommit::Complete {
                conn,
                id,
                job,
                attempt,
                outcome,
                at,
                worker,
            } => self.completion_stored(now, error, (conn, id), job, attempt, outcome, at, worker),
            AwaitingCommit::Assign {
                conn,
                attempt,
                assignment,
            } => self.assignment_stored(now, error.is_some(), conn, attempt, assignment),
            AwaitingCommit::Reply { conn, id, reply } => {
                let reply = match error {
                    None => Ok(reply),
                    Some(error) => Err(RequestError::Storage(format!(
                        "{error}; the change took effect but is not stored, so a server \
                         restart would undo it"
                    ))),
                };
                if self.connections.contains_key(&conn) {
                    self.reply(conn, id, reply);
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
        if state != JobState::Started {
            // Completions and assignments in flight were of an attempt that is over now.
            job.completing = 0;
            job.assigning = false;
        }
        if state == JobState::Finished {
            self.finished
                .insert((job.ended_at.unwrap_or(job.created_at), id));
        }
        let queue = job.queue.clone();
        let summary = &mut self.queue_mut(&queue).summary;
        *summary.count_mut(old) = summary.count(old).saturating_sub(1);
        *summary.count_mut(state) += 1;
    }

    /// `Complete`: a worker reports how an attempt ended. A report of the current attempt is
    /// stored first and takes effect when committed; a report of an attempt that is not
    /// current is refused and changes nothing else.
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
        let outcome = super::job::bounded_outcome(outcome);
        let Some(worker) = self.workers.get_mut(&conn) else {
            return;
        };
        let name = worker.registration.name.clone();
        // The report of an attempt it was told to stop: expected; its slot may be free now.
        let len = worker.stopping.len();
        worker.stopping.retain(|held| *held != (job_id, attempt));
        let was_stopping = worker.stopping.len() < len;
        if self
            .jobs
            .get(&job_id)
            .is_some_and(|job| job.state == JobState::Canceled && job.current_attempt() == attempt)
        {
            // Canceled while it ran: expected, and nothing it carries is recorded.
            self.reply(conn, id, Ok(Reply::Ack));
            self.worker_ready(now, conn);
            return;
        }
        let lost_but_back = self.jobs.get(&job_id).is_some_and(|job| {
            job.state == JobState::Queued
                && job.current_attempt() == attempt
                && job.attempts.last().and_then(|a| a.outcome.as_ref())
                    == Some(&AttemptOutcome::WorkerLost)
        });
        let current = !was_stopping
            && (lost_but_back || self.jobs.get(&job_id).is_some_and(|job| job.runs(attempt)));
        if current && lost_but_back {
            // Counted lost a moment ago, but here is its result: take it back from the queue.
            if let Some(job) = self.jobs.get_mut(&job_id) {
                if let Some(due) = job.retry_at.take() {
                    self.delayed.remove(&(due, job_id));
                }
                if let Some(last) = job.attempts.last_mut() {
                    last.ended_at = None;
                    last.outcome = None;
                }
            }
            self.unqueue(job_id);
            self.set_state(job_id, JobState::Started);
        }
        if !current {
            if !was_stopping {
                tracing::warn!(job = %job_id, attempt, "refused a result for an attempt that is not current");
            }
            self.reply(
                conn,
                id,
                Err(RequestError::StaleAttempt {
                    job: job_id,
                    attempt,
                }),
            );
            if was_stopping {
                self.worker_ready(now, conn);
            }
            return;
        }
        // The slot is free now; the job's end waits for its record to be stored.
        self.release(job_id);
        self.orphans.remove(&job_id);
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        job.completing += 1;
        let conclusion = Conclusion::of(job, outcome.clone());
        self.ops.push(StoreOp::Update(conclusion.status(job, now)));
        let token = self.next_token();
        // A worker that interrupts its job is on its way out: it gets no more work.
        let leaving = outcome == Outcome::Interrupted;
        self.pending.insert(
            token,
            AwaitingCommit::Complete {
                conn,
                id,
                job: job_id,
                attempt,
                outcome,
                at: now,
                worker: name,
            },
        );
        self.flush_ops(Some(token));
        if leaving {
            if let Some(worker) = self.workers.get_mut(&conn) {
                worker.leaving = true;
            }
        } else {
            self.worker_ready(now, conn);
        }
    }

    /// A completion's record was committed (or not): apply it, or put the job back as it
    /// was, an orphan waiting for its worker to send the result again.
    #[allow(
        clippy::too_many_arguments,
        reason = "the fields of one AwaitingCommit::Complete, destructured by the one caller"
    )]
    fn completion_stored(
        &mut self,
        now: Timestamp,
        error: Option<&StoreError>,
        (conn, id): (ConnId, RequestId),
        job_id: JobId,
        attempt: u32,
        outcome: Outcome,
        at: Timestamp,
        worker: String,
    ) {
        let reply = match error {
            None => Ok(Reply::Ack),
            Some(error) => Err(RequestError::Storage(error.to_string())),
        };
        if self.connections.contains_key(&conn) {
            self.reply(conn, id, reply);
        }
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        // Canceled meanwhile, or already applied from a duplicate report: nothing to do.
        if !job.runs(attempt) {
            return;
        }
        job.completing = job.completing.saturating_sub(1);
        if error.is_some() {
            if job.completing == 0 && !self.running.contains_key(&job_id) {
                self.orphan(now, now, job_id, attempt, worker);
            }
            return;
        }
        match &outcome {
            Outcome::Failed(failure) => {
                let reason = failure.reason.clone();
                self.count_failure(now, &worker, job_id, &reason);
            }
            Outcome::Finished(_) => self.count_success(&worker),
            Outcome::Canceled | Outcome::Interrupted => {}
        }
        // The record stored is what applying gives: nothing changes a completing job's
        // record meanwhile (it is not held, so no loss, timeout or reclaim touches it).
        if self.conclude(at, job_id, outcome) {
            self.announce_end(job_id);
        }
    }

    /// Records how the current attempt ended, by the server's own decision (the timeout
    /// backstop); returns whether the job ended for good.
    pub(super) fn end_attempt(&mut self, now: Timestamp, id: JobId, outcome: Outcome) -> bool {
        let ended = self.conclude(now, id, outcome);
        self.record(id);
        ended
    }

    /// Applies an attempt's end to the job in memory (not to storage); returns whether the
    /// job ended for good.
    fn conclude(&mut self, now: Timestamp, id: JobId, outcome: Outcome) -> bool {
        let Some(job) = self.jobs.get_mut(&id) else {
            return false;
        };
        let Conclusion {
            attempt,
            state,
            result,
            failure,
        } = Conclusion::of(job, outcome);
        let retry = matches!(attempt, AttemptOutcome::Failed(_));
        if let Some(last) = job.attempts.last_mut() {
            last.ended_at = Some(now);
            last.outcome = Some(attempt);
        }
        job.progress = None;
        if state.is_terminal() {
            job.ended_at = Some(now);
            job.result = result;
            job.failure = failure.map(Box::new);
        }
        self.set_state(id, state);
        match state {
            JobState::Queued if retry => self.schedule_retry(now, id),
            // Not the job's fault: back in line at once, no attempt used up.
            JobState::Queued => self.enqueue(now, id),
            _ => {
                self.release_dependents(now, id);
                return true;
            }
        }
        false
    }

    /// Ends a job that did not run to its end: `Failed` or `Canceled` with `failure`,
    /// recorded, announced, and its dependents failed in turn.
    pub(super) fn end_job(&mut self, now: Timestamp, id: JobId, state: JobState, failure: Failure) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if let Some(due) = job.retry_at.take() {
            self.delayed.remove(&(due, id));
        }
        job.ended_at = Some(now);
        job.failure = Some(Box::new(failure));
        job.progress = None;
        self.unqueue(id);
        self.set_state(id, state);
        self.record(id);
        self.announce_end(id);
        self.release_dependents(now, id);
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
        for (conn, request) in self.waiters.remove(&id).unwrap_or_default() {
            self.reply(conn, request, Ok(Reply::Ended(status.clone())));
        }
        self.end_log_followers(id);
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
                let reason = Failure::new(format!("dependency {id} {state}"));
                self.end_job(now, dependent, JobState::Failed, reason);
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
        let losses = job.worker_losses();
        self.release(id);
        self.orphans.remove(&id);
        if losses < MAX_WORKER_LOSSES {
            self.set_state(id, JobState::Queued);
            self.record(id);
            self.enqueue(now, id);
        } else {
            let reason = format!(
                "worker lost: {MAX_WORKER_LOSSES} workers were lost while running this job, the \
                 last was {worker}"
            );
            self.end_job(now, id, JobState::Failed, Failure::new(reason));
        }
    }
}
