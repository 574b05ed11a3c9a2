//! Commands that steer jobs once submitted: `cancel`, `requeue`, `pause`, `resume`,
//! `priority`, `delete`, and `wait`, which attaches to running jobs; and workers:
//! `worker-pause` and `worker-resume`.

use std::process::ExitCode;

use buildcat_client::{ClientError, submitter_user};
use buildcat_proto::view::ChangeView;
use buildcat_proto::{Change, MAX_CHANGES_PER_REQUEST, Reply, Request, Requeue};
use serde_json::json;

use crate::args::{
    CancelArgs, DeleteArgs, PauseArgs, PriorityArgs, RequeueArgs, WaitArgs, WorkerPauseArgs,
};
use crate::jobs::{parse_all, parse_job, parse_task};

/// Prints what a request did, one line per job or task named (refusals on stderr), or
/// `{"jobs": [...]}`; fails when any was refused.
fn print_changes(changes: &[Change], verb: &str, none: &str, as_json: bool) -> ExitCode {
    let refused = changes.iter().any(|change| change.result.is_err());
    if as_json {
        let views: Vec<ChangeView> = changes.iter().map(ChangeView::from).collect();
        outln!("{}", json!({ "jobs": views }));
    } else {
        for change in changes {
            match &change.result {
                Ok(changed) => {
                    // Named as people name it, whatever the command was given.
                    let label = match change.target.index {
                        Some(index) => format!("{}.{index}", changed.number),
                        None => changed.number.to_string(),
                    };
                    let tasks = match changed.tasks {
                        0 => " (nothing to do)".to_owned(),
                        1 => String::new(),
                        many => format!(" ({many} tasks)"),
                    };
                    outln!("{verb} {label}{tasks}: job {}", changed.state);
                }
                Err(error) => eprintln!("error: {}: {error}", change.target),
            }
        }
        if changes.is_empty() {
            outln!("{none}");
        }
    }
    if refused {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `buildcat cancel JOB[.TASK]...`.
pub async fn cancel(args: CancelArgs) -> anyhow::Result<ExitCode> {
    let targets = parse_all(&args.targets, parse_task)?;
    let client = args.connection.connect().await?;
    let changes = client.cancel(targets).await?;
    Ok(print_changes(
        &changes,
        "canceled",
        "nothing to cancel",
        args.json,
    ))
}

/// `buildcat requeue JOB[.TASK]... [--failed | --all]` and `buildcat requeue --failed
/// [--queue Q] [--user U]`.
pub async fn requeue(args: RequeueArgs) -> anyhow::Result<ExitCode> {
    let requeue = if args.targets.is_empty() {
        // The caller's own failed jobs unless told whose: other people's renders are
        // theirs to retry.
        Requeue::Failed {
            queue: args.queue,
            user: Some(args.user.unwrap_or_else(submitter_user)),
        }
    } else {
        Requeue::Tasks {
            targets: parse_all(&args.targets, parse_task)?,
            all: args.all,
        }
    };
    let client = args.connection.connect().await?;
    let again = matches!(requeue, Requeue::Failed { .. });
    let mut batch = client.requeue(requeue.clone()).await?;
    let mut changes = Vec::new();
    // The server requeues failed jobs in batches that fit one reply: a full batch means
    // there may be more.
    while again && batch.len() >= MAX_CHANGES_PER_REQUEST {
        changes.append(&mut batch);
        batch = client.requeue(requeue.clone()).await?;
    }
    changes.append(&mut batch);
    Ok(print_changes(
        &changes,
        "requeued",
        "no failed jobs to requeue",
        args.json,
    ))
}

/// `buildcat pause JOB...` and `buildcat pause --queue Q`.
pub async fn pause(args: PauseArgs) -> anyhow::Result<ExitCode> {
    hold(args, true).await
}

/// `buildcat resume JOB...` and `buildcat resume --queue Q`.
pub async fn resume(args: PauseArgs) -> anyhow::Result<ExitCode> {
    hold(args, false).await
}

/// Pauses (`paused`) or resumes jobs or a queue.
async fn hold(args: PauseArgs, paused: bool) -> anyhow::Result<ExitCode> {
    let verb = if paused { "paused" } else { "resumed" };
    if let Some(queue) = &args.queue {
        if queue.trim().is_empty() {
            anyhow::bail!("--queue is empty; name the queue, such as `default`");
        }
        let client = args.connection.connect().await?;
        // Still done (a queue may be held before its first job), but a mistyped name is
        // said rather than held silently.
        crate::unserved::warn_unknown_queue(&client, queue).await;
        client.pause_queue(queue, paused).await?;
        if args.json {
            outln!("{}", json!({ "queue": queue, "paused": paused }));
        } else {
            outln!("{verb} queue `{queue}`");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let jobs = parse_all(&args.jobs, parse_job)?;
    let client = args.connection.connect().await?;
    let changes = if paused {
        client.pause(jobs).await?
    } else {
        client.resume(jobs).await?
    };
    Ok(print_changes(&changes, verb, "no jobs named", args.json))
}

/// `buildcat worker-pause NAME...` (`paused`) and `buildcat worker-resume NAME...`: one
/// line per worker (refusals on stderr) or `{"workers": [...]}`; fails when any name was
/// refused, after trying them all.
pub async fn pause_workers(args: WorkerPauseArgs, paused: bool) -> anyhow::Result<ExitCode> {
    let client = args.connection.connect().await?;
    let mut views = Vec::with_capacity(args.names.len());
    let mut refused = false;
    for name in &args.names {
        let request = Request::PauseWorker {
            name: name.clone(),
            paused,
        };
        let error = match client.request(request).await {
            Ok(Reply::Ack) => None,
            Ok(other) => Some(format!(
                "the server answered {other:?}, not an acknowledgement"
            )),
            Err(ClientError::RequestRefused(error)) => Some(error.to_string()),
            // The connection itself failed: the other names would fail the same way.
            Err(error) => return Err(error.into()),
        };
        match error {
            None if args.json => views.push(json!({ "worker": name, "paused": paused })),
            None if paused => outln!("paused {name}: it finishes its task and takes no new one"),
            None => outln!("resumed {name}: it takes work again"),
            Some(error) => {
                refused = true;
                if args.json {
                    views.push(json!({ "worker": name, "error": error }));
                } else {
                    eprintln!("error: {name}: {error}");
                }
            }
        }
    }
    if args.json {
        outln!("{}", json!({ "workers": views }));
    }
    Ok(if refused {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `buildcat priority JOB N`.
pub async fn priority(args: PriorityArgs) -> anyhow::Result<ExitCode> {
    let job = parse_job(&args.job)?;
    let client = args.connection.connect().await?;
    let changed = client.set_priority(job, args.priority).await?;
    if args.json {
        outln!(
            "{}",
            json!({
                "job": changed.job.to_string(),
                "number": changed.number,
                "priority": args.priority,
                "state": changed.state.as_str(),
            })
        );
    } else {
        outln!("job {}: priority {}", changed.number, args.priority);
    }
    Ok(ExitCode::SUCCESS)
}

/// `buildcat delete JOB...`.
pub async fn delete(args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let jobs = parse_all(&args.jobs, parse_job)?;
    let client = args.connection.connect().await?;
    let changes = client.delete(jobs).await?;
    Ok(print_changes(
        &changes,
        "deleted",
        "no jobs named",
        args.json,
    ))
}

/// `buildcat wait JOB...`: follows the jobs to their end with a bar of tasks done.
pub async fn wait(args: WaitArgs) -> anyhow::Result<ExitCode> {
    let jobs = parse_all(&args.jobs, parse_job)?;
    let client = args.connection.connect().await?;
    let mut statuses = Vec::with_capacity(jobs.len());
    for job in jobs {
        statuses.push(crate::watch::job_record(&client, job).await?);
    }
    crate::watch::follow_jobs_with(&client, statuses, crate::watch::WhenUnserved::Warn).await
}
