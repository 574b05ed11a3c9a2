//! Commands about jobs: `run`, `logs`, `status`, `jobs`, `eta`, `worker-enable`, and the
//! handles people type (`42`, `42.3`) as the requests take them.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use buildcat_client::Client;
use buildcat_proto::dcc::{RenderReport, ToolInfoReport};
use buildcat_proto::frames::{FrameRange, FrameSpec};
use buildcat_proto::view::{JobStatusView, JobView, TaskStatusView};
use buildcat_proto::{
    Attempt, AttemptOutcome, CommandResult, Dependency, DroppedOutput, JobOptions, JobQuery,
    JobRef, JobState, JobStatus, JobSummary, LogPage, RunCommand, RunCommandIn, Submitted, Task,
    TaskId, TaskProgress, TaskRef, TaskState, TaskStatus, Timestamp, WorkerInfo, codec,
};
use serde_json::{Value, json};

use crate::args::{
    EtaArgs, JobsArgs, LogsArgs, RunArgs, StatusArgs, SubmitOptions, WorkerEnableArgs,
};
use crate::time::{human, rfc3339};

/// The most jobs `jobs --all` asks for: the server's own cap on one listing.
const ALL_JOBS: u32 = 1000;

/// Failed tasks whose reasons a failed job's report names; the rest are counted.
const REASONS_SHOWN: usize = 10;

/// Cells in the bar of tasks done that `jobs` draws.
const BAR_CELLS: usize = 10;

/// A job as typed on the command line: `42` or a full id.
pub fn parse_job(text: &str) -> anyhow::Result<JobRef> {
    text.parse().map_err(|error: String| handle_error(error))
}

/// A job or one of its tasks as typed on the command line: `42`, `42.3`, an id, `ID.3`.
pub fn parse_task(text: &str) -> anyhow::Result<TaskRef> {
    text.parse().map_err(|error: String| handle_error(error))
}

/// A refused handle's error as a person reads it. The parser takes any few hex digits for
/// the start of an id: `status abc` said `abc is only part of a job id` (tester finding
/// 13), so that case says first that it is no job number or id.
fn handle_error(error: String) -> anyhow::Error {
    const PREFIX_SAID: &str = "` is only part of a job id";
    let part = error
        .strip_prefix('`')
        .and_then(|rest| rest.split_once(PREFIX_SAID))
        .map(|(part, _)| part);
    match part {
        Some(part) => anyhow::anyhow!(
            "`{part}` is not a job number or a job id: give the job's number (`42`, as \
             `buildcat jobs` lists it) or its whole id (36 characters; the start of an id is \
             not accepted, since ids made hours apart share their first characters)"
        ),
        None => anyhow::anyhow!(error),
    }
}

/// Parses every handle before anything is sent, so a typo fails the whole command.
pub fn parse_all<T>(
    texts: &[String],
    parse: fn(&str) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<T>> {
    texts.iter().map(|text| parse(text)).collect()
}

/// Job options from the command line, without the dependencies (which need the server to
/// turn numbers into ids: [`resolve_after`]); checked before connecting.
pub fn job_options(submit: &SubmitOptions) -> anyhow::Result<JobOptions> {
    let longest = buildcat_client::MAX_TIMEOUT_MS / 1000;
    let timeout_ms = match submit.timeout {
        None => None,
        Some(seconds) if seconds > 0.0 && seconds <= longest as f64 => {
            Some((seconds * 1000.0).round() as u64)
        }
        Some(seconds) if seconds > 0.0 => {
            bail!("--timeout {seconds} is too long: the longest is {longest} seconds (365 days)")
        }
        Some(_) => bail!("--timeout must be a positive number of seconds"),
    };
    if submit.attempts == 0 {
        bail!("--attempts must be at least 1");
    }
    // Typos in `--after` fail before anything is sent.
    parse_all(&submit.after, parse_task)?;
    if submit.gpus > buildcat_proto::MAX_GPUS_REQUIRED {
        bail!(
            "--gpus {} is more than any worker slot may have (at most {})",
            submit.gpus,
            buildcat_proto::MAX_GPUS_REQUIRED
        );
    }
    if submit.gpu_memory == Some(0) {
        bail!("--gpu-memory must be at least 1 MiB; leave it out to take a GPU of any memory");
    }
    if let Some(memory) = submit.gpu_memory
        && memory > buildcat_client::MAX_GPU_MEMORY_MIB
    {
        bail!(
            "--gpu-memory {memory} is more than any GPU has: the most is {} MiB",
            buildcat_client::MAX_GPU_MEMORY_MIB
        );
    }
    Ok(JobOptions {
        timeout_ms,
        max_attempts: submit.attempts,
        priority: submit.priority,
        after: Vec::new(),
        gpus: submit.gpu_requirement(),
    })
}

/// The dependencies `--after 42` and `--after 42.3` name, as ids: a submission carries
/// ids, so numbers are looked up first.
pub async fn resolve_after(client: &Client, after: &[String]) -> anyhow::Result<Vec<Dependency>> {
    let mut dependencies = Vec::with_capacity(after.len());
    for text in after {
        let target = parse_task(text)?;
        let job = match (target.job, target.index) {
            (JobRef::Id(id), None) => id,
            _ => {
                let status = client
                    .job(target.job)
                    .await
                    .with_context(|| format!("--after {text}"))?;
                // A task the job lacks is named here by its job's number: the server would
                // only know the id (tester finding 13).
                if let Some(index) = target.index
                    && u64::from(index) >= status.job.tasks.total
                {
                    let number = status.job.number;
                    bail!(
                        "--after {text}: job {number} has no task {index}; its tasks are {}",
                        match status.job.tasks.total {
                            0 => "none yet".to_owned(),
                            1 => format!("{number}.0 only"),
                            total => format!("{number}.0 to {number}.{}", total - 1),
                        }
                    );
                }
                status.job.id
            }
        };
        dependencies.push(match target.index {
            Some(index) => Dependency::Task(TaskId::new(job, index)),
            None => Dependency::Job(job),
        });
    }
    Ok(dependencies)
}

/// Prints a submitted job: its number, or `{"job": ID, "number": N, "tasks": COUNT}`.
pub fn print_submitted(job: Submitted, as_json: bool) {
    if as_json {
        outln!(
            "{}",
            json!({ "job": job.id.to_string(), "number": job.number, "tasks": job.tasks })
        );
    } else {
        outln!("{}", job.number);
    }
}

// One implementation, shared with the render plans and the Python package.
pub use buildcat_client::render::{command_line, file_name};

/// `buildcat run -- PROGRAM ARGS...`.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut options = job_options(&args.submit)?;
    let Some(program) = args.command.first().cloned() else {
        bail!("give the program to run after `--`, e.g. `buildcat run -- echo hello`");
    };
    let name = args
        .submit
        .name
        .clone()
        .unwrap_or_else(|| file_name(&program).to_owned());
    let env = parse_env(&args.env)?;
    if let Some(dir) = &args.cwd {
        buildcat_proto::paths::check_relative(dir).map_err(|error| cwd_error(dir, &error))?;
    }
    let mut runs = command_line(
        env.iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .chain(args.command.iter().map(String::as_str)),
    );
    if let Some(dir) = &args.cwd {
        runs = format!("{runs} (in {dir})");
    }
    let task = RunCommand {
        program,
        args: args.command[1..].to_vec(),
    };
    let client = args.connection.connect().await?;
    options.after = resolve_after(&client, &args.submit.after).await?;
    let queue = &args.submit.queue;
    let gpus = options.gpus;
    // The plain kind unless the command needs more, so any worker version runs it.
    let (kind, submitted) = if env.is_empty() && args.cwd.is_none() {
        let handle = client
            .new_job::<RunCommand>(queue)
            .name(name)
            .runs(runs)
            .options(options)
            .task(None, &task)
            .submit()
            .await?;
        (RunCommand::KIND, handle.submitted())
    } else {
        let task = RunCommandIn {
            command: task,
            env,
            cwd: args.cwd.clone(),
        };
        let handle = client
            .new_job::<RunCommandIn>(queue)
            .name(name)
            .runs(runs)
            .options(options)
            .task(None, &task)
            .submit()
            .await?;
        (RunCommandIn::KIND, handle.submitted())
    };
    let (job_id, job_number) = (submitted.id, submitted.number);
    print_submitted(submitted, args.submit.json);
    let said = crate::unserved::warn(&client, queue, Some(kind), &gpus).await;
    if !args.submit.wait {
        return Ok(ExitCode::SUCCESS);
    }
    // Follow the output while it runs, each line where the program printed it: stdout on
    // stdout, stderr on stderr, so `run --wait -- CMD > out.txt` keeps what CMD would. With
    // --json stdout is the JSON alone (a script parses it), so all of it goes to stderr.
    let task = TaskRef::from(TaskId::new(job_id, 0));
    let streams = if args.submit.json {
        Streams::AllOnStderr
    } else {
        Streams::AsPrinted
    };
    let mut print = |page: &LogPage| write_page(page, Dropped::OnStderr, streams);
    let follow = crate::watch::follow_output(&client, task, 0, &mut print);
    // While it sits queued because every worker that could run it is quarantined or
    // paused, say so (again when that changes) instead of waiting silently.
    let held = crate::unserved::tell_while_held(
        &client,
        job_id,
        job_number,
        queue,
        kind,
        said,
        |line: &str| eprintln!("{line}"),
    );
    // Nothing can run it: give up after a short wait instead of waiting forever, and leave
    // nothing queued. Ctrl-C: the job goes on, and `buildcat wait` attaches again.
    let unserved = async {
        tokio::time::sleep(crate::unserved::GRACE).await;
        let reason = crate::unserved::still_unserved(&client, job_id, queue, kind).await;
        match reason {
            Some(reason) => reason,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        followed = follow => followed?,
        reason = unserved => {
            return Err(crate::unserved::give_up(&client, job_id, job_number, &reason).await);
        }
        () = crate::stop::shutdown_signal() => {
            eprintln!("{}", crate::stop::still_running(&[job_number]));
            return Ok(ExitCode::from(crate::stop::STOPPED_NOW));
        }
        never = held => match never {},
    }
    let status = crate::watch::wait_job(&client, JobRef::Id(job_id)).await?;
    if status.job.state == JobState::Finished {
        return Ok(ExitCode::SUCCESS);
    }
    // Exit as the program did: its exit code, 128+N for signal N, else 1.
    let record = crate::watch::task_record(&client, task).await?;
    let code = record.failure.as_ref().map_or(1, program_exit_code);
    match report_end(&client, &status).await {
        Ok(_) => Ok(ExitCode::from(code)),
        Err(error) => {
            eprintln!("error: {error:#}");
            Ok(ExitCode::from(code))
        }
    }
}

/// Why `--cwd DIR` was refused, with what to give instead said once: most of the path
/// errors already say it (tester finding 13 read `give a path inside the root; give a
/// directory relative to the farm root`).
fn cwd_error(dir: &str, error: &buildcat_proto::paths::PathError) -> anyhow::Error {
    use buildcat_proto::paths::PathError;
    match error {
        PathError::Nul(_) => {
            anyhow::anyhow!("--cwd {dir:?}: {error}; give a directory relative to the farm root")
        }
        _ => anyhow::anyhow!("--cwd {dir}: {error}"),
    }
}

/// `--env KEY=VALUE` values as pairs; a key must be a name (no `=`, not empty) and
/// nothing may hold a NUL byte, which no environment can carry.
fn parse_env(given: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    given
        .iter()
        .map(|item| {
            let Some((key, value)) = item.split_once('=') else {
                bail!(
                    "--env {item}: give KEY=VALUE, such as --env OCIO=/mnt/farm/aces/config.ocio"
                );
            };
            if key.is_empty() || key.contains('\0') || value.contains('\0') {
                bail!("--env {item}: the name must not be empty, and neither may hold a NUL byte");
            }
            Ok((key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// The exit code a shell would give for how the program ended: its own code (3 stays 3),
/// 128+N when signal N killed it (read from the worker's reason, "killed by signal 9
/// (SIGKILL)", since the protocol carries no signal number), else 1 (a timeout, a cancel,
/// a lost worker).
pub fn program_exit_code(failure: &buildcat_proto::Failure) -> u8 {
    if let Some(code) = failure.exit_code {
        return u8::try_from(code & 0xff)
            .ok()
            .filter(|code| *code != 0)
            .unwrap_or(1);
    }
    let signal = failure
        .reason
        .split_once("killed by signal ")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse::<u8>().ok())
        .filter(|signal| (1..128).contains(signal));
    signal.map_or(1, |signal| 128 + signal)
}

/// Prints how a job ended and picks the exit code: why each task that did not finish did
/// not.
pub async fn report_end(client: &Client, status: &JobStatus) -> anyhow::Result<ExitCode> {
    let job = &status.job;
    match job.state {
        JobState::Finished => Ok(ExitCode::SUCCESS),
        JobState::Canceled => bail!("job {} was canceled", job.number),
        state => {
            let reasons = ended_badly(client, status).await;
            bail!("job {} {state}: {}", job.number, reasons.join("; "))
        }
    }
}

/// Why the job's failed tasks failed, `42.3: reason (exit code 3)` each (without the task
/// for a job of one task), the first [`REASONS_SHOWN`] of them: each task's record is asked
/// for, since it holds the exit code the job's summary leaves out.
pub async fn ended_badly(client: &Client, status: &JobStatus) -> Vec<String> {
    let number = status.job.number;
    let failed: Vec<_> = status
        .tasks
        .iter()
        .filter(|task| task.state == TaskState::Failed)
        .collect();
    let mut reasons = Vec::new();
    for task in failed.iter().take(REASONS_SHOWN) {
        let record = client.task(TaskId::new(status.job.id, task.index)).await;
        let reason = match record.ok().and_then(|record| record.failure) {
            Some(failure) => failure.to_string(),
            None => task
                .reason
                .clone()
                .unwrap_or_else(|| "no reason recorded".to_owned()),
        };
        reasons.push(if status.tasks.len() == 1 {
            reason
        } else {
            format!("{number}.{}: {reason}", task.index)
        });
    }
    if failed.len() > REASONS_SHOWN {
        reasons.push(format!(
            "{} more failed tasks (`buildcat status {number}` lists them)",
            failed.len() - REASONS_SHOWN
        ));
    }
    if reasons.is_empty() {
        reasons.push("no task failed, some were canceled".to_owned());
    }
    reasons
}

/// `buildcat logs JOB[.TASK] [--follow] [--from BYTES]`: the task's output a page at a
/// time, with a line in place of any part the server dropped; stderr lines on stderr.
pub async fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let task = parse_task(&args.task)?;
    let client = args.connection.connect().await?;
    let print = &mut |page: &LogPage| write_page(page, Dropped::OnStdout, Streams::AsPrinted);
    if args.follow {
        crate::watch::follow_output(&client, task, args.from, print).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut from = args.from;
    loop {
        let page = client.log_page(task, from).await?;
        print(&page)?;
        if !page.more || page.next <= from {
            return Ok(ExitCode::SUCCESS);
        }
        from = page.next;
    }
}

/// Where [`write_page`] puts the line that says output was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dropped {
    /// On stdout, in place (`logs`, whose stdout is the log).
    OnStdout,
    /// On stderr (`run --wait`, whose stdout is the program's).
    OnStderr,
}

/// Where [`write_page`] puts the lines the program wrote to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Streams {
    /// Each line on the stream the program wrote it to.
    AsPrinted,
    /// Everything on stderr (`run --json --wait`, whose stdout is the JSON alone).
    AllOnStderr,
}

/// Prints a page of output, after a line saying what was dropped before it: the lines the
/// program wrote to stderr on stderr, the others on stdout (issue 14). A reader that stops
/// reading (`logs JOB | head`) ends the command quietly, as `outln!` does; the job goes on.
fn write_page(page: &LogPage, dropped: Dropped, streams: Streams) -> std::io::Result<()> {
    let written = (|| {
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        if let Some(gap) = page.dropped {
            match dropped {
                Dropped::OnStdout => writeln!(out, "{}", dropped_line(gap))?,
                Dropped::OnStderr => writeln!(err, "{}", dropped_line(gap))?,
            }
        }
        for (line, from_stderr) in page.lines_with_streams() {
            if from_stderr || streams == Streams::AllOnStderr {
                // What went to stdout before it shows first, as the program printed it.
                out.flush()?;
                writeln!(err, "{line}")?;
            } else {
                writeln!(out, "{line}")?;
            }
        }
        out.flush()?;
        err.flush()
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

/// A task's result as JSON, decoded where the kind is known.
fn result_json(task: &TaskStatus) -> Value {
    let Some(bytes) = &task.result else {
        return Value::Null;
    };
    let decoded = match task.kind.as_str() {
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

/// How an attempt ended, in a word, and the failure's reason when it failed.
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

/// One task with its attempts and result, as `status JOB.TASK --json` prints it (the view
/// the HTTP API serves too).
pub fn task_json(task: &TaskStatus) -> Value {
    serde_json::to_value(TaskStatusView::from(task)).unwrap_or(Value::Null)
}

/// `buildcat status JOB` (the job and a table of its tasks) or `buildcat status JOB.TASK`
/// (one task's attempts, reason and result).
pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let target = parse_task(&args.target)?;
    let client = args.connection.connect().await?;
    if target.index.is_some() {
        let task = client.task(target).await?;
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&task_json(&task))?);
        } else {
            // A deferred task waits for its job's dependencies: name them. A queued one may
            // wait because no worker takes it: say why.
            let (waits, reason) = match task.state {
                TaskState::Deferred => {
                    let job = client.job(JobRef::Id(task.id.job)).await?;
                    (waiting_for(&client, &job.job.options.after).await, None)
                }
                TaskState::Queued => {
                    let job = client.job(JobRef::Id(task.id.job)).await?;
                    (Vec::new(), wait_reason(&client, &job).await)
                }
                _ => (Vec::new(), None),
            };
            print_task(&task, &waits, reason.as_deref());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let status = client.job(target.job).await?;
    if args.json {
        // The same JSON as the HTTP API's: the wait reason, worked out here from `info`, is
        // for people (scripts read `info --json`'s workers and `unserved`).
        let view = JobStatusView::from(&status);
        outln!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        let after = waiting_for(&client, &status.job.options.after).await;
        let waits = wait_reason(&client, &status).await;
        print_job(&status, &after, waits.as_deref(), Timestamp::now());
    }
    Ok(ExitCode::SUCCESS)
}

/// Why the job's queued tasks wait, when no connected worker takes them now (none can, or
/// every one that can is quarantined or paused); `None` while one can, or nothing is
/// queued, or the job or its queue is paused (which the state line says).
async fn wait_reason(client: &Client, status: &JobStatus) -> Option<String> {
    let job = &status.job;
    let queued = status
        .tasks
        .iter()
        .any(|task| task.state == TaskState::Queued);
    if !queued || job.paused {
        return None;
    }
    let info = client.info().await.ok()?;
    if info
        .queues
        .iter()
        .any(|queue| queue.name == job.queue && queue.paused)
    {
        return None;
    }
    crate::unserved::waits(&info, &job.queue, Some(&job.kind), &job.options.gpus)
}

/// The dependencies as people name them, with where each is: `job 41 (started)`,
/// `task 40.2 (queued)`; one that is gone is named by its id.
async fn waiting_for(client: &Client, after: &[Dependency]) -> Vec<String> {
    let mut named = Vec::with_capacity(after.len());
    for dependency in after {
        let (job, index) = match dependency {
            Dependency::Job(job) => (*job, None),
            Dependency::Task(task) => (task.job, Some(task.index)),
        };
        let text = match client.job(JobRef::Id(job)).await {
            Ok(status) => match index {
                None => format!("job {} ({})", status.job.number, status.job.state),
                Some(index) => {
                    let state = status
                        .tasks
                        .iter()
                        .find(|task| task.index == index)
                        .map_or_else(|| "unknown".to_owned(), |task| task.state.to_string());
                    format!("task {}.{index} ({state})", status.job.number)
                }
            },
            Err(_) => format!("{dependency} (no longer on the server)"),
        };
        named.push(text);
    }
    named
}

/// A job's header and its tasks as a table.
fn print_job(status: &JobStatus, after: &[String], waits: Option<&str>, now: Timestamp) {
    let job = &status.job;
    outln!("job {}: {}", job.number, job.name);
    outln!("  id: {}", job.id);
    outln!("  submitter: {}", job.submitter);
    let held = if job.paused && job.state != JobState::Paused {
        " (paused: queued tasks wait)"
    } else {
        ""
    };
    outln!("  state: {}{held}", job.state);
    outln!(
        "  queue: {}  priority: {}  kind: {}",
        job.queue,
        job.options.priority,
        job.kind
    );
    if !job.runs.is_empty() {
        outln!("  runs: {}", job.runs);
    }
    if !job.options.gpus.is_none() {
        outln!("  needs: {} per task", job.options.gpus);
    }
    if !after.is_empty() {
        let label = if job.tasks.deferred > 0 {
            "waits for"
        } else {
            "after"
        };
        outln!("  {label}: {}", after.join(", "));
    }
    outln!("  created: {}", rfc3339(job.created_at));
    if let Some(ended) = job.ended_at {
        outln!(
            "  ended: {} (after {})",
            rfc3339(ended),
            human(ended.since(job.created_at))
        );
    }
    outln!("  tasks: {}", counts_text(job));
    if let Some(reason) = waits {
        outln!("  waiting: {reason}");
    }
    outln!();
    let rows: Vec<[String; 6]> = status
        .tasks
        .iter()
        .map(|task| {
            let duration = match (task.started_at, task.ended_at) {
                (Some(start), Some(end)) => human(end.since(start)),
                (Some(start), None) if task.state == TaskState::Started => human(now.since(start)),
                _ => "-".to_owned(),
            };
            let state = match &task.progress {
                Some(progress) if task.state == TaskState::Started => {
                    format!(
                        "started {}",
                        progress_text(progress, task.frames.as_deref())
                    )
                }
                _ => task.state.to_string(),
            };
            [
                format!("{}.{}", job.number, task.index),
                task.frames.clone().unwrap_or_else(|| "-".to_owned()),
                state,
                task.worker.clone().unwrap_or_else(|| "-".to_owned()),
                duration,
                task.attempts.to_string(),
            ]
        })
        .collect();
    let titles = ["task", "frames", "state", "worker", "duration", "attempts"];
    print_table(&titles, &rows);
    for task in &status.tasks {
        if let (TaskState::Failed | TaskState::Canceled, Some(reason)) = (task.state, &task.reason)
        {
            outln!("{}.{} {}: {reason}", job.number, task.index, task.state);
        }
    }
}

/// A running task's progress as `status` shows it: `3/10`, then `, frame 4 at 45%` where
/// the tool says how far the frame being rendered is. The frame is named by its number,
/// found in the task's `frames` (the one after those done); where that cannot be read, by
/// its place (`frame 4 of 10`).
pub(crate) fn progress_text(progress: &TaskProgress, frames: Option<&str>) -> String {
    let counted = format!("{}/{}", progress.done, progress.total);
    let Some(percent) = progress.frame_percent else {
        return counted;
    };
    let current = frames
        .and_then(|frames| frames.parse::<FrameSpec>().ok())
        .and_then(|spec| {
            let index = usize::try_from(progress.done).ok()?;
            spec.ranges.iter().flat_map(FrameRange::frames).nth(index)
        });
    match current {
        Some(frame) => format!("{counted}, frame {frame} at {percent}%"),
        None => format!(
            "{counted}, frame {} of {} at {percent}%",
            progress.done.saturating_add(1),
            progress.total
        ),
    }
}

/// `4 tasks: 1 started, 2 finished, 1 queued`, the states in the order listings use.
fn counts_text(job: &JobSummary) -> String {
    let parts: Vec<String> = TaskState::ALL
        .into_iter()
        .filter_map(|state| {
            let count = job.tasks.count(state);
            (count > 0).then(|| format!("{count} {state}"))
        })
        .collect();
    format!("{} ({})", job.tasks.total, parts.join(", "))
}

/// Prints rows under titles, each column as wide as its widest cell, the last one unpadded.
fn print_table<const N: usize>(titles: &[&str; N], rows: &[[String; N]]) {
    let mut widths = titles.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (column, cell) in cells.iter().enumerate() {
            if column + 1 == N {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[column]));
            }
        }
        outln!("{}", text.trim_end());
    };
    line(titles.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// One task: its state, attempts (worker and outcome of each), reason, output tail, result.
fn print_task(task: &TaskStatus, waits: &[String], reason: Option<&str>) {
    outln!("task {}", task.label());
    outln!("  job: {}  kind: {}", task.id.job, task.kind);
    if let Some(frames) = &task.frames {
        outln!("  frames: {frames}");
    }
    outln!("  state: {}", task.state);
    if !waits.is_empty() {
        outln!("  waits for: {}", waits.join(", "));
    }
    if let Some(reason) = reason {
        outln!("  waiting: {reason}");
    }
    if let Some(progress) = &task.progress {
        outln!(
            "  progress: {}",
            progress_text(progress, task.frames.as_deref())
        );
        for output in &progress.outputs {
            outln!("    wrote {output}");
        }
    }
    outln!(
        "  {}",
        attempts_line(task.state, task.max_attempts, &task.attempts)
    );
    for attempt in &task.attempts {
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
    if let Some(ended) = task.ended_at {
        outln!("  ended: {}", rfc3339(ended));
    }
    if let Some(failure) = &task.failure {
        outln!("  reason: {failure}");
        if let Some(fault) = &failure.gpu_fault {
            outln!("  GPU fault: {fault}");
            outln!(
                "    (counts toward the worker's quarantine: its GPU, not the job, may be at fault)"
            );
        }
        if !failure.output_tail.is_empty() {
            outln!("  last output:");
            for line in &failure.output_tail {
                outln!("    {line}");
            }
        }
    }
    let result = result_json(task);
    if !result.is_null() {
        outln!("  result: {result}");
    }
}

/// The attempts line of `status TASK`: how many attempts there were, how many count toward
/// the task's limit (only failures it reports, its finished end and the one running: a
/// requeue raises the limit to one more than it has failed), the worker's number of the
/// attempt running or to run next, and each kind that did not count, read from the
/// attempts' own ends (tester finding 7: two canceled attempts read "2 more not counted:
/// worker lost or stopped").
fn attempts_line(state: TaskState, max_attempts: u32, attempts: &[Attempt]) -> String {
    let Some(last) = attempts.last() else {
        return format!("attempts: none yet (at most {max_attempts})");
    };
    let running = last.outcome.is_none() && state == TaskState::Started;
    let mut counted = 0;
    let (mut canceled, mut lost, mut stopped, mut requeued) = (0, 0, 0, 0);
    for (place, attempt) in attempts.iter().enumerate() {
        let is_last = place + 1 == attempts.len();
        match &attempt.outcome {
            Some(AttemptOutcome::Failed(_)) => counted += 1,
            // The end it was asked for; once requeued, the next one is.
            Some(AttemptOutcome::Finished) if is_last && state == TaskState::Finished => {
                counted += 1;
            }
            Some(AttemptOutcome::Finished) => requeued += 1,
            Some(AttemptOutcome::Canceled) => canceled += 1,
            Some(AttemptOutcome::WorkerLost) => lost += 1,
            Some(AttemptOutcome::Interrupted) => stopped += 1,
            None if is_last && running => counted += 1,
            // Ended without a word (a record from before outcomes were kept).
            None => {}
        }
    }
    let mut line = format!(
        "attempts: {}; {counted} of {max_attempts} counted toward its limit",
        attempts.len()
    );
    let pending = matches!(
        state,
        TaskState::Queued | TaskState::Deferred | TaskState::Paused
    );
    if running {
        line.push_str(&format!("; #{} running", last.number));
    } else if pending {
        line.push_str(&format!(
            "; #{} runs next, as {} of {max_attempts}",
            last.number.saturating_add(1),
            counted + 1
        ));
    }
    let not_counted: Vec<String> = [
        (canceled, "canceled"),
        (requeued, "finished, then requeued"),
        (lost, "worker lost"),
        (stopped, "stopped by its worker shutting down"),
    ]
    .into_iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, what)| format!("{count} {what}"))
    .collect();
    if !not_counted.is_empty() {
        line.push_str(&format!(" (not counted: {})", not_counted.join(", ")));
    }
    line
}

/// `buildcat jobs`.
pub async fn list(args: JobsArgs) -> anyhow::Result<ExitCode> {
    if args.limit == 0 {
        // The server reads 0 as its default: refused rather than listing what was not asked.
        bail!("--limit must be at least 1 (--all lists as many as fit in one reply)");
    }
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
        user: args.user,
        limit: if args.all { ALL_JOBS } else { args.limit },
    };
    let limit = query.limit;
    let listing = client.jobs(query).await?;
    let jobs = listing.jobs;
    if args.json {
        let views: Vec<JobView> = jobs.iter().map(JobView::from).collect();
        let listed = json!({ "jobs": views, "more": listing.more });
        outln!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(ExitCode::SUCCESS);
    }
    // Said on stderr, so the table stays a table; only when the server cut the list short
    // of the limit asked for (reaching the limit itself is what was asked).
    if listing.more && (jobs.len() as u64) < u64::from(limit) {
        eprintln!(
            "(the server listed {} jobs, as many as fit in one reply; narrow the list with \
             --queue, --state or --user to see others)",
            jobs.len()
        );
    } else if listing.more && !args.all {
        eprintln!(
            "(the newest {} jobs; --all or --limit N lists more)",
            jobs.len()
        );
    }
    if jobs.is_empty() {
        outln!("(no jobs)");
        return Ok(ExitCode::SUCCESS);
    }
    let now = Timestamp::now();
    let rows: Vec<[String; 6]> = jobs
        .iter()
        .map(|job| {
            [
                job.number.to_string(),
                job.name.clone(),
                job.submitter.clone(),
                job.state.to_string(),
                tasks_bar(job),
                human(now.since(job.created_at)),
            ]
        })
        .collect();
    print_table(
        &["job", "name", "submitter", "state", "tasks", "age"],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// `[####------] 4/10`: tasks finished out of tasks in all.
fn tasks_bar(job: &JobSummary) -> String {
    let total = job.tasks.total;
    let done = job.tasks.finished;
    let filled = done
        .saturating_mul(BAR_CELLS as u64)
        .checked_div(total)
        .map_or(0, |cells| usize::try_from(cells).unwrap_or(BAR_CELLS));
    format!(
        "[{}{}] {done}/{total}",
        "#".repeat(filled),
        "-".repeat(BAR_CELLS.saturating_sub(filled))
    )
}

/// `buildcat worker-enable NAME`.
pub async fn worker_enable(args: WorkerEnableArgs) -> anyhow::Result<ExitCode> {
    let client = args.connection.connect().await?;
    // Each name on its own, as `worker-pause` does: one the server refuses is said and
    // the others are still enabled; the exit code says whether any was refused.
    let mut refused = false;
    for name in &args.names {
        match client.enable_worker(name).await {
            Ok(()) => outln!("{name} takes work again"),
            Err(error) => {
                refused = true;
                eprintln!("error: could not enable worker {name}: {error:#}");
            }
        }
    }
    Ok(if refused {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One reading of a queue's length.
struct Sample {
    /// When it was read.
    at: Instant,
    /// Tasks waiting or running.
    length: u64,
}

/// The drain rate in tasks per second over the samples kept, if it can be told.
fn drain_rate(samples: &VecDeque<Sample>) -> Option<f64> {
    let (first, last) = (samples.front()?, samples.back()?);
    let elapsed = last.at.duration_since(first.at).as_secs_f64();
    if elapsed <= 0.0 {
        return None;
    }
    Some((first.length as f64 - last.length as f64) / elapsed)
}

/// One line of `eta`: the queue's length, its drain rate and when it will be empty.
fn eta_line(queue: &str, length: u64, rate: Option<f64>) -> String {
    match rate {
        _ if length == 0 => format!("{queue}: empty"),
        None => format!("{queue}: {length} tasks, measuring the drain rate..."),
        Some(rate) if rate <= 0.0 => {
            format!("{queue}: {length} tasks, not draining ({rate:.2} tasks/s)")
        }
        Some(rate) => {
            let eta = Duration::from_secs_f64(length as f64 / rate);
            let at = Timestamp::now().plus(eta);
            format!(
                "{queue}: {length} tasks, draining {rate:.2} tasks/s, empty in {} (at {})",
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
    crate::unserved::warn_unknown_queue(&client, &args.queue).await;
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
            .map_or(0, |queue| {
                let tasks = &queue.tasks;
                tasks.queued + tasks.started + tasks.deferred + tasks.paused
            });
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

    /// Guards issue 19's progress within a frame: the frame after those done is named by
    /// its number where the task's frames read, by its place where they do not.
    #[test]
    fn progress_names_the_frame_being_rendered() {
        let progress = |done, frame_percent| TaskProgress {
            done,
            total: 10,
            outputs: Vec::new(),
            frame_percent,
        };
        let cases = [
            (progress(3, None), Some("1-10"), "3/10"),
            (progress(3, Some(45)), Some("1-10"), "3/10, frame 4 at 45%"),
            (
                progress(2, Some(0)),
                Some("10-100:10"),
                "2/10, frame 30 at 0%",
            ),
            (progress(1, Some(7)), Some("5,9-12"), "1/10, frame 9 at 7%"),
            (progress(3, Some(45)), None, "3/10, frame 4 of 10 at 45%"),
            (
                progress(3, Some(45)),
                Some("1-2"),
                "3/10, frame 4 of 10 at 45%",
            ),
        ];
        for (progress, frames, expected) in cases {
            assert_eq!(progress_text(&progress, frames), expected, "{frames:?}");
        }
    }

    #[test]
    fn a_program_ends_the_command_as_it_ended() {
        let failure = |reason: &str, exit_code| buildcat_proto::Failure {
            reason: reason.to_owned(),
            exit_code,
            output_tail: Vec::new(),
            gpu_fault: None,
        };
        assert_eq!(program_exit_code(&failure("`x` failed", Some(3))), 3);
        assert_eq!(program_exit_code(&failure("`x` failed", Some(256))), 1);
        assert_eq!(
            program_exit_code(&failure("`x` was killed by signal 9 (SIGKILL)", None)),
            137
        );
        assert_eq!(
            program_exit_code(&failure("`x` timed out after 1s", None)),
            1
        );
    }

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
            line.starts_with("default: 60 tasks, draining 2.00 tasks/s, empty in 30.0s"),
            "{line}"
        );
        assert_eq!(eta_line("default", 0, None), "default: empty");
    }

    /// Guards tester finding 7: the attempts line counts and names what did not count
    /// toward the limit from the attempts' ends, and numbers the next attempt as the
    /// worker will.
    #[test]
    fn attempts_name_what_did_not_count() {
        use buildcat_proto::Failure;
        let attempt = |number: u32, outcome: Option<AttemptOutcome>| Attempt {
            number,
            worker: "w".to_owned(),
            started_at: Timestamp(1),
            ended_at: outcome.is_some().then_some(Timestamp(2)),
            outcome,
        };
        let failed = || Some(AttemptOutcome::Failed(Failure::new("exit 1")));
        let check = |state, max, attempts: &[Attempt], expected: &str| {
            assert_eq!(attempts_line(state, max, attempts), expected);
        };
        check(TaskState::Queued, 3, &[], "attempts: none yet (at most 3)");
        // Canceled, requeued, canceled again: neither counts, both are said as canceled.
        check(
            TaskState::Canceled,
            1,
            &[
                attempt(1, Some(AttemptOutcome::Canceled)),
                attempt(2, Some(AttemptOutcome::Canceled)),
            ],
            "attempts: 2; 0 of 1 counted toward its limit (not counted: 2 canceled)",
        );
        // `requeue --all` of a finished task, finished again.
        check(
            TaskState::Finished,
            1,
            &[
                attempt(1, Some(AttemptOutcome::Finished)),
                attempt(2, Some(AttemptOutcome::Finished)),
            ],
            "attempts: 2; 1 of 1 counted toward its limit (not counted: 1 finished, then requeued)",
        );
        // Stopped by its worker and back in line: the next is the worker's #2.
        check(
            TaskState::Queued,
            1,
            &[attempt(1, Some(AttemptOutcome::Interrupted))],
            "attempts: 1; 0 of 1 counted toward its limit; #2 runs next, as 1 of 1 (not counted: 1 stopped by its worker shutting down)",
        );
        check(
            TaskState::Started,
            3,
            &[
                attempt(1, Some(AttemptOutcome::WorkerLost)),
                attempt(2, failed()),
                attempt(3, None),
            ],
            "attempts: 3; 2 of 3 counted toward its limit; #3 running (not counted: 1 worker lost)",
        );
        check(
            TaskState::Failed,
            2,
            &[attempt(1, failed()), attempt(2, failed())],
            "attempts: 2; 2 of 2 counted toward its limit",
        );
    }

    #[test]
    fn handles_are_numbers_tasks_or_full_ids() {
        assert_eq!(parse_job("42").unwrap(), JobRef::Number(42));
        let task = parse_task("42.3").unwrap();
        assert_eq!((task.job, task.index), (JobRef::Number(42), Some(3)));
        let error = parse_job("0190f0c0").unwrap_err().to_string();
        assert!(
            error.starts_with("`0190f0c0` is not a job number or a job id: give the job's number"),
            "{error}"
        );
        // Tester finding 13: a few letters are no job number or id, not "part of an id".
        let error = parse_job("abc").unwrap_err().to_string();
        assert!(
            error.starts_with("`abc` is not a job number or a job id")
                && !error.contains("only part"),
            "{error}"
        );
        let error = parse_task("abc.2").unwrap_err().to_string();
        assert!(error.contains("is not a job number or a job id"), "{error}");
        let error = parse_task("42.x").unwrap_err().to_string();
        assert!(error.contains("`42.x` names no task"), "{error}");
    }

    #[test]
    fn names_and_command_lines_read_as_typed() {
        assert_eq!(file_name("scenes/shot.blend"), "shot.blend");
        assert_eq!(file_name("render.sh"), "render.sh");
        assert_eq!(
            command_line(["./render.sh", "--out", "a b", "it's"]),
            r"./render.sh --out 'a b' 'it'\''s'"
        );
    }

    #[test]
    fn the_tasks_bar_counts_finished_tasks() {
        let status = buildcat_proto::JobSummary {
            id: "0190f0c0-5d1e-7a3b-9c4d-2e5f6a7b8c9d".parse().unwrap(),
            number: 1,
            name: String::new(),
            queue: "default".to_owned(),
            kind: "k".to_owned(),
            submitter: "a@b".to_owned(),
            runs: String::new(),
            options: JobOptions::default(),
            state: JobState::Running,
            paused: false,
            created_at: Timestamp(0),
            ended_at: None,
            tasks: buildcat_proto::TaskCounts {
                total: 4,
                finished: 1,
                started: 1,
                queued: 2,
                ..Default::default()
            },
        };
        assert_eq!(tasks_bar(&status), "[##--------] 1/4");
        assert_eq!(counts_text(&status), "4 (2 queued, 1 started, 1 finished)");
    }
}
