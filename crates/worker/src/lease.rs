//! The worker's lease on its running task: how long the task may run on without the worker
//! hearing from the server.
//!
//! The server keeps a task for a worker it no longer hears from for its reconnect grace
//! (`Reply::Registered::reconnect_grace_ms`), counted from the last request it received, then
//! hands the task to another worker. The worker counts its lease from the moment it *sent*
//! the last request the server answered, which is never later than the server's own
//! starting point, and stops the task itself (SIGKILL to its process tree) when the lease
//! runs out: a margin before the server's grace ends, so the two copies never overlap.
//!
//! The margin is a fifth of the grace, kept between [`MIN_LEASE_MARGIN`] and
//! [`MAX_LEASE_MARGIN`]: with the server's default of 60 s the lease is 50 s, so a network
//! blip of seconds costs nothing, and a dead worker's task is handed on within a minute, as
//! render farm managers do. A lease is never shorter than [`MIN_LEASE_HEARTBEATS`]
//! heartbeat periods, or a healthy connection would lose its task between two heartbeats; a
//! server whose grace is that short is warned about, since the worker can then no longer
//! promise to stop first.

use std::time::Duration;

/// The least time between the end of the worker's lease and the end of the server's grace:
/// enough for the kill to land and the processes to be gone, and for timers to fire late.
pub(crate) const MIN_LEASE_MARGIN: Duration = Duration::from_millis(500);

/// The most time given up to the margin: past this, a longer grace buys the task more time.
pub(crate) const MAX_LEASE_MARGIN: Duration = Duration::from_secs(10);

/// The margin is this fraction (one over it) of the grace, within the bounds above.
const LEASE_MARGIN_DIVISOR: u32 = 5;

/// The shortest lease, in heartbeat periods: an answered heartbeat renews the lease, so a
/// lease of one period or less would run out on a healthy connection.
pub(crate) const MIN_LEASE_HEARTBEATS: u32 = 2;

/// A lease computed from what the server announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    /// How long the running task may go on without an answer from the server.
    pub(crate) length: Duration,
    /// Whether the lease ends before the server's grace (false: the grace is shorter than
    /// the shortest workable lease, and the two may overlap briefly).
    pub(crate) ends_first: bool,
}

/// The lease for a server that keeps a task `grace` after it last heard from the worker and
/// expects a heartbeat every `heartbeat`.
pub(crate) fn lease(grace: Duration, heartbeat: Duration) -> Lease {
    let margin = (grace / LEASE_MARGIN_DIVISOR).clamp(MIN_LEASE_MARGIN, MAX_LEASE_MARGIN);
    let wanted = grace.saturating_sub(margin);
    let shortest = heartbeat.saturating_mul(MIN_LEASE_HEARTBEATS);
    Lease {
        length: wanted.max(shortest),
        ends_first: wanted >= shortest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(grace_ms: u64, heartbeat_ms: u64, length_ms: u64, ends_first: bool) {
        let got = lease(
            Duration::from_millis(grace_ms),
            Duration::from_millis(heartbeat_ms),
        );
        assert_eq!(
            got,
            Lease {
                length: Duration::from_millis(length_ms),
                ends_first
            },
            "grace {grace_ms} ms, heartbeat {heartbeat_ms} ms"
        );
    }

    #[test]
    fn leases_end_a_margin_before_the_grace() {
        // The default server: 60 s grace, 5 s heartbeats.
        check(60_000, 5_000, 50_000, true);
        // A long grace gives up at most the largest margin.
        check(600_000, 5_000, 590_000, true);
        // 15 s: a fifth.
        check(15_000, 5_000, 12_000, true);
        // A short grace still keeps the smallest margin.
        check(2_000, 500, 1_500, true);
        // Shorter than two heartbeats: the lease cannot end first.
        check(3_000, 5_000, 10_000, false);
        check(0, 1_000, 2_000, false);
    }
}
