//! What every loop of one worker shares: the job limit (`max_jobs`) and the stop signal.
//!
//! A loop reserves a place when an assignment arrives, before it starts the job, so that
//! however many loops run, no job past the limit is started. A loop that cannot reserve one
//! leaves the job to the server by disconnecting.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;
use tracing::info;

/// State shared by every loop of one worker.
#[derive(Debug)]
pub(crate) struct Control {
    /// The most jobs the worker runs in all, if limited.
    limit: Option<u64>,
    /// Jobs started so far (each reserved a place under the limit).
    reserved: AtomicU64,
    /// Jobs whose result the server acknowledged (or refused for good).
    completed: AtomicU64,
    /// Cancelled when the worker should stop taking jobs: on shutdown, on a fatal error in
    /// any loop, or once the limit is fully reserved.
    stop: CancellationToken,
}

impl Control {
    /// Control state for a worker that stops after `limit` jobs, if given.
    pub(crate) fn new(limit: Option<u64>) -> Self {
        let control = Control {
            limit,
            reserved: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            stop: CancellationToken::new(),
        };
        if limit == Some(0) {
            control.stop.cancel();
        }
        control
    }

    /// Takes a place for one more job; false if the limit is reached.
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
                        max_jobs = limit,
                        "reached the job limit; stopping once the running jobs are reported"
                    );
                    self.stop.cancel();
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Counts a job whose result is settled.
    pub(crate) fn complete(&self) {
        self.completed.fetch_add(1, Ordering::SeqCst);
    }

    /// Jobs whose results are settled so far.
    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Ordering::SeqCst)
    }

    /// The signal to stop taking jobs.
    pub(crate) fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// Whether loops should stop taking jobs.
    pub(crate) fn stopping(&self) -> bool {
        self.stop.is_cancelled()
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
