//! Commands about jobs: `run`, `logs`, `status`, `jobs`, `cancel`, `requeue`, `eta`.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use buildcat_client::Client;
use buildcat_proto::dcc::{RenderReport, ToolInfoReport};
use buildcat_proto::{
    AttemptOutcome, CommandResult, DroppedOutput, JobChange, JobId, JobOptions, JobQuery, JobState,
    JobStatus, LogPage, MAX_CHANGES_PER_REQUEST, RequeueTarget, RunCommand, Task, Timestamp,
    WorkerInfo, codec,
};
use serde_json::{Value, json};

use crate::args::{
    CancelArgs, EtaArgs, JobsArgs, LogsArgs, RequeueArgs, RunArgs, StatusArgs, SubmitOptions,
    WorkerEnableArgs,
};
use crate::time::{human, rfc3339};

/// Parses a job id from the command line.
pub fn parse_job(text: &str) -> anyhow::Result<JobId> {
    text.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "`{text}` is not a job id (ids look like 0190f0c0-5d1e-7a3b-9c4d-2e5f6a7b8c9d)"
        )
    })
}

/// Job options from the command line.
pub fn job_options(submit: &SubmitOptions) -> anyhow::Result<JobOptions> {
    let timeout_ms = match submit.timeout {
        None => None,
        Some(seconds) if seconds > 0.0 && seconds.is_finite() => {
            Some((seconds * 1000.0).round() as u64)
        }
        Some(_) => bail!("--timeout must be a positive number of seconds"),
    };
    if submit.attempts == 0 {
        bail!("--attempts must be at least 1");
    }
    let after = submit
        .after
        .iter()
        .map(|id| parse_job(id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(JobOptions {
        timeout_ms,
        max_attempts: submit.attempts,
        priority: submit.priority,
        after,
    })
}

/// Prints the ids of submitted jobs, one per line or as `{"jobs": [...]}`.
pub fn print_submitted(ids: &[JobId], as_json: bool) {
    if as_json {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        outln!("{}", json!({ "jobs": ids }));
    } else {
        for id in ids {
            outln!("{id}");
        }
    }
}

/// `buildcat run -- PROGRAM ARGS...`.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let options = job_options(&args.submit)?;
    let mut command = args.command.into_iter();
    let Some(program) = command.next() else {
        bail!("give the program to run after `--`, e.g. `buildcat run -- echo hello`");
    };
    let task = RunCommand {
        program,
        args: command.collect(),
    };
    let client = args.connection.connect().await?;
    let handle = client
        .submit_with(&args.submit.queue, &task, options)
        .await?;
    let id = handle.id();
    print_submitted(&[id], args.submit.json);
    if !args.submit.wait {
        return Ok(ExitCode::SUCCESS);
    }
    // Follow the output while it runs, then report the end.
    crate::watch::follow_output(&client, id, 0, &mut |page| {
        let mut err = std::io::stderr().lock();
        // Output is shown as a courtesy; a closed stderr must not stop the wait.
        if let Some(dropped) = page.dropped {
            let _ = writeln!(err, "{}", dropped_line(dropped));
        }
        for line in &page.lines {
            let _ = writeln!(err, "{line}");
        }
        Ok(())
    })
    .await?;
    let status = crate::watch::wait_job(&client, id).await?;
    report_end(&status)
}

/// Prints how a job ended and picks the exit code.
pub fn report_end(status: &JobStatus) -> anyhow::Result<ExitCode> {
    match status.state {
        JobState::Finished => Ok(ExitCode::SUCCESS),
        JobState::Canceled => bail!("job {} was canceled", status.id),
        _ => {
            let reason = status
                .failure
                .as_ref()
                .map_or_else(|| "no reason recorded".to_owned(), ToString::to_string);
            bail!("job {} {}: {reason}", status.id, status.state)
        }
    }
}

/// `buildcat logs JOB [--follow] [--from BYTES]`: the job's output a page at a time, with
/// a line in place of any part the server dropped.
pub async fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let id = parse_job(&args.job)?;
    let client = args.connection.connect().await?;
    let print = &mut |page: &LogPage| print_page(page);
    if args.follow {
        crate::watch::follow_output(&client, id, args.from, print).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut from = args.from;
    loop {
        let page = client.log_page(id, from).await?;
        print(&page)?;
        if !page.more || page.next <= from {
            return Ok(ExitCode::SUCCESS);
        }
        from = page.next;
    }
}

/// Prints a page of output on stdout, after a line saying what was dropped before it. A
/// reader that stops reading (`logs JOB | head`) ends the command quietly, as `outln!` does.
fn print_page(page: &LogPage) -> std::io::Result<()> {
    let written = (|| {
        let mut out = std::io::stdout().lock();
        if let Some(dropped) = page.dropped {
            writeln!(out, "{}", dropped_line(dropped))?;
        }
        for line in &page.lines {
            writeln!(out, "{line}")?;
        }
        out.flush()
    })();
    match written {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other,
    }
}

/// The line printed where the server dropped part of a job's output.
fn dropped_line(dropped: DroppedOutput) -> String {
    format!(
        "[buildcat: {} bytes ({} lines) of output dropped here; the server keeps the start and \
         the end of each job's output, up to `server --max-log-bytes` in all]",
        dropped.bytes, dropped.lines
    )
}

/// A job's result as JSON, decoded where the kind is known.
fn result_json(status: &JobStatus) -> Value {
    let Some(bytes) = &status.result else {
        return Value::Null;
    };
    let decoded = match status.kind.as_str() {
        WorkerInfo::KIND => codec::decode_value::<<WorkerInfo as Task>::Output>(bytes)
            .ok()
            .and_then(|v| serde_json::to_value(v).ok()),
        RunCommand::KIND => codec::decode_value::<CommandResult>(bytes)
            .ok()
            .and_then(|v| serde_json::to_value(v).ok()),
        kind if kind.starts_with("buildcat.") && kind.ends_with(".info") => {
            codec::decode_value::<ToolInfoReport>(bytes)
                .ok()
                .and_then(|v| serde_json::to_value(v).ok())
        }
        kind if buildcat_proto::dcc::tool_for_kind(kind).is_some() => {
            codec::decode_value::<RenderReport>(bytes)
                .ok()
                .and_then(|v| serde_json::to_value(v).ok())
        }
        _ => None,
    };
    decoded.unwrap_or_else(|| json!({ "bytes": bytes.len() }))
}

fn outcome_json(outcome: Option<&AttemptOutcome>) -> (Value, Value) {
    match outcome {
        None => (json!("running"), Value::Null),
        Some(AttemptOutcome::Finished) => (json!("finished"), Value::Null),
        Some(AttemptOutcome::Failed(failure)) => (json!("failed"), json!(failure.to_string())),
        Some(AttemptOutcome::WorkerLost) => (json!("worker lost"), Value::Null),
        Some(AttemptOutcome::Canceled) => (json!("canceled"), Value::Null),
        Some(AttemptOutcome::Interrupted) => (json!("interrupted"), Value::Null),
    }
}

/// A job as JSON.
pub fn status_json(status: &JobStatus) -> Value {
    let attempts: Vec<Value> = status
        .attempts
        .iter()
        .map(|attempt| {
            let (outcome, reason) = outcome_json(attempt.outcome.as_ref());
            json!({
                "number": attempt.number,
                "worker": attempt.worker,
                "started_at": rfc3339(attempt.started_at),
                "ended_at": attempt.ended_at.map(rfc3339),
                "outcome": outcome,
                "reason": reason,
            })
        })
        .collect();
    json!({
        "id": status.id.to_string(),
        "queue": status.queue,
        "kind": status.kind,
        "state": status.state.as_str(),
        "created_at": rfc3339(status.created_at),
        "started_at": status.started_at().map(rfc3339),
        "ended_at": status.ended_at.map(rfc3339),
        "worker": status.worker(),
        "max_attempts": status.options.max_attempts,
        "priority": status.options.priority,
        "timeout": status.options.timeout_ms.map(|ms| ms as f64 / 1000.0),
        "after": status.options.after.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "attempts": attempts,
        "reason": status.failure.as_ref().map(|f| f.reason.clone()),
        "exit_code": status.failure.as_ref().and_then(|f| f.exit_code),
        "output_tail": status.failure.as_ref().map(|f| f.output_tail.clone()),
        "progress": status.progress.as_ref().map(|p| json!({
            "done": p.done,
            "total": p.total,
            "outputs": p.outputs,
        })),
        "result": result_json(status),
    })
}

/// `buildcat status JOB`.
pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let id = parse_job(&args.job)?;
    let client = args.connection.connect().await?;
    let status = client.job(id).await?;
    let value = status_json(&status);
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("job {}", status.id);
    outln!("  queue: {}  kind: {}", status.queue, status.kind);
    outln!("  state: {}", status.state);
    outln!("  submitted: {}", rfc3339(status.created_at));
    if let Some(ended) = status.ended_at {
        outln!(
            "  ended: {} (after {})",
            rfc3339(ended),
            human(ended.since(status.created_at))
        );
    }
    if let Some(progress) = &status.progress {
        outln!("  progress: {}/{}", progress.done, progress.total);
        for output in &progress.outputs {
            outln!("    wrote {output}");
        }
    }
    // Only failures the job reports use up attempts; a lost worker or an interruption
    // does not, so count those apart rather than print "2 of at most 1".
    let failed = status
        .attempts
        .iter()
        .filter(|attempt| matches!(attempt.outcome, Some(AttemptOutcome::Failed(_))))
        .count();
    outln!(
        "  attempts: {} ({failed} failed, at most {} may fail)",
        status.attempts.len(),
        status.options.max_attempts
    );
    for attempt in &status.attempts {
        let (outcome, reason) = outcome_json(attempt.outcome.as_ref());
        let outcome = outcome.as_str().unwrap_or("").to_owned();
        let took = attempt
            .ended_at
            .map(|end| format!(" in {}", human(end.since(attempt.started_at))))
            .unwrap_or_default();
        outln!(
            "    #{} on {}: {outcome}{took}{}",
            attempt.number,
            attempt.worker,
            reason
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    if let Some(failure) = &status.failure {
        outln!("  reason: {failure}");
        if !failure.output_tail.is_empty() {
            outln!("  last output:");
            for line in &failure.output_tail {
                outln!("    {line}");
            }
        }
    }
    let result = result_json(&status);
    if !result.is_null() {
        outln!("  result: {result}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `buildcat jobs`.
pub async fn list(args: JobsArgs) -> anyhow::Result<ExitCode> {
    let state = args
        .state
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    let client = args.connection.connect().await?;
    let query = JobQuery {
        queue: args.queue,
        state,
        limit: args.limit,
    };
    let limit = query.limit;
    let listing = client.jobs(query).await?;
    let jobs = listing.jobs;
    if args.json {
        let jobs: Vec<Value> = jobs.iter().map(status_json).collect();
        let listed = json!({ "jobs": jobs, "more": listing.more });
        outln!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(ExitCode::SUCCESS);
    }
    // Said on stderr, so the table stays a table; only when the server cut the list short
    // of the limit asked for (reaching the limit itself is what was asked).
    if listing.more && (jobs.len() as u64) < u64::from(limit) {
        eprintln!(
            "(the server listed {} jobs, as many as fit in one reply; narrow the list with \
             --queue or --state to see others)",
            jobs.len()
        );
    }
    if jobs.is_empty() {
        outln!("(no jobs)");
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<36}  {:<9}  {:<12}  {:<24}  {:<8}  {:<24}  worker",
        "id",
        "state",
        "queue",
        "kind",
        "attempts",
        "submitted"
    );
    for job in &jobs {
        outln!(
            "{:<36}  {:<9}  {:<12}  {:<24}  {:<8}  {:<24}  {}",
            job.id.to_string(),
            job.state.as_str(),
            job.queue,
            job.kind,
            job.attempts.len(),
            rfc3339(job.created_at),
            job.worker().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_changes(changes: &[JobChange], verb: &str, none: &str, as_json: bool) -> ExitCode {
    let failed = changes.iter().any(|change| change.result.is_err());
    if as_json {
        let entries: Vec<Value> = changes
            .iter()
            .map(|change| match &change.result {
                Ok(state) => json!({ "job": change.job.to_string(), "state": state.as_str() }),
                Err(e) => json!({ "job": change.job.to_string(), "error": e.to_string() }),
            })
            .collect();
        outln!("{}", json!({ "jobs": entries }));
    } else {
        for change in changes {
            match &change.result {
                Ok(_) => outln!("{verb} {}", change.job),
                Err(e) => eprintln!("error: {e}"),
            }
        }
        if changes.is_empty() {
            outln!("{none}");
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `buildcat cancel JOB...`.
pub async fn cancel(args: CancelArgs) -> anyhow::Result<ExitCode> {
    let ids = args
        .jobs
        .iter()
        .map(|id| parse_job(id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let client = args.connection.connect().await?;
    let changes = client.cancel(ids).await?;
    Ok(print_changes(
        &changes,
        "canceled",
        "no jobs to cancel",
        args.json,
    ))
}

/// `buildcat worker-enable NAME`.
pub async fn worker_enable(args: WorkerEnableArgs) -> anyhow::Result<ExitCode> {
    let client = args.connection.connect().await?;
    client
        .enable_worker(&args.name)
        .await
        .with_context(|| format!("could not enable worker {}", args.name))?;
    outln!("{} takes work again", args.name);
    Ok(ExitCode::SUCCESS)
}

/// `buildcat requeue JOB... | --failed [--queue Q]`.
pub async fn requeue(args: RequeueArgs) -> anyhow::Result<ExitCode> {
    let target = if args.failed {
        RequeueTarget::Failed { queue: args.queue }
    } else {
        RequeueTarget::Jobs(
            args.jobs
                .iter()
                .map(|id| parse_job(id))
                .collect::<anyhow::Result<Vec<_>>>()?,
        )
    };
    let client = args.connection.connect().await?;
    let again = matches!(target, RequeueTarget::Failed { .. });
    let mut batch = client.requeue(target.clone()).await?;
    let mut changes = Vec::new();
    // The server requeues failed jobs in batches that fit one reply: a full batch means
    // there may be more.
    while again && batch.len() >= MAX_CHANGES_PER_REQUEST {
        changes.append(&mut batch);
        batch = client.requeue(target.clone()).await?;
    }
    changes.append(&mut batch);
    Ok(print_changes(
        &changes,
        "requeued",
        "no failed jobs to requeue",
        args.json,
    ))
}

/// One reading of a queue's length.
struct Sample {
    /// When it was read.
    at: Instant,
    /// Jobs waiting or running.
    length: u64,
}

/// The drain rate in jobs per second over the samples kept, if it can be told.
fn drain_rate(samples: &VecDeque<Sample>) -> Option<f64> {
    let (first, last) = (samples.front()?, samples.back()?);
    let elapsed = last.at.duration_since(first.at).as_secs_f64();
    if elapsed <= 0.0 {
        return None;
    }
    Some((first.length as f64 - last.length as f64) / elapsed)
}

fn eta_line(queue: &str, length: u64, rate: Option<f64>) -> String {
    match rate {
        _ if length == 0 => format!("{queue}: empty"),
        None => format!("{queue}: {length} jobs, measuring the drain rate..."),
        Some(rate) if rate <= 0.0 => {
            format!("{queue}: {length} jobs, not draining ({rate:.2} jobs/s)")
        }
        Some(rate) => {
            let eta = Duration::from_secs_f64(length as f64 / rate);
            let at = Timestamp::now().plus(eta);
            format!(
                "{queue}: {length} jobs, draining {rate:.2} jobs/s, empty in {} (at {})",
                human(eta),
                &rfc3339(at)[11..19]
            )
        }
    }
}

/// `buildcat eta`: samples the queue every interval until Ctrl-C.
pub async fn eta(args: EtaArgs) -> anyhow::Result<ExitCode> {
    if !(args.interval > 0.0 && args.interval.is_finite()) {
        bail!("--interval must be a positive number of seconds");
    }
    if args.count < 2 {
        bail!("--count must be at least 2 (the rate needs two samples)");
    }
    let client: Client = args.connection.connect().await?;
    let interval = Duration::from_secs_f64(args.interval);
    let terminal = std::io::stdout().is_terminal();
    let mut samples: VecDeque<Sample> = VecDeque::with_capacity(args.count);
    loop {
        let info = match client.info().await {
            Ok(info) => info,
            Err(error) => {
                let say = |text: &str| {
                    if terminal {
                        eprintln!();
                    }
                    eprintln!("{text}");
                };
                crate::watch::recover(&client, error, &say)
                    .await
                    .context("could not read the queue")?;
                continue;
            }
        };
        let length = info
            .queues
            .iter()
            .find(|queue| queue.name == args.queue)
            .map_or(0, |queue| queue.queued + queue.started + queue.deferred);
        if samples.len() == args.count {
            samples.pop_front();
        }
        samples.push_back(Sample {
            at: Instant::now(),
            length,
        });
        let line = eta_line(&args.queue, length, drain_rate(&samples));
        let mut out = std::io::stdout().lock();
        if terminal {
            write!(out, "\r\x1b[2K{line}")?;
        } else {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        drop(out);
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = crate::stop::shutdown_signal() => {
                if terminal {
                    outln!();
                }
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_rate_is_the_slope_over_the_window() {
        let start = Instant::now();
        let samples: VecDeque<Sample> = [(0, 100), (10, 80), (20, 60)]
            .into_iter()
            .map(|(secs, length)| Sample {
                at: start + Duration::from_secs(secs),
                length,
            })
            .collect();
        assert_eq!(drain_rate(&samples), Some(2.0));
        let line = eta_line("default", 60, Some(2.0));
        assert!(
            line.starts_with("default: 60 jobs, draining 2.00 jobs/s, empty in 30.0s"),
            "{line}"
        );
        assert_eq!(eta_line("default", 0, None), "default: empty");
    }

    #[test]
    fn bad_job_ids_say_what_an_id_looks_like() {
        let error = parse_job("42").unwrap_err().to_string();
        assert!(error.contains("`42` is not a job id"), "{error}");
    }
}
