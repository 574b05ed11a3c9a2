//! One attempt of a task running in a tokio task of its own, so that the loop keeps
//! heartbeating meanwhile.
//!
//! The tokio task enforces two backstops for handlers that do not stop when asked: past the
//! task's deadline, and after a cancel, it waits the kill grace period and [`BACKSTOP_SLACK`]
//! more, then drops the handler's future (which kills any process group the process runner
//! started). Handlers that honour [`JobContext::deadline`] and [`JobContext::cancelled`],
//! as the process runner does, end well before.
//!
//! The loop may also halt a task itself ([`Halt`]): the tokio task is aborted, which drops
//! the handler's future and with it kills the process group at once (SIGKILL).
//!
//! A task has ended only once its processes have: a SIGKILL is delivered when the kernel
//! next schedules its target, which on a loaded machine can be well after `kill` returned,
//! and a dying process still holds its memory, files and GPU. So [`TaskRun::finished`]
//! resolves only when every process group the task's runs recorded has no live member left
//! (zombies run nothing and count as gone); the loop starts the next task on the slot only
//! then, so a slot never runs two tasks at once.

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use buildcat_proto::{Assignment, Completion, Failure, Outcome, TaskId};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span, error, info, warn};

use crate::context::JobContext;
use crate::gpu::SlotGpus;
use crate::leftovers::{GroupRecord, has_live_members};
use crate::output::TaskOutput;
use crate::preview::PreviewSlot;
use crate::registry::Registry;

/// How much longer than the deadline plus the kill grace a handler may run before it is
/// abandoned: time for the process runner to reap what it killed and return.
pub(crate) const BACKSTOP_SLACK: Duration = Duration::from_secs(3);

/// How long a task's killed processes may take to be gone before the slot goes on without
/// them: one still there this long after its SIGKILL is stuck in the kernel (uninterruptible
/// I/O, e.g. on a dead network mount) and runs none of the task's code any more, while a
/// slot that waited for it forever would leave the next task unrun.
const PROCESSES_GONE_LIMIT: Duration = Duration::from_secs(30);

/// The first pause between two looks at whether a task's killed processes are gone: most
/// are gone at the first look or within a millisecond or two.
const GONE_CHECK_FIRST: Duration = Duration::from_millis(1);

/// The longest pause between two such looks (each reads `/proc`), once the wait is long.
const GONE_CHECK_MAX: Duration = Duration::from_millis(50);

/// A task this loop is running. Dropping it aborts the tokio task that runs the handler
/// (and drops the handler's future, with whatever it owns).
#[derive(Debug)]
pub(crate) struct TaskRun {
    /// The task, to report it.
    pub(crate) id: TaskId,
    /// The task as people name it, `42.3`, for logs.
    pub(crate) label: String,
    /// The attempt the server assigned, to report it.
    pub(crate) attempt: u32,
    /// The task's kind, for logs.
    kind: String,
    /// What the handler logs and reports, on its way to the server.
    pub(crate) output: Arc<TaskOutput>,
    /// Cancelled to ask the handler to stop.
    cancel: CancellationToken,
    /// The tokio task running the handler; it yields the outcome.
    handler: JoinHandle<Outcome>,
    /// Why the loop halted the task, once it has: its tokio task is then aborted, and the outcome
    /// is [`Outcome::Interrupted`] unless the handler had already ended by itself.
    halted: Option<Halt>,
    /// The loop's record of its process groups, which hands over the groups of runs that
    /// ended, so the task counts as ended only once they are gone.
    groups: Arc<GroupRecord>,
    /// How the handler ended, once it has (its join handle must not be awaited again), with
    /// its process groups that still had to die and when the wait for them began.
    ended: Option<Stopping>,
}

/// A task whose handler has ended, waiting for its processes to be gone.
#[derive(Debug)]
struct Stopping {
    /// The task's outcome, reported once the processes are gone.
    outcome: Outcome,
    /// The groups (id, leader's start time) that had live processes at the last look.
    dying: Vec<(i32, u64)>,
    /// When the handler's end was seen, for [`PROCESSES_GONE_LIMIT`].
    since: Instant,
}

/// Why a loop stops a task itself, before its handler ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Halt {
    /// The worker is stopping now ([`ShutdownHandle::stop_now`](crate::ShutdownHandle)).
    Interrupted,
    /// The loop has been cut off from the server for longer than its lease: the server is
    /// about to hand the task to another worker, so this copy must not run on.
    LeaseExpired,
    /// The server gave this loop another task, so it no longer counts this one as this
    /// loop's (it was handed on while the loop was away); its result would be refused.
    Abandoned,
}

impl std::fmt::Display for Halt {
    /// The reason in the words the worker's log gives it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Halt::Interrupted => "the worker is stopping now",
            Halt::LeaseExpired => "no answer from the server within the lease",
            Halt::Abandoned => "the server handed the task to another worker",
        })
    }
}

/// One running task in the worker's count of them, for as long as this lives: it is held by
/// the tokio task that runs the handler, so the count drops the moment the handler ends or is dropped.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);

impl Counted {
    /// Counts one more running task in `running`.
    fn new(running: &Arc<AtomicUsize>) -> Self {
        running.fetch_add(1, Ordering::SeqCst);
        Counted(Arc::clone(running))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a task runs, besides its assignment.
#[derive(Debug, Clone)]
pub(crate) struct RunSettings {
    /// The worker's root.
    pub(crate) root: PathBuf,
    /// The worker loop's name.
    pub(crate) worker: String,
    /// The time processes get between SIGTERM and SIGKILL.
    pub(crate) kill_grace: Duration,
    /// The loop's record of its tasks' process groups.
    pub(crate) groups: Arc<GroupRecord>,
    /// The loop's lease: the task's processes die when the worker has been frozen this long.
    pub(crate) lease: Option<Duration>,
    /// The loop's previews of saved frames, on their way to the server.
    pub(crate) previews: Arc<PreviewSlot>,
    /// The slot's GPUs: what its tasks render on, and what a failure may blame.
    pub(crate) gpus: Arc<SlotGpus>,
}

impl TaskRun {
    /// Starts the handler for `assignment` in a tokio task of its own.
    pub(crate) fn start(
        assignment: Assignment,
        registry: Arc<Registry>,
        settings: RunSettings,
        running_tasks: &Arc<AtomicUsize>,
    ) -> Self {
        let label = assignment.label();
        let Assignment {
            task: id,
            number,
            name,
            frames,
            attempt,
            queue,
            kind,
            args,
            timeout_ms,
        } = assignment;
        info!(
            task = %label,
            job = %format_args!("{number} ({name})"),
            scene = %scene_of(&kind, &args).unwrap_or_else(|| "-".to_owned()),
            frames = %frames.as_deref().unwrap_or("-"),
            attempt,
            kind = %kind,
            queue = %queue,
            "task started"
        );
        let output = Arc::new(TaskOutput::default());
        let cancel = CancellationToken::new();
        let groups = Arc::clone(&settings.groups);
        // Groups of an earlier task of this slot were waited for when it ended.
        drop(groups.take_ended());
        let context = JobContext::new(id, attempt, queue, settings.root, settings.worker)
            .named(label.clone(), name)
            .for_loop(
                Arc::clone(&output),
                cancel.clone(),
                timeout_ms.map(Duration::from_millis),
                settings.kill_grace,
                settings.groups,
            )
            .with_lease(settings.lease)
            .with_previews(settings.previews)
            .with_slot_gpus(settings.gpus);
        let counted = Counted::new(running_tasks);
        let running = run(registry, kind.clone(), args, context);
        let handler = tokio::spawn(
            async move {
                let _counted = counted;
                running.await
            }
            .instrument(Span::current()),
        );
        TaskRun {
            id,
            label,
            attempt,
            kind,
            output,
            cancel,
            handler,
            halted: None,
            groups,
            ended: None,
        }
    }

    /// Asks the handler to stop; the task is then reported as canceled.
    pub(crate) fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Stops the task at once: aborts its tokio task, which drops the handler's future and kills
    /// its process group (SIGKILL). [`finished`](TaskRun::finished) then resolves as soon
    /// as the future is dropped. The first reason given is kept.
    pub(crate) fn halt(&mut self, why: Halt) {
        if self.halted.is_none() {
            warn!(task = %self.label, attempt = self.attempt, reason = %why, "stopping the task now");
            self.halted = Some(why);
        }
        self.handler.abort();
    }

    /// Why the loop halted the task, if it did.
    pub(crate) fn halted(&self) -> Option<Halt> {
        self.halted
    }

    /// Waits for the task to end, its processes gone; cancel-safe, so it can sit in a
    /// `select!`.
    pub(crate) async fn finished(&mut self) -> Completion {
        let ended = match &mut self.ended {
            Some(ended) => ended,
            None => {
                let outcome = self.handler_end().await;
                self.ended.insert(Stopping {
                    outcome,
                    dying: self.groups.take_ended(),
                    since: Instant::now(),
                })
            }
        };
        wait_gone(ended, &self.label).await;
        Completion {
            task: self.id,
            attempt: self.attempt,
            outcome: ended.outcome.clone(),
        }
    }

    /// Waits for the handler's tokio task to end (returned, halted, or failed), once.
    async fn handler_end(&mut self) -> Outcome {
        match (&mut self.handler).await {
            // A handler that ended before the halt took effect reports how it ended.
            Ok(outcome) => outcome,
            Err(join_error) if join_error.is_cancelled() && self.halted.is_some() => {
                let reason = self.halted.map(|why| why.to_string()).unwrap_or_default();
                info!(task = %self.label, kind = %self.kind, reason = %reason, "task stopped");
                Outcome::Interrupted
            }
            Err(join_error) => {
                let reason = if join_error.is_panic() {
                    format!(
                        "the handler panicked: {}",
                        panic_message(join_error.into_panic())
                    )
                } else {
                    "the tokio task running the handler was canceled".to_owned()
                };
                error!(task = %self.label, kind = %self.kind, reason = %reason, "task failed");
                Outcome::Failed(Failure::new(reason))
            }
        }
    }
}

/// Waits until the ended task's process groups have no live member, or
/// [`PROCESSES_GONE_LIMIT`] after its handler ended; cancel-safe (the groups still dying
/// stay in `ended`).
async fn wait_gone(ended: &mut Stopping, task: &str) {
    let mut pause = GONE_CHECK_FIRST;
    loop {
        ended
            .dying
            .retain(|&(group, started)| has_live_members(group, started));
        if ended.dying.is_empty() {
            return;
        }
        if ended.since.elapsed() >= PROCESSES_GONE_LIMIT {
            error!(
                task = %task,
                groups = ?ended.dying,
                waited = ?PROCESSES_GONE_LIMIT,
                "the task's processes are still there after being killed (stuck in the \
                 kernel, e.g. on a dead network mount); going on without them"
            );
            ended.dying.clear();
            return;
        }
        sleep(pause).await;
        pause = (pause * 2).min(GONE_CHECK_MAX);
    }
}

impl Drop for TaskRun {
    fn drop(&mut self) {
        // Reached with the task still running only when it is abandoned or the whole worker
        // is torn down (its `run` future dropped); either way the task must not go on.
        self.handler.abort();
    }
}

/// How the handler's run ended.
enum Ended {
    /// It returned.
    Returned(Result<Vec<u8>, Failure>),
    /// It ran past its deadline and the backstop.
    PastDeadline(Duration),
    /// It ran on after a cancel, past the backstop.
    IgnoredCancel,
}

/// Runs the handler, with the backstops for its deadline and cancel, and logs how it ended.
async fn run(registry: Arc<Registry>, kind: String, args: Vec<u8>, context: JobContext) -> Outcome {
    let task = context.label.clone();
    let cancel = context.cancel_token().clone();
    let backstop_after = context.kill_grace() + BACKSTOP_SLACK;
    let deadline = context.deadline().zip(context.timeout());
    let started = Instant::now();
    let added = context.added_tasks();
    let (gpus, gpu_faults) = context.gpu_observer();
    let handler = registry.run(&kind, &args, context);
    drop(args);
    let past_deadline = async {
        match deadline {
            Some((at, limit)) => {
                sleep_until(at + backstop_after).await;
                limit
            }
            None => std::future::pending().await,
        }
    };
    let ignored_cancel = async {
        cancel.cancelled().await;
        sleep(backstop_after).await;
    };
    // Dropping the handler's future (the backstops) drops whatever it owns, e.g. a process
    // group the process runner kills when dropped.
    let ended = tokio::select! {
        biased;
        result = handler => Ended::Returned(result),
        limit = past_deadline => Ended::PastDeadline(limit),
        () = ignored_cancel => Ended::IgnoredCancel,
    };
    let duration = started.elapsed();
    match ended {
        Ended::IgnoredCancel => {
            warn!(
                task = %task,
                kind = %kind,
                waited = ?backstop_after,
                "the handler did not stop after the cancel; abandoned it"
            );
            Outcome::Canceled
        }
        // A task canceled while it ran is canceled, whatever its handler made of it.
        _ if cancel.is_cancelled() => {
            info!(task = %task, kind = %kind, duration = ?duration, "task canceled");
            Outcome::Canceled
        }
        Ended::PastDeadline(limit) => {
            warn!(
                task = %task,
                kind = %kind,
                limit = ?limit,
                "the handler did not stop at the task's deadline; abandoned it"
            );
            Outcome::Failed(Failure::new(format!(
                "the task timed out after {limit:?} (its handler did not stop at the deadline \
                 and was abandoned)"
            )))
        }
        Ended::Returned(Ok(output)) => {
            let tasks = added.take();
            info!(task = %task, kind = %kind, duration = ?duration, added = tasks.len(), "task finished");
            if tasks.is_empty() {
                Outcome::Finished(output)
            } else {
                Outcome::FinishedWithTasks {
                    result: output,
                    tasks,
                }
            }
        }
        Ended::Returned(Err(mut failure)) => {
            if failure.gpu_fault.is_none() {
                failure.gpu_fault = gpu_fault(&gpus, gpu_faults.first()).await;
            }
            match &failure.gpu_fault {
                Some(fault) => {
                    warn!(task = %task, kind = %kind, duration = ?duration, reason = %failure, gpu_fault = %fault, "task failed on a gpu fault");
                }
                None => {
                    warn!(task = %task, kind = %kind, duration = ?duration, reason = %failure, "task failed");
                }
            }
            Outcome::Failed(failure)
        }
    }
}

/// Whether a failed task's GPU was at fault, and how: a slot GPU NVML no longer finds or
/// reports lost (asked only where NVML is loaded), else the first output line that meant a
/// GPU fault. A slot that shares the host's GPUs names them all.
async fn gpu_fault(gpus: &SlotGpus, line: Option<String>) -> Option<String> {
    // A slot without GPUs has none to blame (and a CPU worker is never quarantined for a
    // job's talk of CUDA).
    if gpus.gpus.is_empty() {
        return None;
    }
    let slot_gpus = gpus.gpus.clone();
    // NVML may be slow to answer about a failing GPU: off the loop's threads.
    let lost = tokio::task::spawn_blocking(move || crate::gpu::lost_gpus(&slot_gpus))
        .await
        .unwrap_or_default();
    if let Some((gpu, what)) = lost.into_iter().next() {
        return Some(crate::gpu::describe_fault(
            std::slice::from_ref(&gpu),
            &what,
        ));
    }
    line.map(|line| crate::gpu::describe_fault(&gpus.gpus, &line))
}

/// The text of a panic payload, when it has one.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_owned(),
            Err(_) => "(no message)".to_owned(),
        },
    }
}

/// What a task works on, for the "task started" line: the scene file of a render, the
/// program of a command; `None` for other kinds (or arguments that do not decode, which the
/// handler then reports).
fn scene_of(kind: &str, args: &[u8]) -> Option<String> {
    use buildcat_proto::dcc::{
        BlenderPlanRange, BlenderRender, HoudiniRenderHip, HoudiniRenderIfd, ModoRender,
        RedshiftRender,
    };
    use buildcat_proto::{RunCommand, RunCommandIn, Task};
    match kind {
        BlenderRender::KIND => BlenderRender::decode_args(args).ok().map(|task| task.blend),
        BlenderPlanRange::KIND => BlenderPlanRange::decode_args(args)
            .ok()
            .map(|task| match task {
                BlenderPlanRange::Plan { render, .. } | BlenderPlanRange::Render(render) => {
                    render.blend
                }
            }),
        HoudiniRenderHip::KIND => HoudiniRenderHip::decode_args(args)
            .ok()
            .map(|task| task.hip),
        HoudiniRenderIfd::KIND => HoudiniRenderIfd::decode_args(args)
            .ok()
            .map(|task| task.ifd),
        ModoRender::KIND => ModoRender::decode_args(args).ok().map(|task| task.lxo),
        RedshiftRender::KIND => RedshiftRender::decode_args(args).ok().map(|task| task.rs),
        RunCommand::KIND => RunCommand::decode_args(args).ok().map(|task| task.program),
        RunCommandIn::KIND => RunCommandIn::decode_args(args)
            .ok()
            .map(|task| task.command.program),
        _ => None,
    }
}

// Its one test stands a real process group in for a task's processes, seen in `/proc`.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::os::unix::process::CommandExt;

    use buildcat_proto::JobId;
    use futures_util::FutureExt;
    use tokio::sync::Notify;

    use super::*;

    /// How long the test waits for something that should happen at once.
    const PATIENCE: Duration = Duration::from_secs(60);

    /// The kind of the stand-in handler.
    const STRAGGLER: &str = "test.straggler";

    /// A registry whose one handler records the process group whose id its arguments hold
    /// (as the process runner records its programs' groups), says so, and runs until halted.
    /// Unlike the process runner, it kills nothing when dropped: the group stands in for
    /// processes whose SIGKILL has not landed yet, however slow the machine.
    fn straggler_registry(started: Arc<Notify>) -> Registry {
        let mut registry = Registry::empty();
        registry.insert_raw(
            STRAGGLER,
            Box::new(move |args, context| {
                let started = Arc::clone(&started);
                let leader = std::str::from_utf8(args)
                    .ok()
                    .and_then(|text| text.parse::<u32>().ok());
                Box::pin(async move {
                    let _recorded = context.record_group(leader);
                    started.notify_one();
                    std::future::pending().await
                })
            }),
        );
        registry
    }

    /// A process the test started, killed when the test ends, passed or failed.
    struct Straggler(std::process::Child);

    impl Drop for Straggler {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[tokio::test]
    async fn a_halted_task_ends_only_once_its_processes_are_gone() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary directory: {e}"));
        let mut straggler = Straggler(
            std::process::Command::new("sleep")
                .arg("1000")
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start sleep: {e}")),
        );
        let started = Arc::new(Notify::new());
        let job: JobId = "00000000-0000-7000-8000-000000000001"
            .parse()
            .unwrap_or_else(|e| panic!("bad test id: {e}"));
        let assignment = Assignment {
            task: TaskId::new(job, 0),
            number: 1,
            name: "straggler".to_owned(),
            frames: None,
            attempt: 1,
            queue: "default".to_owned(),
            kind: STRAGGLER.to_owned(),
            args: straggler.0.id().to_string().into_bytes(),
            timeout_ms: None,
        };
        let settings = RunSettings {
            root: dir.path().to_owned(),
            worker: "w".to_owned(),
            kill_grace: Duration::from_secs(1),
            groups: Arc::new(GroupRecord::new(dir.path(), "w")),
            lease: None,
            previews: Arc::default(),
            gpus: Arc::default(),
        };
        let counter = Arc::new(AtomicUsize::new(0));
        let mut run = TaskRun::start(
            assignment,
            Arc::new(straggler_registry(Arc::clone(&started))),
            settings,
            &counter,
        );
        tokio::time::timeout(PATIENCE, started.notified())
            .await
            .unwrap_or_else(|_| panic!("the handler did not start"));

        run.halt(Halt::Abandoned);
        // The handler's future is dropped...
        tokio::time::timeout(PATIENCE, async {
            while !run.handler.is_finished() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the halted handler was not dropped"));
        // ...but its process group still has a live process: the task has not ended.
        assert!(
            run.finished().now_or_never().is_none(),
            "the task ended while its processes still ran"
        );

        // The straggler's kill lands.
        straggler
            .0
            .kill()
            .unwrap_or_else(|e| panic!("cannot kill sleep: {e}"));
        let _ = straggler.0.wait();
        let completion = tokio::time::timeout(PATIENCE, run.finished())
            .await
            .unwrap_or_else(|_| panic!("the task did not end once its processes were gone"));
        assert_eq!(completion.outcome, Outcome::Interrupted);
    }
}
