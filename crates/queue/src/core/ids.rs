//! Job ids made by the core from a seed it is given, so that a test replays exactly.
//!
//! Ids are UUID v7 (RFC 9562, section 5.7): 48 bits of Unix milliseconds, then 74 bits the
//! generator chooses. Here the first 18 of those bits are a counter, started at a random
//! value below half its range each new millisecond and incremented within one, so ids are
//! strictly increasing in the order they are made (the method RFC 9562 calls "fixed bit-length
//! dedicated counter", section 6.2), and the other 56 bits are random.

use buildcat_proto::{JobId, Timestamp};
use uuid::{Builder, Uuid};

/// The counter's width in bits (where they sit: see [`IdSource::next`]).
const COUNTER_BITS: u32 = 18;

/// Makes job ids: strictly increasing, random past the time and counter, reproducible from
/// a seed.
#[derive(Debug, Clone)]
pub(super) struct IdSource {
    /// splitmix64 state: small, fast, and statistically good enough for id bits (these ids
    /// are unique by their time and counter; the random bits only make them unguessable
    /// across servers).
    state: u64,
    /// The millisecond of the last id made; never goes backwards.
    last_millis: u64,
    /// The counter within `last_millis`.
    counter: u32,
}

impl IdSource {
    /// A source seeded with `seed`: the same seed and the same times give the same ids.
    pub(super) fn seeded(seed: u64) -> IdSource {
        IdSource {
            state: seed,
            last_millis: 0,
            counter: 0,
        }
    }

    /// A source seeded from the process's randomness (std's `RandomState`, itself seeded by
    /// the operating system).
    pub(super) fn from_entropy() -> IdSource {
        use std::hash::BuildHasher;
        let seed =
            std::collections::hash_map::RandomState::new().hash_one(0x6275_696c_6463_6174u64);
        IdSource::seeded(seed)
    }

    fn next_random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The id of a job made at `now`.
    pub(super) fn next(&mut self, now: Timestamp) -> JobId {
        let max_counter = (1u32 << COUNTER_BITS) - 1;
        if now.0 > self.last_millis {
            self.last_millis = now.0;
            // Below half the range, so a burst within one millisecond has room to count.
            self.counter = (self.next_random() as u32) & (max_counter >> 1);
        } else if self.counter < max_counter {
            self.counter += 1;
        } else {
            // 2^17 ids or more in one millisecond: borrow the next millisecond.
            self.last_millis += 1;
            self.counter = 0;
        }
        let random = self.next_random().to_be_bytes();
        let counter = self.counter;
        // The builder keeps the low nibble of byte 0 (then version 7) and the low 6 bits of
        // byte 2 (then the variant): 4 + 8 + 6 = 18 counter bits, high to low.
        let bytes: [u8; 10] = [
            ((counter >> 14) & 0x0F) as u8,
            ((counter >> 6) & 0xFF) as u8,
            (counter & 0x3F) as u8,
            random[0],
            random[1],
            random[2],
            random[3],
            random[4],
            random[5],
            random[6],
        ];
        let uuid: Uuid = Builder::from_unix_timestamp_millis(self.last_millis, &bytes).into_uuid();
        JobId(uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strictly_increasing_within_and_across_milliseconds() {
        let mut ids = IdSource::seeded(7);
        let mut last = ids.next(Timestamp(1_000));
        for step in 0..300_000u64 {
            // Many ids in few milliseconds, including a clock that goes backwards.
            let now = Timestamp(1_000 + step / 100_000 - u64::from(step % 7 == 0));
            let id = ids.next(now);
            assert!(id > last, "{id} after {last} at step {step}");
            assert_eq!(id.0.get_version_num(), 7);
            last = id;
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_ids() {
        let mut a = IdSource::seeded(42);
        let mut b = IdSource::seeded(42);
        let mut c = IdSource::seeded(43);
        let from_a: Vec<JobId> = (0..5).map(|i| a.next(Timestamp(10 + i))).collect();
        let from_b: Vec<JobId> = (0..5).map(|i| b.next(Timestamp(10 + i))).collect();
        let from_c: Vec<JobId> = (0..5).map(|i| c.next(Timestamp(10 + i))).collect();
        assert_eq!(from_a, from_b);
        assert_ne!(from_a, from_c);
    }

    #[test]
    fn the_time_is_the_ids_millisecond() {
        let mut ids = IdSource::seeded(1);
        let id = ids.next(Timestamp(1_700_000_000_123));
        let (seconds, nanos) =
            id.0.get_timestamp()
                .expect("a v7 id has a timestamp")
                .to_unix();
        assert_eq!(
            seconds * 1000 + u64::from(nanos / 1_000_000),
            1_700_000_000_123
        );
    }
}
