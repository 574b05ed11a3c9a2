//! Reconnecting: how long a [`Client`](crate::Client) keeps trying to reach a server it lost,
//! and how far apart its tries are.
//!
//! The server keeps every job on disk, so a program watching a job (waiting for its end,
//! following its output) can carry on after the server restarts: it only needs a new
//! connection. [`Client::reconnect`](crate::Client::reconnect) retries with a doubling
//! delay until it gets one, a try fails in a way retrying cannot fix (the server now speaks
//! another protocol version, a TLS file is unreadable), or [`Reconnect::give_up_after`] has
//! passed.

use std::time::Duration;

/// The first wait before trying again: short, because a server restarted by hand or by a
/// service manager is usually back within a second or two.
const FIRST_DELAY: Duration = Duration::from_millis(250);

/// The longest wait between two tries: long enough not to hammer a server host that is
/// rebooting, short enough that a watcher is back a few seconds after its server.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// How long to keep trying before giving up: a server host that reboots, or a server moved
/// to another machine by hand, is back well within ten minutes; a server gone for longer
/// is more likely gone for good, and a person should look.
const GIVE_UP_AFTER: Duration = Duration::from_secs(10 * 60);

/// How [`Client::reconnect`](crate::Client::reconnect) retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconnect {
    /// The wait after the first failed try; each later wait doubles, up to `max_delay`.
    pub first_delay: Duration,
    /// The longest wait between two tries, so a server that comes back is found soon.
    pub max_delay: Duration,
    /// How long to keep trying in all before returning
    /// [`ClientError::GaveUp`](crate::ClientError::GaveUp): 10 minutes by default, long
    /// enough for a server host to reboot.
    pub give_up_after: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            first_delay: FIRST_DELAY,
            max_delay: MAX_DELAY,
            give_up_after: GIVE_UP_AFTER,
        }
    }
}

impl Reconnect {
    /// The wait after the try that followed a wait of `previous` (`None` for the first).
    pub(crate) fn next_delay(&self, previous: Option<Duration>) -> Duration {
        match previous {
            None => self.first_delay.min(self.max_delay),
            Some(previous) => previous.saturating_mul(2).min(self.max_delay),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let policy = Reconnect {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            give_up_after: Duration::from_secs(1),
        };
        let mut delays = Vec::new();
        let mut previous = None;
        for _ in 0..4 {
            let delay = policy.next_delay(previous);
            delays.push(delay.as_millis());
            previous = Some(delay);
        }
        assert_eq!(delays, [100, 200, 350, 350]);
    }
}
