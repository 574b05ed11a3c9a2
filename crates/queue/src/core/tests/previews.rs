//! Frame previews (issue 12): kept from the worker of a task's current attempt only, within
//! their sizes, the newest few per job and a byte budget for the farm, gone with their job.

use buildcat_proto::{
    Completion, FramePreview, JobPreviews, JobRef, MAX_PREVIEW_BYTES, Outcome, PreviewFormat,
    Reply, Request, RequestError, TaskId, TaskState,
};

use super::{CLIENT, Farm, INFO, replies};
use crate::core::{ConnId, CoreConfig, Effect, Input};

/// A `bytes`-byte JPEG "preview" of `frame` from `attempt` of `task`: the server never
/// decodes it, so any bytes do.
fn preview(task: TaskId, attempt: u32, frame: i64, bytes: usize) -> FramePreview {
    FramePreview {
        task,
        attempt,
        frame,
        width: 512,
        height: 288,
        format: PreviewFormat::Jpeg,
        image: vec![u8::try_from(frame.rem_euclid(256)).unwrap_or(0); bytes],
    }
}

/// `conn` sends `preview`; the reply.
fn send(farm: &mut Farm, conn: ConnId, preview: FramePreview) -> Result<Reply, RequestError> {
    let frames = farm.request(conn, Request::Preview(preview));
    replies(&frames, conn)
        .pop()
        .expect("a reply to the preview")
}

/// The job's previews as the client reads them, with the newest image.
fn previews_of(farm: &mut Farm, task: TaskId) -> Result<JobPreviews, RequestError> {
    let request = Request::Previews {
        job: JobRef::Id(task.job),
        image: true,
    };
    let frames = farm.request(CLIENT, request);
    match replies(&frames, CLIENT).pop() {
        Some(Ok(Reply::Previews(previews))) => Ok(previews),
        Some(Err(error)) => Err(error),
        other => panic!("expected previews, got {other:?}"),
    }
}

/// The frames of the job's previews, newest first.
fn frames_of(farm: &mut Farm, task: TaskId) -> Vec<i64> {
    let previews = previews_of(farm, task).expect("the job is on record");
    previews.previews.iter().map(|p| p.frame).collect()
}

#[test]
fn a_preview_from_the_worker_running_the_task_is_kept_and_read_newest_first() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (task, _) = farm.submit_one("default", INFO);
    let empty = previews_of(&mut farm, task).expect("the job is on record");
    assert!(empty.previews.is_empty() && empty.latest.is_none());

    assert_eq!(
        send(&mut farm, 10, preview(task, 1, 7, 100)),
        Ok(Reply::Ack)
    );
    assert_eq!(
        send(&mut farm, 10, preview(task, 1, 8, 120)),
        Ok(Reply::Ack)
    );
    let previews = previews_of(&mut farm, task).expect("the job is on record");
    assert_eq!(previews.job, task.job);
    assert_eq!(previews.number, 1);
    let frames: Vec<i64> = previews.previews.iter().map(|p| p.frame).collect();
    assert_eq!(frames, vec![8, 7]);
    let newest = previews.previews[0];
    assert_eq!(
        (newest.task, newest.width, newest.height, newest.bytes),
        (task, 512, 288, 120)
    );
    assert_eq!(newest.format, PreviewFormat::Jpeg);
    assert_eq!(newest.at, farm.now);
    assert_eq!(previews.latest, Some(vec![8; 120]));

    // Without the image, a listing only.
    let frames = farm.request(
        CLIENT,
        Request::Previews {
            job: JobRef::Number(1),
            image: false,
        },
    );
    match replies(&frames, CLIENT).pop() {
        Some(Ok(Reply::Previews(listed))) => {
            assert_eq!(listed.previews.len(), 2);
            assert_eq!(listed.latest, None);
        }
        other => panic!("expected previews, got {other:?}"),
    }

    // The last frame's preview may come after the task's result, while it is being
    // stored and after: still kept.
    let request = Request::Complete(Completion {
        task,
        attempt: 1,
        outcome: Outcome::Finished(vec![]),
    });
    let effects = farm.core.handle(
        farm.now,
        Input::Request {
            conn: 10,
            id: 1,
            request,
        },
    );
    let token = effects
        .iter()
        .find_map(|effect| match effect {
            Effect::Persist { token, .. } => *token,
            _ => None,
        })
        .expect("the completion waits for its commit");
    assert_eq!(send(&mut farm, 10, preview(task, 1, 9, 10)), Ok(Reply::Ack));
    farm.handle(Input::Persisted {
        tokens: vec![token],
        result: Ok(()),
    });
    assert_eq!(farm.state(task), TaskState::Finished);
    assert_eq!(
        send(&mut farm, 10, preview(task, 1, 10, 10)),
        Ok(Reply::Ack)
    );
    assert_eq!(frames_of(&mut farm, task), vec![10, 9, 8, 7]);
}

#[test]
fn previews_from_another_worker_or_an_old_attempt_are_ignored() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (task, _) = farm.submit_one("default", INFO);
    farm.worker(11, "w2", &["default"]);
    // w2 runs nothing of it: acknowledged (as late output is), not kept.
    assert_eq!(send(&mut farm, 11, preview(task, 1, 1, 10)), Ok(Reply::Ack));
    assert_eq!(frames_of(&mut farm, task), Vec::<i64>::new());

    // w1 is lost (and w2, silent as long), w3 runs attempt 2; w1 back with its old
    // attempt is not listened to.
    farm.lose(10);
    farm.worker(13, "w3", &["default"]);
    assert_eq!(farm.task(task).current_attempt(), 2);
    farm.worker(12, "w1", &["default"]);
    assert_eq!(send(&mut farm, 12, preview(task, 1, 2, 10)), Ok(Reply::Ack));
    assert_eq!(send(&mut farm, 12, preview(task, 2, 3, 10)), Ok(Reply::Ack));
    assert_eq!(frames_of(&mut farm, task), Vec::<i64>::new());
    assert_eq!(send(&mut farm, 13, preview(task, 2, 4, 10)), Ok(Reply::Ack));
    assert_eq!(frames_of(&mut farm, task), vec![4]);

    // A client may not send one.
    let refused = send(&mut farm, CLIENT, preview(task, 2, 5, 10));
    assert!(
        matches!(refused, Err(RequestError::WrongRole { .. })),
        "{refused:?}"
    );
    assert_eq!(frames_of(&mut farm, task), vec![4]);
}

#[test]
fn previews_beyond_their_sizes_are_refused_with_the_reason() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (task, _) = farm.submit_one("default", INFO);
    let too_big = send(&mut farm, 10, preview(task, 1, 1, MAX_PREVIEW_BYTES + 1));
    match too_big {
        Err(RequestError::Invalid(reason)) => assert!(reason.contains("262145 bytes"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut wide = preview(task, 1, 2, 10);
    wide.width = 4096;
    assert!(matches!(
        send(&mut farm, 10, wide),
        Err(RequestError::Invalid(_))
    ));
    let mut empty = preview(task, 1, 3, 10);
    empty.image.clear();
    assert!(matches!(
        send(&mut farm, 10, empty),
        Err(RequestError::Invalid(_))
    ));
    assert_eq!(frames_of(&mut farm, task), Vec::<i64>::new());
    assert_eq!(farm.core.previews.bytes(), 0);
}

#[test]
fn a_job_keeps_its_newest_few_previews() {
    let mut farm = Farm::with(CoreConfig {
        previews_per_job: 3,
        ..CoreConfig::default()
    });
    farm.worker(10, "w1", &["default"]);
    let (task, _) = farm.submit_one("default", INFO);
    for frame in 1..=5 {
        assert_eq!(
            send(&mut farm, 10, preview(task, 1, frame, 100)),
            Ok(Reply::Ack)
        );
    }
    assert_eq!(frames_of(&mut farm, task), vec![5, 4, 3]);
    assert_eq!(farm.core.previews.count(task.job), 3);
    assert_eq!(farm.core.previews.bytes(), 300);
}

#[test]
fn the_farm_budget_evicts_the_oldest_previews_of_any_job() {
    let mut farm = Farm::with(CoreConfig {
        preview_budget: 3_000,
        ..CoreConfig::default()
    });
    farm.worker(10, "w1", &["default"]);
    farm.worker(11, "w2", &["default"]);
    let (first, _) = farm.submit_one("default", INFO);
    let (second, _) = farm.submit_one("default", INFO);
    send(&mut farm, 10, preview(first, 1, 1, 1_000)).expect("kept");
    send(&mut farm, 11, preview(second, 1, 1, 1_000)).expect("kept");
    send(&mut farm, 10, preview(first, 1, 2, 1_000)).expect("kept");
    assert_eq!(farm.core.previews.bytes(), 3_000);
    // Over the budget: the farm's oldest (the first job's frame 1) goes.
    send(&mut farm, 11, preview(second, 1, 2, 1_000)).expect("kept");
    assert_eq!(frames_of(&mut farm, first), vec![2]);
    assert_eq!(frames_of(&mut farm, second), vec![2, 1]);
    // A preview bigger than what is left evicts as many as it takes, its own job's too.
    send(&mut farm, 10, preview(first, 1, 3, 2_500)).expect("kept");
    assert_eq!(frames_of(&mut farm, first), vec![3]);
    assert_eq!(frames_of(&mut farm, second), Vec::<i64>::new());
    assert_eq!(farm.core.previews.bytes(), 2_500);
}

#[test]
fn previews_go_with_their_job() {
    let mut farm = Farm::new();
    farm.worker(10, "w1", &["default"]);
    let (task, _) = farm.submit_one("default", INFO);
    send(&mut farm, 10, preview(task, 1, 1, 500)).expect("kept");
    farm.complete(10, task, 1, Outcome::Finished(vec![]));
    let changes = farm.changes(Request::Delete(vec![JobRef::Id(task.job)]));
    assert!(changes[0].result.is_ok(), "{changes:?}");
    assert_eq!(farm.core.previews.bytes(), 0);
    assert_eq!(
        previews_of(&mut farm, task),
        Err(RequestError::UnknownJob(JobRef::Id(task.job)))
    );
    // A late preview of the deleted job is ignored.
    assert_eq!(send(&mut farm, 10, preview(task, 1, 2, 10)), Ok(Reply::Ack));
    assert_eq!(farm.core.previews.bytes(), 0);
}
