//! Dispatch: queues, workers, and which worker runs which job.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use buildcat_proto::{
    Assignment, Attempt, AttemptOutcome, JobId, JobState, QueueSummary, Reply, RequestError,
    RequestId, ServerFrame, Timestamp, WorkerRegistration,
};

use super::job::QueueKey;
use super::{ConnId, Core, Effect};

/// One named queue.
#[derive(Debug, Default)]
pub(super) struct Queue {
    /// Jobs waiting for a worker, in dispatch order.
    pub(super) pending: BTreeSet<QueueKey>,
    /// How many of the pending jobs are of each kind, to tell which no worker can run.
    pub(super) pending_kinds: HashMap<Arc<str>, u64>,
    /// Counts by state, for `info`.
    pub(super) summary: QueueSummary,
}

impl Queue {
    /// Adds a job to the dispatch order.
    pub(super) fn push(&mut self, key: QueueKey, kind: &Arc<str>) {
        if self.pending.insert(key) {
            *self.pending_kinds.entry(kind.clone()).or_default() += 1;
        }
    }

    /// Takes a job out of the dispatch order, if it is in it.
    pub(super) fn take(&mut self, key: &QueueKey, kind: &Arc<str>) {
        if self.pending.remove(key)
            && let Some(count) = self.pending_kinds.get_mut(kind)
        {
            *count -= 1;
            if *count == 0 {
                self.pending_kinds.remove(kind);
            }
        }
    }
}

/// A registered worker.
#[derive(Debug)]
pub(super) struct Worker {
    /// As the worker introduced itself.
    pub(super) registration: WorkerRegistration,
    /// The job it runs, with the attempt number.
    pub(super) current: Option<(JobId, u32)>,
    /// When it last sent anything.
    pub(super) last_seen: Timestamp,
    /// When it registered.
    pub(super) connected_at: Timestamp,
    /// Its place in the idle order while idle.
    pub(super) idle_since: Option<u64>,
    /// Kinds it can run, for quick lookups.
    pub(super) kinds: HashSet<String>,
}

impl Core {
    /// Puts a queued job in its queue and hands it to an idle worker if one can take it.
    pub(super) fn enqueue(&mut self, now: Timestamp, id: JobId) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let key = job.queue_key();
        let queue_name = job.queue.clone();
        let kind = job.kind.clone();
        self.queue_mut(&queue_name).push(key, &kind);
        // An idle worker has nothing to do in any of its queues, so the first idle worker
        // that serves this queue and can run this kind is the right one: the longest idle.
        let chosen = self.idle.values().copied().find(|conn| {
            self.workers.get(conn).is_some_and(|worker| {
                worker.kinds.contains(&*kind)
                    && worker
                        .registration
                        .queues
                        .iter()
                        .any(|q| **q == *queue_name)
            })
        });
        if let Some(conn) = chosen {
            self.assign(now, conn, id);
        }
    }

    /// Takes a job out of its queue's dispatch order, if it is in it.
    pub(super) fn unqueue(&mut self, id: JobId) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let key = job.queue_key();
        let kind = job.kind.clone();
        let queue = job.queue.clone();
        self.queue_mut(&queue).take(&key, &kind);
    }

    pub(super) fn queue_mut(&mut self, name: &Arc<str>) -> &mut Queue {
        self.queues.entry(name.clone()).or_insert_with(|| Queue {
            pending: BTreeSet::new(),
            pending_kinds: HashMap::new(),
            summary: QueueSummary {
                name: name.to_string(),
                ..QueueSummary::default()
            },
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

    pub(super) fn intern_kind(&mut self, kind: &str) -> Arc<str> {
        if let Some(existing) = self.kinds.get(kind) {
            return existing.clone();
        }
        let kind: Arc<str> = Arc::from(kind);
        self.kinds.insert(kind.clone());
        kind
    }

    /// Gives a queued job to an idle worker.
    pub(super) fn assign(&mut self, now: Timestamp, conn: ConnId, id: JobId) {
        let Some(worker) = self.workers.get_mut(&conn) else {
            return;
        };
        if let Some(since) = worker.idle_since.take() {
            self.idle.remove(&since);
        }
        let worker_name = worker.registration.name.clone();
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let number = job.current_attempt() + 1;
        job.attempts.push(Attempt {
            number,
            worker: worker_name,
            started_at: now,
            ended_at: None,
            outcome: None,
        });
        let assignment = Assignment {
            job: id,
            attempt: number,
            queue: job.queue.to_string(),
            kind: job.kind.to_string(),
            args: job.args.to_vec(),
            timeout_ms: job.options.timeout_ms,
        };
        self.unqueue(id);
        self.set_state(id, JobState::Started);
        if let Some(worker) = self.workers.get_mut(&conn) {
            worker.current = Some((id, number));
        }
        self.record(id);
        self.effects
            .push(Effect::Send(conn, ServerFrame::Assign(assignment)));
    }

    /// The worker has no job: give it the best one it can run, or mark it idle.
    pub(super) fn worker_ready(&mut self, now: Timestamp, conn: ConnId) {
        let Some(worker) = self.workers.get(&conn) else {
            return;
        };
        if worker.current.is_some() {
            return;
        }
        let mut found = None;
        for queue_name in &worker.registration.queues {
            let Some(queue) = self.queues.get(queue_name.as_str()) else {
                continue;
            };
            found = queue.pending.iter().find_map(|(_, id)| {
                let job = self.jobs.get(id)?;
                worker.kinds.contains(&*job.kind).then_some(*id)
            });
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
        let kinds = registration.kinds.iter().cloned().collect();
        let mut current = None;
        for &(job_id, attempt) in &registration.running {
            if current.is_none() && self.reclaim(&registration.name, job_id, attempt) {
                current = Some((job_id, attempt));
            } else if self.jobs.get(&job_id).is_some_and(|job| {
                job.state == JobState::Canceled && job.current_attempt() == attempt
            }) {
                // Canceled while the worker was away: it still runs it, so tell it again.
                let stop = ServerFrame::Cancel {
                    job: job_id,
                    attempt,
                    reason: "canceled".to_owned(),
                };
                self.effects.push(Effect::Send(conn, stop));
            }
        }
        let name = registration.name.clone();
        self.workers.insert(
            conn,
            Worker {
                registration,
                current,
                last_seen: now,
                connected_at: now,
                idle_since: None,
                kinds,
            },
        );
        let heartbeat_ms = u64::try_from(self.config.heartbeat.as_millis()).unwrap_or(u64::MAX);
        self.reply(conn, id, Ok(Reply::Registered { name, heartbeat_ms }));
        self.worker_ready(now, conn);
    }

    /// A reconnecting worker still runs `job`: give it back if that attempt is still current.
    pub(super) fn reclaim(&mut self, worker: &str, id: JobId, attempt: u32) -> bool {
        let Some(job) = self.jobs.get_mut(&id) else {
            return false;
        };
        if job.current_attempt() != attempt {
            return false;
        }
        let Some(last) = job.attempts.last_mut() else {
            return false;
        };
        match job.state {
            JobState::Queued if last.outcome == Some(AttemptOutcome::WorkerLost) => {
                last.ended_at = None;
                last.outcome = None;
                last.worker = worker.to_owned();
                self.unqueue(id);
                self.set_state(id, JobState::Started);
                self.record(id);
                true
            }
            JobState::Started => {
                // Back within the grace period, or the old connection's loss has not been
                // noticed yet: the job stays with this worker.
                self.orphans.remove(&id);
                last.worker = worker.to_owned();
                let holder = self
                    .workers
                    .iter()
                    .find(|(_, w)| w.current == Some((id, attempt)))
                    .map(|(conn, _)| *conn);
                if let Some(old) = holder
                    && let Some(w) = self.workers.get_mut(&old)
                {
                    w.current = None;
                }
                true
            }
            _ => false,
        }
    }
}
