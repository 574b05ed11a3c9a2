//! What must hold between any two inputs, as code. The tests call it after every input.

use std::collections::{BTreeMap, HashMap};

use buildcat_proto::JobState;

use super::lifecycle::AwaitingCommit;
use super::{ConnId, Core};

impl Core {
    /// Checks every invariant of the core's state; the first one broken, described.
    pub(super) fn check_invariants(&self) -> Result<(), String> {
        self.check_queues()?;
        self.check_workers()?;
        self.check_started()?;
        self.check_subscriptions()?;
        self.check_in_flight()?;
        Ok(())
    }

    /// A queued job is in exactly its queue's dispatch order unless its retry is delayed;
    /// kinds and state counts agree with the jobs.
    fn check_queues(&self) -> Result<(), String> {
        let mut counts: BTreeMap<&str, [u64; JobState::ALL.len()]> = BTreeMap::new();
        for (id, job) in &self.jobs {
            if *id != job.id {
                return Err(format!("job {} is filed under {id}", job.id));
            }
            let index = JobState::ALL
                .iter()
                .position(|state| *state == job.state)
                .unwrap_or_default();
            counts.entry(&job.queue).or_default()[index] += 1;
            let pending = self
                .queues
                .get(&job.queue)
                .is_some_and(|queue| queue.pending.contains(&job.queue_key()));
            let delayed = job
                .retry_at
                .is_some_and(|due| self.delayed.contains(&(due, *id)));
            match job.state {
                JobState::Queued if job.retry_at.is_some() => {
                    if pending || !delayed {
                        return Err(format!(
                            "job {id} waits for its retry but is dispatchable, or not in the retry index"
                        ));
                    }
                }
                JobState::Queued => {
                    if !pending {
                        return Err(format!(
                            "queued job {id} is not in its queue's dispatch order"
                        ));
                    }
                }
                _ => {
                    if pending || job.retry_at.is_some() {
                        return Err(format!(
                            "{} job {id} is dispatchable or waits for a retry",
                            job.state
                        ));
                    }
                }
            }
            if job.state == JobState::Finished
                && !self
                    .finished
                    .contains(&(job.ended_at.unwrap_or(job.created_at), *id))
            {
                return Err(format!("finished job {id} is not in the retention index"));
            }
        }
        for (due, id) in &self.delayed {
            if self
                .jobs
                .get(id)
                .is_some_and(|job| job.retry_at != Some(*due))
            {
                return Err(format!(
                    "retry index entry of job {id} does not match its retry time"
                ));
            }
        }
        for (name, queue) in &self.queues {
            let mut kinds: HashMap<&str, u64> = HashMap::new();
            for (_, id) in &queue.pending {
                let Some(job) = self.jobs.get(id) else {
                    return Err(format!("queue {name} dispatches unknown job {id}"));
                };
                if job.queue != *name || job.state != JobState::Queued {
                    return Err(format!(
                        "queue {name} dispatches job {id}, {} in {}",
                        job.state, job.queue
                    ));
                }
                *kinds.entry(&job.kind).or_default() += 1;
            }
            let counted: HashMap<&str, u64> = queue
                .pending_kinds
                .iter()
                .map(|(kind, count)| (&**kind, *count))
                .collect();
            if kinds != counted {
                return Err(format!(
                    "queue {name} counts kinds {counted:?}, holds {kinds:?}"
                ));
            }
            let expected = counts.get(&**name).copied().unwrap_or_default();
            for (index, state) in JobState::ALL.iter().enumerate() {
                if queue.summary.count(*state) != expected[index] {
                    return Err(format!(
                        "queue {name} counts {} {state} jobs, holds {}",
                        queue.summary.count(*state),
                        expected[index]
                    ));
                }
            }
        }
        for job in self.jobs.values() {
            if job.state != JobState::Deferred {
                continue;
            }
            for dependency in &job.options.after {
                let open = self
                    .jobs
                    .get(dependency)
                    .is_some_and(|d| d.state != JobState::Finished);
                let listed = self
                    .dependents
                    .get(dependency)
                    .is_some_and(|list| list.contains(&job.id));
                if open && !listed {
                    return Err(format!(
                        "deferred job {} is not woken by {dependency}",
                        job.id
                    ));
                }
            }
        }
        Ok(())
    }

    /// A slot runs at most one job; the idle order lists exactly the idle workers, once
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
                {
                    return Err(format!(
                        "worker {conn} is listed idle while busy, stopping or quarantined"
                    ));
                }
            }
            let quarantined = self.quarantined(&worker.registration.name);
            if worker.idle_since.is_none()
                && worker.current.is_none()
                && worker.stopping.is_empty()
                && !worker.leaving
                && !quarantined
            {
                return Err(format!(
                    "worker {conn} is neither idle, busy, stopping, leaving nor quarantined"
                ));
            }
            if let Some((id, attempt)) = worker.current {
                let Some(job) = self.jobs.get(&id) else {
                    return Err(format!("worker {conn} runs unknown job {id}"));
                };
                if !job.runs(attempt) || job.completing > 0 {
                    return Err(format!(
                        "worker {conn} runs job {id} attempt {attempt}, which is {} at attempt {}",
                        job.state,
                        job.current_attempt()
                    ));
                }
                if self.running.get(&id) != Some(conn) {
                    return Err(format!("job {id} of worker {conn} is not indexed as its"));
                }
            }
        }
        for (id, conn) in &self.running {
            if self
                .workers
                .get(conn)
                .and_then(|w| w.current)
                .map(|(job, _)| job)
                != Some(*id)
            {
                return Err(format!(
                    "job {id} is indexed as run by {conn}, which does not run it"
                ));
            }
        }
        Ok(())
    }

    /// Every started job has a live owner, a running grace, or a completion being stored.
    fn check_started(&self) -> Result<(), String> {
        for (id, job) in &self.jobs {
            let held = self.running.contains_key(id);
            let orphan = self.orphans.get(id);
            if let Some(orphan) = orphan
                && !job.runs(orphan.attempt)
            {
                return Err(format!(
                    "orphan {id} is {} at attempt {}",
                    job.state,
                    job.current_attempt()
                ));
            }
            if job.assigning && (job.state != JobState::Started || job.completing > 0) {
                return Err(format!(
                    "{} job {id} awaits an assignment's commit",
                    job.state
                ));
            }
            if job.state != JobState::Started {
                if job.completing > 0 {
                    return Err(format!("{} job {id} has a completion in flight", job.state));
                }
                continue;
            }
            let owners = u8::from(held) + u8::from(orphan.is_some());
            if owners > 1 || (owners == 1 && job.completing > 0) {
                return Err(format!(
                    "started job {id} is held {held}, orphaned {}, completing {}",
                    orphan.is_some(),
                    job.completing
                ));
            }
            if owners == 0 && job.completing == 0 {
                return Err(format!(
                    "started job {id} has no worker, no grace and no completion in flight"
                ));
            }
        }
        Ok(())
    }

    /// Subscribers are live connections.
    fn check_subscriptions(&self) -> Result<(), String> {
        for subscribers in [&self.waiters, &self.log_followers, &self.watchers] {
            for (job, list) in subscribers {
                if let Some((conn, _)) = list
                    .iter()
                    .find(|(conn, _)| !self.connections.contains_key(conn))
                {
                    return Err(format!("connection {conn}, gone, still follows job {job}"));
                }
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
        for subscribers in [&self.waiters, &self.log_followers] {
            for (conn, _) in subscribers.values().flatten() {
                *open.entry(*conn).or_default() += 1;
            }
        }
        for (conn, _) in self.watches.keys().chain(self.reading.keys()) {
            *open.entry(*conn).or_default() += 1;
        }
        for awaiting in self.pending.values() {
            let conn = match awaiting {
                AwaitingCommit::Submit { conn, .. }
                | AwaitingCommit::Complete { conn, .. }
                | AwaitingCommit::Reply { conn, .. } => *conn,
                // Not a request: the core sends the job once stored.
                AwaitingCommit::Assign { .. } => continue,
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
