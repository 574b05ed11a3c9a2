//! The text forms of jobs' ids, handles and states, how a job's state follows from its
//! tasks, and the order of new ids.

use buildcat_proto::{
    Failure, JobId, JobRef, JobState, TaskCounts, TaskId, TaskRef, TaskState, Timestamp,
};
use std::time::Duration;

use crate::{JOB_A, T0, T1};

#[test]
fn job_state_names_round_trip() {
    let names = [
        "queued", "running", "paused", "finished", "failed", "canceled",
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
        "started".parse::<JobState>(),
        Err(
            "unknown job state `started`; expected one of queued, running, paused, finished, \
             failed, canceled"
                .to_owned()
        )
    );
    // Names are exact: no case folding, no trimming.
    assert!("Queued".parse::<JobState>().is_err());
    assert!(" queued".parse::<JobState>().is_err());
    assert!("".parse::<JobState>().is_err());
}

#[test]
fn task_state_names_round_trip() {
    let names = [
        "queued", "started", "finished", "failed", "canceled", "deferred", "paused",
    ];
    assert_eq!(TaskState::ALL.len(), names.len());
    for (state, name) in TaskState::ALL.into_iter().zip(names) {
        assert_eq!(state.as_str(), name);
        assert_eq!(state.to_string(), name);
        assert_eq!(name.parse::<TaskState>(), Ok(state));
    }
    assert_eq!(
        "running".parse::<TaskState>(),
        Err(
            "unknown task state `running`; expected one of queued, started, finished, failed, \
             canceled, deferred, paused"
                .to_owned()
        )
    );
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
    let terminal: Vec<TaskState> = TaskState::ALL
        .into_iter()
        .filter(|state| state.is_terminal())
        .collect();
    assert_eq!(
        terminal,
        [TaskState::Finished, TaskState::Failed, TaskState::Canceled]
    );
}

/// Task counts from a list of task states (`total` is their number).
fn counts(states: &[TaskState]) -> TaskCounts {
    let mut counts = TaskCounts {
        total: states.len() as u64,
        ..TaskCounts::default()
    };
    for state in states {
        *counts.count_mut(*state) += 1;
    }
    counts
}

#[track_caller]
fn check_derive(states: &[TaskState], paused: bool, expected: JobState) {
    assert_eq!(
        JobState::derive(&counts(states), paused),
        expected,
        "tasks {states:?}, paused {paused}"
    );
}

#[test]
fn job_state_is_derived_from_its_tasks() {
    use TaskState::*;
    // Nothing started yet: queued, whether tasks wait for a worker or for dependencies.
    check_derive(&[Queued], false, JobState::Queued);
    check_derive(&[Queued, Queued], false, JobState::Queued);
    check_derive(&[Deferred, Deferred], false, JobState::Queued);
    check_derive(&[Deferred, Queued], false, JobState::Queued);
    // Some ended, the rest wait: still queued, even where one failed (the rest can run).
    check_derive(&[Finished, Queued], false, JobState::Queued);
    check_derive(&[Failed, Queued], false, JobState::Queued);
    check_derive(&[Canceled, Deferred], false, JobState::Queued);
    // Any task running: running, also in a paused job (running tasks finish).
    check_derive(&[Started], false, JobState::Running);
    check_derive(&[Started, Queued, Finished], false, JobState::Running);
    check_derive(&[Started, Failed], false, JobState::Running);
    check_derive(&[Started, Paused], true, JobState::Running);
    check_derive(&[Started, Queued], true, JobState::Running);
    // Held: the job is paused (its own pause), or a task is held by its queue's pause.
    check_derive(&[Queued, Queued], true, JobState::Paused);
    check_derive(&[Paused, Paused], true, JobState::Paused);
    check_derive(&[Paused, Finished], false, JobState::Paused);
    check_derive(&[Deferred], true, JobState::Paused);
    check_derive(&[Failed, Queued], true, JobState::Paused);
    // Every task ended: failed wins over canceled, canceled over finished; a pause no
    // longer matters.
    check_derive(&[Finished], false, JobState::Finished);
    check_derive(&[Finished, Finished], true, JobState::Finished);
    check_derive(&[Failed], false, JobState::Failed);
    check_derive(&[Finished, Failed, Canceled], false, JobState::Failed);
    check_derive(&[Failed, Failed], true, JobState::Failed);
    check_derive(&[Canceled], false, JobState::Canceled);
    check_derive(&[Finished, Canceled], false, JobState::Canceled);
    check_derive(&[Canceled, Canceled], true, JobState::Canceled);
}

#[test]
fn task_counts_count_each_state() {
    let counts = counts(&[
        TaskState::Queued,
        TaskState::Started,
        TaskState::Finished,
        TaskState::Finished,
        TaskState::Failed,
        TaskState::Canceled,
        TaskState::Deferred,
        TaskState::Paused,
    ]);
    assert_eq!(counts.total, 8);
    assert_eq!(counts.count(TaskState::Finished), 2);
    for state in TaskState::ALL {
        assert_eq!(
            counts.count(state),
            if state == TaskState::Finished { 2 } else { 1 },
            "{state}"
        );
    }
    assert_eq!(counts.ended(), 4);
}

/// Parses `text` as a job handle and checks the result and that it displays as `shown`.
#[track_caller]
fn check_job_ref(text: &str, expected: JobRef, shown: &str) {
    assert_eq!(text.parse::<JobRef>(), Ok(expected), "{text:?}");
    assert_eq!(expected.to_string(), shown);
    // Wherever a job is named a task handle is accepted too, meaning the whole job.
    assert_eq!(
        text.parse::<TaskRef>(),
        Ok(TaskRef::job(expected)),
        "{text:?}"
    );
}

/// Parses `text` as a task handle and checks the result and that it displays as `shown`.
#[track_caller]
fn check_task_ref(text: &str, expected: TaskRef, shown: &str) {
    assert_eq!(text.parse::<TaskRef>(), Ok(expected), "{text:?}");
    assert_eq!(expected.to_string(), shown);
    assert_eq!(
        shown.parse::<TaskRef>(),
        Ok(expected),
        "{shown:?} does not read back"
    );
}

#[test]
fn job_handles_parse_and_display() {
    let uuid = "019000c7-9c00-7c4e-8f00-123456789abc";
    check_job_ref("42", JobRef::Number(42), "42");
    check_job_ref(" 42\n", JobRef::Number(42), "42");
    check_job_ref("0", JobRef::Number(0), "0");
    check_job_ref(
        "18446744073709551615",
        JobRef::Number(u64::MAX),
        "18446744073709551615",
    );
    check_job_ref(uuid, JobRef::Id(JOB_A), uuid);
    // Upper case and the simple form (no hyphens) are the same id, shown hyphenated.
    check_job_ref(&uuid.to_uppercase(), JobRef::Id(JOB_A), uuid);
    check_job_ref(&uuid.replace('-', ""), JobRef::Id(JOB_A), uuid);
    assert_eq!(JobRef::from(JOB_A), JobRef::Id(JOB_A));
    assert_eq!(format!("{:?}", JobRef::Number(42)), "JobRef(42)");
}

#[test]
fn task_handles_parse_and_display() {
    let uuid = "019000c7-9c00-7c4e-8f00-123456789abc";
    let task = |job, index| TaskRef {
        job,
        index: Some(index),
    };
    check_task_ref("42.3", task(JobRef::Number(42), 3), "42.3");
    check_task_ref("42.0", task(JobRef::Number(42), 0), "42.0");
    check_task_ref(" 7.12 ", task(JobRef::Number(7), 12), "7.12");
    check_task_ref(
        "42.4294967295",
        task(JobRef::Number(42), u32::MAX),
        "42.4294967295",
    );
    check_task_ref(
        &format!("{uuid}.3"),
        task(JobRef::Id(JOB_A), 3),
        &format!("{uuid}.3"),
    );
    check_task_ref("42", TaskRef::job(JobRef::Number(42)), "42");
    check_task_ref(uuid, TaskRef::job(JOB_A), uuid);
    // A task id converts to a handle by id; it displays as the id does.
    let id = TaskId::new(JOB_A, 3);
    assert_eq!(TaskRef::from(id), task(JobRef::Id(JOB_A), 3));
    assert_eq!(TaskRef::from(id).to_string(), id.to_string());
    assert_eq!(id.to_string(), format!("{uuid}.3"));
    assert_eq!(format!("{id:?}"), format!("TaskId({uuid}.3)"));
    assert_eq!(
        format!("{:?}", task(JobRef::Number(42), 3)),
        "TaskRef(42.3)"
    );
}

/// Every refusal says what was typed and what to type instead.
#[test]
fn bad_handles_are_refused_with_what_to_type() {
    let no_job = |text: &str| {
        format!(
            "`{text}` names no job: give the job's number (`42`, as `buildcat jobs` lists it) \
             or its full id"
        )
    };
    let prefix = |text: &str| {
        format!(
            "`{text}` is only part of a job id; give the job's number (`42`, as `buildcat \
             jobs` lists it) or its whole id (36 characters): ids made hours apart share \
             their first characters, so a prefix is not accepted"
        )
    };
    let no_task = |text: &str| {
        format!(
            "`{text}` names no task: a task is its job and its index, as in `42.3` \
             (`buildcat status 42` lists the tasks of job 42)"
        )
    };
    let cases: Vec<(&str, String, String)> = vec![
        // (typed, as a job handle, as a task handle)
        ("4x", no_job("4x"), no_job("4x")),
        ("", no_job(""), no_job("")),
        ("-1", no_job("-1"), no_job("-1")),
        ("+42", no_job("+42"), no_job("+42")),
        ("job42", no_job("job42"), no_job("job42")),
        ("019000c7", prefix("019000c7"), prefix("019000c7")),
        (
            "019000c7-9c00-7c4e",
            prefix("019000c7-9c00-7c4e"),
            prefix("019000c7-9c00-7c4e"),
        ),
        (
            "019000c7-9c00-7c4e-8f00-123456789abc0",
            no_job("019000c7-9c00-7c4e-8f00-123456789abc0"),
            no_job("019000c7-9c00-7c4e-8f00-123456789abc0"),
        ),
        (
            "99999999999999999999",
            "job number `99999999999999999999` is too large; give the number `buildcat jobs` \
             lists, or the job's full id"
                .to_owned(),
            "job number `99999999999999999999` is too large; give the number `buildcat jobs` \
             lists, or the job's full id"
                .to_owned(),
        ),
        ("42.", no_job("42."), no_task("42.")),
        (".3", no_job(".3"), no_task(".3")),
        ("42.3.1", no_job("42.3.1"), no_task("42.3.1")),
        ("42.x", no_job("42.x"), no_task("42.x")),
        ("42.-1", no_job("42.-1"), no_task("42.-1")),
        ("42.+1", no_job("42.+1"), no_task("42.+1")),
        (
            "42.4294967296",
            no_job("42.4294967296"),
            no_task("42.4294967296"),
        ),
        ("4x.3", no_job("4x.3"), no_job("4x")),
        ("019000c7.3", no_job("019000c7.3"), prefix("019000c7")),
    ];
    for (typed, as_job, as_task) in cases {
        assert_eq!(typed.parse::<JobRef>(), Err(as_job), "{typed:?} as a job");
        assert_eq!(
            typed.parse::<TaskRef>(),
            Err(as_task),
            "{typed:?} as a task"
        );
    }
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

/// Wherever the protocol carries a task with its job's number, it shows it as people type
/// it: `41.1`.
#[test]
fn tasks_with_their_job_number_show_as_number_dot_index() {
    use crate::TASK_A;
    use crate::golden::{assignment, task_status};
    use buildcat_proto::RunningTask;

    assert_eq!(assignment().label(), "41.1");
    assert_eq!(task_status().label(), "41.1");
    let running = RunningTask {
        id: TASK_A,
        number: 41,
    };
    assert_eq!(running.to_string(), "41.1");
    // And each reads back as the same task of job 41.
    assert_eq!(
        "41.1".parse::<TaskRef>(),
        Ok(TaskRef {
            job: JobRef::Number(41),
            index: Some(TASK_A.index),
        })
    );
}
