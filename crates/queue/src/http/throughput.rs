//! Tasks finished per minute over the last hour, for the farm page's chart.
//!
//! The core keeps no history (its state is what is, not what was), so the shell keeps this
//! small one itself: the hub counts each attempt that ended finished (a notice from the
//! core, see [`crate::core::Notice`]) in the minute it was told of it, with the other task
//! metrics. Tasks finished before the server started are not counted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use buildcat_proto::Timestamp;
use buildcat_proto::view::rfc3339;
use serde::Serialize;

use super::AppState;

/// Minutes kept: the chart shows the last hour.
const MINUTES: usize = 60;

/// Milliseconds in a minute, the chart's bucket.
const MINUTE_MILLIS: u64 = 60_000;

/// The per-minute counts, shared by the task metrics (which count) and the route.
#[derive(Debug, Clone, Default)]
pub(crate) struct Throughput {
    /// (minute start in Unix milliseconds, tasks finished in it), oldest first, at most
    /// [`MINUTES`]; minutes without a finish are absent.
    minutes: Arc<Mutex<VecDeque<(u64, u64)>>>,
}

impl Throughput {
    /// Credits `finished` tasks to the minute holding `now`.
    pub(crate) fn add(&self, now: Timestamp, finished: u64) {
        let minute = now.0 - now.0 % MINUTE_MILLIS;
        let Ok(mut minutes) = self.minutes.lock() else {
            return;
        };
        match minutes.back_mut() {
            Some((last, count)) if *last == minute => *count += finished,
            _ => minutes.push_back((minute, finished)),
        }
        let oldest = minute.saturating_sub(MINUTE_MILLIS * (MINUTES as u64 - 1));
        while minutes.front().is_some_and(|(start, _)| *start < oldest) {
            minutes.pop_front();
        }
    }
}

/// One minute of the chart.
#[derive(Debug, Serialize)]
struct MinuteView {
    /// When the minute starts (RFC 3339).
    at: String,
    /// Tasks finished in it.
    finished: u64,
}

/// `GET /api/v1/throughput`: `{"minutes": [{"at", "finished"}...]}` for each of the last 60
/// minutes, oldest first, ending with the current one (zeros included).
pub(crate) async fn route(State(state): State<AppState>) -> Json<serde_json::Value> {
    let now = Timestamp::now().0;
    let current = now - now % MINUTE_MILLIS;
    let kept: Vec<(u64, u64)> = state
        .throughput
        .minutes
        .lock()
        .map(|minutes| minutes.iter().copied().collect())
        .unwrap_or_default();
    let minutes: Vec<MinuteView> = (0..MINUTES as u64)
        .rev()
        .map(|back| current.saturating_sub(back * MINUTE_MILLIS))
        .map(|start| MinuteView {
            at: rfc3339(Timestamp(start)),
            finished: kept
                .iter()
                .find(|(minute, _)| *minute == start)
                .map_or(0, |(_, count)| *count),
        })
        .collect();
    Json(serde_json::json!({ "minutes": minutes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finishes_are_counted_per_minute_and_only_the_last_hour_is_kept() {
        let throughput = Throughput::default();
        let start = 1_000 * MINUTE_MILLIS;
        throughput.add(Timestamp(start + 5), 2);
        throughput.add(Timestamp(start + 59_999), 3);
        throughput.add(Timestamp(start + MINUTE_MILLIS), 1);
        let kept: Vec<_> = throughput.minutes.lock().unwrap().iter().copied().collect();
        assert_eq!(kept, [(start, 5), (start + MINUTE_MILLIS, 1)]);
        throughput.add(Timestamp(start + 60 * MINUTE_MILLIS), 4);
        let kept: Vec<_> = throughput.minutes.lock().unwrap().iter().copied().collect();
        assert_eq!(
            kept,
            [(start + MINUTE_MILLIS, 1), (start + 60 * MINUTE_MILLIS, 4)],
            "the minute an hour before the newest is dropped"
        );
    }
}
