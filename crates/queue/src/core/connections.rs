//! Connections: who is connected, what each follows, and what happens when one goes quiet
//! or away.

use buildcat_proto::{JobId, RequestError, Role, TaskId, TaskState, Timestamp, ToolVersion};

use super::dispatch::check_tools;
use super::{ConnId, Core, Effect, SUBSCRIPTION_COMPACT_AT};
use crate::store::StoreOp;

/// A connection the core knows.
#[derive(Debug)]
pub(super) struct Connection {
    /// Client or worker.
    pub(super) role: Role,
    /// Requests not yet answered.
    pub(super) in_flight: u32,
    /// When it last sent a request (or connected).
    pub(super) last_request: Timestamp,
    /// Jobs it waits on, watches or follows a task of (may repeat, may have ended), so that
    /// its subscriptions are dropped without scanning everyone's.
    pub(super) subscribed: Vec<JobId>,
}

/// A started task that no connected worker holds, waiting for its worker to come back.
#[derive(Debug)]
pub(super) struct Orphan {
    /// The worker that ran it, which may reclaim it.
    pub(super) worker: String,
    /// The attempt it ran.
    pub(super) attempt: u32,
    /// When the wait ends and the task is handed on.
    pub(super) deadline: Timestamp,
}

impl Core {
    /// A registered worker's tools with the versions it has read since it registered
    /// (`Request::UpdateTools`): they replace the list `info` shows, within the bounds a
    /// registration has. A connection that has not registered has no list to update.
    pub(super) fn update_tools(
        &mut self,
        conn: ConnId,
        tools: Vec<ToolVersion>,
    ) -> Result<(), RequestError> {
        check_tools(&tools).map_err(RequestError::Invalid)?;
        let Some(worker) = self.workers.get_mut(&conn) else {
            return Err(RequestError::Invalid(
                "a worker updates its tools only once registered; send `Register` first".into(),
            ));
        };
        worker.registration.tools = tools;
        Ok(())
    }

    /// Remembers that `conn` waits on, follows or watches `job`.
    pub(super) fn subscribe(&mut self, conn: ConnId, job: JobId) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        connection.subscribed.push(job);
        let len = connection.subscribed.len();
        // A long-lived client subscribes to job after job; forget the ended ones now and then
        // (at doubling sizes, so the cost stays constant per subscription).
        if len >= SUBSCRIPTION_COMPACT_AT && len.is_power_of_two() {
            let mut subscribed = std::mem::take(&mut connection.subscribed);
            subscribed.sort_unstable();
            subscribed.dedup();
            subscribed.retain(|job| {
                self.waiters.contains_key(job)
                    || self.watchers.contains_key(job)
                    || self.log_followers.contains_key(job)
            });
            if let Some(connection) = self.connections.get_mut(&conn) {
                connection.subscribed = subscribed;
            }
        }
    }

    /// A connection ended. A worker's running task waits `reconnect_grace` for the worker
    /// to come back (`grace`), or is taken from it at once (a silent worker).
    pub(super) fn forget_connection(&mut self, now: Timestamp, conn: ConnId, grace: bool) {
        let subscribed = self
            .connections
            .remove(&conn)
            .map(|connection| connection.subscribed)
            .unwrap_or_default();
        for job in subscribed {
            for subscribers in [&mut self.waiters, &mut self.watchers] {
                if let Some(list) = subscribers.get_mut(&job) {
                    list.retain(|(subscriber, _)| *subscriber != conn);
                    if list.is_empty() {
                        subscribers.remove(&job);
                    }
                }
            }
            if let Some(list) = self.log_followers.get_mut(&job) {
                list.retain(|(subscriber, _, _)| *subscriber != conn);
                if list.is_empty() {
                    self.log_followers.remove(&job);
                }
            }
        }
        self.watches.retain(|(watcher, _), _| *watcher != conn);
        let Some(worker) = self.workers.remove(&conn) else {
            return;
        };
        if let Some(since) = worker.idle_since {
            self.idle.remove(&since);
        }
        let Some((id, attempt)) = worker.current else {
            return;
        };
        self.running.remove(&id);
        let name = worker.registration.name;
        if grace {
            tracing::info!(worker = %name, task = %id, attempt, "lost touch with a worker running a task; waiting for it to come back");
            // Counted from the last request received, as the worker counts its lease.
            self.orphan(now, worker.last_seen, id, attempt, name);
            return;
        }
        self.worker_lost(now, id, attempt, &name);
    }

    /// The checks that look at every connection: idle and unregistered peers, silent
    /// workers, tasks past their timeout.
    pub(super) fn scan(&mut self, now: Timestamp) {
        // Idle timeouts: a worker that never registers, a client silent with nothing asked.
        let idle: Vec<(ConnId, String)> = self
            .connections
            .iter()
            .filter_map(|(conn, connection)| {
                let quiet = now.since(connection.last_request);
                match connection.role {
                    Role::Worker
                        if !self.workers.contains_key(conn)
                            && quiet > self.config.register_timeout =>
                    {
                        Some((*conn, "the worker did not register in time".to_owned()))
                    }
                    Role::Client
                        if connection.in_flight == 0 && quiet > self.config.client_idle_timeout =>
                    {
                        Some((*conn, "idle for too long".to_owned()))
                    }
                    _ => None,
                }
            })
            .collect();
        for (conn, reason) in idle {
            self.forget_connection(now, conn, false);
            self.effects.push(Effect::Close(conn, reason));
        }
        let silence = self.config.heartbeat * self.config.missed_heartbeats;
        let silent: Vec<ConnId> = self
            .workers
            .iter()
            .filter(|(_, worker)| now.since(worker.last_seen) > silence)
            .map(|(conn, _)| *conn)
            .collect();
        for conn in silent {
            let reason = format!(
                "no heartbeat for {}s; closing the connection (a task it runs waits for it \
                 until the reconnect grace ends)",
                silence.as_secs()
            );
            self.forget_connection(now, conn, true);
            self.effects.push(Effect::Close(conn, reason));
        }
        self.enforce_timeouts(now);
    }

    /// Orphans whose grace ended: their workers did not come back.
    pub(super) fn expire_orphans(&mut self, now: Timestamp) {
        let expired: Vec<TaskId> = self
            .orphans
            .iter()
            .filter(|(_, orphan)| orphan.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(orphan) = self.orphans.remove(&id) {
                self.worker_lost(now, id, orphan.attempt, &orphan.worker);
            }
        }
    }

    /// Failed tasks whose backoff is over go back to their queue.
    pub(super) fn release_due_retries(&mut self, now: Timestamp) {
        while let Some(&(due, id)) = self.delayed.first() {
            if due > now {
                break;
            }
            self.delayed.pop_first();
            if let Some(task) = self.task_mut(id)
                && task.state == TaskState::Queued
                && task.retry_at == Some(due)
            {
                task.retry_at = None;
                self.enqueue(now, id);
            }
        }
    }

    /// Finished and canceled jobs past their retention are forgotten and deleted from
    /// storage with their tasks and output.
    pub(super) fn prune_expired(&mut self, now: Timestamp) {
        let retention = self.config.retention;
        while let Some(&(ended, id)) = self.expiring.first() {
            if now.since(ended) <= retention {
                break;
            }
            self.remove_job(id);
        }
    }

    /// Forgets an ended job and deletes it from storage, with its tasks and output. Its
    /// number is not given out again.
    pub(super) fn remove_job(&mut self, id: JobId) {
        let Some(job) = self.jobs.remove(&id) else {
            return;
        };
        if let Some(ended) = job.ended_at {
            self.expiring.remove(&(ended, id));
        }
        self.numbers.remove(&job.number);
        self.previews.remove_job(id);
        let kept = job.output_kept(self.config.max_log_bytes);
        self.output_bytes = self.output_bytes.saturating_sub(kept);
        for task in job.indexed().map(|(task, _)| task) {
            self.lingering.remove(&task);
        }
        let queue = self.queue_mut(&job.queue);
        queue.counts.total = queue.counts.total.saturating_sub(job.counts.total);
        for state in TaskState::ALL {
            let count = queue
                .counts
                .count(state)
                .saturating_sub(job.counts.count(state));
            *queue.counts.count_mut(state) = count;
        }
        if !job.ended() {
            // Only ended jobs are removed; kept true all the same.
            queue.jobs = queue.jobs.saturating_sub(1);
        }
        self.ops.push(StoreOp::Delete(id));
    }
}
