//! Issue 11 (fault 4): a handler adds tasks to its own job with `JobContext::add_tasks`;
//! they go to the server with its result (`Outcome::FinishedWithTasks`), and only if it
//! finished.

use buildcat_proto::{Failure, NewTask, Outcome, Task};
use buildcat_worker::JobContext;
use serde::{Deserialize, Serialize};

use crate::fake::{FakeServer, QUIET_HEARTBEAT_MS, assignment, builder, start, temp_root};

/// Adds `frames.len()` tasks, one per frame, then finishes, or fails when `fail` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Plan {
    /// A task per frame.
    frames: Vec<i64>,
    /// Fail after adding them.
    fail: bool,
}

impl Task for Plan {
    const KIND: &'static str = "test.plan";
    type Output = u32;
}

/// The handler of [`Plan`].
async fn plan(task: Plan, context: JobContext) -> Result<u32, Failure> {
    context.add_tasks(task.frames.iter().map(|frame| NewTask {
        frames: Some(frame.to_string()),
        args: vec![1],
    }));
    if task.fail {
        return Err(Failure::new("the plan failed"));
    }
    Ok(u32::try_from(task.frames.len()).unwrap_or(u32::MAX))
}

#[tokio::test]
async fn tasks_a_handler_adds_go_with_its_result_only_when_it_finished() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root).handler(plan));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let job = assignment(&Plan {
        frames: vec![3, 5],
        fail: false,
    });
    connection.assign(job).await;
    let (id, completion) = connection.expect_completion().await;
    let Outcome::FinishedWithTasks { result, tasks } = completion.outcome else {
        panic!("expected the added tasks with the result: {completion:?}");
    };
    assert_eq!(
        buildcat_proto::codec::decode_value::<u32>(&result).ok(),
        Some(2)
    );
    let frames: Vec<Option<String>> = tasks.into_iter().map(|task| task.frames).collect();
    assert_eq!(frames, [Some("3".to_owned()), Some("5".to_owned())]);
    connection.ack(id).await;

    // A failed attempt adds nothing: its retry may add them.
    connection
        .assign(assignment(&Plan {
            frames: vec![7],
            fail: true,
        }))
        .await;
    let (id, completion) = connection.expect_completion().await;
    assert!(
        matches!(&completion.outcome, Outcome::Failed(failure) if failure.reason == "the plan failed"),
        "{completion:?}"
    );
    connection.ack(id).await;

    // A handler that adds none reports a plain finish.
    connection
        .assign(assignment(&Plan {
            frames: Vec::new(),
            fail: false,
        }))
        .await;
    let (id, completion) = connection.expect_completion().await;
    assert!(
        matches!(completion.outcome, Outcome::Finished(_)),
        "{completion:?}"
    );
    connection.ack(id).await;
    drop(worker);
}
