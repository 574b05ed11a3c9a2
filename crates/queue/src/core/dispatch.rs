//! Dispatch: queues, workers, and which worker runs which task.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use buildcat_proto::gpu::MAX_GPUS;
use buildcat_proto::{
    Assignment, Attempt, AttemptOutcome, Gpu, GpuRequirement, JobId, MAX_TOOL_TEXT, MAX_TOOLS,
    QueueSummary, Reply, RequestError, RequestId, ServerFrame, TaskCounts, TaskId, TaskState,
    Timestamp, ToolVersion, WorkerRegistration,
};

use super::job::{Job, QueueKey};
use super::lifecycle::AwaitingCommit;
use super::{ConnId, Core, Effect};

/// The least wait before a task whose assignment could not be stored is dispatched again.
const MIN_REDISPATCH: std::time::Duration = std::time::Duration::from_secs(1);

/// One named queue.
#[derive(Debug, Default)]
pub(super) struct Queue {
    /// Its name, for `info`.
    pub(super) name: String,
    /// Tasks waiting for a worker, in dispatch order: queued, not waiting for a retry, of a
    /// job that is not paused. (Those of a paused queue stay here; dispatch skips the queue.)
    pub(super) pending: BTreeSet<QueueKey>,
    /// How many of the pending tasks are of each kind and GPU requirement, to tell which
    /// no worker can run (no worker has the kind, or none of those has the GPUs).
    pub(super) pending_kinds: HashMap<(Arc<str>, GpuRequirement), u64>,
    /// Its tasks by state as kept (never paused).
    pub(super) counts: TaskCounts,
    /// Queued tasks of paused jobs: shown as paused.
    pub(super) held: u64,
    /// Jobs in it that have not ended.
    pub(super) jobs: u64,
    /// A person paused the whole queue: none of its tasks start.
    pub(super) paused: bool,
}

impl Queue {
    /// Adds a task of a job of kind `kind` needing `gpus` to the dispatch order.
    pub(super) fn push(&mut self, key: QueueKey, kind: &Arc<str>, gpus: GpuRequirement) {
        if self.pending.insert(key) {
            *self.pending_kinds.entry((kind.clone(), gpus)).or_default() += 1;
        }
    }

    /// Takes a task out of the dispatch order, if it is in it.
    pub(super) fn take(&mut self, key: &QueueKey, kind: &Arc<str>, gpus: GpuRequirement) {
        let group = (kind.clone(), gpus);
        if self.pending.remove(key)
            && let Some(count) = self.pending_kinds.get_mut(&group)
        {
            *count -= 1;
            if *count == 0 {
                self.pending_kinds.remove(&group);
            }
        }
    }

    /// The queue as `info` shows it: held tasks counted as paused.
    pub(super) fn summary(&self) -> QueueSummary {
        let mut tasks = self.counts;
        if self.paused {
            tasks.paused = tasks.queued;
            tasks.queued = 0;
        } else {
            tasks.paused = self.held.min(tasks.queued);
            tasks.queued -= tasks.paused;
        }
        QueueSummary {
            name: self.name.clone(),
            jobs: self.jobs,
            tasks,
            paused: self.paused,
        }
    }
}

/// A registered worker: one slot, which runs at most one task at a time.
#[derive(Debug)]
pub(super) struct Worker {
    /// As the worker introduced itself.
    pub(super) registration: WorkerRegistration,
    /// The task it runs, with the attempt number. At most one: a slot is one task.
    pub(super) current: Option<(TaskId, u32)>,
    /// Attempts it still runs that are no longer its own (handed on while it was away, or
    /// canceled): it was told to stop them and gets no work until it reports each.
    pub(super) stopping: Vec<(TaskId, u32)>,
    /// When it last sent anything, for the heartbeat check.
    pub(super) last_seen: Timestamp,
    /// When it registered, for `info`.
    pub(super) connected_at: Timestamp,
    /// It interrupted its task because it is stopping (`Outcome::Interrupted`): no more work.
    pub(super) leaving: bool,
    /// Its place in the idle order while idle; `Some` exactly when it is in `Core::idle`.
    pub(super) idle_since: Option<u64>,
    /// Kinds it can run, for quick lookups.
    pub(super) kinds: HashSet<String>,
}

impl Worker {
    /// Whether it can run a task of `job` at all: it serves the job's queue, has its kind
    /// and has the GPUs it needs. Decided per job, never per task, so dispatch can skip a
    /// whole job's tasks at once.
    fn can_run(&self, job: &Job) -> bool {
        self.serves(&job.queue, &job.kind) && job.options.gpus.is_met_by(&self.registration.gpus)
    }

    /// Whether it serves `queue` and has `kind`, whatever its GPUs.
    pub(super) fn serves(&self, queue: &str, kind: &str) -> bool {
        self.kinds.contains(kind) && self.registration.queues.iter().any(|q| q == queue)
    }
}

/// What the server remembers of a worker by name, across its reconnects.
#[derive(Debug, Default)]
pub(super) struct WorkerRecord {
    /// The failures it had since it last finished a task, oldest first: tasks of one job
    /// count once, since a broken render fails on every worker, except GPU faults, which
    /// count every time (a GPU that keeps faulting is the worker's problem).
    pub(super) failed_in_a_row: Vec<FailureInRow>,
    /// Set while it is quarantined.
    pub(super) quarantine: Option<Quarantine>,
    /// A person paused it (`worker-pause`): no new work until resumed (`worker_pause.rs`).
    pub(super) paused: bool,
}

impl WorkerRecord {
    /// Whether it remembers nothing worth keeping, so the name can be forgotten.
    pub(super) fn is_empty(&self) -> bool {
        self.failed_in_a_row.is_empty() && self.quarantine.is_none() && !self.paused
    }
}

/// One failure counted toward a worker's quarantine.
#[derive(Debug)]
pub(super) struct FailureInRow {
    /// The job whose task failed: a second failure of the same job is not counted again
    /// (unless it is a GPU fault).
    pub(super) job: JobId,
    /// What went wrong with a GPU, when that was the cause: such failures always count, and
    /// the quarantine reason names them.
    pub(super) gpu_fault: Option<String>,
}

/// Why, and until when, a worker gets no work.
#[derive(Debug)]
pub(super) struct Quarantine {
    /// What `info` shows.
    pub(super) reason: String,
    /// When it ends by itself; `None`: only `worker-enable` ends it.
    pub(super) until: Option<Timestamp>,
}

impl Core {
    /// Makes a queued task dispatchable (unless its job is paused) and hands it to an idle
    /// worker if one should take it (unless its queue is paused).
    pub(super) fn enqueue(&mut self, now: Timestamp, id: TaskId) {
        let Some(job) = self.jobs.get(&id.job) else {
            return;
        };
        if job.paused {
            return;
        }
        let key = job.queue_key(id.index);
        let queue_name = job.queue.clone();
        let kind = job.kind.clone();
        let gpus = job.options.gpus;
        self.queue_mut(&queue_name).push(key, &kind, gpus);
        self.notice_dispatchable(now, id);
        if self.queue_paused(&queue_name) {
            return;
        }
        self.offer_to_idle(now, id);
    }

    /// Gives a dispatchable task to the idle worker that should take it, if one should. An
    /// idle worker has nothing to do in any of its queues, so the first idle worker that may
    /// take the task is the right one: the longest idle.
    fn offer_to_idle(&mut self, now: Timestamp, id: TaskId) {
        let chosen = self
            .idle
            .values()
            .copied()
            .find(|conn| self.may_take(*conn, id));
        if let Some(conn) = chosen {
            self.assign(now, conn, id);
        }
    }

    /// Hands the pending tasks of the queue named `name` to idle workers that should take
    /// them, in dispatch order: after the queue is let go.
    pub(super) fn dispatch_queue(&mut self, now: Timestamp, name: &str) {
        let Some(queue) = self.queues.get(name) else {
            return;
        };
        let pending: Vec<TaskId> = queue.pending.iter().map(|(_, id)| *id).collect();
        for id in pending {
            if self.idle.is_empty() {
                break;
            }
            self.offer_to_idle(now, id);
        }
    }

    /// Whether the worker on `conn` should be given `id`: it can run it, and it has not
    /// already failed it, unless every worker that can run it (and takes work: not
    /// quarantined or paused) has (then a retry anywhere beats no retry).
    fn may_take(&self, conn: ConnId, id: TaskId) -> bool {
        let Some(worker) = self.workers.get(&conn) else {
            return false;
        };
        let Some(job) = self.jobs.get(&id.job) else {
            return false;
        };
        let Some(task) = job.task(id.index) else {
            return false;
        };
        if !worker.can_run(job) || self.quarantined(&worker.registration.name) {
            return false;
        }
        if !task.failed_on(&worker.registration.name) {
            return true;
        }
        !self.workers.values().any(|other| {
            other.can_run(job)
                && !self.quarantined(&other.registration.name)
                && !self.worker_paused(&other.registration.name)
                && !task.failed_on(&other.registration.name)
        })
    }

    /// The first pending task of `queue` that the worker on `conn` should take. Tasks of one
    /// job sit together in the dispatch order and whether a worker can run them at all
    /// (queue, kind, GPUs) is the job's, so a job it cannot run is skipped in one step: a
    /// GPU job of thousands of tasks at the head of a queue costs a CPU worker one look-up,
    /// not thousands, and does not hold up the jobs behind it.
    fn first_task_for(&self, conn: ConnId, worker: &Worker, queue: &Queue) -> Option<TaskId> {
        let mut from: Bound<QueueKey> = Bound::Unbounded;
        loop {
            let (priority, first) = *queue.pending.range((from, Bound::Unbounded)).next()?;
            // Past this job's last task: every task of a job has its priority.
            let past_job = (
                priority,
                TaskId {
                    job: first.job,
                    index: u32::MAX,
                },
            );
            let fits = self
                .jobs
                .get(&first.job)
                .is_some_and(|job| worker.can_run(job));
            if fits {
                let found = queue
                    .pending
                    .range((priority, first)..=past_job)
                    .map(|(_, id)| *id)
                    .find(|id| self.may_take(conn, *id));
                if found.is_some() {
                    return found;
                }
            }
            from = Bound::Excluded(past_job);
        }
    }

    /// Whether the worker named `name` is quarantined.
    pub(super) fn quarantined(&self, name: &str) -> bool {
        self.records
            .get(name)
            .is_some_and(|record| record.quarantine.is_some())
    }

    /// Takes a task out of its queue's dispatch order, if it is in it.
    pub(super) fn unqueue(&mut self, id: TaskId) {
        let Some(job) = self.jobs.get(&id.job) else {
            return;
        };
        let key = job.queue_key(id.index);
        let kind = job.kind.clone();
        let gpus = job.options.gpus;
        let queue = job.queue.clone();
        self.queue_mut(&queue).take(&key, &kind, gpus);
    }

    pub(super) fn queue_mut(&mut self, name: &Arc<str>) -> &mut Queue {
        self.queues.entry(name.clone()).or_insert_with(|| Queue {
            name: name.to_string(),
            ..Queue::default()
        })
    }

    pub(super) fn intern_queue(&mut self, name: &str) -> Arc<str> {
        match self.queues.get_key_value(name) {
            Some((key, _)) => key.clone(),
            None => {
                let key: Arc<str> = Arc::from(name);
                self.queue_mut(&key);
                key
            }
        }
    }

    /// The shared copy of submitter `submitter`: a farm has a few dozen submitters and
    /// millions of jobs.
    pub(super) fn intern_submitter(&mut self, submitter: &str) -> Arc<str> {
        if let Some(existing) = self.submitters.get(submitter) {
            return existing.clone();
        }
        let submitter: Arc<str> = Arc::from(submitter);
        self.submitters.insert(submitter.clone());
        submitter
    }

    pub(super) fn intern_kind(&mut self, kind: &str) -> Arc<str> {
        if let Some(existing) = self.kinds.get(kind) {
            return existing.clone();
        }
        let kind: Arc<str> = Arc::from(kind);
        self.kinds.insert(kind.clone());
        kind
    }

    /// Takes `conn` out of the idle order, if it is in it.
    pub(super) fn leave_idle(&mut self, conn: ConnId) {
        if let Some(worker) = self.workers.get_mut(&conn)
            && let Some(since) = worker.idle_since.take()
        {
            self.idle.remove(&since);
        }
    }

    /// Gives a queued task to a worker whose slot is free.
    pub(super) fn assign(&mut self, now: Timestamp, conn: ConnId, id: TaskId) {
        let Some(worker) = self.workers.get(&conn) else {
            return;
        };
        if worker.current.is_some() || !worker.stopping.is_empty() {
            // A slot holds one task; callers only pick free slots, so this is a bug.
            tracing::error!(conn, task = %id, "refused to give a second task to a busy worker");
            return;
        }
        let worker_name = worker.registration.name.clone();
        self.leave_idle(conn);
        let Some(job) = self.jobs.get_mut(&id.job) else {
            return;
        };
        let (number, name, queue, kind, timeout_ms) = (
            job.number,
            job.name().to_owned(),
            job.queue.to_string(),
            job.kind.to_string(),
            job.options.timeout_ms,
        );
        let Some(task) = job.task_mut(id.index) else {
            return;
        };
        let attempt = task.current_attempt() + 1;
        task.attempts.push(Attempt {
            number: attempt,
            worker: worker_name,
            started_at: now,
            ended_at: None,
            outcome: None,
        });
        let assignment = Assignment {
            task: id,
            number,
            name,
            frames: task.frames.as_deref().map(str::to_owned),
            attempt,
            queue,
            kind,
            args: task.args.to_vec(),
            timeout_ms,
        };
        task.assigning = true;
        self.unqueue(id);
        self.set_state(id, TaskState::Started);
        self.hold(conn, id, attempt);
        // The worker hears of the attempt only once its record is stored, so that after a
        // crash the attempt a worker runs is one the restarted server knows.
        self.record(id);
        let token = self.next_token();
        self.pending.insert(
            token,
            AwaitingCommit::Assign {
                conn,
                attempt,
                assignment,
            },
        );
        self.flush_ops(Some(token));
    }

    /// An assignment's record was committed (or not): send the worker its task, or put the
    /// task back in its queue as if it had not been assigned.
    pub(super) fn assignment_stored(
        &mut self,
        now: Timestamp,
        failed: bool,
        conn: ConnId,
        attempt: u32,
        assignment: Assignment,
    ) {
        let id = assignment.task;
        let redispatch = self.config.retry_backoff.max(MIN_REDISPATCH);
        let Some(task) = self.task_mut(id) else {
            return;
        };
        // Canceled, timed out or lost meanwhile: nothing to send.
        if !task.assigning || !task.runs(attempt) {
            return;
        }
        task.assigning = false;
        if !failed {
            if self.running.get(&id) == Some(&conn) {
                self.effects
                    .push(Effect::Send(conn, ServerFrame::Assign(assignment)));
            }
            // Otherwise its worker left meanwhile: the task is an orphan, and the worker,
            // back without it, hands it on at once.
            return;
        }
        // Not stored: the attempt never happened. Its task waits a backoff before it is
        // dispatched again, so a full disk does not turn into a loop of failing commits.
        tracing::warn!(task = %id, attempt, "could not store an assignment; the task goes back to its queue");
        task.attempts.pop();
        let due = now.plus(redispatch);
        task.retry_at = Some(due);
        self.orphans.remove(&id);
        let holder = self.release(id);
        self.set_state(id, TaskState::Queued);
        self.delayed.insert((due, id));
        if let Some(conn) = holder {
            self.worker_ready(now, conn);
        }
    }

    /// Makes the worker on `conn` the holder of `id`'s attempt `attempt`.
    fn hold(&mut self, conn: ConnId, id: TaskId, attempt: u32) {
        if let Some(worker) = self.workers.get_mut(&conn) {
            worker.current = Some((id, attempt));
            self.running.insert(id, conn);
        }
    }

    /// Frees the slot holding `id`, if one does; returns that worker's connection.
    pub(super) fn release(&mut self, id: TaskId) -> Option<ConnId> {
        let conn = self.running.remove(&id)?;
        if let Some(worker) = self.workers.get_mut(&conn) {
            worker.current = None;
        }
        Some(conn)
    }

    /// The worker's slot may be free: give it the best task it should run, or mark it idle.
    /// Does nothing for a worker that is busy, stopping, leaving, quarantined, paused or already
    /// idle, so calling it twice never lists a worker twice.
    pub(super) fn worker_ready(&mut self, now: Timestamp, conn: ConnId) {
        let Some(worker) = self.workers.get(&conn) else {
            return;
        };
        if worker.current.is_some()
            || !worker.stopping.is_empty()
            || worker.leaving
            || worker.idle_since.is_some()
            || self.quarantined(&worker.registration.name)
            || self.worker_paused(&worker.registration.name)
        {
            return;
        }
        let mut found = None;
        for queue_name in &worker.registration.queues {
            let Some(queue) = self.queues.get(queue_name.as_str()) else {
                continue;
            };
            if queue.paused {
                continue;
            }
            found = self.first_task_for(conn, worker, queue);
            if found.is_some() {
                break;
            }
        }
        match found {
            Some(id) => self.assign(now, conn, id),
            None => {
                let order = self.idle_counter;
                self.idle_counter += 1;
                self.idle.insert(order, conn);
                if let Some(worker) = self.workers.get_mut(&conn) {
                    worker.idle_since = Some(order);
                }
            }
        }
    }

    pub(super) fn register(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        id: RequestId,
        registration: WorkerRegistration,
    ) {
        if self.workers.contains_key(&conn) {
            let error = RequestError::Invalid("this connection is already registered".into());
            self.reply(conn, id, Err(error));
            return;
        }
        if registration.queues.is_empty() || registration.queues.iter().any(|q| q.is_empty()) {
            let error =
                RequestError::Invalid("a worker must serve at least one named queue".into());
            self.reply(conn, id, Err(error));
            return;
        }
        if let Err(why) =
            check_tools(&registration.tools).and_then(|()| check_gpus(&registration.gpus))
        {
            self.reply(conn, id, Err(RequestError::Invalid(why)));
            return;
        }
        // Two live workers under one name would share history, quarantine and reclaimed
        // tasks. The same process coming back on a new connection (its host and pid) is a
        // reconnect, not a second worker.
        let twin = self.workers.values().find(|worker| {
            let other = &worker.registration;
            other.name == registration.name
                && (other.host != registration.host || other.pid != registration.pid)
        });
        if let Some(twin) = twin {
            let other = &twin.registration;
            let error = RequestError::NameTaken {
                name: registration.name.clone(),
                holder: format!("pid {} on {}", other.pid, other.host),
            };
            self.reply(conn, id, Err(error));
            return;
        }
        let kinds = registration.kinds.iter().cloned().collect();
        let name = registration.name.clone();
        let running = registration.running.clone();
        self.workers.insert(
            conn,
            Worker {
                registration,
                current: None,
                stopping: Vec::new(),
                leaving: false,
                last_seen: now,
                connected_at: now,
                idle_since: None,
                kinds,
            },
        );
        // Sent after the reply: the worker reads nothing else before its registration is
        // answered.
        let mut stops = Vec::new();
        for &(task_id, attempt) in &running {
            let free = self
                .workers
                .get(&conn)
                .is_some_and(|worker| worker.current.is_none());
            if free && self.reclaim(now, conn, task_id, attempt) {
                continue;
            }
            if self.awaits_resend(task_id, attempt, &name) {
                // A result it kept when its commit failed, or that came while the server was
                // away (its slot went on to the next task meanwhile): the worker sends it
                // again next. The task stays an orphan, within its grace, until then.
                continue;
            }
            if self.readopt(now, task_id, attempt, &name) {
                // The same, counted lost after the grace but not handed on yet.
                continue;
            }
            // It runs an attempt that is not (or no longer) its own: the task was canceled,
            // ended, or handed to another worker while this one was away. Tell it to stop,
            // and give it nothing else until it says it has.
            let reason = match self.task_state(task_id) {
                Some(TaskState::Canceled) => "canceled".to_owned(),
                _ => "this attempt is no longer current: the task was handed on while the \
                      worker was away"
                    .to_owned(),
            };
            tracing::info!(worker = %name, task = %task_id, attempt, "a returning worker runs an attempt that is not its own; telling it to stop");
            stops.push(ServerFrame::Cancel {
                task: task_id,
                attempt,
                reason,
            });
            if let Some(worker) = self.workers.get_mut(&conn) {
                worker.stopping.push((task_id, attempt));
            }
        }
        // Orphans of this worker that it no longer runs (it stopped them while cut off, or
        // restarted): no use waiting for it; hand them on now.
        let given_up: Vec<(TaskId, u32)> = self
            .orphans
            .iter()
            .filter(|(task, orphan)| {
                orphan.worker == name && !running.contains(&(**task, orphan.attempt))
            })
            .map(|(task, orphan)| (*task, orphan.attempt))
            .collect();
        for (task, attempt) in given_up {
            self.orphans.remove(&task);
            self.worker_lost(now, task, attempt, &name);
        }
        let heartbeat_ms = u64::try_from(self.config.heartbeat.as_millis()).unwrap_or(u64::MAX);
        // How long the server keeps a task for a worker it no longer hears from, counted from
        // the last request it received: the worker stops its task before then.
        let reconnect_grace_ms =
            u64::try_from(self.config.reconnect_grace.as_millis()).unwrap_or(u64::MAX);
        self.reply(
            conn,
            id,
            Ok(Reply::Registered {
                name,
                heartbeat_ms,
                reconnect_grace_ms,
            }),
        );
        for stop in stops {
            self.effects.push(Effect::Send(conn, stop));
        }
        self.worker_ready(now, conn);
    }

    /// Whether `id`'s attempt `attempt` is an orphan of the worker named `name` still
    /// current: a returning worker that lists it holds its result, whose commit failed.
    fn awaits_resend(&self, id: TaskId, attempt: u32, name: &str) -> bool {
        self.orphans
            .get(&id)
            .is_some_and(|orphan| orphan.worker == name && orphan.attempt == attempt)
            && self.task(id).is_some_and(|task| task.runs(attempt))
    }

    /// A returning worker whose slot is taken lists `id`'s attempt `attempt`, which this
    /// server counted lost (past its grace) but has not handed to another worker: the worker
    /// holds its result (a worker runs one task, named first), so the task is started again
    /// as an orphan of that worker, waiting one grace for the result rather than running
    /// again. Whether it was.
    fn readopt(&mut self, now: Timestamp, id: TaskId, attempt: u32, name: &str) -> bool {
        let Some(task) = self.task_mut(id) else {
            return false;
        };
        if task.state != TaskState::Queued
            || task.current_attempt() != attempt
            || task.completing > 0
        {
            return false;
        }
        let Some(last) = task.attempts.last() else {
            return false;
        };
        if last.worker != name || last.outcome != Some(AttemptOutcome::WorkerLost) {
            return false;
        }
        self.take_back(id);
        tracing::info!(worker = %name, task = %id, attempt, "a returning worker holds the result of an attempt counted lost; waiting for it");
        self.orphan(now, now, id, attempt, name.to_owned());
        true
    }

    /// Takes back `id`'s last attempt, counted lost, for the worker that ran it and came back
    /// with it: the attempt is open again, and the task leaves its queue and any retry wait
    /// and is started (recorded).
    fn take_back(&mut self, id: TaskId) {
        let Some(task) = self.task_mut(id) else {
            return;
        };
        let retry_at = task.retry_at.take();
        if let Some(last) = task.attempts.last_mut() {
            last.ended_at = None;
            last.outcome = None;
        }
        if let Some(due) = retry_at {
            self.delayed.remove(&(due, id));
        }
        self.unqueue(id);
        self.set_state(id, TaskState::Started);
        self.record(id);
    }

    /// A returning worker still runs `id`'s attempt `attempt`: give it back to `conn` if that
    /// attempt is still current.
    fn reclaim(&mut self, now: Timestamp, conn: ConnId, id: TaskId, attempt: u32) -> bool {
        let Some(worker_name) = self
            .workers
            .get(&conn)
            .map(|worker| worker.registration.name.clone())
        else {
            return false;
        };
        let Some(task) = self.task_mut(id) else {
            return false;
        };
        if task.current_attempt() != attempt || task.completing > 0 {
            return false;
        }
        let state = task.state;
        let Some(last) = task.attempts.last() else {
            return false;
        };
        // Only the worker the attempt was given to: attempt numbers are durable before a
        // worker hears of them, so another name holding the same number is not this attempt.
        if last.worker != worker_name {
            return false;
        }
        match state {
            TaskState::Queued if last.outcome == Some(AttemptOutcome::WorkerLost) => {
                self.take_back(id);
            }
            TaskState::Started => {
                // Back within the grace period, or the old connection's loss has not been
                // noticed yet: the task stays with this worker.
                self.orphans.remove(&id);
                if let Some(old) = self.release(id) {
                    // The same slot on a new connection: the old one is dead or dying.
                    self.forget_connection(now, old, false);
                    self.effects.push(Effect::Close(
                        old,
                        "the worker reconnected on another connection".to_owned(),
                    ));
                }
            }
            _ => return false,
        }
        self.hold(conn, id, attempt);
        true
    }

    /// The connections of the worker named `name` (one per reconnect not yet noticed as
    /// lost; usually one, or none when it is not connected).
    pub(super) fn connections_named(&self, name: &str) -> Vec<ConnId> {
        self.workers
            .iter()
            .filter(|(_, worker)| worker.registration.name == name)
            .map(|(conn, _)| *conn)
            .collect()
    }

    /// `EnableWorker`: ends the quarantine of the worker named `name`.
    pub(super) fn enable_worker(&mut self, now: Timestamp, name: &str) -> Result<(), RequestError> {
        let connected = self.connections_named(name);
        let Some(record) = self.records.get_mut(name) else {
            if connected.is_empty() {
                return Err(RequestError::UnknownWorker(name.to_owned()));
            }
            return Ok(());
        };
        if record.quarantine.take().is_some() {
            tracing::info!(worker = %name, "quarantine lifted");
        }
        record.failed_in_a_row.clear();
        for conn in connected {
            self.worker_ready(now, conn);
        }
        Ok(())
    }

    /// Counts a failure of a task of `job` on the worker named `name`; quarantines the
    /// worker once it has failed tasks of `quarantine_after` different jobs in a row. A GPU
    /// fault (`gpu_fault`) counts every time, even within one job.
    pub(super) fn count_failure(
        &mut self,
        now: Timestamp,
        name: &str,
        job: JobId,
        reason: &str,
        gpu_fault: Option<&str>,
    ) {
        let limit = self.config.quarantine_after;
        if limit == 0 {
            return;
        }
        let cooldown = self.config.quarantine_cooldown;
        let record = self.records.entry(name.to_owned()).or_default();
        if record.quarantine.is_some() {
            // Already out of work: a task it still ran adds nothing.
            return;
        }
        if gpu_fault.is_some() || !record.failed_in_a_row.iter().any(|seen| seen.job == job) {
            record.failed_in_a_row.push(FailureInRow {
                job,
                gpu_fault: gpu_fault.map(str::to_owned),
            });
        }
        let count = u32::try_from(record.failed_in_a_row.len()).unwrap_or(u32::MAX);
        if count < limit {
            return;
        }
        let until = (!cooldown.is_zero()).then(|| now.plus(cooldown));
        let how_long = if cooldown.is_zero() {
            "until `buildcat worker-enable` lets it back".to_owned()
        } else {
            format!(
                "for {}s, or until `buildcat worker-enable` lets it back",
                cooldown.as_secs()
            )
        };
        let faults = record
            .failed_in_a_row
            .iter()
            .filter(|failure| failure.gpu_fault.is_some())
            .count();
        let last_fault = record
            .failed_in_a_row
            .iter()
            .rev()
            .find_map(|failure| failure.gpu_fault.as_deref());
        let why = match last_fault {
            Some(fault) => {
                tracing::warn!(worker = %name, failed = count, gpu_faults = faults, last = %fault, "worker quarantined: its GPUs keep faulting");
                format!(
                    "GPU faults: {fault} ({faults} of the {count} tasks it failed in a row; last: {reason}); check its GPUs (`nvidia-smi`); no work {how_long}"
                )
            }
            None => {
                tracing::warn!(worker = %name, failed = count, last = %reason, "worker quarantined: it failed job after job");
                format!(
                    "failed {count} different jobs in a row (last: {reason}); no work {how_long}"
                )
            }
        };
        record.quarantine = Some(Quarantine { reason: why, until });
        // An idle slot of this worker leaves the idle order.
        for conn in self.connections_named(name) {
            self.leave_idle(conn);
        }
    }

    /// A task finished on the worker named `name`: its failures are no longer in a row.
    pub(super) fn count_success(&mut self, name: &str) {
        if let Some(record) = self.records.get_mut(name) {
            record.failed_in_a_row.clear();
            if record.is_empty() {
                self.records.remove(name);
            }
        }
    }

    /// Quarantines whose cool-down is over end; their workers get work again.
    pub(super) fn end_quarantines(&mut self, now: Timestamp) {
        let over: Vec<String> = self
            .records
            .iter()
            .filter(|(_, record)| {
                record
                    .quarantine
                    .as_ref()
                    .and_then(|q| q.until)
                    .is_some_and(|until| until <= now)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in over {
            let _ = self.enable_worker(now, &name);
        }
    }
}

/// Whether the GPUs a worker slot registers are within what the server keeps for each
/// worker: `info` carries every worker's GPUs, so one peer must not make every reply huge.
pub(super) fn check_gpus(gpus: &[Gpu]) -> Result<(), String> {
    if gpus.len() > MAX_GPUS {
        return Err(format!(
            "a worker slot may register at most {MAX_GPUS} GPUs, this one registered {}; give it fewer with `--gpus` or `--gpus-per-slot`",
            gpus.len()
        ));
    }
    if let Some(gpu) = gpus.iter().find(|gpu| !gpu.is_within_limits()) {
        return Err(format!(
            "GPU {}'s uuid, name or driver is over the limit of {} bytes; a worker sends them as the driver reports them, so this peer is not a buildcat worker of this version",
            gpu.index,
            buildcat_proto::gpu::MAX_GPU_TEXT
        ));
    }
    Ok(())
}

/// Whether the tools a worker lists are within what the server keeps for each worker:
/// `info` carries every worker's tools, so one peer must not make every reply huge.
pub(super) fn check_tools(tools: &[ToolVersion]) -> Result<(), String> {
    if tools.len() > MAX_TOOLS {
        return Err(format!(
            "a worker may list at most {MAX_TOOLS} tools, this one listed {}; list only the tools it renders with",
            tools.len()
        ));
    }
    for tool in tools {
        if tool.name.is_empty() {
            return Err(
                "a tool's name is empty; name each tool as the worker's toolbox does (`blender`)"
                    .to_owned(),
            );
        }
        for (what, text) in [("name", &tool.name), ("version", &tool.version)] {
            if text.len() > MAX_TOOL_TEXT {
                return Err(format!(
                    "a tool's {what} is {} bytes, over the limit of {MAX_TOOL_TEXT}; send the version number only (`3.4.1`)",
                    text.len()
                ));
            }
        }
    }
    Ok(())
}
