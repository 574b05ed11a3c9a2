//! How long to wait between attempts to reach the server.

use std::time::Duration;

/// The first wait after a failure.
const FIRST: Duration = Duration::from_millis(100);

/// The longest wait, so a server that comes back is found within seconds.
const CAP: Duration = Duration::from_secs(5);

/// Capped exponential backoff: 100 ms, doubling to 5 s.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    /// The wait the next failure gets.
    next: Duration,
}

impl Backoff {
    /// A backoff whose next wait is the first.
    pub(crate) fn new() -> Self {
        Backoff { next: FIRST }
    }

    /// The wait before the next attempt; each call doubles the following one, up to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(CAP);
        delay
    }

    /// Starts over after a success.
    pub(crate) fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new();
        let millis: Vec<u128> = (0..9).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(millis, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), FIRST);
    }
}
