//! What a running task says on its way to the server: log lines in batches, progress
//! coalesced, lines kept while disconnected; and cancels from the server.

use buildcat_proto::{Outcome, ServerFrame, TaskId};
use tokio::sync::mpsc;

use crate::fake::{
    FakeServer, LogLines, QUIET_HEARTBEAT_MS, assignment, builder, output, start, task_id,
    temp_root, within,
};
use crate::tasks::{Chatty, Counting, Greet, Stoppable, chatty, counting, greet, stoppable};

#[tokio::test]
async fn progress_is_coalesced_and_the_latest_arrives_before_the_result() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root).handler(counting));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let job = assignment(&Counting { steps: 1000 });
    connection.assign(job.clone()).await;
    let report = connection.expect_report().await;

    assert!(!report.progress.is_empty(), "{report:?}");
    assert!(report.progress.len() < 1000, "not coalesced: {report:?}");
    let latest = report.progress.last().cloned().unwrap_or_default();
    assert_eq!((latest.done, latest.total), (1000, 1000));
    assert_eq!(latest.outputs, ["frame.1000.exr"]);
    assert_eq!(report.lines(), ["counted"]);
    assert!(report.tasks.iter().all(|&reported| reported == job.task));
    assert_eq!(output::<Counting>(report.completion()), 1000);
    worker.stop().await;
}

#[tokio::test]
async fn many_lines_go_in_frames_of_at_most_500() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (mut gate, handler) = chatty();
    let worker = start(builder(&server, &root).handler(handler));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let job = assignment(&Chatty {
        before: 0,
        after: 900,
    });
    connection.assign(job.clone()).await;
    assert_eq!(gate.started().await, job.task);
    gate.open();
    let report = connection.expect_report().await;

    assert!(
        report.log_frames.len() >= 2,
        "{:?}",
        report.log_frames.len()
    );
    assert!(report.log_frames.iter().all(|frame| frame.len() <= 500));
    let expected: Vec<String> = (0..900).map(|index| format!("after {index}")).collect();
    assert_eq!(report.lines(), expected);
    worker.stop().await;
}

#[tokio::test]
async fn lines_logged_while_disconnected_are_sent_after_reconnecting_the_oldest_dropped() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let (mut gate, handler) = chatty();
    let worker = start(builder(&server, &root).handler(handler));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let job = assignment(&Chatty {
        before: 2,
        after: 1500,
    });
    connection.assign(job.clone()).await;
    assert_eq!(gate.started().await, job.task);
    let line = connection.expect_line(|line| line == "before 1").await;
    assert_eq!(line, "before 1");
    drop(connection);

    // The worker is reconnecting: it has sent its hello and waits for the answer. The job
    // logs its lines meanwhile, and ends.
    let (_, link) = server.accept_hello().await;
    gate.open();
    assert_eq!(gate.started().await, job.task);
    let mut connection = FakeServer::welcome(link, QUIET_HEARTBEAT_MS).await;
    assert_eq!(connection.registration.running, [(job.task, job.attempt)]);

    let report = connection.expect_report().await;
    let lines = report.lines();
    assert_eq!(lines.len(), 1001, "first line: {:?}", lines.first());
    assert!(
        lines[0].contains("500 earlier lines of output dropped"),
        "{}",
        lines[0]
    );
    let kept: Vec<String> = (500..1500).map(|index| format!("after {index}")).collect();
    assert_eq!(&lines[1..], kept);
    assert!(report.log_frames.iter().all(|frame| frame.len() <= 500));
    assert_eq!(report.completion().task, job.task);
    assert!(matches!(report.completion().outcome, Outcome::Finished(_)));
    worker.stop().await;
}

#[tokio::test]
async fn a_cancel_for_the_running_attempt_reports_it_canceled_and_others_are_ignored() {
    let (logged_tx, mut logged) = mpsc::unbounded_channel();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(LogLines(logged_tx))
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    // This test's runtime is single-threaded, so the worker logs on this thread.
    let _logging = tracing::subscriber::set_default(subscriber);

    let server = FakeServer::bind().await;
    let root = temp_root();
    let (mut gate, handler) = stoppable();
    let worker = start(builder(&server, &root).handler(handler));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let job = assignment(&Stoppable {
        label: "render".to_owned(),
    });
    connection.assign(job.clone()).await;
    assert_eq!(gate.started().await, job.task);

    // Cancels for another attempt, another task of the same job and a task of another job
    // change nothing.
    let others = [
        (job.task, job.attempt + 1),
        (TaskId::new(job.task.job, job.task.index + 1), job.attempt),
        (task_id(), job.attempt),
    ];
    for (other_task, other_attempt) in others {
        connection
            .send(ServerFrame::Cancel {
                task: other_task,
                attempt: other_attempt,
                reason: "not this one".to_owned(),
            })
            .await;
    }
    for _ in 0..others.len() {
        within("the worker to ignore a cancel", async {
            while let Some(line) = logged.recv().await {
                if line.contains("ignoring a cancel") {
                    return;
                }
            }
            panic!("the log channel closed");
        })
        .await;
    }

    connection
        .send(ServerFrame::Cancel {
            task: job.task,
            attempt: job.attempt,
            reason: "canceled by a person".to_owned(),
        })
        .await;
    // The handler fails when canceled; the worker reports the job canceled all the same.
    let report = connection.expect_report().await;
    assert_eq!(report.completion().task, job.task);
    assert_eq!(report.completion().outcome, Outcome::Canceled);
    worker.stop().await;
}

/// The worker's own log names a task as people do (`42.3`, its job's number and index) and
/// says which job it belongs to, rather than a 36-character id.
#[tokio::test]
async fn the_worker_log_names_tasks_by_number_and_index() {
    let (logged_tx, mut logged) = mpsc::unbounded_channel();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(LogLines(logged_tx))
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    // This test's runtime is single-threaded, so the worker logs on this thread.
    let _logging = tracing::subscriber::set_default(subscriber);

    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root).handler(greet));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;
    let mut job = assignment(&Greet {
        name: "log".to_owned(),
        times: 1,
    });
    job.name = "shot.blend 1-240".to_owned();
    job.frames = Some("11-20".to_owned());
    connection.assign(job.clone()).await;
    let report = connection.expect_report().await;
    assert_eq!(report.completion().task, job.task);

    let label = format!("task={}.2", job.number);
    let mut seen = Vec::new();
    for wanted in ["task started", "task finished"] {
        let line = within("the worker to log the task", async {
            while let Some(line) = logged.recv().await {
                if line.contains(wanted) {
                    return line;
                }
            }
            panic!("the log channel closed");
        })
        .await;
        assert!(line.contains(&label), "{line}");
        assert!(!line.contains(&job.task.job.to_string()), "{line}");
        seen.push(line);
    }
    let named = format!("job={} (shot.blend 1-240)", job.number);
    assert!(seen[0].contains(&named), "{}", seen[0]);
    assert!(seen[0].contains("frames=11-20"), "{}", seen[0]);
    worker.stop().await;
}
