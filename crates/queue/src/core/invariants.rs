//! What must hold between any two inputs, as code. The tests call it after every input.

use std::collections::{BTreeMap, HashMap};

use buildcat_proto::{Dependency, GpuRequirement, JobState, TaskCounts, TaskState};

use super::lifecycle::AwaitingCommit;
use super::{ConnId, Core};

impl Core {
    /// Checks every invariant of the core's state; the first one broken, described.
    pub(super) fn check_invariants(&self) -> Result<(), String> {
        self.check_jobs()?;
        self.check_queues()?;
        self.check_workers()?;
        self.check_started()?;
        self.check_subscriptions()?;
        self.check_in_flight()?;
        self.previews.check(&self.jobs)?;
        self.check_output_bytes()?;
        Ok(())
    }

    /// The running count of output kept equals what the jobs on record say.
    fn check_output_bytes(&self) -> Result<(), String> {
        let max_bytes = self.config.max_log_bytes;
        let sum: u64 = self
            .jobs
            .values()
            .map(|job| job.output_kept(max_bytes))
            .sum();
        if sum != self.output_bytes {
            return Err(format!(
                "the output count says {} bytes kept, the jobs {sum}",
                self.output_bytes
            ));
        }
        Ok(())
    }

    /// Each job's counts agree with its tasks; numbers index the jobs one to one and stay
    /// below the next number; a job's end is noted exactly when every task has ended, and
    /// an ended finished or canceled job is in the retention index.
    fn check_jobs(&self) -> Result<(), String> {
        if !self.touched.is_empty() {
            return Err(format!("jobs {:?} were left unsettled", self.touched));
        }
        if self.numbers.len() != self.jobs.len() {
            return Err(format!(
                "{} numbers index {} jobs",
                self.numbers.len(),
                self.jobs.len()
            ));
        }
        for (number, id) in &self.numbers {
            let Some(job) = self.jobs.get(id) else {
                return Err(format!("number {number} names unknown job {id}"));
            };
            if job.number != *number {
                return Err(format!(
                    "job {id} is number {}, indexed as {number}",
                    job.number
                ));
            }
            if *number >= self.next_number {
                return Err(format!(
                    "job number {number} is not below the next number {}",
                    self.next_number
                ));
            }
        }
        for (id, job) in &self.jobs {
            if *id != job.id {
                return Err(format!("job {} is filed under {id}", job.id));
            }
            if job.tasks.is_empty() {
                return Err(format!("job {id} has no task"));
            }
            let mut counts = TaskCounts {
                total: job.tasks.len() as u64,
                ..TaskCounts::default()
            };
            for task in &job.tasks {
                if task.state == TaskState::Paused {
                    return Err(format!("a task of job {id} is kept as paused"));
                }
                *counts.count_mut(task.state) += 1;
            }
            if counts != job.counts {
                return Err(format!(
                    "job {id} counts {:?}, its tasks are {counts:?}",
                    job.counts
                ));
            }
            let state = job.state(self.queue_paused(&job.queue));
            let expiring = job
                .ended_at
                .is_some_and(|ended| self.expiring.contains(&(ended, *id)));
            match job.ended_at {
                Some(_) if !job.ended() => {
                    return Err(format!("job {id} is noted ended but is {state}"));
                }
                None if job.ended() => {
                    return Err(format!("job {id} has ended but its end is not noted"));
                }
                _ => {}
            }
            let should_expire =
                job.ended() && matches!(state, JobState::Finished | JobState::Canceled);
            if should_expire != expiring {
                return Err(format!(
                    "{state} job {id} is {}in the retention index",
                    if expiring { "" } else { "not " }
                ));
            }
        }
        for (ended, id) in &self.expiring {
            if self
                .jobs
                .get(id)
                .is_none_or(|job| job.ended_at != Some(*ended))
            {
                return Err(format!(
                    "retention index lists job {id} at {ended:?} wrongly"
                ));
            }
        }
        Ok(())
    }

    /// A queued task is in exactly its queue's dispatch order unless its retry is delayed
    /// or its job is paused; kinds, state counts, held tasks and jobs not ended agree with
    /// the jobs.
    fn check_queues(&self) -> Result<(), String> {
        let mut counts: BTreeMap<&str, (TaskCounts, u64, u64)> = BTreeMap::new();
        for job in self.jobs.values() {
            let entry = counts.entry(&job.queue).or_default();
            entry.0.total += job.counts.total;
            for state in TaskState::ALL {
                *entry.0.count_mut(state) += job.counts.count(state);
            }
            if job.paused {
                entry.1 += job.counts.queued;
            }
            if !job.ended() {
                entry.2 += 1;
            }
            for (task_id, task) in job.indexed() {
                let pending = self
                    .queues
                    .get(&job.queue)
                    .is_some_and(|queue| queue.pending.contains(&job.queue_key(task_id.index)));
                let delayed = task
                    .retry_at
                    .is_some_and(|due| self.delayed.contains(&(due, task_id)));
                match task.state {
                    TaskState::Queued if task.retry_at.is_some() => {
                        if pending || !delayed {
                            return Err(format!(
                                "task {task_id} waits for its retry but is dispatchable, or not in the retry index"
                            ));
                        }
                    }
                    TaskState::Queued => {
                        if pending == job.paused {
                            return Err(format!(
                                "queued task {task_id} of a {} job is {}in its queue's dispatch order",
                                if job.paused { "paused" } else { "running" },
                                if pending { "" } else { "not " }
                            ));
                        }
                    }
                    _ => {
                        if pending || task.retry_at.is_some() {
                            return Err(format!(
                                "{} task {task_id} is dispatchable or waits for a retry",
                                task.state
                            ));
                        }
                    }
                }
            }
        }
        for (due, id) in &self.delayed {
            if self
                .task(*id)
                .is_some_and(|task| task.retry_at != Some(*due))
            {
                return Err(format!(
                    "retry index entry of task {id} does not match its retry time"
                ));
            }
        }
        for (name, queue) in &self.queues {
            let mut kinds: HashMap<(&str, GpuRequirement), u64> = HashMap::new();
            for (_, id) in &queue.pending {
                let Some(job) = self.jobs.get(&id.job) else {
                    return Err(format!("queue {name} dispatches unknown task {id}"));
                };
                let state = job.task(id.index).map(|task| task.state);
                if job.queue != *name || state != Some(TaskState::Queued) {
                    return Err(format!(
                        "queue {name} dispatches task {id}, {state:?} in {}",
                        job.queue
                    ));
                }
                *kinds.entry((&job.kind, job.options.gpus)).or_default() += 1;
            }
            let counted: HashMap<(&str, GpuRequirement), u64> = queue
                .pending_kinds
                .iter()
                .map(|((kind, gpus), count)| ((&**kind, *gpus), *count))
                .collect();
            if kinds != counted {
                return Err(format!(
                    "queue {name} counts kinds {counted:?}, holds {kinds:?}"
                ));
            }
            let (expected, held, jobs) = counts.get(&**name).copied().unwrap_or_default();
            if queue.counts != expected || queue.held != held || queue.jobs != jobs {
                return Err(format!(
                    "queue {name} counts {:?}, {} held, {} jobs; holds {expected:?}, {held} held, {jobs} jobs",
                    queue.counts, queue.held, queue.jobs
                ));
            }
        }
        for job in self.jobs.values() {
            if job.counts.deferred == 0 {
                continue;
            }
            for dependency in &job.options.after {
                let listed = self
                    .dependents
                    .get(dependency)
                    .is_some_and(|list| list.contains(&job.id));
                if self.dependency_open(*dependency) && !listed {
                    return Err(format!(
                        "deferred tasks of job {} are not woken by {dependency}",
                        job.id
                    ));
                }
                if let Dependency::Task(task) = dependency
                    && task.job == job.id
                {
                    return Err(format!("job {} waits on its own task {task}", job.id));
                }
            }
        }
        Ok(())
    }

    /// A slot runs at most one task; the idle order lists exactly the idle workers, once
    /// each; the reverse index matches the slots.
    fn check_workers(&self) -> Result<(), String> {
        for (order, conn) in &self.idle {
            let Some(worker) = self.workers.get(conn) else {
                return Err(format!("idle order lists unregistered connection {conn}"));
            };
            if worker.idle_since != Some(*order) {
                return Err(format!(
                    "worker {conn} is listed idle at {order}, thinks {:?}",
                    worker.idle_since
                ));
            }
        }
        for (conn, worker) in &self.workers {
            if !self.connections.contains_key(conn) {
                return Err(format!("worker {conn} has no connection"));
            }
            if let Some(order) = worker.idle_since {
                if self.idle.get(&order) != Some(conn) {
                    return Err(format!("worker {conn} thinks it is idle but is not listed"));
                }
                if worker.current.is_some()
                    || !worker.stopping.is_empty()
                    || self.quarantined(&worker.registration.name)
                    || self.worker_paused(&worker.registration.name)
                {
                    return Err(format!(
                        "worker {conn} is listed idle while busy, stopping, quarantined or paused"
                    ));
                }
            }
            let quarantined = self.quarantined(&worker.registration.name);
            let paused = self.worker_paused(&worker.registration.name);
            if worker.idle_since.is_none()
                && worker.current.is_none()
                && worker.stopping.is_empty()
                && !worker.leaving
                && !quarantined
                && !paused
            {
                return Err(format!(
                    "worker {conn} is neither idle, busy, stopping, leaving, quarantined nor paused"
                ));
            }
            if let Some((id, attempt)) = worker.current {
                let Some(task) = self.task(id) else {
                    return Err(format!("worker {conn} runs unknown task {id}"));
                };
                if !task.runs(attempt) || task.completing > 0 {
                    return Err(format!(
                        "worker {conn} runs task {id} attempt {attempt}, which is {} at attempt {}",
                        task.state,
                        task.current_attempt()
                    ));
                }
                if self.running.get(&id) != Some(conn) {
                    return Err(format!("task {id} of worker {conn} is not indexed as its"));
                }
            }
        }
        for (id, conn) in &self.running {
            if self
                .workers
                .get(conn)
                .and_then(|w| w.current)
                .map(|(task, _)| task)
                != Some(*id)
            {
                return Err(format!(
                    "task {id} is indexed as run by {conn}, which does not run it"
                ));
            }
        }
        Ok(())
    }

    /// Every started task has a live owner, a running grace, or a completion being stored.
    fn check_started(&self) -> Result<(), String> {
        for job in self.jobs.values() {
            for (id, task) in job.indexed() {
                let held = self.running.contains_key(&id);
                let orphan = self.orphans.get(&id);
                if let Some(orphan) = orphan
                    && !task.runs(orphan.attempt)
                {
                    return Err(format!(
                        "orphan {id} is {} at attempt {}",
                        task.state,
                        task.current_attempt()
                    ));
                }
                if task.assigning && (task.state != TaskState::Started || task.completing > 0) {
                    return Err(format!(
                        "{} task {id} awaits an assignment's commit",
                        task.state
                    ));
                }
                if task.state != TaskState::Started {
                    if task.completing > 0 {
                        return Err(format!(
                            "{} task {id} has a completion in flight",
                            task.state
                        ));
                    }
                    continue;
                }
                let owners = u8::from(held) + u8::from(orphan.is_some());
                if owners > 1 || (owners == 1 && task.completing > 0) {
                    return Err(format!(
                        "started task {id} is held {held}, orphaned {}, completing {}",
                        orphan.is_some(),
                        task.completing
                    ));
                }
                if owners == 0 && task.completing == 0 {
                    return Err(format!(
                        "started task {id} has no worker, no grace and no completion in flight"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Subscribers are live connections.
    fn check_subscriptions(&self) -> Result<(), String> {
        for subscribers in [&self.waiters, &self.watchers] {
            for (job, list) in subscribers {
                if let Some((conn, _)) = list
                    .iter()
                    .find(|(conn, _)| !self.connections.contains_key(conn))
                {
                    return Err(format!("connection {conn}, gone, still follows job {job}"));
                }
            }
        }
        for (job, list) in &self.log_followers {
            if let Some((conn, _, index)) = list
                .iter()
                .find(|(conn, _, _)| !self.connections.contains_key(conn))
            {
                return Err(format!(
                    "connection {conn}, gone, still follows task {job}.{index}"
                ));
            }
        }
        if let Some((conn, _)) = self
            .watches
            .keys()
            .find(|(conn, _)| !self.connections.contains_key(conn))
        {
            return Err(format!("connection {conn}, gone, still has a watch"));
        }
        Ok(())
    }

    /// Each connection's count of unanswered requests is the requests it has open.
    fn check_in_flight(&self) -> Result<(), String> {
        let mut open: BTreeMap<ConnId, u32> = BTreeMap::new();
        for (conn, _) in self.waiters.values().flatten() {
            *open.entry(*conn).or_default() += 1;
        }
        for (conn, _, _) in self.log_followers.values().flatten() {
            *open.entry(*conn).or_default() += 1;
        }
        for (conn, _) in self.watches.keys().chain(self.reading.keys()) {
            *open.entry(*conn).or_default() += 1;
        }
        for awaiting in self.pending.values() {
            let conn = match awaiting {
                AwaitingCommit::Submit { conn, .. }
                | AwaitingCommit::Complete { conn, .. }
                | AwaitingCommit::Reply { conn, .. } => *conn,
                // Follows answered once stored: each is a request open.
                AwaitingCommit::FollowsEnded { followers, .. } => {
                    for (conn, _) in followers {
                        *open.entry(*conn).or_default() += 1;
                    }
                    continue;
                }
                // Not a request: the core sends the task once stored; the follows that get
                // the lines are counted where they are open.
                AwaitingCommit::Assign { .. } | AwaitingCommit::Output { .. } => continue,
            };
            *open.entry(conn).or_default() += 1;
        }
        for (conn, connection) in &self.connections {
            let expected = open.get(conn).copied().unwrap_or_default();
            if connection.in_flight != expected {
                return Err(format!(
                    "connection {conn} counts {} requests in flight, has {expected} open",
                    connection.in_flight
                ));
            }
        }
        Ok(())
    }
}
