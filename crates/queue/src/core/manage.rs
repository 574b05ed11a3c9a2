//! What people do to jobs: cancel, requeue, list; and the server's own timeout backstop.

use buildcat_proto::{
    AttemptOutcome, Failure, JobChange, JobId, JobQuery, JobState, JobStatus, RequestError,
    RequeueTarget, ServerFrame, Timestamp,
};

use buildcat_proto::{FarmInfo, encoded_len};

use super::job::MAX_ATTEMPT_RECORDS;
use super::{Core, Effect};
use crate::store::StoreOp;

/// The most jobs one listing returns.
const MAX_LISTING: usize = 1_000;

/// The most jobs one cancel or requeue may name, and the most one `requeue --failed`
/// requeues: its reply has an entry per job (up to about 150 bytes with a refusal), so
/// this many stay far within a frame.
pub(super) const MAX_CHANGES: usize = buildcat_proto::MAX_CHANGES_PER_REQUEST;

/// Bytes of a listing reply besides its jobs: the frame's enum tags, request id, list
/// length and `more` flag, rounded up generously.
const LISTING_OVERHEAD: usize = 64;

impl Core {
    /// Cancels one job: a waiting job is removed from its queue, a running one is stopped by
    /// its worker. Either way it is canceled at once.
    pub(super) fn cancel(&mut self, now: Timestamp, id: JobId) -> JobChange {
        let Some(job) = self.jobs.get_mut(&id) else {
            return JobChange {
                job: id,
                result: Err(RequestError::UnknownJob(id)),
            };
        };
        let state = job.state;
        if state.is_terminal() {
            return JobChange {
                job: id,
                result: Err(RequestError::WrongState {
                    job: id,
                    state,
                    what: "there is nothing to cancel".to_owned(),
                }),
            };
        }
        if state == JobState::Started {
            let attempt = job.current_attempt();
            if let Some(last) = job.attempts.last_mut() {
                last.ended_at = Some(now);
                last.outcome = Some(AttemptOutcome::Canceled);
            }
            self.orphans.remove(&id);
            self.stop_attempt(now, id, attempt, "canceled".to_owned());
        }
        self.end_job(now, id, JobState::Canceled, Failure::new("canceled"));
        JobChange {
            job: id,
            result: Ok(JobState::Canceled),
        }
    }

    /// Puts failed or canceled jobs back in their queue, each with one more attempt.
    pub(super) fn requeue(&mut self, now: Timestamp, target: RequeueTarget) -> Vec<JobChange> {
        let ids: Vec<JobId> = match target {
            // More than `MAX_CHANGES` is refused before this (see `Core::request`).
            RequeueTarget::Jobs(ids) => ids,
            RequeueTarget::Failed { queue } => {
                let mut ids: Vec<JobId> = self
                    .jobs
                    .values()
                    .filter(|job| job.state == JobState::Failed)
                    .filter(|job| queue.as_deref().is_none_or(|q| *job.queue == *q))
                    .map(|job| job.id)
                    .collect();
                ids.sort_unstable();
                // The oldest first, as many as one reply carries; asking again requeues
                // the next ones.
                ids.truncate(MAX_CHANGES);
                ids
            }
        };
        ids.into_iter()
            .map(|id| JobChange {
                job: id,
                result: self.requeue_one(now, id),
            })
            .collect()
    }

    fn requeue_one(&mut self, now: Timestamp, id: JobId) -> Result<JobState, RequestError> {
        let job = self.jobs.get_mut(&id).ok_or(RequestError::UnknownJob(id))?;
        if !matches!(job.state, JobState::Failed | JobState::Canceled) {
            return Err(RequestError::WrongState {
                job: id,
                state: job.state,
                what: "only failed or canceled jobs can be requeued".to_owned(),
            });
        }
        if job.attempts.len() >= MAX_ATTEMPT_RECORDS {
            return Err(RequestError::WrongState {
                job: id,
                state: job.state,
                what: format!(
                    "it has run {} attempts, the most one job keeps; submit it again as a new job",
                    job.attempts.len()
                ),
            });
        }
        // One more attempt than it has failed so far.
        job.options.max_attempts = job.failed_attempts() + 1;
        job.ended_at = None;
        job.failure = None;
        job.result = None;
        self.set_state(id, JobState::Queued);
        self.record(id);
        self.enqueue(now, id);
        Ok(JobState::Queued)
    }

    /// Jobs matching `query`, newest first, without their results, and whether more
    /// matched: the list stops at the limit asked for and before the reply would pass the
    /// reply budget.
    pub(super) fn list(&self, query: &JobQuery) -> (Vec<JobStatus>, bool) {
        let limit = usize::try_from(query.limit)
            .unwrap_or(MAX_LISTING)
            .clamp(1, MAX_LISTING);
        // Keep the `limit` newest matches without sorting every job.
        let mut newest: std::collections::BinaryHeap<std::cmp::Reverse<JobId>> =
            std::collections::BinaryHeap::with_capacity(limit + 1);
        let mut matched = 0usize;
        for job in self.jobs.values() {
            if query.state.is_some_and(|state| state != job.state)
                || query
                    .queue
                    .as_deref()
                    .is_some_and(|queue| queue != &*job.queue)
            {
                continue;
            }
            matched += 1;
            newest.push(std::cmp::Reverse(job.id));
            if newest.len() > limit {
                newest.pop();
            }
        }
        let mut ids: Vec<JobId> = newest.into_iter().map(|std::cmp::Reverse(id)| id).collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let mut used = LISTING_OVERHEAD;
        let mut listed = Vec::with_capacity(ids.len());
        for job in ids.iter().filter_map(|id| self.jobs.get(id)) {
            let status = JobStatus {
                result: None,
                ..job.status()
            };
            // A status that cannot even be measured would not encode either: leave it out.
            let size = encoded_len(&status).unwrap_or(usize::MAX);
            used = used.saturating_add(size);
            if used > self.config.max_reply_bytes {
                break;
            }
            listed.push(status);
        }
        let more = listed.len() < matched;
        (listed, more)
    }

    /// Cuts `info` to fit the reply budget, if it does not: entries go from the end of
    /// whichever list weighs most until the rest fits, and `truncated` says so.
    pub(super) fn fit_info(&self, info: &mut FarmInfo) {
        let budget = self.config.max_reply_bytes;
        if encoded_len(info).is_ok_and(|size| size.saturating_add(LISTING_OVERHEAD) <= budget) {
            return;
        }
        let sizes = |sizes: Vec<Result<usize, _>>| -> Vec<usize> {
            sizes
                .into_iter()
                .map(|size| size.unwrap_or(usize::MAX))
                .collect()
        };
        let mut lists = [
            sizes(info.queues.iter().map(encoded_len).collect()),
            sizes(info.workers.iter().map(encoded_len).collect()),
            sizes(info.unserved.iter().map(encoded_len).collect()),
        ];
        let mut totals = lists.each_ref().map(|list| {
            list.iter()
                .fold(0usize, |sum, size| sum.saturating_add(*size))
        });
        let total = |totals: &[usize; 3]| {
            totals
                .iter()
                .fold(LISTING_OVERHEAD, |sum, size| sum.saturating_add(*size))
        };
        while total(&totals) > budget {
            let heaviest = (0..3).max_by_key(|index| totals[*index]).unwrap_or(0);
            let Some(size) = lists[heaviest].pop() else {
                break;
            };
            totals[heaviest] = totals[heaviest].saturating_sub(size);
        }
        info.queues.truncate(lists[0].len());
        info.workers.truncate(lists[1].len());
        info.unserved.truncate(lists[2].len());
        info.truncated = true;
    }

    /// Fails attempts whose worker did not stop them at their timeout, and tells the worker
    /// to stop.
    pub(super) fn enforce_timeouts(&mut self, now: Timestamp) {
        let backstop = self.config.timeout_backstop;
        let overdue: Vec<(JobId, u32, u64)> = self
            .workers
            .values()
            .filter_map(|worker| worker.current)
            .chain(
                self.orphans
                    .iter()
                    .map(|(id, orphan)| (*id, orphan.attempt)),
            )
            .filter_map(|(id, attempt)| {
                let job = self.jobs.get(&id)?;
                let timeout = job.options.timeout_ms?;
                let started = job.attempts.last()?.started_at;
                let deadline = started.plus(std::time::Duration::from_millis(timeout));
                (job.state == JobState::Started && now > deadline.plus(backstop))
                    .then_some((id, attempt, timeout))
            })
            .collect();
        for (id, attempt, timeout) in overdue {
            let seconds = timeout / 1000;
            tracing::warn!(job = %id, attempt, "job ran past its timeout and its worker did not stop it");
            self.stop_attempt(now, id, attempt, format!("timed out after {seconds}s"));
            self.orphans.remove(&id);
            let failure = Failure::new(format!(
                "timed out after {seconds}s and the worker did not report it within {}s more",
                backstop.as_secs()
            ));
            if self.end_attempt(now, id, buildcat_proto::Outcome::Failed(failure)) {
                self.announce_end(id);
            }
        }
    }

    /// Tells the worker holding `id`'s attempt `attempt`, if one does, to stop it. Its slot
    /// stays taken until it reports the attempt, so it never runs two jobs at once.
    fn stop_attempt(&mut self, now: Timestamp, id: JobId, attempt: u32, reason: String) {
        let assigning = self.jobs.get_mut(&id).is_some_and(|job| {
            let sent = !job.assigning;
            job.assigning = false;
            !sent
        });
        let Some(conn) = self.release(id) else {
            return;
        };
        if assigning {
            // The worker was never sent it: its slot is simply free again.
            self.worker_ready(now, conn);
            return;
        }
        if let Some(worker) = self.workers.get_mut(&conn) {
            worker.stopping.push((id, attempt));
        }
        let stop = ServerFrame::Cancel {
            job: id,
            attempt,
            reason,
        };
        self.effects.push(Effect::Send(conn, stop));
    }

    /// Queues the job's current record for storage.
    pub(super) fn record(&mut self, id: JobId) {
        if let Some(job) = self.jobs.get(&id) {
            self.ops.push(StoreOp::Update(job.status()));
        }
    }
}
