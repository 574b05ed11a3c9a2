//! A task's life: submitted (with its job), committed, admitted, completed, retried, lost,
//! ended; and a job's, settled from its tasks.

use buildcat_proto::{
    Assignment, AttemptOutcome, Completion, Dependency, Failure, JobEvent, JobId, JobState, NewJob,
    NewTask, Outcome, Reply, RequestError, RequestId, Submitted, TaskId, TaskState, TaskStatus,
    Timestamp,
};

use super::connections::Orphan;
use super::job::{Job, Task};
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
        /// The task.
        task: TaskId,
        /// The attempt reported.
        attempt: u32,
        /// How it ended.
        outcome: Outcome,
        /// When it was reported: the time the task's record says it ended.
        at: Timestamp,
        /// The worker's name, for its failure count.
        worker: String,
        /// Why the report was refused although its attempt's end is recorded (it tried to
        /// add more tasks than a job may have: the attempt failed with this reason), for
        /// the reply.
        refused: Option<String>,
    },
    /// A reply to a change people asked for (cancel, requeue, pause, ...), sent once it is
    /// stored.
    Reply {
        /// Who asked.
        conn: ConnId,
        /// Their request.
        id: RequestId,
        /// The answer, once stored.
        reply: Reply,
    },
    /// An attempt's record, before its worker is sent the task.
    Assign {
        /// The worker's connection.
        conn: ConnId,
        /// The attempt's number.
        attempt: u32,
        /// What to send once stored.
        assignment: Assignment,
    },
    /// Output lines for a task's followers, pushed once stored: a follower must never hold
    /// bytes that a server killed before the commit would not find when it restarts, or,
    /// following again from past the restarted server's end, it would take the lines
    /// printed next for ones it had seen.
    Output {
        /// The lines and where they are in the task's output.
        event: JobEvent,
        /// The follows (connection, request) that get them: those open when the lines
        /// came, so one that caught up later (its read includes them) does not get them
        /// twice.
        followers: Vec<(ConnId, RequestId)>,
    },
    /// Follows of a task that ended, answered with the end of its output once every line
    /// stored before it was pushed (commits are reported in order), so no line comes after
    /// the answer that ends the follow.
    FollowsEnded {
        /// The end of the task's output, in bytes.
        end: u64,
        /// The follows (connection, request) to answer.
        followers: Vec<(ConnId, RequestId)>,
    },
}

/// How an attempt's end changes its task: computed once, written to the stored record at
/// report time and to the task in memory at commit, so the two cannot differ.
struct Conclusion {
    /// What the attempt's record says.
    attempt: AttemptOutcome,
    /// The task's state after it.
    state: TaskState,
    /// The task's result, when it finished.
    result: Option<Vec<u8>>,
    /// Why it failed or was canceled, when it ended so.
    failure: Option<Failure>,
}

impl Conclusion {
    /// What `outcome` does to `task` (whose attempt it reports).
    fn of(task: &Task, outcome: Outcome) -> Conclusion {
        let (attempt, result, failure) = match outcome {
            Outcome::Finished(result) | Outcome::FinishedWithTasks { result, .. } => {
                (AttemptOutcome::Finished, Some(result), None)
            }
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
            task.failed_attempts() + u32::from(matches!(attempt, AttemptOutcome::Failed(_)));
        let state = match attempt {
            AttemptOutcome::Finished => TaskState::Finished,
            AttemptOutcome::Canceled => TaskState::Canceled,
            AttemptOutcome::Failed(_) if failed >= task.max_attempts => TaskState::Failed,
            // A retry, or back in line at once after an interruption or a loss.
            _ => TaskState::Queued,
        };
        Conclusion {
            attempt,
            state,
            result,
            failure,
        }
    }

    /// The task's stored record as it will be.
    fn status(&self, mut status: TaskStatus, at: Timestamp) -> TaskStatus {
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

/// Where a job's dependencies stand.
enum Readiness {
    /// Every one has finished (or is gone).
    Ready,
    /// Some have not ended yet.
    Waiting,
    /// One ended without finishing: the reason its tasks fail.
    Broken(String),
}

impl Core {
    /// Adds a job read from storage. A task found started ran when the server stopped: its
    /// worker may still run it and come back, so it waits `reconnect_grace` as an orphan.
    pub(super) fn insert_loaded(&mut self, mut job: Job, now: Timestamp) {
        // A task handed back after its worker was lost may have been reclaimed by that
        // worker just before the server stopped, without the reclaim being stored: the
        // worker may run it until its lease ends. Held as for a retry for one grace period,
        // in which the worker may come back and reclaim it again.
        let hold = now.plus(self.config.reconnect_grace);
        for task in &mut job.tasks {
            let lost = task
                .attempts
                .last()
                .and_then(|attempt| attempt.outcome.as_ref())
                == Some(&AttemptOutcome::WorkerLost);
            if task.state == TaskState::Queued && lost {
                task.retry_at = Some(hold);
            }
        }
        let id = job.id;
        let queue_name = job.queue.clone();
        let paused = job.paused;
        let ended = job.ended();
        if let Some(ended_at) = job.ended_at
            && matches!(job.state(false), JobState::Finished | JobState::Canceled)
        {
            self.expiring.insert((ended_at, id));
        }
        let mut started = Vec::new();
        let mut deferred = false;
        {
            let queue = self.queue_mut(&queue_name);
            queue.counts.total += job.counts.total;
            for state in TaskState::ALL {
                *queue.counts.count_mut(state) += job.counts.count(state);
            }
            if paused {
                queue.held += job.counts.queued;
            }
            if !ended {
                queue.jobs += 1;
            }
        }
        for (task_id, task) in job.indexed() {
            match task.state {
                TaskState::Queued if task.retry_at.is_some() => {
                    self.delayed.insert((hold, task_id));
                }
                TaskState::Queued if !paused => {
                    let key = job.queue_key(task_id.index);
                    self.queue_mut(&queue_name)
                        .push(key, &job.kind, job.options.gpus);
                }
                TaskState::Started => {
                    let worker = task
                        .attempts
                        .last()
                        .map(|attempt| attempt.worker.clone())
                        .unwrap_or_default();
                    started.push((task_id, task.current_attempt(), worker));
                }
                TaskState::Deferred => deferred = true,
                _ => {}
            }
        }
        if deferred {
            for dependency in &job.options.after {
                self.dependents.entry(*dependency).or_default().push(id);
            }
        }
        self.numbers.insert(job.number, id);
        self.next_number = self.next_number.max(job.number.saturating_add(1));
        self.output_bytes += job.output_kept(self.config.max_log_bytes);
        self.jobs.insert(id, Box::new(job));
        for (task, attempt, worker) in started {
            self.orphan(now, now, task, attempt, worker);
        }
    }

    /// `id`'s attempt `attempt` has no worker holding it: wait for `worker` to come back for
    /// it until `reconnect_grace` after `since` (when the server last heard from it), or
    /// count the worker lost now if that is already past.
    pub(super) fn orphan(
        &mut self,
        now: Timestamp,
        since: Timestamp,
        id: TaskId,
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
            // Taken now, so a failed commit skips numbers rather than reusing them.
            let number = self.next_number;
            self.next_number += 1;
            let submitter = self.intern_submitter(&new.submitter);
            let job = Job::submitted(self.ids.next(now), number, now, new, queue, kind, submitter);
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
                let known = match dependency {
                    Dependency::Job(id) => self.jobs.contains_key(id),
                    Dependency::Task(task) => self.task(*task).is_some(),
                };
                if !known {
                    return Err(format!(
                        "the job depends on {dependency}, which the server does not know"
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
                let submitted = jobs
                    .iter()
                    .map(|job| Submitted {
                        id: job.id,
                        number: job.number,
                        tasks: u32::try_from(job.tasks.len()).unwrap_or(u32::MAX),
                    })
                    .collect();
                self.reply(conn, id, Ok(Reply::Submitted(submitted)));
                log_submissions(&jobs);
                for job in jobs {
                    self.admit(now, job);
                }
            }
            AwaitingCommit::Complete {
                conn,
                id,
                task,
                attempt,
                outcome,
                at,
                worker,
                refused,
            } => {
                let reply = match (error, refused) {
                    (Some(error), _) => Err(RequestError::Storage(error.to_string())),
                    (None, Some(reason)) => Err(RequestError::Invalid(reason)),
                    (None, None) => Ok(Reply::Ack),
                };
                if self.connections.contains_key(&conn) {
                    self.reply(conn, id, reply);
                }
                self.completion_stored(now, error.is_some(), task, attempt, outcome, at, worker);
            }
            AwaitingCommit::Assign {
                conn,
                attempt,
                assignment,
            } => self.assignment_stored(now, error.is_some(), conn, attempt, assignment),
            AwaitingCommit::Output { event, followers } => {
                // Not stored: nobody may see it, as nobody will after a restart.
                if error.is_none() {
                    self.output_stored(&event, followers);
                }
            }
            AwaitingCommit::FollowsEnded { end, followers } => self.follows_ended(end, followers),
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

    /// Makes a committed job visible: its tasks deferred, failed for a failed dependency,
    /// or queued.
    pub(super) fn admit(&mut self, now: Timestamp, job: Job) {
        let id = job.id;
        let readiness = self.readiness(&job);
        {
            let queue = self.queue_mut(&job.queue);
            queue.counts.total += job.counts.total;
            queue.counts.queued += job.counts.queued;
            queue.jobs += 1;
        }
        let tasks: Vec<TaskId> = job.indexed().map(|(task, _)| task).collect();
        let after = job.options.after.clone();
        self.numbers.insert(job.number, id);
        self.jobs.insert(id, Box::new(job));
        match readiness {
            Readiness::Ready => {
                for task in tasks {
                    self.enqueue(now, task);
                }
            }
            Readiness::Broken(reason) => {
                for task in tasks {
                    self.end_task(now, task, TaskState::Failed, Failure::new(reason.clone()));
                }
            }
            Readiness::Waiting => {
                for task in tasks {
                    self.set_state(task, TaskState::Deferred);
                    self.record(task);
                }
                for dependency in after {
                    if self.dependency_open(dependency) {
                        self.dependents.entry(dependency).or_default().push(id);
                    }
                }
            }
        }
    }

    /// Whether job `id` waits for a dependency that has yet to end; if it does, it is
    /// listed among that dependency's dependents, so that the end wakes it. For a task put
    /// back in its queue (a requeue), which must not run before what its job waits for.
    pub(super) fn must_wait(&mut self, id: JobId) -> bool {
        let Some(job) = self.jobs.get(&id) else {
            return false;
        };
        if !matches!(self.readiness(job), Readiness::Waiting) {
            return false;
        }
        let open: Vec<Dependency> = job
            .options
            .after
            .iter()
            .copied()
            .filter(|dependency| self.dependency_open(*dependency))
            .collect();
        for dependency in open {
            let dependents = self.dependents.entry(dependency).or_default();
            if !dependents.contains(&id) {
                dependents.push(id);
            }
        }
        true
    }

    /// Whether `dependency` has yet to end.
    pub(super) fn dependency_open(&self, dependency: Dependency) -> bool {
        match dependency {
            Dependency::Job(id) => self.jobs.get(&id).is_some_and(|job| !job.ended()),
            Dependency::Task(id) => self.task(id).is_some_and(|task| !task.state.is_terminal()),
        }
    }

    /// Where `job`'s dependencies stand. A dependency no longer on record finished long
    /// ago (only ended jobs are removed, and failed ones are kept until deleted).
    fn readiness(&self, job: &Job) -> Readiness {
        let mut waiting = false;
        for dependency in &job.options.after {
            let (ended, state, name) = match *dependency {
                Dependency::Job(id) => {
                    let Some(dep) = self.jobs.get(&id) else {
                        continue;
                    };
                    let state = dep.state(self.queue_paused(&dep.queue));
                    let ok = state == JobState::Finished;
                    (
                        dep.ended(),
                        (ok, state.as_str()),
                        format!("job {}", dep.number),
                    )
                }
                Dependency::Task(id) => {
                    let Some(dep) = self.jobs.get(&id.job) else {
                        continue;
                    };
                    let Some(task) = dep.task(id.index) else {
                        continue;
                    };
                    let ok = task.state == TaskState::Finished;
                    (
                        task.state.is_terminal(),
                        (ok, task.state.as_str()),
                        format!("task {}.{}", dep.number, id.index),
                    )
                }
            };
            match (ended, state) {
                (false, _) => waiting = true,
                (true, (true, _)) => {}
                (true, (false, state)) => {
                    return Readiness::Broken(format!("dependency {name} {state}"));
                }
            }
        }
        if waiting {
            Readiness::Waiting
        } else {
            Readiness::Ready
        }
    }

    /// Moves task `id` to `state`, keeping its job's and queue's counts, and tells the job's
    /// watchers. The one place a task's state changes.
    pub(super) fn set_state(&mut self, id: TaskId, state: TaskState) {
        let Some(job) = self.jobs.get_mut(&id.job) else {
            return;
        };
        let paused = job.paused;
        let Some(task) = job.task_mut(id.index) else {
            return;
        };
        let old = std::mem::replace(&mut task.state, state);
        if state != TaskState::Started {
            // Completions and assignments in flight were of an attempt that is over now.
            task.completing = 0;
            task.assigning = false;
        }
        *job.counts.count_mut(old) = job.counts.count(old).saturating_sub(1);
        *job.counts.count_mut(state) += 1;
        let queue_name = job.queue.clone();
        let queue = self.queue_mut(&queue_name);
        *queue.counts.count_mut(old) = queue.counts.count(old).saturating_sub(1);
        *queue.counts.count_mut(state) += 1;
        if paused {
            if old == TaskState::Queued {
                queue.held = queue.held.saturating_sub(1);
            }
            if state == TaskState::Queued {
                queue.held += 1;
            }
        }
        self.touched.insert(id.job);
        self.notice_task(id, old, state);
        self.tell_watchers(id);
    }

    /// Sends the job's watchers task `id` as it is now.
    pub(super) fn tell_watchers(&mut self, id: TaskId) {
        let Some(watchers) = self.watchers.get(&id.job) else {
            return;
        };
        let watchers = watchers.clone();
        let Some(job) = self.jobs.get(&id.job) else {
            return;
        };
        let Some(task) = job.task(id.index) else {
            return;
        };
        let summary = job.task_summary(id.index, task, self.queue_paused(&job.queue));
        for (conn, request) in watchers {
            let event = JobEvent::Task {
                job: id.job,
                task: summary.clone(),
            };
            self.event(conn, request, event);
        }
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
            task: task_id,
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
        worker.stopping.retain(|held| *held != (task_id, attempt));
        let was_stopping = worker.stopping.len() < len;
        if self.task(task_id).is_some_and(|task| {
            task.state == TaskState::Canceled && task.current_attempt() == attempt
        }) {
            // Canceled while it ran: expected, and nothing it carries is recorded. It has
            // stopped, so a requeue need not wait for its lease.
            self.lingering.remove(&task_id);
            self.reply(conn, id, Ok(Reply::Ack));
            self.worker_ready(now, conn);
            return;
        }
        let lost_but_back = self.task(task_id).is_some_and(|task| {
            task.state == TaskState::Queued
                && task.current_attempt() == attempt
                && task.attempts.last().and_then(|a| a.outcome.as_ref())
                    == Some(&AttemptOutcome::WorkerLost)
        });
        let current = !was_stopping
            && (lost_but_back || self.task(task_id).is_some_and(|task| task.runs(attempt)));
        if current && lost_but_back {
            // Counted lost a moment ago, but here is its result: take it back from the queue.
            let mut delayed = None;
            if let Some(task) = self.task_mut(task_id) {
                delayed = task.retry_at.take();
                if let Some(last) = task.attempts.last_mut() {
                    last.ended_at = None;
                    last.outcome = None;
                }
            }
            if let Some(due) = delayed {
                self.delayed.remove(&(due, task_id));
            }
            self.unqueue(task_id);
            self.set_state(task_id, TaskState::Started);
        }
        let spawns = matches!(outcome, Outcome::FinishedWithTasks { .. });
        if current && spawns && self.task(task_id).is_some_and(|task| task.completing > 0) {
            // The same report, sent again on a new connection while the first is still
            // being stored: storing it twice would add its tasks twice. The worker keeps it
            // and sends it again; by then the first is stored (this one is stale) or failed
            // (this one counts).
            self.reply(
                conn,
                id,
                Err(RequestError::Storage(format!(
                    "task {task_id} attempt {attempt}'s report is being stored already; send                      it again if it is still wanted"
                ))),
            );
            return;
        }
        if !current {
            if !was_stopping {
                tracing::warn!(task = %task_id, attempt, "refused a result for an attempt that is not current");
            }
            self.reply(
                conn,
                id,
                Err(RequestError::StaleAttempt {
                    task: task_id,
                    attempt,
                }),
            );
            if was_stopping {
                self.worker_ready(now, conn);
            }
            return;
        }
        // The slot is free now; the task's end waits for its record to be stored.
        self.release(task_id);
        self.orphans.remove(&task_id);
        let Some(job) = self.jobs.get_mut(&task_id.job) else {
            return;
        };
        let Some(record) = job.stored_status(task_id.index) else {
            return;
        };
        let Some(task) = job.task_mut(task_id.index) else {
            return;
        };
        task.completing += 1;
        // A task that finished before (run again by `requeue --all`) added its tasks then,
        // and the requeue runs those again too: it adds none twice.
        let finished_before = task
            .attempts
            .iter()
            .any(|attempt| attempt.outcome == Some(AttemptOutcome::Finished));
        // Tasks it adds to its job: checked against the job's bounds, else the attempt
        // fails saying why (and the worker is told), so the task is not left running.
        let mut refused = None;
        let outcome = match outcome {
            Outcome::FinishedWithTasks { result, .. } if finished_before => {
                tracing::info!(task = %task_id, attempt, "a task run again did not add its tasks again");
                Outcome::Finished(result)
            }
            Outcome::FinishedWithTasks { result, tasks } => {
                match super::job::check_added(job, &tasks) {
                    Ok(()) => Outcome::FinishedWithTasks { result, tasks },
                    Err(reason) => {
                        tracing::warn!(task = %task_id, attempt, reason = %reason, "refused the tasks a task added to its job");
                        refused = Some(reason.clone());
                        Outcome::Failed(Failure::new(reason))
                    }
                }
            }
            other => other,
        };
        let Some(task) = job.task_mut(task_id.index) else {
            return;
        };
        let conclusion = Conclusion::of(task, outcome.clone());
        self.ops
            .push(StoreOp::UpdateTask(conclusion.status(record, now)));
        if let Outcome::FinishedWithTasks { tasks, .. } = &outcome {
            let added = job.added_records(tasks);
            job.adding = job
                .adding
                .saturating_add(u32::try_from(tasks.len()).unwrap_or(u32::MAX));
            self.ops.push(StoreOp::AppendTasks {
                job: task_id.job,
                tasks: added,
            });
        }
        let token = self.next_token();
        // A worker that interrupts its task is on its way out: it gets no more work.
        let leaving = outcome == Outcome::Interrupted;
        self.pending.insert(
            token,
            AwaitingCommit::Complete {
                conn,
                id,
                task: task_id,
                attempt,
                outcome,
                at: now,
                worker: name,
                refused,
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

    /// A completion's record was committed (or not): apply it, or put the task back as it
    /// was, an orphan waiting for its worker to send the result again.
    #[allow(
        clippy::too_many_arguments,
        reason = "the fields of one AwaitingCommit::Complete, destructured by the one caller"
    )]
    fn completion_stored(
        &mut self,
        now: Timestamp,
        failed: bool,
        task_id: TaskId,
        attempt: u32,
        outcome: Outcome,
        at: Timestamp,
        worker: String,
    ) {
        // Tasks it added are stored with its end (or not at all): they join the job first,
        // so the job is never seen ended between the two.
        if let Outcome::FinishedWithTasks { tasks, .. } = &outcome {
            let runs = self.task(task_id).is_some_and(|task| task.runs(attempt));
            self.tasks_added(now, task_id, tasks, !failed, runs);
        }
        let Some(task) = self.task_mut(task_id) else {
            return;
        };
        // Canceled meanwhile, or already applied from a duplicate report: nothing to do.
        if !task.runs(attempt) {
            return;
        }
        task.completing = task.completing.saturating_sub(1);
        if failed {
            if task.completing == 0 && !self.running.contains_key(&task_id) {
                self.orphan(now, now, task_id, attempt, worker);
            }
            return;
        }
        match &outcome {
            Outcome::Failed(failure) => {
                let reason = failure.reason.clone();
                let gpu_fault = failure.gpu_fault.clone();
                self.count_failure(now, &worker, task_id.job, &reason, gpu_fault.as_deref());
            }
            Outcome::Finished(_) | Outcome::FinishedWithTasks { .. } => self.count_success(&worker),
            Outcome::Canceled | Outcome::Interrupted => {}
        }
        // The record stored is what applying gives: nothing changes a completing task's
        // record meanwhile (it is not held, so no loss, timeout or reclaim touches it).
        self.conclude(at, task_id, outcome);
    }

    /// The commit of tasks that task `by` added to its job is done: `stored` says whether
    /// it succeeded. Stored tasks join the job after its last task, numbered as the store
    /// numbered them, with the job's queue, priority and options; queued, or canceled at
    /// once when `by` was canceled while its report was being stored (its job was canceled:
    /// the tasks must not bring it back).
    fn tasks_added(
        &mut self,
        now: Timestamp,
        by: TaskId,
        tasks: &[NewTask],
        stored: bool,
        by_runs: bool,
    ) {
        let count = u32::try_from(tasks.len()).unwrap_or(u32::MAX);
        let Some(job) = self.jobs.get_mut(&by.job) else {
            return;
        };
        job.adding = job.adding.saturating_sub(count);
        if !stored {
            return;
        }
        let first = u32::try_from(job.tasks.len()).unwrap_or(u32::MAX);
        let max_attempts = job.options.max_attempts.max(1);
        job.tasks.extend(
            tasks
                .iter()
                .cloned()
                .map(|task| Task::new(task, max_attempts)),
        );
        job.counts.total += u64::from(count);
        job.counts.queued += u64::from(count);
        let paused = job.paused;
        let queue_name = job.queue.clone();
        let number = job.number;
        {
            let queue = self.queue_mut(&queue_name);
            queue.counts.total += u64::from(count);
            queue.counts.queued += u64::from(count);
            if paused {
                queue.held += u64::from(count);
            }
        }
        self.touched.insert(by.job);
        tracing::info!(
            job = number,
            task = by.index,
            tasks = count,
            "a task added tasks to its job"
        );
        let added = (first..first.saturating_add(count)).map(|index| TaskId::new(by.job, index));
        for id in added {
            if by_runs {
                self.tell_watchers(id);
                self.enqueue(now, id);
            } else {
                let reason = format!(
                    "canceled: task {number}.{} that added it was canceled",
                    by.index
                );
                self.end_task(now, id, TaskState::Canceled, Failure::new(reason));
            }
        }
    }

    /// Records how the current attempt ended, by the server's own decision (the timeout
    /// backstop).
    pub(super) fn end_attempt(&mut self, now: Timestamp, id: TaskId, outcome: Outcome) {
        self.conclude(now, id, outcome);
        self.record(id);
    }

    /// Applies an attempt's end to the task in memory (not to storage).
    fn conclude(&mut self, now: Timestamp, id: TaskId, outcome: Outcome) {
        let Some(task) = self.task_mut(id) else {
            return;
        };
        let Conclusion {
            attempt,
            state,
            result,
            failure,
        } = Conclusion::of(task, outcome);
        let retry = matches!(attempt, AttemptOutcome::Failed(_));
        if let Some(last) = task.attempts.last_mut() {
            last.ended_at = Some(now);
            last.outcome = Some(attempt);
        }
        task.progress = None;
        if state.is_terminal() {
            task.ended_at = Some(now);
            task.result = result;
            task.failure = failure.map(Box::new);
        }
        self.set_state(id, state);
        match state {
            TaskState::Queued if retry => self.schedule_retry(now, id),
            // Not the task's fault: back in line at once, no attempt used up.
            TaskState::Queued => self.enqueue(now, id),
            _ => self.task_ended(now, id),
        }
    }

    /// Ends a task that did not run to its end: `Failed` or `Canceled` with `failure`,
    /// recorded, announced, and its dependents failed in turn.
    pub(super) fn end_task(
        &mut self,
        now: Timestamp,
        id: TaskId,
        state: TaskState,
        failure: Failure,
    ) {
        let Some(task) = self.task_mut(id) else {
            return;
        };
        let due = task.retry_at.take();
        task.ended_at = Some(now);
        task.failure = Some(Box::new(failure));
        task.progress = None;
        if let Some(due) = due {
            self.delayed.remove(&(due, id));
        }
        self.unqueue(id);
        self.set_state(id, state);
        self.record(id);
        self.task_ended(now, id);
    }

    /// A failed attempt will be retried: after a backoff that doubles with each failure.
    pub(super) fn schedule_retry(&mut self, now: Timestamp, id: TaskId) {
        let backoff = self.config.retry_backoff;
        let max = self.config.max_retry_backoff;
        let Some(task) = self.task_mut(id) else {
            return;
        };
        let failures = task.failed_attempts().max(1);
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        let wait = backoff.saturating_mul(factor).min(max);
        if wait.is_zero() {
            self.enqueue(now, id);
            return;
        }
        let due = now.plus(wait);
        task.retry_at = Some(due);
        self.delayed.insert((due, id));
    }

    /// Task `id` ended: its output's followers get the end, tasks waiting on it go on.
    fn task_ended(&mut self, now: Timestamp, id: TaskId) {
        self.end_log_followers(id);
        self.release_dependents(now, Dependency::Task(id));
    }

    /// Notes the end (or the new start, after a requeue) of every job whose tasks changed
    /// while handling the current input: the retention clock, the queue's count of jobs not
    /// ended, waiters and watchers, and jobs waiting on it.
    pub(super) fn settle(&mut self, now: Timestamp) {
        while let Some(id) = self.touched.pop_first() {
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            let ended = job.ended();
            let queue_name = job.queue.clone();
            match (ended, job.ended_at) {
                (true, None) => {
                    // The latest task's end, as a restart derives it from the stored tasks.
                    let ended = job.last_task_end().unwrap_or(now);
                    job.ended_at = Some(ended);
                    // Stored with the record: retention counts from it.
                    self.ops.push(StoreOp::UpdateJob(job.record()));
                    let state = job.state(false);
                    self.queue_mut(&queue_name).jobs -= 1;
                    if matches!(state, JobState::Finished | JobState::Canceled) {
                        self.expiring.insert((ended, id));
                    }
                    self.announce_end(id);
                    self.notice_job_ended(id);
                    self.release_dependents(now, Dependency::Job(id));
                }
                (false, Some(at)) => {
                    job.ended_at = None;
                    self.ops.push(StoreOp::UpdateJob(job.record()));
                    self.expiring.remove(&(at, id));
                    self.queue_mut(&queue_name).jobs += 1;
                }
                _ => {}
            }
        }
    }

    /// Tells every client waiting on job `id` that it ended.
    fn announce_end(&mut self, id: JobId) {
        if !self.waiters.contains_key(&id) && !self.watchers.contains_key(&id) {
            // Most jobs end with nobody waiting: build no status for them.
            return;
        }
        let Some(status) = self.job_status(id) else {
            return;
        };
        for (conn, request) in self.waiters.remove(&id).unwrap_or_default() {
            self.reply(conn, request, Ok(Reply::Ended(status.clone())));
        }
        for (conn, request) in self.watchers.remove(&id).unwrap_or_default() {
            self.event(conn, request, JobEvent::Ended(status.clone()));
            self.watch_done(conn, request);
        }
    }

    /// `dependency` ended: wake or fail the deferred tasks of the jobs waiting on it.
    pub(super) fn release_dependents(&mut self, now: Timestamp, dependency: Dependency) {
        let Some(dependents) = self.dependents.remove(&dependency) else {
            return;
        };
        for dependent in dependents {
            let Some(job) = self.jobs.get(&dependent) else {
                continue;
            };
            if job.counts.deferred == 0 {
                continue;
            }
            let deferred: Vec<TaskId> = job
                .indexed()
                .filter(|(_, task)| task.state == TaskState::Deferred)
                .map(|(id, _)| id)
                .collect();
            match self.readiness(job) {
                Readiness::Waiting => {}
                Readiness::Ready => {
                    for task in deferred {
                        self.set_state(task, TaskState::Queued);
                        self.record(task);
                        self.enqueue(now, task);
                    }
                }
                Readiness::Broken(reason) => {
                    for task in deferred {
                        let failure = Failure::new(reason.clone());
                        self.end_task(now, task, TaskState::Failed, failure);
                    }
                }
            }
        }
    }

    /// The worker running `id` is gone for good: requeue the task, or fail it after too
    /// many losses.
    pub(super) fn worker_lost(&mut self, now: Timestamp, id: TaskId, attempt: u32, worker: &str) {
        tracing::warn!(worker = %worker, task = %id, attempt, "worker lost while running a task");
        let Some(task) = self.task_mut(id) else {
            return;
        };
        if task.state != TaskState::Started || task.current_attempt() != attempt {
            return;
        }
        if let Some(last) = task.attempts.last_mut() {
            last.ended_at = Some(now);
            last.outcome = Some(AttemptOutcome::WorkerLost);
        }
        let losses = task.worker_losses();
        self.release(id);
        self.orphans.remove(&id);
        if losses < MAX_WORKER_LOSSES {
            self.set_state(id, TaskState::Queued);
            self.record(id);
            self.enqueue(now, id);
        } else {
            let reason = format!(
                "worker lost: {MAX_WORKER_LOSSES} workers were lost while running this task, \
                 the last was {worker}"
            );
            self.end_task(now, id, TaskState::Failed, Failure::new(reason));
        }
    }
}

/// Submissions logged one line each; a larger batch (a tool submitting thousands of jobs)
/// is logged as one line, so the log stays readable.
const SUBMISSIONS_LOGGED: usize = 10;

/// Says at info what was just stored: each job's number, name, submitter and queue (issue
/// 14), or a batch's size and range.
fn log_submissions(jobs: &[Job]) {
    if jobs.len() <= SUBMISSIONS_LOGGED {
        for job in jobs {
            tracing::info!(
                job = job.number,
                name = job.name.as_deref().unwrap_or("-"),
                submitter = %job.submitter,
                queue = %job.queue,
                tasks = job.tasks.len(),
                "job submitted"
            );
        }
    } else if let (Some(first), Some(last)) = (jobs.first(), jobs.last()) {
        tracing::info!(
            jobs = jobs.len(),
            first = first.number,
            last = last.number,
            submitter = %first.submitter,
            queue = %first.queue,
            "jobs submitted"
        );
    }
}
