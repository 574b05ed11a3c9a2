//! The built-in `buildcat.command.run` task through a worker loop: output streamed as `Log`
//! frames before the result, exit codes, timeouts and cancels.

use std::time::Duration;

use buildcat_proto::{CommandResult, Outcome, RunCommand, ServerFrame};

use crate::fake::{
    FakeServer, QUIET_HEARTBEAT_MS, assignment, builder, failure, output, start, temp_root,
};
use crate::tree::{gone, pid};

/// A `RunCommand` of `sh -c script`.
fn sh(script: &str) -> RunCommand {
    RunCommand {
        program: "sh".to_owned(),
        args: vec!["-c".to_owned(), script.to_owned()],
    }
}

#[tokio::test]
async fn a_command_streams_its_output_before_its_result() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let mut job = assignment(&sh(
        "echo \"job $BUILDCAT_JOB_ID task $BUILDCAT_TASK index $BUILDCAT_TASK_INDEX attempt \
         $BUILDCAT_ATTEMPT\"; pwd; echo \"root $BUILDCAT_ROOT\"",
    ));
    job.attempt = 2;
    connection.assign(job.clone()).await;
    let report = connection.expect_report().await;

    let canonical = std::fs::canonicalize(root.path()).unwrap_or_else(|e| panic!("{e}"));
    let canonical = canonical.to_string_lossy();
    assert_eq!(
        report.lines(),
        [
            format!(
                "job {} task {}.2 index 2 attempt 2",
                job.task.job, job.number
            ),
            canonical.clone().into_owned(),
            format!("root {canonical}"),
        ]
    );
    assert!(report.tasks.iter().all(|&logged| logged == job.task));
    let completion = report.completion();
    assert_eq!((completion.task, completion.attempt), (job.task, 2));
    assert_eq!(
        output::<RunCommand>(completion),
        CommandResult { exit_code: 0 }
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_failing_command_fails_with_its_exit_code_and_last_lines() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    connection
        .assign(assignment(&sh(
            "echo rendering; echo 'error: no license' >&2; exit 7",
        )))
        .await;
    let report = connection.expect_report().await;

    let failure = failure(report.completion());
    assert_eq!(failure.to_string(), "`sh` failed (exit code 7)");
    assert_eq!(failure.exit_code, Some(7));
    let mut tail = failure.output_tail;
    tail.sort();
    assert_eq!(tail, ["error: no license", "rendering"]);
    worker.stop().await;
}

#[tokio::test]
async fn a_missing_program_fails_saying_so() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    connection
        .assign(assignment(&RunCommand {
            program: "buildcat-no-such-tool".to_owned(),
            args: Vec::new(),
        }))
        .await;
    let reason = failure(connection.expect_report().await.completion()).reason;
    assert!(
        reason.contains("`buildcat-no-such-tool`: not found on this worker's PATH"),
        "{reason}"
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_program_path_is_relative_to_the_root_and_may_not_leave_it() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let tools = root.path().join("tools");
    std::fs::create_dir(&tools).unwrap_or_else(|e| panic!("{e}"));
    let script = tools.join("hello.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"hello $1\"\n").unwrap_or_else(|e| panic!("{e}"));
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let worker = start(builder(&server, &root));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    connection
        .assign(assignment(&RunCommand {
            program: "tools/hello.sh".to_owned(),
            args: vec!["farm".to_owned()],
        }))
        .await;
    let report = connection.expect_report().await;
    assert_eq!(report.lines(), ["hello farm"]);
    assert_eq!(
        output::<RunCommand>(report.completion()).exit_code,
        0,
        "{report:?}"
    );

    connection
        .assign(assignment(&RunCommand {
            program: "tools/../../escape.sh".to_owned(),
            args: Vec::new(),
        }))
        .await;
    let reason = failure(connection.expect_report().await.completion()).reason;
    assert!(reason.contains("climbs out of the farm root"), "{reason}");
    worker.stop().await;
}

#[tokio::test]
async fn a_command_past_its_timeout_is_killed_with_its_tree_and_fails() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root).kill_grace(Duration::from_secs(1)));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let mut job = assignment(&sh("sleep 1000 & echo $!; wait"));
    job.timeout_ms = Some(300);
    connection.assign(job).await;
    let report = connection.expect_report().await;

    let failure = failure(report.completion());
    assert_eq!(
        failure.reason,
        "`sh` timed out after 300ms; its process tree was killed"
    );
    gone(pid(&report.lines()[0])).await;
    worker.stop().await;
}

#[tokio::test]
async fn a_cancel_from_the_server_kills_the_command_and_reports_it_canceled() {
    let server = FakeServer::bind().await;
    let root = temp_root();
    let worker = start(builder(&server, &root).kill_grace(Duration::from_secs(1)));
    let mut connection = server.accept(QUIET_HEARTBEAT_MS).await;

    let job = assignment(&sh("sleep 1000 & echo $!; wait"));
    connection.assign(job.clone()).await;
    let line = connection.expect_line(|_| true).await;
    connection
        .send(ServerFrame::Cancel {
            task: job.task,
            attempt: job.attempt,
            reason: "canceled by a person".to_owned(),
        })
        .await;
    let report = connection.expect_report().await;

    let completion = report.completion();
    assert_eq!(
        (completion.task, completion.attempt),
        (job.task, job.attempt)
    );
    assert_eq!(completion.outcome, Outcome::Canceled);
    gone(pid(&line)).await;
    worker.stop().await;
}
