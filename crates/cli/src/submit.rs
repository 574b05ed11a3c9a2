//! Commands that submit jobs and wait for them.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use buildcat_proto::{JobRef, Task, TaskId, TaskRef, WorkerInfo};

use crate::args::WorkerInfoArgs;
use crate::output::print_tree;

/// How long to wait before checking that some worker can run the job (none: the command
/// fails and cancels it) or telling the user that it still waits for a busy one.
const PATIENCE: Duration = crate::unserved::GRACE;

/// `buildcat worker-info`.
pub async fn worker_info(args: WorkerInfoArgs) -> anyhow::Result<ExitCode> {
    info_task(args, WorkerInfo, None).await
}

/// Submits an info task as a job of one task named after the command (`worker-info`,
/// `blender-info`), waits and prints the report; a `tool` section is printed under the
/// tool's name (`houdini: {executable, version}`), as the original did.
pub async fn info_task<T: Task>(
    args: WorkerInfoArgs,
    task: T,
    tool: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let name = match tool {
        Some(tool) => format!("{tool}-info"),
        None => "worker-info".to_owned(),
    };
    let limit = match args.timeout {
        None => None,
        // Zero would give up before any worker could answer, leaving the job queued: it is
        // refused as every other command's --timeout is.
        Some(seconds) if seconds > 0.0 && seconds.is_finite() && seconds < 1e9 => {
            Some(Duration::from_secs_f64(seconds))
        }
        Some(_) => anyhow::bail!("--timeout must be a positive number of seconds"),
    };
    let client = args.connection.connect().await?;
    let handle = client
        .new_job::<T>(&args.queue)
        .name(name.clone())
        .runs(name)
        .task(None, &task)
        .submit()
        .await?;
    let id = handle.number();
    let said = crate::unserved::warn(
        &client,
        &args.queue,
        Some(T::KIND),
        &buildcat_proto::GpuRequirement::NONE,
    )
    .await;
    let held = crate::unserved::tell_while_held(
        &client,
        handle.id(),
        id,
        &args.queue,
        T::KIND,
        said.clone(),
        |line: &str| eprintln!("{line}"),
    );
    tokio::pin!(held);
    let wait = async {
        crate::watch::wait_job(&client, JobRef::Id(handle.id())).await?;
        let only = TaskRef::from(TaskId::new(handle.id(), 0));
        let record = crate::watch::task_record(&client, only).await?;
        anyhow::Ok(handle.output(record)?)
    };
    tokio::pin!(wait);
    let report = tokio::select! {
        report = &mut wait => report?,
        never = &mut held => match never {},
        () = sleep_or_forever(limit) => {
            anyhow::bail!(
                "job {id} did not finish within {}s; it stays in queue `{}` (is a worker running and serving that queue?)",
                limit.map_or(0.0, |l| l.as_secs_f64()),
                args.queue
            );
        }
        () = tokio::time::sleep(PATIENCE) => {
            // Nothing can run it: fail with the reason and leave nothing queued.
            if let Some(reason) =
                crate::unserved::still_unserved(&client, handle.id(), &args.queue, T::KIND).await
            {
                return Err(crate::unserved::give_up(&client, handle.id(), id, &reason).await);
            }
            if said.is_none() {
                eprintln!("waiting for job {id} in queue `{}` (a worker serving it is busy)", args.queue);
            }
            tokio::select! {
                report = &mut wait => report?,
                never = &mut held => match never {},
                () = sleep_or_forever(limit.map(|l| l.saturating_sub(PATIENCE))) => {
                    anyhow::bail!(
                        "job {id} did not finish within {}s; it stays in queue `{}` (is a worker running and serving that queue?)",
                        limit.map_or(0.0, |l| l.as_secs_f64()),
                        args.queue
                    );
                }
            }
        }
    };
    let mut value = serde_json::to_value(&report).context("could not format the worker info")?;
    if let (Some(tool), Some(map)) = (tool, value.as_object_mut())
        && let Some(section) = map.remove("tool")
    {
        map.insert(tool.to_owned(), section);
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_tree(&value, 0);
    }
    Ok(ExitCode::SUCCESS)
}

async fn sleep_or_forever(limit: Option<Duration>) {
    match limit {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending().await,
    }
}
