//! What people do to jobs and tasks: cancel, requeue, pause, priority, delete, list; and
//! the server's own timeout backstop.

use buildcat_proto::{
    AttemptOutcome, Change, Changed, Failure, FarmInfo, JobId, JobQuery, JobRef, JobStatus,
    JobSummary, RequestError, Requeue, ServerFrame, TaskId, TaskRef, TaskState, Timestamp,
    encoded_len,
};

use super::job::MAX_ATTEMPT_RECORDS;
use super::{Core, Effect};
use crate::store::StoreOp;

/// The most jobs one listing returns.
const MAX_LISTING: usize = 1_000;

/// The most jobs or tasks one cancel, requeue, pause, resume or delete may name, and the
/// most jobs one `requeue --failed` requeues: its reply has an entry per job or task (up to
/// about 150 bytes with a refusal), so this many stay far within a frame.
pub(super) const MAX_CHANGES: usize = buildcat_proto::MAX_CHANGES_PER_REQUEST;

/// Bytes of a listing reply besides its jobs: the frame's enum tags, request id, list
/// length and `more` flag, rounded up generously.
const LISTING_OVERHEAD: usize = 64;

/// The refusal of a request that names more than [`MAX_CHANGES`] jobs or tasks.
pub(super) fn too_many(named: usize) -> RequestError {
    RequestError::Invalid(format!(
        "{named} jobs or tasks named in one request; name at most {MAX_CHANGES} at a time"
    ))
}

/// Which tasks a change applies to.
#[derive(Debug, Clone, Copy)]
enum Scope {
    /// Every task of the job.
    Job(JobId),
    /// One task.
    Task(TaskId),
}

impl Core {
    /// Resolves a job or task handle to what it names.
    fn scope(&self, target: TaskRef) -> Result<Scope, RequestError> {
        match target.index {
            None => self.resolve(target.job).map(Scope::Job),
            Some(_) => self.resolve_task(target).map(Scope::Task),
        }
    }

    /// The tasks of `scope` that `wanted` selects, by state.
    fn tasks_of(&self, scope: Scope, wanted: impl Fn(TaskState) -> bool) -> Vec<TaskId> {
        match scope {
            Scope::Job(id) => self.jobs.get(&id).map_or_else(Vec::new, |job| {
                job.indexed()
                    .filter(|(_, task)| wanted(task.state))
                    .map(|(task_id, _)| task_id)
                    .collect()
            }),
            Scope::Task(id) => self
                .task_state(id)
                .filter(|state| wanted(*state))
                .map(|_| vec![id])
                .unwrap_or_default(),
        }
    }

    /// What a change did to job `id`: how many tasks, and the job's state now (settled
    /// first, so a job the change ended reads as ended).
    fn changed(&self, id: JobId, tasks: usize) -> Result<Changed, RequestError> {
        let job = self
            .jobs
            .get(&id)
            .ok_or(RequestError::UnknownJob(JobRef::Id(id)))?;
        Ok(Changed {
            job: id,
            number: job.number,
            tasks: u32::try_from(tasks).unwrap_or(u32::MAX),
            state: job.state(self.queue_paused(&job.queue)),
        })
    }

    /// How a job or task is named in a refusal: `job 42`, `task 42.3`.
    fn named(&self, scope: Scope) -> String {
        match scope {
            Scope::Job(id) => {
                format!("job {}", self.jobs.get(&id).map_or(0, |job| job.number))
            }
            Scope::Task(id) => format!(
                "task {}.{}",
                self.jobs.get(&id.job).map_or(0, |job| job.number),
                id.index
            ),
        }
    }

    /// The state of a job or task, as a refusal names it.
    fn state_of(&self, scope: Scope) -> String {
        match scope {
            Scope::Job(id) => self.jobs.get(&id).map_or_else(String::new, |job| {
                job.state(self.queue_paused(&job.queue)).to_string()
            }),
            Scope::Task(id) => self
                .task_state(id)
                .map_or_else(String::new, |state| state.to_string()),
        }
    }

    /// Cancels a job (every task that has not ended) or one task: waiting tasks end at
    /// once, running ones are stopped by their worker and canceled at once too.
    pub(super) fn cancel(&mut self, now: Timestamp, target: TaskRef) -> Change {
        let result = self.scope(target).and_then(|scope| {
            let tasks = self.tasks_of(scope, |state| !state.is_terminal());
            if tasks.is_empty() {
                return Err(RequestError::WrongState {
                    target: self.named(scope),
                    state: self.state_of(scope),
                    what: "there is nothing to cancel".to_owned(),
                });
            }
            for &task in &tasks {
                self.cancel_task(now, task);
            }
            let job = match scope {
                Scope::Job(id) => id,
                Scope::Task(id) => id.job,
            };
            self.settle(now);
            self.changed(job, tasks.len())
        });
        Change { target, result }
    }

    /// Cancels one task that has not ended.
    fn cancel_task(&mut self, now: Timestamp, id: TaskId) {
        let Some(task) = self.task_mut(id) else {
            return;
        };
        if task.state == TaskState::Started {
            let attempt = task.current_attempt();
            if let Some(last) = task.attempts.last_mut() {
                last.ended_at = Some(now);
                last.outcome = Some(AttemptOutcome::Canceled);
            }
            if let Some(orphan) = self.orphans.remove(&id) {
                // Its worker is cut off and runs it until its lease ends.
                self.lingering.insert(id, orphan.deadline);
            }
            self.stop_attempt(now, id, attempt, "canceled".to_owned());
        }
        self.end_task(now, id, TaskState::Canceled, Failure::new("canceled"));
    }

    /// Puts tasks back in their queue: failed and canceled ones (and finished ones with
    /// `all`), each with one more attempt. Running and waiting tasks are left alone.
    pub(super) fn requeue(&mut self, now: Timestamp, requeue: Requeue) -> Vec<Change> {
        match requeue {
            // More than `MAX_CHANGES` is refused before this (see `Core::request`).
            Requeue::Tasks { targets, all } => targets
                .into_iter()
                .map(|target| Change {
                    target,
                    result: self.requeue_target(now, target, all),
                })
                .collect(),
            Requeue::Failed { queue, user } => {
                let mut ids: Vec<JobId> = self
                    .jobs
                    .values()
                    .filter(|job| job.ended() && job.counts.failed > 0)
                    .filter(|job| queue.as_deref().is_none_or(|q| *job.queue == *q))
                    .filter(|job| {
                        user.as_deref()
                            .is_none_or(|u| submitted_by(&job.submitter, u))
                    })
                    .map(|job| job.id)
                    .collect();
                ids.sort_unstable();
                // The oldest first, as many as one reply carries; asking again requeues
                // the next ones.
                ids.truncate(MAX_CHANGES);
                ids.into_iter()
                    .map(|id| {
                        let target = TaskRef::job(id);
                        Change {
                            target,
                            result: self.requeue_target(now, target, false),
                        }
                    })
                    .collect()
            }
        }
    }

    fn requeue_target(
        &mut self,
        now: Timestamp,
        target: TaskRef,
        all: bool,
    ) -> Result<Changed, RequestError> {
        let scope = self.scope(target)?;
        let again = |state: TaskState| {
            matches!(state, TaskState::Failed | TaskState::Canceled)
                || (all && state == TaskState::Finished)
        };
        let tasks = self.tasks_of(scope, again);
        if tasks.is_empty() {
            let what = if all {
                "it has no ended task to run again"
            } else {
                "it has no failed or canceled task to run again; `requeue --all` runs \
                 finished ones again too"
            };
            return Err(RequestError::WrongState {
                target: self.named(scope),
                state: self.state_of(scope),
                what: what.to_owned(),
            });
        }
        if let Some(full) = tasks.iter().copied().find(|task| {
            self.task(*task)
                .is_some_and(|task| task.attempts.len() >= MAX_ATTEMPT_RECORDS)
        }) {
            let attempts = self.task(full).map_or(0, |task| task.attempts.len());
            return Err(RequestError::WrongState {
                target: self.named(Scope::Task(full)),
                state: self.state_of(Scope::Task(full)),
                what: format!(
                    "it has run {attempts} attempts, the most one task keeps; submit it again \
                     as a new job"
                ),
            });
        }
        for &task in &tasks {
            self.requeue_task(now, task);
        }
        let job = match scope {
            Scope::Job(id) => id,
            Scope::Task(id) => id.job,
        };
        self.settle(now);
        self.changed(job, tasks.len())
    }

    /// Puts one ended task back in its queue with one more attempt.
    fn requeue_task(&mut self, now: Timestamp, id: TaskId) {
        let Some(task) = self.task_mut(id) else {
            return;
        };
        // One more attempt than it has failed so far.
        task.max_attempts = task.failed_attempts() + 1;
        task.ended_at = None;
        task.failure = None;
        task.result = None;
        if self.must_wait(id.job) {
            // Canceled or failed while it waited: it waits again.
            self.set_state(id, TaskState::Deferred);
            self.record(id);
            return;
        }
        self.set_state(id, TaskState::Queued);
        self.record(id);
        match self.lingering.remove(&id) {
            // A cut-off worker may still run its canceled attempt: not elsewhere too.
            Some(until) if until > now => {
                if let Some(task) = self.task_mut(id) {
                    task.retry_at = Some(until);
                }
                self.delayed.insert((until, id));
            }
            _ => self.enqueue(now, id),
        }
    }

    /// Pauses (`hold`) or resumes a job: its queued tasks are held or let go; running ones
    /// go on either way.
    pub(super) fn pause(&mut self, now: Timestamp, target: JobRef, hold: bool) -> Change {
        let result = self.resolve(target).and_then(|id| {
            let job = self
                .jobs
                .get_mut(&id)
                .ok_or(RequestError::UnknownJob(target))?;
            if job.paused == hold {
                // Already so: nothing to do, and nothing to refuse.
                return self.changed(id, 0);
            }
            job.paused = hold;
            let queued = job.counts.queued;
            let queue_name = job.queue.clone();
            let waiting: Vec<TaskId> = job
                .indexed()
                .filter(|(_, task)| task.state == TaskState::Queued && task.retry_at.is_none())
                .map(|(task_id, _)| task_id)
                .collect();
            self.ops.push(StoreOp::UpdateJob(job.record()));
            let queue = self.queue_mut(&queue_name);
            if hold {
                queue.held += queued;
                for task in &waiting {
                    // `unqueue` reads the job's key, which a pause does not change.
                    self.unqueue(*task);
                }
            } else {
                queue.held = queue.held.saturating_sub(queued);
                for task in &waiting {
                    self.enqueue(now, *task);
                }
            }
            let tasks: Vec<TaskId> = waiting;
            for task in &tasks {
                self.tell_watchers(*task);
            }
            self.changed(id, tasks.len())
        });
        Change {
            target: TaskRef::job(target),
            result,
        }
    }

    /// Pauses or resumes a whole queue. A queue not on record is held for the jobs that
    /// come to it.
    pub(super) fn pause_queue(
        &mut self,
        now: Timestamp,
        name: &str,
        hold: bool,
    ) -> Result<(), RequestError> {
        if name.trim().is_empty() {
            return Err(RequestError::Invalid("queue name is empty".to_owned()));
        }
        if name.len() > super::job::MAX_NAME_BYTES {
            return Err(RequestError::Invalid(format!(
                "a queue name may be at most {} bytes",
                super::job::MAX_NAME_BYTES
            )));
        }
        let name = self.intern_queue(name);
        let queue = self.queue_mut(&name);
        if queue.paused == hold {
            return Ok(());
        }
        queue.paused = hold;
        self.ops.push(StoreOp::PauseQueue {
            queue: name.to_string(),
            paused: hold,
        });
        if !hold {
            self.dispatch_queue(now, &name);
        }
        Ok(())
    }

    /// Changes a job's priority: its waiting tasks move in their queue.
    pub(super) fn set_priority(&mut self, target: JobRef, priority: i32) -> Change {
        let result = self.resolve(target).and_then(|id| {
            let job = self.jobs.get(&id).ok_or(RequestError::UnknownJob(target))?;
            let queue_name = job.queue.clone();
            let kind = job.kind.clone();
            let gpus = job.options.gpus;
            let moved: Vec<u32> = job
                .indexed()
                .filter(|(_, task)| task.state == TaskState::Queued)
                .map(|(task_id, _)| task_id.index)
                .collect();
            let old_keys: Vec<_> = moved.iter().map(|index| job.queue_key(*index)).collect();
            let queue = self.queue_mut(&queue_name);
            let mut requeue = Vec::new();
            for key in old_keys {
                if queue.pending.contains(&key) {
                    queue.take(&key, &kind, gpus);
                    requeue.push(key.1.index);
                }
            }
            let job = self
                .jobs
                .get_mut(&id)
                .ok_or(RequestError::UnknownJob(target))?;
            job.options.priority = priority;
            let new_keys: Vec<_> = requeue.iter().map(|index| job.queue_key(*index)).collect();
            self.ops.push(StoreOp::UpdateJob(job.record()));
            let queue = self.queue_mut(&queue_name);
            for key in new_keys {
                queue.push(key, &kind, gpus);
            }
            self.changed(id, moved.len())
        });
        Change {
            target: TaskRef::job(target),
            result,
        }
    }

    /// Deletes an ended job now, with its tasks and their output.
    pub(super) fn delete(&mut self, target: JobRef) -> Change {
        let result = self.resolve(target).and_then(|id| {
            let changed = self.changed(id, 0)?;
            let job = self.jobs.get(&id).ok_or(RequestError::UnknownJob(target))?;
            if !job.ended() {
                return Err(RequestError::WrongState {
                    target: format!("job {}", job.number),
                    state: changed.state.to_string(),
                    what: format!(
                        "only ended jobs are deleted; cancel it first (`buildcat cancel {}`)",
                        job.number
                    ),
                });
            }
            let tasks = job.tasks.len();
            self.remove_job(id);
            Ok(Changed {
                tasks: u32::try_from(tasks).unwrap_or(u32::MAX),
                ..changed
            })
        });
        Change {
            target: TaskRef::job(target),
            result,
        }
    }

    /// Jobs matching `query`, newest first, and whether more matched: the list stops at the
    /// limit asked for and before the reply would pass the reply budget.
    pub(super) fn list(&self, query: &JobQuery) -> (Vec<JobSummary>, bool) {
        let limit = usize::try_from(query.limit)
            .unwrap_or(MAX_LISTING)
            .clamp(1, MAX_LISTING);
        let mut used = LISTING_OVERHEAD;
        let mut listed = Vec::new();
        let mut more = false;
        for id in self.numbers.values().rev() {
            let Some(job) = self.jobs.get(id) else {
                continue;
            };
            if query
                .queue
                .as_deref()
                .is_some_and(|queue| queue != &*job.queue)
                || query
                    .user
                    .as_deref()
                    .is_some_and(|user| !submitted_by(&job.submitter, user))
            {
                continue;
            }
            let summary = job.summary(self.queue_paused(&job.queue));
            if query.state.is_some_and(|state| state != summary.state) {
                continue;
            }
            if listed.len() == limit {
                more = true;
                break;
            }
            // A summary that cannot even be measured would not encode either: leave it out.
            let size = encoded_len(&summary).unwrap_or(usize::MAX);
            used = used.saturating_add(size);
            if used > self.config.max_reply_bytes {
                more = true;
                break;
            }
            listed.push(summary);
        }
        (listed, more)
    }

    /// `status` cut to fit the reply budget, if it does not: task reasons and progress go
    /// first (`status JOB.TASK` shows them whole), then tasks from the end.
    pub(super) fn fit_status(&self, mut status: JobStatus) -> JobStatus {
        let budget = self.config.max_reply_bytes.saturating_sub(LISTING_OVERHEAD);
        let fits = |status: &JobStatus| encoded_len(status).is_ok_and(|size| size <= budget);
        if fits(&status) {
            return status;
        }
        for task in &mut status.tasks {
            task.reason = None;
            task.progress = None;
        }
        while !fits(&status) && status.tasks.pop().is_some() {}
        status
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
        let overdue: Vec<(TaskId, u32, u64)> = self
            .workers
            .values()
            .filter_map(|worker| worker.current)
            .chain(
                self.orphans
                    .iter()
                    .map(|(id, orphan)| (*id, orphan.attempt)),
            )
            .filter_map(|(id, attempt)| {
                let job = self.jobs.get(&id.job)?;
                let task = job.task(id.index)?;
                let timeout = job.options.timeout_ms?;
                let started = task.attempts.last()?.started_at;
                let deadline = started.plus(std::time::Duration::from_millis(timeout));
                (task.state == TaskState::Started && now > deadline.plus(backstop))
                    .then_some((id, attempt, timeout))
            })
            .collect();
        for (id, attempt, timeout) in overdue {
            let seconds = timeout / 1000;
            tracing::warn!(task = %id, attempt, "task ran past its timeout and its worker did not stop it");
            self.stop_attempt(now, id, attempt, format!("timed out after {seconds}s"));
            self.orphans.remove(&id);
            let failure = Failure::new(format!(
                "timed out after {seconds}s and the worker did not report it within {}s more",
                backstop.as_secs()
            ));
            self.end_attempt(now, id, buildcat_proto::Outcome::Failed(failure));
        }
    }

    /// Tells the worker holding `id`'s attempt `attempt`, if one does, to stop it. Its slot
    /// stays taken until it reports the attempt, so it never runs two tasks at once.
    fn stop_attempt(&mut self, now: Timestamp, id: TaskId, attempt: u32, reason: String) {
        let assigning = self.task_mut(id).is_some_and(|task| {
            let sent = !task.assigning;
            task.assigning = false;
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
            task: id,
            attempt,
            reason,
        };
        self.effects.push(Effect::Send(conn, stop));
    }

    /// Queues task `id`'s current record for storage.
    pub(super) fn record(&mut self, id: TaskId) {
        if let Some(status) = self
            .jobs
            .get(&id.job)
            .and_then(|job| job.stored_status(id.index))
        {
            self.ops.push(StoreOp::UpdateTask(status));
        }
    }
}

/// Whether a job of `submitter` (`user@host`) matches `user`: the same `user@host`, or
/// `user` alone for that user on any host.
fn submitted_by(submitter: &str, user: &str) -> bool {
    submitter == user || (!user.contains('@') && submitter.split('@').next() == Some(user))
}
