//! Notices: queue waits, run times and job ends, made only when asked for.

use std::time::Duration;

use buildcat_proto::{Failure, JobOptions, JobState, Outcome, TaskId};

use super::{Farm, Notice, assignments, job_of};
use crate::core::CoreConfig;

fn noticing() -> Farm {
    Farm::with(CoreConfig {
        notices: true,
        ..CoreConfig::default()
    })
}

/// The notices made since the last call.
fn taken(farm: &mut Farm) -> Vec<Notice> {
    std::mem::take(&mut farm.notices)
}

#[test]
fn a_core_nobody_watches_makes_no_notices() {
    let mut farm = Farm::new();
    let (ids, _) = farm.submit(vec![job_of(
        "default",
        "buildcat.worker.info",
        JobOptions::default(),
        1,
    )]);
    farm.worker(10, "w1", &["default"]);
    farm.complete(10, ids[0], 1, Outcome::Finished(vec![]));
    assert_eq!(farm.job_state(ids[0].job), JobState::Finished);
    assert!(farm.notices.is_empty(), "{:?}", farm.notices);
}

#[test]
fn waits_and_run_times_are_measured_by_the_servers_clock() {
    let mut farm = noticing();
    let (submitted, _) = farm.submit_jobs(vec![job_of(
        "default",
        "buildcat.worker.info",
        JobOptions::default(),
        2,
    )]);
    let job = submitted[0].id;
    let (first, second) = (TaskId::new(job, 0), TaskId::new(job, 1));
    assert!(taken(&mut farm).is_empty(), "nothing started or ended yet");

    farm.advance(Duration::from_secs(3));
    let frames = farm.worker(10, "w1", &["default"]);
    assert_eq!(assignments(&frames), vec![(10, first, 1)]);
    assert_eq!(
        taken(&mut farm),
        vec![Notice::Started {
            queue: "default".into(),
            waited: Duration::from_secs(3)
        }]
    );

    farm.advance(Duration::from_secs(5));
    let frames = farm.complete(10, first, 1, Outcome::Finished(vec![]));
    assert_eq!(assignments(&frames), vec![(10, second, 1)]);
    let notices = taken(&mut farm);
    // The first attempt's end and the second task's start come from one input, in either
    // order.
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices.contains(&Notice::AttemptEnded {
        queue: "default".into(),
        outcome: "finished",
        ran: Duration::from_secs(5)
    }));
    assert!(notices.contains(&Notice::Started {
        queue: "default".into(),
        waited: Duration::from_secs(8)
    }));

    farm.advance(Duration::from_secs(2));
    farm.complete(10, second, 1, Outcome::Failed(Failure::new("exit 1")));
    let notices = taken(&mut farm);
    assert_eq!(
        notices[0],
        Notice::AttemptEnded {
            queue: "default".into(),
            outcome: "failed",
            ran: Duration::from_secs(2)
        }
    );
    let ended: Vec<_> = notices
        .iter()
        .filter_map(|notice| match notice {
            Notice::JobEnded(summary) => Some(summary),
            _ => None,
        })
        .collect();
    assert_eq!(ended.len(), 1, "one end, one notice: {notices:?}");
    assert_eq!(ended[0].id, job);
    assert_eq!(ended[0].state, JobState::Failed);
    assert_eq!((ended[0].tasks.finished, ended[0].tasks.failed), (1, 1));
    assert!(ended[0].ended_at.is_some(), "the end time is in the notice");
    assert_eq!(notices.len(), 2, "{notices:?}");
}

#[test]
fn a_requeued_job_that_ends_again_is_noticed_again() {
    let mut farm = noticing();
    let (ids, _) = farm.submit(vec![job_of(
        "default",
        "buildcat.worker.info",
        JobOptions::default(),
        1,
    )]);
    farm.worker(10, "w1", &["default"]);
    farm.complete(10, ids[0], 1, Outcome::Failed(Failure::new("exit 1")));
    let ends = |notices: &[Notice]| {
        notices
            .iter()
            .filter(|n| matches!(n, Notice::JobEnded(_)))
            .count()
    };
    assert_eq!(ends(&taken(&mut farm)), 1);
    farm.changes(buildcat_proto::Request::Requeue(
        buildcat_proto::Requeue::Tasks {
            targets: vec![ids[0].job.into()],
            all: false,
        },
    ));
    farm.complete(10, ids[0], 2, Outcome::Finished(vec![]));
    let notices = taken(&mut farm);
    assert_eq!(ends(&notices), 1, "{notices:?}");
    assert!(
        notices
            .iter()
            .any(|n| matches!(n, Notice::JobEnded(job) if job.state == JobState::Finished))
    );
}
