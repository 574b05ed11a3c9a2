//! Tasks finished per minute over the last hour, for the farm page's chart.
//!
//! The core keeps no history (its state is what is, not what was), so the HTTP shell keeps
//! this small one itself: a sampler task wakes on the farm's generation (at most once per
//! [`SAMPLE_GAP`]), asks for `Info`, and credits the growth of the finished-task count
//! since its last look to the current minute. What the server has not seen running (before
//! it started) is not counted; finished tasks that leave the count in the same gap as
//! others finish (a delete, the end of retention) can hide those, so the chart is a
//! picture of the pace, not an account.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use buildcat_proto::view::rfc3339;
use buildcat_proto::{Reply, Request, Timestamp};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::AppState;
use crate::server::CoreHandle;

/// Minutes kept: the chart shows the last hour.
const MINUTES: usize = 60;

/// The shortest time between two samples: bounds the `Info` requests the sampler makes on a
/// busy farm (one a second is nothing to the core) while keeping the chart current.
const SAMPLE_GAP: Duration = Duration::from_secs(1);

/// Milliseconds in a minute, the chart's bucket.
const MINUTE_MILLIS: u64 = 60_000;

/// The per-minute counts, shared by the sampler and the route.
#[derive(Clone, Default)]
pub(crate) struct Throughput {
    /// (minute start in Unix milliseconds, tasks finished in it), oldest first, at most
    /// [`MINUTES`]; minutes without a finish are absent.
    minutes: Arc<Mutex<VecDeque<(u64, u64)>>>,
}

impl Throughput {
    /// Credits `finished` tasks to the minute holding `now`.
    fn add(&self, now: Timestamp, finished: u64) {
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

/// The finished tasks the farm holds now, or `None` if the core could not say.
async fn finished_now(core: &CoreHandle) -> Option<u64> {
    match core.call(Request::Info).await {
        Ok(Ok(Reply::Info(info))) => Some(
            info.queues
                .iter()
                .map(|queue| queue.count(buildcat_proto::TaskState::Finished))
                .sum(),
        ),
        _ => None,
    }
}

/// The sampler: runs until `stopping`, or until the hub is gone.
pub(crate) async fn sample(core: CoreHandle, throughput: Throughput, stopping: CancellationToken) {
    let mut changes = core.changes();
    let mut last = finished_now(&core).await;
    loop {
        tokio::select! {
            () = stopping.cancelled() => break,
            changed = changes.changed() => if changed.is_err() { break },
        }
        tokio::select! {
            () = stopping.cancelled() => break,
            () = tokio::time::sleep(SAMPLE_GAP) => {}
        }
        changes.borrow_and_update();
        let Some(now) = finished_now(&core).await else {
            continue;
        };
        if let Some(before) = last
            && now > before
        {
            throughput.add(Timestamp::now(), now - before);
        }
        last = Some(now);
    }
    debug!("throughput sampler stopped");
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
