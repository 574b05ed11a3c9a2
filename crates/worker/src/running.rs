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
use crate::leftovers::GroupRecord;
use crate::output::TaskOutput;
use crate::preview::PreviewSlot;
use crate::registry::Registry;

/// How much longer than the deadline plus the kill grace a handler may run before it is
/// abandoned: time for the process runner to reap what it killed and return.
pub(crate) const BACKSTOP_SLACK: Duration = Duration::from_secs(3);

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
            .with_previews(settings.previews);
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
            warn!(task = %self.label, attempt = self.attempt, reason = ?why, "stopping the task now");
            self.halted = Some(why);
        }
        self.handler.abort();
    }

    /// Why the loop halted the task, if it did.
    pub(crate) fn halted(&self) -> Option<Halt> {
        self.halted
    }

    /// Waits for the task to end; cancel-safe, so it can sit in a `select!`.
    pub(crate) async fn finished(&mut self) -> Completion {
        let outcome = match (&mut self.handler).await {
            // A handler that ended before the halt took effect reports how it ended.
            Ok(outcome) => outcome,
            Err(join_error) if join_error.is_cancelled() && self.halted.is_some() => {
                info!(task = %self.label, kind = %self.kind, reason = ?self.halted, "task stopped");
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
        };
        Completion {
            task: self.id,
            attempt: self.attempt,
            outcome,
        }
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
        Ended::Returned(Err(failure)) => {
            warn!(task = %task, kind = %kind, duration = ?duration, reason = %failure, "task failed");
            Outcome::Failed(failure)
        }
    }
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
