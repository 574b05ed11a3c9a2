//! Issue 12: the bytes of task output the server keeps (`FarmInfo::output_bytes`, the
//! `buildcat_output_bytes` gauge) are a running count that follows the store: as lines
//! arrive, as a long output's middle is dropped, as jobs are deleted, and after a restart.

use buildcat_proto::{JobRef, Outcome, Request, TaskId};

use super::{Farm, INFO};
use crate::core::CoreConfig;

/// The bound on one task's output in these tests: small, so a few hundred lines pass it.
const MAX_LOG_BYTES: u64 = 16_000;

/// One batch of output: 10 lines of 100 bytes with their newlines.
const BATCH_BYTES: u64 = 1_000;

/// Prints `batches` batches for attempt 1 of `task` on worker connection 10.
fn print(farm: &mut Farm, task: TaskId, batches: u64) {
    for batch in 0..batches {
        let lines = (0..10)
            .map(|line| format!("{:099}", batch * 10 + line))
            .collect();
        let request = Request::Log {
            task,
            attempt: 1,
            lines,
            stderr: Vec::new(),
        };
        farm.request(10, request);
    }
}

fn config() -> CoreConfig {
    CoreConfig {
        max_log_bytes: MAX_LOG_BYTES,
        ..CoreConfig::default()
    }
}

#[test]
fn the_output_kept_is_counted_as_it_comes_is_dropped_and_is_deleted() {
    let mut farm = Farm::with(config());
    farm.worker(10, "w1", &["default"]);
    assert_eq!(farm.core.info().output_bytes, 0);
    let (short, _) = farm.submit_one("default", INFO);
    print(&mut farm, short, 3);
    assert_eq!(farm.core.info().output_bytes, 3 * BATCH_BYTES);
    assert_eq!(farm.store.output_bytes(), 3 * BATCH_BYTES);
    farm.complete(10, short, 1, Outcome::Finished(vec![]));
    // A long output: 100,000 bytes printed, its middle dropped in steps; the count follows
    // what the store keeps (chunks here fall on the drop's edges, so exactly).
    let (long, _) = farm.submit_one("default", INFO);
    print(&mut farm, long, 100);
    let kept = farm.store.output_bytes();
    assert!(
        kept < 100 * BATCH_BYTES / 4,
        "the middle was dropped: {kept}"
    );
    assert_eq!(farm.core.info().output_bytes, kept);
    farm.complete(10, long, 1, Outcome::Finished(vec![]));
    // Deleting a job takes its output off the count at once.
    farm.request(super::CLIENT, Request::Delete(vec![JobRef::Id(short.job)]));
    assert_eq!(farm.store.output_bytes(), kept - 3 * BATCH_BYTES);
    assert_eq!(farm.core.info().output_bytes, kept - 3 * BATCH_BYTES);
    farm.request(super::CLIENT, Request::Delete(vec![JobRef::Id(long.job)]));
    assert_eq!(farm.core.info().output_bytes, 0);
    assert_eq!(farm.store.output_bytes(), 0);
}

/// A restarted server counts what it loads: exactly for output under the bound, and for a
/// long output whose middle the last server dropped, the bound, within one drop step of
/// the truth until the next drop.
#[test]
fn a_restarted_server_counts_the_output_it_loads() {
    let mut farm = Farm::with(config());
    farm.worker(10, "w1", &["default"]);
    let (short, _) = farm.submit_one("default", INFO);
    print(&mut farm, short, 2);
    farm.complete(10, short, 1, Outcome::Finished(vec![]));
    let (long, _) = farm.submit_one("default", INFO);
    print(&mut farm, long, 100);
    farm.complete(10, long, 1, Outcome::Finished(vec![]));
    let stored = farm.store.output_bytes();
    let restarted = farm.restart(config());
    let counted = restarted.core.info().output_bytes;
    let step = MAX_LOG_BYTES / 16;
    assert!(
        counted.abs_diff(stored) <= step,
        "counted {counted}, stored {stored}"
    );
    // Under the bound: exact.
    let mut short_only = Farm::with(config());
    short_only.worker(10, "w1", &["default"]);
    let (task, _) = short_only.submit_one("default", INFO);
    print(&mut short_only, task, 2);
    let restarted = short_only.restart(config());
    assert_eq!(restarted.core.info().output_bytes, 2 * BATCH_BYTES);
}
