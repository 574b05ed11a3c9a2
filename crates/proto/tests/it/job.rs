//! The text forms of jobs' ids and states, and the order of new ids.

use buildcat_proto::{Failure, JobId, JobState, Timestamp};
use std::time::Duration;

use crate::{JOB_A, T0, T1};

#[test]
fn job_state_names_round_trip() {
    let names = [
        "queued", "started", "finished", "failed", "canceled", "deferred",
    ];
    assert_eq!(JobState::ALL.len(), names.len());
    for (state, name) in JobState::ALL.into_iter().zip(names) {
        assert_eq!(state.as_str(), name);
        assert_eq!(state.to_string(), name);
        assert_eq!(name.parse::<JobState>(), Ok(state));
    }
}

#[test]
fn unknown_job_state_names_the_choices() {
    assert_eq!(
        "running".parse::<JobState>(),
        Err(
            "unknown job state `running`; expected one of queued, started, finished, failed, \
             canceled, deferred"
                .to_owned()
        )
    );
    // Names are exact: no case folding, no trimming.
    assert!("Queued".parse::<JobState>().is_err());
    assert!(" queued".parse::<JobState>().is_err());
    assert!("".parse::<JobState>().is_err());
}

#[test]
fn terminal_states() {
    let terminal: Vec<JobState> = JobState::ALL
        .into_iter()
        .filter(|state| state.is_terminal())
        .collect();
    assert_eq!(
        terminal,
        [JobState::Finished, JobState::Failed, JobState::Canceled]
    );
}

#[test]
fn job_id_text_round_trips() {
    let text = JOB_A.to_string();
    assert_eq!(text, "019000c7-9c00-7c4e-8f00-123456789abc");
    assert_eq!(text.parse::<JobId>().unwrap(), JOB_A);
    assert_eq!(
        format!("{JOB_A:?}"),
        "JobId(019000c7-9c00-7c4e-8f00-123456789abc)"
    );
    assert!("019000c7-9c00-7c4e-8f00".parse::<JobId>().is_err());
    assert!("not a job id".parse::<JobId>().is_err());
}

#[test]
fn job_ids_from_one_context_strictly_increase_within_a_millisecond() {
    let context = uuid::ContextV7::new();
    let ids: Vec<JobId> = (0..10_000).map(|_| JobId::new(T0, &context)).collect();
    for pair in ids.windows(2) {
        assert!(
            pair[0] < pair[1],
            "{:?} is not before {:?}",
            pair[0],
            pair[1]
        );
    }
    for id in &ids {
        assert_eq!(id.0.get_version_num(), 7);
        // The top 48 bits are the Unix time in milliseconds.
        assert_eq!((id.0.as_u128() >> 80) as u64, T0.0, "{id:?}");
    }
    // A later time sorts after every id made before it.
    let later = JobId::new(T1, &context);
    assert!(ids.last().unwrap() < &later);
    assert_eq!((later.0.as_u128() >> 80) as u64, T1.0);
}

#[test]
fn timestamp_arithmetic_saturates() {
    assert_eq!(T0.plus(Duration::from_millis(12_345)), T1);
    assert_eq!(T1.since(T0), Duration::from_millis(12_345));
    assert_eq!(T0.since(T1), Duration::ZERO);
    assert_eq!(
        Timestamp(u64::MAX - 1).plus(Duration::from_secs(1)),
        Timestamp(u64::MAX)
    );
    assert_eq!(format!("{T0:?}"), "Timestamp(1718000000000)");
}

#[test]
fn failure_text() {
    assert_eq!(
        Failure::new("timed out after 1h").to_string(),
        "timed out after 1h"
    );
    let failure = Failure {
        exit_code: Some(139),
        ..Failure::new("blender crashed")
    };
    assert_eq!(failure.to_string(), "blender crashed (exit code 139)");
}
