//! Watching jobs through server restarts.
//!
//! The server keeps every job on disk, so `run --wait`, the render commands' `--wait`,
//! `logs --follow`, `info --interval`, `eta` and the info commands carry on when it
//! restarts: a request that fails because the connection was lost is made again on a new
//! connection ([`Client::reconnect`], which retries with backoff for up to ten minutes by
//! default). Each loss is said once on stderr, and so is the reconnection.
//!
//! [`follow_jobs`] is the progress bar of `wait` and the submitting commands' `--wait`.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use buildcat_client::{Client, ClientError, ErrorKind};
use buildcat_proto::{
    JobEvent, JobId, JobRef, JobState, JobStatus, LogPage, TaskProgress, TaskRef, TaskState,
    TaskStatus,
};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

/// Events a follow or watch may have waiting to be read before its stream is ended as
/// lagged (and asked for again): a few seconds of a chatty job's output batches, while
/// holding at most a few megabytes.
pub const EVENT_CAPACITY: usize = 1024;

/// After a request failed with `error`: when a new connection may help, says so through
/// `say`, reconnects (with backoff, up to the client's limit) and says so again; when the
/// stream only lagged, returns at once so it is asked for again; otherwise returns the
/// error.
pub async fn recover(
    client: &Client,
    error: ClientError,
    say: &dyn Fn(&str),
) -> anyhow::Result<()> {
    if error.kind() == ErrorKind::Lagged {
        // Events came faster than this program read them (a slow terminal): the stream
        // ended, the connection did not; asking again carries on.
        tracing::debug!(server = %client.addr(), "event stream lagged; asking again");
        return Ok(());
    }
    if !error.is_transient() {
        return Err(error.into());
    }
    tracing::debug!(server = %client.addr(), error = %error, "connection lost");
    say(&format!(
        "lost the server at {}; reconnecting",
        client.addr()
    ));
    client.reconnect().await?;
    say(&format!("reconnected to the server at {}", client.addr()));
    Ok(())
}

/// Says something on stderr; the default for [`recover`].
pub fn to_stderr(text: &str) {
    eprintln!("{text}");
}

/// Waits until `job` has ended and returns its final record, through server restarts.
pub async fn wait_job(client: &Client, job: JobRef) -> anyhow::Result<JobStatus> {
    loop {
        match client.wait_job(job).await {
            Ok(status) => return Ok(status),
            Err(error) => recover(client, error, &to_stderr).await?,
        }
    }
}

/// `job`'s record now, through server restarts.
pub async fn job_record(client: &Client, job: JobRef) -> anyhow::Result<JobStatus> {
    loop {
        match client.job(job).await {
            Ok(status) => return Ok(status),
            Err(error) => recover(client, error, &to_stderr).await?,
        }
    }
}

/// `task`'s record now (attempts, result), through server restarts.
pub async fn task_record(client: &Client, task: TaskRef) -> anyhow::Result<TaskStatus> {
    loop {
        match client.task(task).await {
            Ok(status) => return Ok(status),
            Err(error) => recover(client, error, &to_stderr).await?,
        }
    }
}

/// Passes `task`'s output from byte offset `from` to `print`, a page at a time, until the
/// task has ended, through server restarts.
///
/// Every page says where it ends; after a lost connection (or a stream that lagged) the
/// output is followed again from there, so nothing is printed twice or skipped. The server
/// keeps output on disk, so this holds across its restarts too.
pub async fn follow_output(
    client: &Client,
    task: TaskRef,
    from: u64,
    print: &mut dyn FnMut(&LogPage) -> io::Result<()>,
) -> anyhow::Result<()> {
    // Where the output not yet printed starts.
    let mut next = from;
    loop {
        let (events, mut received) = mpsc::channel(EVENT_CAPACITY);
        let follow = client.follow_logs(task, next, events);
        tokio::pin!(follow);
        let mut show = |event: JobEvent| -> io::Result<()> {
            let JobEvent::Log { page, .. } = event else {
                return Ok(());
            };
            // A page the server sent before the connection dropped may come again.
            if page.next <= next {
                return Ok(());
            }
            next = page.next;
            print(&page)
        };
        let result = loop {
            tokio::select! {
                event = received.recv() => match event {
                    Some(event) => show(event)?,
                    None => break follow.await,
                },
                result = &mut follow => break result,
            }
        };
        while let Ok(event) = received.try_recv() {
            show(event)?;
        }
        match result {
            Ok(_) => return Ok(()),
            Err(error) => recover(client, error, &to_stderr).await?,
        }
    }
}

/// How often the bar redraws by itself, so its elapsed time keeps counting while a long
/// frame renders and no event comes.
const TICK: Duration = Duration::from_millis(250);

/// A bar on stderr when it is a terminal, hidden otherwise; it ticks by itself (the elapsed
/// time advances between events), and its message is set to the running tasks' progress.
pub fn bar(len: u64, unit: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} [{{elapsed_precise}}] {{msg}}");
    let style =
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(TICK);
    bar
}

/// Where the jobs being followed are: each task's state, and the jobs that have ended.
struct Followed {
    /// Each task's state, by job and index: the bar counts those ended.
    tasks: BTreeMap<(JobId, u32), TaskState>,
    /// The final records of the jobs that have ended.
    ended: BTreeMap<JobId, JobStatus>,
    /// Each job's number, to name running tasks as people do (`42.3`).
    numbers: BTreeMap<JobId, u64>,
    /// The progress running tasks last reported (frames done of their total), shown
    /// beside the bar; dropped when the task leaves `started`.
    progress: BTreeMap<(JobId, u32), TaskProgress>,
}

/// Running tasks whose progress the bar names; the rest are counted.
const PROGRESS_SHOWN: usize = 4;

impl Followed {
    /// Tasks that have ended, however.
    fn done(&self) -> u64 {
        self.tasks
            .values()
            .filter(|state| state.is_terminal())
            .count() as u64
    }

    /// The running tasks' own progress, `42.3 2/10` each (`42.3 2/10 (45%)` when the tool
    /// says how far the frame being rendered is), for the bar's message.
    fn running_progress(&self) -> String {
        let running = self
            .tasks
            .iter()
            .filter(|(_, state)| **state == TaskState::Started)
            .count();
        if running == 0 {
            return String::new();
        }
        let mut parts: Vec<String> = self
            .progress
            .iter()
            .take(PROGRESS_SHOWN)
            .map(|((job, index), progress)| {
                let number = self.numbers.get(job).copied().unwrap_or_default();
                let counted = format!("{number}.{index} {}/{}", progress.done, progress.total);
                match progress.frame_percent {
                    Some(percent) => format!("{counted} ({percent}%)"),
                    None => counted,
                }
            })
            .collect();
        if self.progress.len() > PROGRESS_SHOWN {
            parts.push(format!("+{} more", self.progress.len() - PROGRESS_SHOWN));
        }
        if parts.is_empty() {
            format!("{running} running")
        } else {
            format!("{running} running: {}", parts.join(", "))
        }
    }

    /// Takes in one event of the watch.
    fn apply(&mut self, event: JobEvent) {
        match event {
            JobEvent::Task { job, task } => {
                if !self.ended.contains_key(&job) {
                    if task.state != TaskState::Started {
                        self.progress.remove(&(job, task.index));
                    }
                    self.tasks.insert((job, task.index), task.state);
                }
            }
            JobEvent::Ended(status) => {
                for task in &status.tasks {
                    self.tasks.insert((status.job.id, task.index), task.state);
                    self.progress.remove(&(status.job.id, task.index));
                }
                self.ended.insert(status.job.id, status);
            }
            JobEvent::Progress { task, progress } => {
                let key = (task.job, task.index);
                if self.tasks.get(&key) == Some(&TaskState::Started) {
                    self.progress.insert(key, progress);
                }
            }
            JobEvent::Log { .. } => {}
        }
    }
}

/// What following does about a job no connected worker can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenUnserved {
    /// The command just submitted it: give up after [`crate::unserved::GRACE`], canceling
    /// it, so nothing is left queued that nobody runs.
    Cancel,
    /// The command attaches to jobs submitted earlier: say so once and keep waiting.
    Warn,
}

/// Follows jobs this command just submitted (see [`follow_jobs_with`]); a job no worker
/// can run is canceled after a short wait.
pub async fn follow_jobs(client: &Client, jobs: Vec<JobStatus>) -> anyhow::Result<ExitCode> {
    follow_jobs_with(client, jobs, WhenUnserved::Cancel).await
}

/// The reason the first of `jobs` that no worker can run is stuck, checked once after
/// [`crate::unserved::GRACE`]; never resolves when every job can run.
async fn first_unserved(
    client: &Client,
    jobs: &[(JobId, u64, String, String, buildcat_proto::GpuRequirement)],
) -> (JobId, u64, String) {
    tokio::time::sleep(crate::unserved::GRACE).await;
    for (id, number, queue, kind, _) in jobs {
        if let Some(reason) = crate::unserved::still_unserved(client, *id, queue, kind).await {
            return (*id, *number, reason);
        }
    }
    std::future::pending().await
}

/// Follows jobs (as their records were when asked) to their end with a bar of tasks done;
/// exits non-zero if any did not finish, saying why each task that failed did. Watches
/// again on a new connection after a server restart (the server sends the end of any job
/// that ended meanwhile). The bar ticks with the elapsed time while a task runs, and shows
/// the running tasks' own progress where they report it.
pub async fn follow_jobs_with(
    client: &Client,
    jobs: Vec<JobStatus>,
    unserved: WhenUnserved,
) -> anyhow::Result<ExitCode> {
    let pending: Vec<(JobId, u64, String, String, buildcat_proto::GpuRequirement)> = jobs
        .iter()
        .filter(|status| !status.job.state.is_terminal())
        .map(|status| {
            (
                status.job.id,
                status.job.number,
                status.job.queue.clone(),
                status.job.kind.clone(),
                status.job.options.gpus,
            )
        })
        .collect();
    // Said at once; given up on (or said again) after the grace. What was said is not
    // said again while it stays true.
    let mut said: Vec<Option<String>> = vec![None; pending.len()];
    if unserved == WhenUnserved::Cancel {
        for ((_, number, queue, kind, gpus), said) in pending.iter().zip(&mut said) {
            if let Ok(info) = client.info().await
                && let Some(reason) = crate::unserved::waits(&info, queue, Some(kind), gpus)
            {
                eprintln!("warning: job {number}: {reason}");
                *said = Some(reason);
            }
        }
    }
    let check = first_unserved(client, &pending);
    tokio::pin!(check);
    let mut checked = false;
    let mut followed = Followed {
        tasks: BTreeMap::new(),
        ended: BTreeMap::new(),
        numbers: BTreeMap::new(),
        progress: BTreeMap::new(),
    };
    let mut order = Vec::with_capacity(jobs.len());
    let mut seen = HashSet::new();
    for status in jobs {
        if !seen.insert(status.job.id) {
            continue;
        }
        order.push(status.job.id);
        followed.numbers.insert(status.job.id, status.job.number);
        for task in &status.tasks {
            followed
                .tasks
                .insert((status.job.id, task.index), task.state);
        }
        if status.job.state.is_terminal() {
            followed.ended.insert(status.job.id, status);
        }
    }
    let progress = bar(followed.tasks.len() as u64, "tasks");
    progress.set_position(followed.done());
    // A queued job whose every able worker is quarantined or paused is said (again when
    // that changes) rather than waited for silently.
    let say = |line: &str| progress.suspend(|| eprintln!("{line}"));
    let held = futures_util::future::join_all(pending.iter().zip(said).map(
        |((id, number, queue, kind, _), said)| {
            crate::unserved::tell_while_held(client, *id, *number, queue, kind, said, say)
        },
    ));
    tokio::pin!(held);
    loop {
        let remaining: Vec<JobRef> = order
            .iter()
            .filter(|id| !followed.ended.contains_key(id))
            .map(|id| JobRef::Id(*id))
            .collect();
        if remaining.is_empty() {
            break;
        }
        let (events, mut received) = mpsc::channel(EVENT_CAPACITY);
        let watch = client.watch(remaining, events);
        tokio::pin!(watch);
        let result = loop {
            tokio::select! {
                event = received.recv() => match event {
                    Some(event) => {
                        followed.apply(event);
                        // A task may add tasks to its job (a scene's own range).
                        progress.set_length(followed.tasks.len() as u64);
                        progress.set_position(followed.done());
                        progress.set_message(followed.running_progress());
                    }
                    None => break watch.await,
                },
                result = &mut watch => break result,
                _ = &mut held, if !pending.is_empty() => {}
                () = crate::stop::shutdown_signal() => {
                    progress.finish_and_clear();
                    let going: Vec<u64> = order
                        .iter()
                        .filter(|id| !followed.ended.contains_key(id))
                        .filter_map(|id| followed.numbers.get(id).copied())
                        .collect();
                    eprintln!("{}", crate::stop::still_running(&going));
                    return Ok(ExitCode::from(crate::stop::STOPPED_NOW));
                }
                (id, number, reason) = &mut check, if !checked => {
                    checked = true;
                    if followed.ended.contains_key(&id) {
                        continue;
                    }
                    match unserved {
                        WhenUnserved::Cancel => {
                            progress.finish_and_clear();
                            return Err(crate::unserved::give_up(client, id, number, &reason).await);
                        }
                        WhenUnserved::Warn => {
                            progress.suspend(|| eprintln!("warning: job {number}: {reason}"));
                        }
                    }
                }
            }
        };
        while let Ok(event) = received.try_recv() {
            followed.apply(event);
        }
        progress.set_position(followed.done());
        match result {
            Ok(()) => break,
            Err(error) => {
                let say = |text: &str| progress.suspend(|| eprintln!("{text}"));
                recover(client, error, &say).await?;
            }
        }
    }
    progress.finish_and_clear();
    let finished_tasks = followed
        .tasks
        .values()
        .filter(|state| **state == TaskState::Finished)
        .count();
    let mut failed = Vec::new();
    for id in &order {
        let Some(status) = followed.ended.get(id) else {
            continue;
        };
        match status.job.state {
            JobState::Finished => {}
            JobState::Canceled => failed.push(format!("job {} was canceled", status.job.number)),
            state => {
                let reasons = crate::jobs::ended_badly(client, status).await;
                failed.push(format!(
                    "job {} {state}: {}",
                    status.job.number,
                    reasons.join("; ")
                ));
            }
        }
    }
    eprintln!(
        "{} of {} job(s) finished, {finished_tasks} of {} task(s)",
        order.len() - failed.len(),
        order.len(),
        followed.tasks.len()
    );
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for line in &failed {
        eprintln!("error: {line}");
    }
    Ok(ExitCode::FAILURE)
}
