//! Slowing down token guessing: a peer address that presents [`MAX_WRONG`] wrong tokens
//! within [`WINDOW`] gets 429 for every request until that window has passed, right token or
//! not (a different answer for the right one would tell the guesser it is right).
//!
//! Only wrong tokens count: a request that carries none (a browser's first visit) is not a
//! guess. The table is bounded: at most [`MAX_PEERS`] addresses are tracked; past that,
//! stale entries are dropped and, when none is stale, the new address shares one entry with
//! every other untracked peer, so a flood from many addresses costs a fixed amount of
//! memory and slows only the flood.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request's peer address, as `axum::extract::ConnectInfo` gives it, over plain TCP and
/// over TLS alike.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub(crate) std::net::SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, super::tls::TlsListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, super::tls::TlsListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// Wrong tokens one address may present within [`WINDOW`]: more than a person mistyping
/// or a page with a stale cookie needs, far fewer than guessing a token could use.
pub(crate) const MAX_WRONG: u32 = 10;

/// How long wrong tokens are remembered, and how long an address is slowed down after its
/// last one past [`MAX_WRONG`].
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// Addresses tracked at most; each entry is a few dozen bytes.
const MAX_PEERS: usize = 4096;

/// One address's wrong tokens.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Wrong tokens since `since`.
    wrong: u32,
    /// When the count started; the count is forgotten a [`WINDOW`] later.
    since: Instant,
}

/// The key under which untracked peers share one record once the table is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Peer {
    /// A tracked address.
    Address(IpAddr),
    /// Every address that found the table full.
    Overflow,
}

/// Wrong tokens per peer address, shared by every request handler.
#[derive(Debug, Clone, Default)]
pub(crate) struct Guesses {
    /// The records, behind a lock held only for a lookup.
    records: Arc<Mutex<HashMap<Peer, Record>>>,
}

impl Guesses {
    /// Whether `peer` is slowed down now: [`MAX_WRONG`] wrong tokens within the window.
    pub(crate) fn blocked(&self, peer: IpAddr, now: Instant) -> bool {
        let Ok(records) = self.records.lock() else {
            return false;
        };
        let key = if records.contains_key(&Peer::Address(peer)) {
            Peer::Address(peer)
        } else if records.len() >= MAX_PEERS {
            Peer::Overflow
        } else {
            return false;
        };
        records
            .get(&key)
            .is_some_and(|record| now < record.since + WINDOW && record.wrong >= MAX_WRONG)
    }

    /// Counts a wrong token from `peer`.
    pub(crate) fn wrong(&self, peer: IpAddr, now: Instant) {
        let Ok(mut records) = self.records.lock() else {
            return;
        };
        let mut key = Peer::Address(peer);
        if !records.contains_key(&key) && records.len() >= MAX_PEERS {
            records.retain(|_, record| now < record.since + WINDOW);
            if records.len() >= MAX_PEERS {
                key = Peer::Overflow;
            }
        }
        let record = records.entry(key).or_insert(Record {
            wrong: 0,
            since: now,
        });
        if now >= record.since + WINDOW {
            *record = Record {
                wrong: 0,
                since: now,
            };
        }
        record.wrong = record.wrong.saturating_add(1);
        if record.wrong >= MAX_WRONG {
            // Slowed down for a whole window after the latest guess.
            record.since = now;
        }
    }

    /// Addresses tracked, for tests.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.records
            .lock()
            .map(|records| records.len())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn an_address_is_slowed_down_after_too_many_wrong_tokens_for_one_window() {
        let guesses = Guesses::default();
        let start = Instant::now();
        for n in 0..MAX_WRONG - 1 {
            guesses.wrong(ip(1), start + Duration::from_secs(u64::from(n)));
        }
        assert!(!guesses.blocked(ip(1), start + Duration::from_secs(10)));
        guesses.wrong(ip(1), start + Duration::from_secs(10));
        assert!(guesses.blocked(ip(1), start + Duration::from_secs(10)));
        // Another address is not affected.
        assert!(!guesses.blocked(ip(2), start + Duration::from_secs(10)));
        // Still slowed down just before the window after the last guess ends; not after.
        assert!(guesses.blocked(ip(1), start + Duration::from_secs(69)));
        assert!(!guesses.blocked(ip(1), start + Duration::from_secs(70)));
    }

    #[test]
    fn wrong_tokens_spread_beyond_the_window_are_forgotten() {
        let guesses = Guesses::default();
        let start = Instant::now();
        for n in 0..3 * MAX_WRONG {
            guesses.wrong(ip(1), start + WINDOW / 5 * n);
        }
        assert!(!guesses.blocked(ip(1), start + WINDOW / 5 * (3 * MAX_WRONG)));
    }

    #[test]
    fn a_flood_from_many_addresses_stays_bounded_and_shares_one_record() {
        let guesses = Guesses::default();
        let now = Instant::now();
        for n in 0..MAX_PEERS + 100 {
            let octets = u32::try_from(n).expect("small").to_be_bytes();
            guesses.wrong(IpAddr::V4(Ipv4Addr::from(octets)), now);
        }
        assert!(guesses.tracked() <= MAX_PEERS + 1);
        // The untracked ones made well over MAX_WRONG guesses together.
        let untracked = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert!(guesses.blocked(untracked, now));
        // A tracked address with one guess is not slowed down.
        assert!(!guesses.blocked(IpAddr::V4(Ipv4Addr::from(5u32.to_be_bytes())), now));
        // Once the window has passed, stale entries make room for new addresses.
        let later = now + WINDOW;
        guesses.wrong(untracked, later);
        assert!(!guesses.blocked(untracked, later));
        assert!(guesses.tracked() <= MAX_PEERS + 1);
    }
}
