//! Pausing a worker: a person's "finish what you run, take no more" (`worker-pause`), and
//! resuming it (`worker-resume`).
//!
//! The pause is kept by worker name in [`WorkerRecord`](super::dispatch::WorkerRecord),
//! beside the quarantine, so it covers every connection of that name and holds while the
//! worker reconnects (a machine being looked at does not start work after a network blip),
//! but a server restart forgets it, as it forgets quarantines: it is not stored. A paused
//! worker keeps the task it runs; when that task ends its slot is neither idle nor given
//! work (`worker_ready` stops at the pause), and resuming offers it work at once. A
//! paused worker does not count as one that could take a retry (`may_take`), so a retry
//! goes back to the worker that failed it rather than wait for the pause to end.

use buildcat_proto::{RequestError, Timestamp};

use super::Core;

impl Core {
    /// `PauseWorker`: pauses or resumes the worker named `name`, every connection of it. A
    /// name the server has never seen (no connection, no record) is refused, so a typo does
    /// not pass for a pause.
    pub(super) fn pause_worker(
        &mut self,
        now: Timestamp,
        name: &str,
        paused: bool,
    ) -> Result<(), RequestError> {
        let connected = self.connections_named(name);
        if connected.is_empty() && !self.records.contains_key(name) {
            return Err(RequestError::UnknownWorker(name.to_owned()));
        }
        if paused {
            let record = self.records.entry(name.to_owned()).or_default();
            if !record.paused {
                tracing::info!(worker = %name, "worker paused: it finishes its task and takes no more");
            }
            record.paused = true;
            let mut queues = std::collections::BTreeSet::new();
            for conn in connected {
                self.leave_idle(conn);
                if let Some(worker) = self.workers.get(&conn) {
                    queues.extend(worker.registration.queues.iter().cloned());
                }
            }
            // A retry held back from the worker that failed it, because this one could run
            // it, goes to that worker now rather than wait for the pause to end.
            for queue in queues {
                if !self.queue_paused(&queue) {
                    self.dispatch_queue(now, &queue);
                }
            }
            return Ok(());
        }
        if let Some(record) = self.records.get_mut(name) {
            if record.paused {
                tracing::info!(worker = %name, "worker resumed");
            }
            record.paused = false;
            if record.is_empty() {
                self.records.remove(name);
            }
        }
        for conn in connected {
            self.worker_ready(now, conn);
        }
        Ok(())
    }

    /// Whether a person paused the worker named `name`.
    pub(super) fn worker_paused(&self, name: &str) -> bool {
        self.records.get(name).is_some_and(|record| record.paused)
    }
}
