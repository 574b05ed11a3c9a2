//! What every loop of one worker shares: the task limit (`max_tasks`), the two stop signals
//! (finish, and stop now) and the count of running tasks; and [`ShutdownHandle`], the
//! public side of the stop signals.
//!
//! A loop reserves a place when an assignment arrives, before it starts the task, so that
//! however many loops run, no task past the limit is started. A loop that cannot reserve one
//! leaves the task to the server by disconnecting.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio_util::sync::CancellationToken;
use tracing::info;

/// State shared by every loop of one worker.
#[derive(Debug)]
pub(crate) struct Control {
    /// The most tasks the worker runs in all, if limited.
    limit: Option<u64>,
    /// Tasks started so far (each reserved a place under the limit).
    reserved: AtomicU64,
    /// Tasks whose result the server acknowledged (or refused for good).
    completed: AtomicU64,
    /// Cancelled when the worker should stop taking tasks: on shutdown, on a fatal error in
    /// any loop, or once the limit is fully reserved.
    stop: CancellationToken,
    /// Cancelled when the running tasks are to be killed and reported as interrupted, rather
    /// than finished (the second Ctrl-C); always cancelled together with `stop`.
    interrupt: CancellationToken,
    /// Tasks whose handlers are running now, across all loops; shared with each running task,
    /// which counts itself out when it is dropped, so the count cannot drift.
    running: Arc<AtomicUsize>,
}

impl Control {
    /// Control state for a worker that stops after `limit` tasks, if given.
    pub(crate) fn new(limit: Option<u64>) -> Self {
        let control = Control {
            limit,
            reserved: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            stop: CancellationToken::new(),
            interrupt: CancellationToken::new(),
            running: Arc::new(AtomicUsize::new(0)),
        };
        if limit == Some(0) {
            control.stop.cancel();
        }
        control
    }

    /// Takes a place for one more task; false if the limit is reached.
    pub(crate) fn reserve(&self) -> bool {
        let Some(limit) = self.limit else {
            self.reserved.fetch_add(1, Ordering::SeqCst);
            return true;
        };
        let reserved = self
            .reserved
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |taken| {
                (taken < limit).then_some(taken + 1)
            });
        match reserved {
            Ok(taken) => {
                if taken + 1 == limit {
                    info!(
                        max_tasks = limit,
                        "reached the task limit; stopping once the running tasks are reported"
                    );
                    self.stop.cancel();
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Counts a task whose result is settled.
    pub(crate) fn complete(&self) {
        self.completed.fetch_add(1, Ordering::SeqCst);
    }

    /// Tasks whose results are settled so far.
    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Ordering::SeqCst)
    }

    /// The signal to stop taking tasks.
    pub(crate) fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// Whether loops should stop taking tasks.
    pub(crate) fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Stops taking tasks and kills the running ones.
    pub(crate) fn stop_now(&self) {
        self.stop.cancel();
        self.interrupt.cancel();
    }

    /// The signal to kill the running tasks and report them as interrupted.
    pub(crate) fn interrupt(&self) -> &CancellationToken {
        &self.interrupt
    }

    /// Whether running tasks are to be killed now.
    pub(crate) fn interrupting(&self) -> bool {
        self.interrupt.is_cancelled()
    }

    /// The counter of running tasks, for each task to count itself in and out.
    pub(crate) fn running_counter(&self) -> &Arc<AtomicUsize> {
        &self.running
    }

    /// How many tasks are running now.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }
}

/// Stops a [`Worker`](crate::Worker) from outside its [`run`](crate::Worker::run), in one of
/// two ways, and says how many tasks it is running. Cheap to clone; made by
/// [`Worker::shutdown_handle`](crate::Worker::shutdown_handle) before `run` is called.
///
/// A program that stops its worker on Ctrl-C calls [`finish`](ShutdownHandle::finish) on
/// the first one (telling the user how many [`running_tasks`](ShutdownHandle::running_tasks)
/// it waits for) and [`stop_now`](ShutdownHandle::stop_now) on the second.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    /// The worker's shared state, whose stop signals this handle raises.
    control: Arc<Control>,
}

impl ShutdownHandle {
    /// The handle of the worker whose loops share `control`.
    pub(crate) fn new(control: Arc<Control>) -> Self {
        ShutdownHandle { control }
    }

    /// Graceful stop: take no more tasks, let the running ones run to their end and report
    /// them, then [`run`](crate::Worker::run) returns. Loops with nothing to do stop at once.
    /// What the `shutdown` future given to `run` does when it resolves.
    pub fn finish(&self) {
        if !self.control.stopping() {
            tracing::info!(
                running = self.control.running(),
                "finishing: no more tasks are taken; running tasks are finished and reported first"
            );
        }
        self.control.stop().cancel();
    }

    /// Immediate stop: take no more tasks, kill each running task's whole process tree at once
    /// (SIGKILL; handlers that are not processes are dropped), report each as
    /// [`Outcome::Interrupted`](buildcat_proto::Outcome::Interrupted) so that the server
    /// puts it back in its queue at once without using up an attempt, then
    /// [`run`](crate::Worker::run) returns. A loop that is not connected when this is called
    /// does not wait for the server: the server hands its task on after its reconnect grace.
    /// Works after [`finish`](ShutdownHandle::finish) too (the second Ctrl-C).
    pub fn stop_now(&self) {
        if !self.control.interrupting() {
            tracing::info!(
                running = self.control.running(),
                "stopping now: running tasks are killed and reported as interrupted"
            );
        }
        self.control.stop_now();
    }

    /// How many tasks the worker is running now, across all its loops (a task counts until its
    /// handler has ended, killed or not).
    pub fn running_tasks(&self) -> usize {
        self.control.running()
    }

    /// Whether [`finish`](ShutdownHandle::finish) or
    /// [`stop_now`](ShutdownHandle::stop_now) was called, or the worker stopped taking tasks
    /// by itself (task limit reached, a loop failed).
    pub fn is_stopping(&self) -> bool {
        self.control.stopping()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_limit() {
        let control = Control::new(Some(2));
        assert!(control.reserve());
        assert!(!control.stopping());
        assert!(control.reserve());
        assert!(control.stopping());
        assert!(!control.reserve());
    }

    #[test]
    fn no_limit_never_stops() {
        let control = Control::new(None);
        assert!((0..1000).all(|_| control.reserve()));
        assert!(!control.stopping());
    }

    #[test]
    fn a_limit_of_zero_stops_at_once() {
        let control = Control::new(Some(0));
        assert!(control.stopping());
        assert!(!control.reserve());
    }
}
