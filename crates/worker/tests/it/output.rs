//! What a running job says on its way to the server: log lines in batches, progress
//! coalesced, lines kept while disconnected; and cancels from the server.

use buildcat_proto::{Outcome, ServerFrame};
use tokio::sync::mpsc;

use crate::fake::{
    FakeServer, LogLines, QUIET_HEARTBEAT_MS, assignment, builder, job_id, output, start,
    temp_root, within,
};
use crate::tasks::{Chatty, Counting, Stoppable, chatty, counting, stoppable};

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
    assert!(report.jobs.iter().all(|&reported| reported == job.job));
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
    assert_eq!(gate.started().await, job.job);
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
    assert_eq!(gate.started().await, job.job);
    let line = connection.expect_line(|line| line == "before 1").await;
    assert_eq!(line, "before 1");
    drop(connection);

    // The worker is reconnecting: it has sent its hello and waits for the answer. The job
    // logs its lines meanwhile, and ends.
    let (_, link) = server.accept_hello().await;
    gate.open();
    assert_eq!(gate.started().await, job.job);
    let mut connection = FakeServer::welcome(link, QUIET_HEARTBEAT_MS).await;
    assert_eq!(connection.registration.running, [(job.job, job.attempt)]);

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
    assert_eq!(report.completion().job, job.job);
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
    assert_eq!(gate.started().await, job.job);

    // Cancels for another attempt and another job change nothing.
    for (other_job, other_attempt) in [(job.job, job.attempt + 1), (job_id(), job.attempt)] {
        connection
            .send(ServerFrame::Cancel {
                job: other_job,
                attempt: other_attempt,
                reason: "not this one".to_owned(),
            })
            .await;
    }
    for _ in 0..2 {
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
            job: job.job,
            attempt: job.attempt,
            reason: "canceled by a person".to_owned(),
        })
        .await;
    // The handler fails when canceled; the worker reports the job canceled all the same.
    let report = connection.expect_report().await;
    assert_eq!(report.completion().job, job.job);
    assert_eq!(report.completion().outcome, Outcome::Canceled);
    worker.stop().await;
}
