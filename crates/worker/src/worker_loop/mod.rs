//! One worker loop: a connection to the server that runs one task at a time, and survives
//! the server going away.
//!
//! The loop alternates between reaching the server ([`connection::open`], retried with
//! backoff) and a session on the registered connection. The task and the results not yet
//! acknowledged live in [`LoopState`], outside any one connection: a task keeps running while
//! the loop reconnects, the registration names it in `running`, and its result is sent (or
//! sent again) on whichever connection is up when it is ready.
//!
//! What the running task logs and reports waits in its [`TaskOutput`] (bounded, oldest lines
//! dropped first) and is sent as `Log` and `Progress` requests: at most every
//! [`OUTPUT_INTERVAL`] unless a full frame is waiting, and always before the task's result.
//! While the loop is disconnected nothing drains it, so it keeps the latest lines for the
//! next connection. A `Cancel` from the server for the running attempt cancels the task's
//! token; the task is then reported as canceled.
//!
//! The loop holds a lease on its running task (see `lease`): each answered request renews it,
//! from the moment the request was sent. Cut off from the server past its lease, on this
//! connection or between connections, the loop kills the task's process tree itself, because
//! the server is about to hand the task on; it neither names nor reports that attempt when it
//! reconnects, and the server, seeing it back without the task, hands the task on at once.
//! The lease stops only a task still running: one that ended first (while the server was out
//! of reach, say; the loop watches for the end while reconnecting too) keeps its result in
//! `unacked` until the server acknowledges it, however long the outage, and the registration
//! names it, so the server takes the result instead of running the task again. A result the
//! server could not store is sent again on a new connection, the wait growing with each
//! refusal (the backoff is not reset by such a session). A registration refused because
//! another live worker holds a name given explicitly stops the loop. An
//! assignment while a task still runs means the server no longer counts that task as this
//! loop's: the loop kills it and starts the new task only once the old one has stopped (its
//! processes gone, not only signaled: see `running`), so a slot never runs two.
//! [`ShutdownHandle::stop_now`](crate::ShutdownHandle::stop_now) kills the running task and
//! reports it as interrupted; a loop that is not connected then stops without reporting.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use buildcat_proto::{
    Assignment, ClientFrame, CodecError, Completion, FramePreview, Outcome, Reply, Request,
    RequestError, RequestId, SOFTWARE_VERSION, ServerFrame, TaskId, ToolVersion,
    WorkerRegistration,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};
use tracing::{debug, error, info, warn};

use crate::backoff::Backoff;
use crate::connection::{self, LinkError, Registered, ServerLink};
use crate::control::Control;
use crate::error::WorkerError;
use crate::gpu::SlotGpus;
use crate::lease::lease;
use crate::leftovers::GroupRecord;
use crate::output::TaskOutput;
use crate::preview::PreviewSlot;
use crate::registry::Registry;
use crate::running::{Halt, RunSettings, TaskRun};

mod report;

use report::{output_due, send_output, send_report};

/// The shortest silence from the server taken as a dead connection.
const MIN_SILENCE: Duration = Duration::from_secs(10);

/// How many heartbeat periods of silence mean the connection is dead.
const SILENT_PERIODS: u32 = 4;

/// The shortest time between two sends of the running task's output, unless a full frame is
/// waiting: lines are batched, and progress coalesced to the latest.
const OUTPUT_INTERVAL: Duration = Duration::from_millis(100);

/// The most lines in one `Log` request.
const MAX_LOG_FRAME_LINES: usize = 500;

/// The most bytes of lines in one `Log` request (and at most half the frame limit).
const MAX_LOG_FRAME_BYTES: usize = 256 << 10;

/// What one loop needs to know; fixed when the worker is built.
#[derive(Debug)]
pub(crate) struct LoopConfig {
    /// The name this loop registers under.
    pub(crate) name: String,
    /// Whether the name was given (`--name`) rather than made from the host: then another
    /// live worker holding it is a mistake to report, not a wait to sit out.
    pub(crate) named: bool,
    /// The server's address, `host:port`.
    pub(crate) server: String,
    /// This machine's host name, for the registration.
    pub(crate) host: String,
    /// The queues served, highest priority first.
    pub(crate) queues: Vec<String>,
    /// The worker's root, absolute and canonical.
    pub(crate) root: PathBuf,
    /// The largest frame sent or accepted.
    pub(crate) max_frame: usize,
    /// The handlers, shared by every loop of the worker.
    pub(crate) registry: Arc<Registry>,
    /// How long processes get between SIGTERM and SIGKILL when a task is stopped.
    pub(crate) kill_grace: Duration,
    /// TLS with mutual certificates, when the server requires it.
    pub(crate) tls: Option<TlsSetup>,
    /// The record of this loop's running task groups under the worker's state directory.
    pub(crate) groups: Arc<GroupRecord>,
    /// The tools found and their versions as far as they are read (names only at first),
    /// so `info` can say what this worker renders with: registered with what is known, and
    /// sent as `UpdateTools` when the versions come.
    pub(crate) tools: watch::Receiver<Vec<ToolVersion>>,
    /// This slot's GPUs, registered so the server routes GPU jobs by them, and whether they
    /// are its own share (then its task processes see only them).
    pub(crate) gpus: Arc<SlotGpus>,
}

/// A TLS connector (which has no `Debug` of its own).
#[derive(Clone)]
pub(crate) struct TlsSetup(pub(crate) tokio_rustls::TlsConnector);

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSetup")
    }
}

impl LoopConfig {
    /// How much of the task's output goes in one `Log` request.
    fn log_frame(&self) -> LogFrame {
        LogFrame {
            lines: MAX_LOG_FRAME_LINES,
            bytes: MAX_LOG_FRAME_BYTES.min(self.max_frame / 2),
        }
    }
}

/// The size of one `Log` request.
#[derive(Debug, Clone, Copy)]
struct LogFrame {
    /// The most lines.
    lines: usize,
    /// The most bytes of lines.
    bytes: usize,
}

/// What a loop carries from one connection to the next.
#[derive(Debug, Default)]
struct LoopState {
    /// The task running now, if any (possibly halted and on its way out).
    task: Option<TaskRun>,
    /// A task the server assigned while `task` still ran; it starts once `task` has stopped,
    /// so that one slot never runs two tasks at once.
    next: Option<Assignment>,
    /// Results sent (or to be sent) that the server has not acknowledged, oldest first.
    unacked: Vec<Report>,
    /// The id of the next request; never reused, even across connections.
    next_id: RequestId,
    /// How long the running task may go on without an answer from the server; from the last
    /// registration (none before the first).
    lease: Option<Duration>,
    /// When the last request the server answered was sent: the server heard from this loop
    /// no earlier, so the lease counts from here.
    confirmed: Option<Instant>,
    /// Assignments declined (reported as interrupted without running) whose reports are not
    /// acknowledged yet; they do not count as tasks done.
    declined: Vec<(TaskId, u32)>,
    /// Previews of the frames this loop's tasks saved: at most one waits to be sent, and it
    /// outlives its task (the last frame's preview is made after the frame was saved).
    previews: Arc<PreviewSlot>,
    /// Sessions in a row that ended with the server refusing to store a result (disk full):
    /// the first is said at warn, the repeats quietly, until a result is stored again.
    refusals: u32,
}

impl LoopState {
    /// Nothing running and nothing to report: the loop may stop.
    fn is_idle(&self) -> bool {
        self.task.is_none() && self.next.is_none() && self.unacked.is_empty()
    }

    /// The server has answered a request sent at `sent`: the lease is renewed from then.
    fn confirm(&mut self, sent: Instant) {
        if self.confirmed.is_none_or(|confirmed| confirmed < sent) {
            self.confirmed = Some(sent);
        }
    }

    /// When the running task's lease runs out, if a task runs that has not been halted.
    fn lease_end(&self) -> Option<Instant> {
        let task = self.task.as_ref()?;
        if task.halted().is_some() {
            return None;
        }
        Some(self.confirmed? + self.lease?)
    }

    /// Whether the lease has run out, halted task or not: the server no longer counts on
    /// this loop for its task (a task that ended after this, e.g. killed by its supervisor
    /// while the worker was frozen, is not this loop's to report).
    fn lease_ran_out(&self) -> bool {
        matches!((self.confirmed, self.lease), (Some(confirmed), Some(lease)) if Instant::now() >= confirmed + lease)
    }

    /// The lease ran out: the server is about to hand the running task on, so stop it now.
    fn expire_lease(&mut self) {
        if let Some(task) = &mut self.task {
            warn!(
                task = %task.label,
                attempt = task.attempt,
                lease = ?self.lease,
                "no answer from the buildcat server within the lease; stopping the task before \
                 the server hands it to another worker"
            );
            task.halt(Halt::LeaseExpired);
        }
    }

    /// The running task ended (`completion`): its result is kept until the server
    /// acknowledges it, connected or not, unless the task is no longer this loop's (abandoned
    /// for another, stopped when its lease ran out, or ended only after the lease ran out:
    /// the server hands such a task on). Returns the result to send, with the task's label
    /// and what is left of its output.
    fn keep_result(
        &mut self,
        completion: Completion,
    ) -> Option<(Completion, String, Arc<TaskOutput>)> {
        let ended = self.task.take();
        let label = ended
            .as_ref()
            .map_or_else(|| completion.task.to_string(), |run| run.label.clone());
        let lease_ran_out = self.lease_ran_out();
        let abandoned = ended
            .as_ref()
            .is_some_and(|task| !still_ours(task) || lease_ran_out);
        let output = match ended {
            Some(ended) => Arc::clone(&ended.output),
            None => Arc::default(),
        };
        // Whatever the handler's leftovers write from now on goes nowhere.
        output.close();
        if abandoned {
            debug!(task = %label, "the abandoned task has stopped");
            return None;
        }
        self.unacked.push(Report {
            completion: completion.clone(),
            label: label.clone(),
            output: Arc::clone(&output),
        });
        Some((completion, label, output))
    }

    /// The running task ended while no server was connected: its result waits for the next
    /// connection, however long that takes (the lease stops running tasks; a finished one
    /// has nothing left to stop, and the server takes its result while the attempt is still
    /// current).
    fn ended_away(&mut self, completion: Completion) {
        let attempt = completion.attempt;
        if let Some((_, label, _)) = self.keep_result(completion) {
            info!(
                task = %label,
                attempt,
                "the task ended while the buildcat server was out of reach; keeping its result \
                 to send when the server is back"
            );
        }
    }

    /// A fresh request id.
    fn request_id(&mut self) -> RequestId {
        self.next_id += 1;
        self.next_id
    }

    /// The tasks the server should keep leased to this loop: the running one first (the
    /// server treats the first it can reclaim as the task this loop is busy with), then those
    /// whose results it has not acknowledged.
    fn held_tasks(&self) -> Vec<(TaskId, u32)> {
        // A task waiting to start is the one the server counts as this loop's; one abandoned
        // for it is no longer.
        let waiting = self.next.iter().map(|next| (next.task, next.attempt));
        let running = self
            .task
            .iter()
            .filter(|task| still_ours(task))
            .map(|task| (task.id, task.attempt));
        let reported = self
            .unacked
            .iter()
            .map(|report| (report.completion.task, report.completion.attempt));
        waiting.chain(running).chain(reported).collect()
    }

    /// Declines `assignment` without running it: its report, `Interrupted`, puts the task
    /// back in its queue at once (rather than after the server's grace) and tells the server
    /// to give this worker no more. Returns the report to send.
    fn decline(&mut self, assignment: &Assignment) -> (Completion, Arc<TaskOutput>) {
        let completion = Completion {
            task: assignment.task,
            attempt: assignment.attempt,
            outcome: Outcome::Interrupted,
        };
        let output = Arc::new(TaskOutput::default());
        output.close();
        self.declined.push((assignment.task, assignment.attempt));
        self.unacked.push(Report {
            completion: completion.clone(),
            label: assignment.label(),
            output: Arc::clone(&output),
        });
        (completion, output)
    }

    /// Forgets a declined assignment the server has settled; whether it was one.
    fn settle_declined(&mut self, task: TaskId, attempt: u32) -> bool {
        let before = self.declined.len();
        self.declined
            .retain(|&declined| declined != (task, attempt));
        self.declined.len() != before
    }

    /// Forgets a result the server has settled.
    fn settle(&mut self, task: TaskId, attempt: u32) {
        self.unacked.retain(|report| {
            (report.completion.task, report.completion.attempt) != (task, attempt)
        });
    }

    /// The task as people name it (`42.3`), for logs: from the running, waiting or reported
    /// task it is; its id if it is none of these any more.
    fn label_of(&self, task: TaskId) -> String {
        let running = self
            .task
            .iter()
            .find(|run| run.id == task)
            .map(|run| run.label.clone());
        let waiting = || {
            self.next
                .iter()
                .find(|next| next.task == task)
                .map(Assignment::label)
        };
        let reported = || {
            self.unacked
                .iter()
                .find(|report| report.completion.task == task)
                .map(|report| report.label.clone())
        };
        running
            .or_else(waiting)
            .or_else(reported)
            .unwrap_or_else(|| task.to_string())
    }
}

/// A task's result, with what is left of its output (sent before it).
#[derive(Debug)]
struct Report {
    /// The result.
    completion: Completion,
    /// The task as people name it (`42.3`), for logs.
    label: String,
    /// The task's output; closed, so it only drains.
    output: Arc<TaskOutput>,
}

/// A request in flight on this connection: what it was, for its reply, and when it was
/// sent, for the lease.
type InFlight = HashMap<RequestId, (Sent, Instant)>;

/// What a request in flight on this connection was, for its reply.
#[derive(Debug, Clone, Copy)]
enum Sent {
    /// A task's result.
    Completion(TaskId, u32),
    /// A heartbeat.
    Heartbeat,
    /// Output lines of a task.
    Log(TaskId),
    /// Progress of a task.
    Progress(TaskId),
    /// A preview of a frame a task saved.
    Preview(TaskId),
    /// The tools with the versions read since registering.
    Tools,
}

/// How a session on one connection ended.
enum SessionEnd {
    /// The loop is to stop: asked to, and nothing is left to run or report.
    Stopped,
    /// The connection is gone; reconnect.
    Lost(LinkError),
}

/// Something that happened while connected.
#[allow(
    clippy::large_enum_variant,
    reason = "one event exists at a time, briefly, on the stack; boxing frames would allocate \
              for each"
)]
enum Event {
    /// A frame, an error, or the end of the connection.
    Frame(Option<Result<ServerFrame, CodecError>>),
    /// The running task ended.
    TaskEnded(Completion),
    /// The running task's output is due to be sent.
    Output,
    /// Time for a heartbeat.
    Heartbeat,
    /// The worker was asked to stop.
    Stop,
    /// The server has been silent for too long.
    Silent(Duration),
    /// The running task's lease ran out.
    LeaseExpired,
    /// The worker is to stop now, killing its running task.
    Interrupt,
    /// A preview of a saved frame is ready to send.
    Preview(FramePreview),
    /// The tools' versions were read (or changed) since the registration: `Some` to send,
    /// `None` when no more will come.
    Tools(Option<Vec<ToolVersion>>),
}

/// Runs one loop until it is asked to stop and has nothing left, or a fatal error.
pub(crate) async fn run_loop(config: LoopConfig, control: Arc<Control>) -> Result<(), WorkerError> {
    let mut state = LoopState::default();
    // This loop's view of the tools' versions: what was registered is marked seen, so a
    // session sends only what came after.
    let mut tools = config.tools.clone();
    // Grows while sessions end without progress (the server refused to store a result), and
    // starts over once one ends otherwise.
    let mut backoff = Backoff::new();
    // Whether the loop said that the peer is no buildcat server since it last registered:
    // said once, then retried quietly (with the same backoff).
    let mut said_not_buildcat = false;
    loop {
        if control.stopping() && state.is_idle() {
            return Ok(());
        }
        if control.interrupting() {
            stop_disconnected(&mut state).await;
            return Ok(());
        }
        let registration = registration(&config, &state, tools.borrow_and_update().clone());
        let request_id = state.request_id();
        // The registration is sent after this; the lease may count from here.
        let sent = Instant::now();
        let open = connection::open(
            &config.server,
            config.max_frame,
            config.tls.as_ref().map(|tls| &tls.0),
            request_id,
            registration,
        );
        tokio::pin!(open);
        let attempt = loop {
            let lease_end = state.lease_end();
            tokio::select! {
                // An idle loop stops at once, even in the middle of connecting.
                () = control.stop().cancelled(), if state.is_idle() => return Ok(()),
                () = control.interrupt().cancelled() => {
                    stop_disconnected(&mut state).await;
                    return Ok(());
                }
                completion = task_end(&mut state.task) => state.ended_away(completion),
                () = sleep_until_some(lease_end) => state.expire_lease(),
                attempt = &mut open => break attempt,
            }
        };
        let (error, lost) = match attempt {
            Ok((link, registered)) => {
                said_not_buildcat = false;
                let lease = lease(registered.reconnect_grace, registered.heartbeat);
                if !lease.ends_first {
                    warn!(
                        server = %config.server,
                        grace = ?registered.reconnect_grace,
                        heartbeat = ?registered.heartbeat,
                        lease = ?lease.length,
                        "the server's reconnect grace is shorter than two heartbeats: cut off \
                         from it, this worker may stop its task only after the server hands \
                         the task on"
                    );
                }
                state.lease = Some(lease.length);
                state.confirm(sent);
                if state.refusals == 0 {
                    info!(
                        server = %config.server,
                        worker = %registered.name,
                        heartbeat = ?registered.heartbeat,
                        lease = ?lease.length,
                        resumed = state.held_tasks().len(),
                        "registered"
                    );
                } else {
                    debug!(server = %config.server, worker = %registered.name, "registered again to resend a refused result");
                }
                match session(link, registered, &config, &control, &mut state, &mut tools).await {
                    SessionEnd::Stopped => return Ok(()),
                    SessionEnd::Lost(error) => {
                        if !matches!(error, LinkError::ResultRefused { .. }) {
                            backoff.reset();
                            // Lost for another reason: the next refusal is news again.
                            state.refusals = 0;
                        }
                        (error, true)
                    }
                }
            }
            Err(error) => {
                if let Some(reason) = error.fatal() {
                    error!(
                        server = %config.server,
                        error = %reason,
                        "the buildcat server refused this worker"
                    );
                    stop_disconnected(&mut state).await;
                    return Err(WorkerError::Refused {
                        server: config.server.clone(),
                        reason: reason.clone(),
                    });
                }
                if let LinkError::RegistrationRefused(reason @ RequestError::NameTaken { .. }) =
                    &error
                    && config.named
                {
                    // The same process coming back is never refused (the server knows it by
                    // host and pid), so this is another worker: waiting would not end.
                    error!(
                        server = %config.server,
                        error = %reason,
                        "another live worker holds this worker's name; stopping"
                    );
                    stop_disconnected(&mut state).await;
                    return Err(WorkerError::NameTaken {
                        server: config.server.clone(),
                        reason: reason.clone(),
                    });
                }
                (error, false)
            }
        };
        let delay = backoff.next_delay();
        let server = &config.server;
        if let LinkError::ResultRefused { task, .. } = &error {
            state.refusals = state.refusals.saturating_add(1);
            if state.refusals == 1 {
                // The whole error: it names the task and says why (`the server could not
                // take the result of task 42.3: ... database or disk is full`).
                warn!(
                    server = %server,
                    task = %task,
                    error = %error,
                    retry_in = ?delay,
                    "the server could not store this task's result; keeping it and sending it \
                     again (repeats are logged at debug)"
                );
            } else {
                debug!(
                    server = %server,
                    task = %task,
                    error = %error,
                    refusals = state.refusals,
                    retry_in = ?delay,
                    "the server still cannot store this task's result"
                );
            }
        } else if lost {
            warn!(
                server = %server,
                error = %error,
                retry_in = ?delay,
                "lost the connection to the buildcat server"
            );
        } else if matches!(error, LinkError::NotBuildcat { .. }) {
            if said_not_buildcat {
                debug!(server = %server, error = %error, retry_in = ?delay, "still not a buildcat server");
            } else {
                said_not_buildcat = true;
                warn!(
                    server = %server,
                    error = %error,
                    "not a buildcat server; retrying with backoff, quietly"
                );
            }
        } else if matches!(error, LinkError::RegistrationRefused(_)) {
            warn!(
                server = %server,
                error = %error,
                retry_in = ?delay,
                "the buildcat server refused this worker's registration; retrying"
            );
        } else {
            warn!(
                server = %server,
                error = %error,
                retry_in = ?delay,
                "cannot reach the buildcat server"
            );
        }
        let retry_at = Instant::now() + delay;
        loop {
            let lease_end = state.lease_end();
            tokio::select! {
                () = control.stop().cancelled(), if state.is_idle() => return Ok(()),
                () = control.interrupt().cancelled() => {
                    stop_disconnected(&mut state).await;
                    return Ok(());
                }
                completion = task_end(&mut state.task) => state.ended_away(completion),
                () = sleep_until_some(lease_end) => state.expire_lease(),
                () = sleep_until(retry_at) => break,
            }
        }
    }
}

/// Stops the running task at once, without a server to report it to, and waits until it
/// has stopped (its process group killed); what was not reported is dropped, and the server
/// hands those tasks on after its grace.
async fn stop_disconnected(state: &mut LoopState) {
    state.next = None;
    if let Some(mut task) = state.task.take() {
        task.halt(Halt::Interrupted);
        let _ = task.finished().await;
    }
    if !state.unacked.is_empty() {
        warn!(
            results = state.unacked.len(),
            "stopping without reporting results the server has not acknowledged"
        );
        state.unacked.clear();
    }
    state.declined.clear();
}

/// The registration this loop sends on a new connection, with the tools as far as their
/// versions are known.
fn registration(
    config: &LoopConfig,
    state: &LoopState,
    tools: Vec<ToolVersion>,
) -> WorkerRegistration {
    WorkerRegistration {
        name: config.name.clone(),
        host: config.host.clone(),
        root: config.root.to_string_lossy().into_owned(),
        queues: config.queues.clone(),
        kinds: config.registry.kinds().map(str::to_owned).collect(),
        pid: std::process::id(),
        version: SOFTWARE_VERSION.to_owned(),
        running: state.held_tasks(),
        tools,
        gpus: config.gpus.gpus.clone(),
    }
}

/// Serves one registered connection until it is lost or the loop is to stop.
async fn session(
    mut link: ServerLink,
    registered: Registered,
    config: &LoopConfig,
    control: &Control,
    state: &mut LoopState,
    tools: &mut watch::Receiver<Vec<ToolVersion>>,
) -> SessionEnd {
    // Whether the tools' versions may still change (their sender is alive).
    let mut tools_open = true;
    // Requests in flight on this connection, by request id.
    let mut in_flight = InFlight::new();
    let log_frame = config.log_frame();

    // Results the previous connection did not get acknowledged go first, each after what
    // was left of its output.
    let reports: Vec<(Completion, String, Arc<TaskOutput>)> = state
        .unacked
        .iter()
        .map(|report| {
            let output = Arc::clone(&report.output);
            (report.completion.clone(), report.label.clone(), output)
        })
        .collect();
    for (completion, label, output) in reports {
        let sent = send_report(
            &mut link,
            state,
            &mut in_flight,
            (completion, &label),
            &output,
            log_frame,
        );
        if let Err(error) = sent.await {
            return SessionEnd::Lost(error);
        }
    }
    // A task assigned while the previous one still ran, which ended while the server was
    // out of reach: the slot is free, and the registration named this one first.
    if state.task.is_none()
        && let Err(error) = start_next(
            &mut link,
            &registered,
            config,
            control,
            state,
            &mut in_flight,
        )
        .await
    {
        return SessionEnd::Lost(error);
    }

    let period = registered.heartbeat;
    let mut heartbeat = interval_at(Instant::now() + period, period);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let silence_limit = (period * SILENT_PERIODS).max(MIN_SILENCE);
    let mut last_heard = Instant::now();
    // What the running task wrote while disconnected goes out at once.
    let mut next_output = Instant::now();
    // Whether this session has acted on a stop-now (it resolves at once if raised before).
    let mut interrupt_seen = false;

    loop {
        if control.stopping() && state.is_idle() {
            debug!("stopping: nothing running and nothing to report");
            return SessionEnd::Stopped;
        }
        let running_output = state
            .task
            .as_ref()
            .filter(|task| still_ours(task))
            .map(|task| {
                (
                    task.id,
                    task.label.clone(),
                    task.attempt,
                    Arc::clone(&task.output),
                )
            });
        let lease_end = state.lease_end();
        let previews = Arc::clone(&state.previews);
        let event = tokio::select! {
            frame = link.next() => Event::Frame(frame),
            completion = task_end(&mut state.task) => Event::TaskEnded(completion),
            () = output_due(
                running_output.as_ref().map(|(_, _, _, output)| &**output),
                next_output,
                log_frame,
            ) => Event::Output,
            _ = heartbeat.tick() => Event::Heartbeat,
            () = control.stop().cancelled(), if !control.stopping() => Event::Stop,
            () = sleep_until(last_heard + silence_limit) => Event::Silent(silence_limit),
            () = sleep_until_some(lease_end) => Event::LeaseExpired,
            () = control.interrupt().cancelled(), if !interrupt_seen => Event::Interrupt,
            preview = previews.ready() => Event::Preview(preview),
            changed = tools.changed(), if tools_open => {
                Event::Tools(changed.ok().map(|()| tools.borrow_and_update().clone()))
            }
        };
        match event {
            Event::Frame(None) => return SessionEnd::Lost(LinkError::Closed),
            Event::Frame(Some(Err(error))) => return SessionEnd::Lost(error.into()),
            Event::Frame(Some(Ok(frame))) => {
                last_heard = Instant::now();
                match handle_frame(frame, &registered, config, control, state, &mut in_flight) {
                    Err(error) => return SessionEnd::Lost(error),
                    Ok(None) => {}
                    Ok(Some(declined)) => {
                        let (completion, output) = state.decline(&declined);
                        let label = declined.label();
                        let sent = send_report(
                            &mut link,
                            state,
                            &mut in_flight,
                            (completion, &label),
                            &output,
                            log_frame,
                        );
                        if let Err(error) = sent.await {
                            return SessionEnd::Lost(error);
                        }
                    }
                }
            }
            Event::TaskEnded(completion) => {
                let kept = state.keep_result(completion);
                // The slot is free only now: start what the server assigned meanwhile.
                if let Err(error) = start_next(
                    &mut link,
                    &registered,
                    config,
                    control,
                    state,
                    &mut in_flight,
                )
                .await
                {
                    return SessionEnd::Lost(error);
                }
                let Some((completion, label, output)) = kept else {
                    continue;
                };
                let sent = send_report(
                    &mut link,
                    state,
                    &mut in_flight,
                    (completion, &label),
                    &output,
                    log_frame,
                );
                if let Err(error) = sent.await {
                    return SessionEnd::Lost(error);
                }
            }
            Event::Output => {
                if let Some((task, label, attempt, output)) = running_output {
                    let sent = send_output(
                        &mut link,
                        state,
                        &mut in_flight,
                        (task, &label, attempt),
                        &output,
                        log_frame,
                    );
                    if let Err(error) = sent.await {
                        return SessionEnd::Lost(error);
                    }
                }
                next_output = Instant::now() + OUTPUT_INTERVAL;
            }
            Event::Heartbeat => {
                let id = state.request_id();
                let frame = ClientFrame {
                    id,
                    request: Request::Heartbeat,
                };
                if let Err(error) = link.send(frame).await {
                    return SessionEnd::Lost(error.into());
                }
                in_flight.insert(id, (Sent::Heartbeat, Instant::now()));
            }
            Event::Stop => {
                if !state.is_idle() {
                    info!("stopping once the running task is reported");
                }
            }
            Event::Preview(preview) => {
                let (id, task) = (state.request_id(), preview.task);
                let frame = ClientFrame {
                    id,
                    request: Request::Preview(preview),
                };
                // Lost with the connection: a newer frame's preview will follow.
                if let Err(error) = link.send(frame).await {
                    return SessionEnd::Lost(error.into());
                }
                in_flight.insert(id, (Sent::Preview(task), Instant::now()));
            }
            Event::Tools(None) => tools_open = false,
            Event::Tools(Some(tools)) => {
                let id = state.request_id();
                let frame = ClientFrame {
                    id,
                    request: Request::UpdateTools(tools),
                };
                // Lost with the connection: the next registration carries them.
                if let Err(error) = link.send(frame).await {
                    return SessionEnd::Lost(error.into());
                }
                in_flight.insert(id, (Sent::Tools, Instant::now()));
            }
            Event::Silent(limit) => return SessionEnd::Lost(LinkError::Silent(limit)),
            Event::LeaseExpired => state.expire_lease(),
            Event::Interrupt => {
                interrupt_seen = true;
                // A task waiting for the slot is declined when the running one has stopped.
                if let Some(task) = &mut state.task {
                    task.halt(Halt::Interrupted);
                }
            }
        }
    }
}

/// Acts on one frame from the server; an error means the connection must be dropped, and
/// an assignment returned is declined (to be reported as interrupted).
fn handle_frame(
    frame: ServerFrame,
    registered: &Registered,
    config: &LoopConfig,
    control: &Control,
    state: &mut LoopState,
    in_flight: &mut InFlight,
) -> Result<Option<Assignment>, LinkError> {
    match frame {
        ServerFrame::Closing(reason) => Err(LinkError::Closing(reason)),
        ServerFrame::Cancel {
            task,
            attempt,
            reason,
        } => {
            match &state.task {
                Some(running) if (running.id, running.attempt) == (task, attempt) => {
                    info!(task = %running.label, attempt, reason = %reason, "canceling the running task");
                    running.cancel();
                }
                _ => debug!(
                    task = %task,
                    attempt,
                    reason = %reason,
                    "ignoring a cancel for a task attempt this loop is not running"
                ),
            }
            Ok(None)
        }
        ServerFrame::Event { id, .. } => {
            debug!(
                request = id,
                "ignoring an event for a request workers do not make"
            );
            Ok(None)
        }
        ServerFrame::Reply { id, reply } => {
            let sent = in_flight.remove(&id).map(|(sent, at)| {
                state.confirm(at);
                sent
            });
            let (task, attempt) = match sent {
                Some(Sent::Completion(task, attempt)) => (task, attempt),
                // Answers to anything else need no action.
                Some(sent) => {
                    if let Err(error) = reply {
                        refused(sent, state, &error);
                    }
                    return Ok(None);
                }
                None => {
                    debug!(request = id, "ignoring a reply to no request in flight");
                    return Ok(None);
                }
            };
            let label = state.label_of(task);
            match reply {
                Ok(Reply::Ack) => {
                    if state.refusals > 0 {
                        info!(
                            task = %label,
                            attempt,
                            refusals = state.refusals,
                            "the server stored the result it had refused"
                        );
                        state.refusals = 0;
                    } else {
                        debug!(task = %label, attempt, "result acknowledged");
                    }
                }
                Ok(_) => {
                    return Err(LinkError::Unexpected(format!(
                        "a reply other than `Ack` to the result of task {label}"
                    )));
                }
                Err(RequestError::StaleAttempt { .. }) => {
                    warn!(
                        task = %label,
                        attempt,
                        "the server no longer expects this result; dropping it"
                    );
                }
                // Not stored, but may be later: keep it and send it again on a new connection.
                Err(error @ (RequestError::Storage(_) | RequestError::ShuttingDown)) => {
                    return Err(LinkError::ResultRefused { task: label, error });
                }
                Err(error) => {
                    error!(
                        task = %label,
                        attempt,
                        error = %error,
                        "the server refused this result; dropping it"
                    );
                }
            }
            state.settle(task, attempt);
            if !state.settle_declined(task, attempt) {
                control.complete();
            }
            Ok(None)
        }
        ServerFrame::Assign(assignment) => {
            if control.stopping() || !control.reserve() {
                info!(task = %assignment.label(), "declining a task: this worker is stopping");
                return Ok(Some(assignment));
            }
            // The server assigns only to a loop it counts as idle, so it no longer counts the
            // running task as this loop's (e.g. it was handed to another worker while this one
            // was away) and would refuse its result. Stop it, and start the new task once it
            // has stopped.
            if let Some(running) = &mut state.task {
                warn!(
                    task = %running.label,
                    attempt = running.attempt,
                    next_task = %assignment.label(),
                    "the server no longer counts the running task as this worker's; stopping it \
                     before starting the next"
                );
                running.halt(Halt::Abandoned);
                state.next = Some(assignment);
                return Ok(None);
            }
            start_task(assignment, registered, config, control, state);
            Ok(None)
        }
    }
}

/// The slot is free: starts the task the server assigned while the last one still ran, if
/// any, or declines it (reported as interrupted) when the worker is stopping now.
async fn start_next(
    link: &mut ServerLink,
    registered: &Registered,
    config: &LoopConfig,
    control: &Control,
    state: &mut LoopState,
    in_flight: &mut InFlight,
) -> Result<(), LinkError> {
    let Some(next) = state.next.take() else {
        return Ok(());
    };
    if !control.interrupting() {
        start_task(next, registered, config, control, state);
        return Ok(());
    }
    info!(task = %next.label(), "declining a task: this worker is stopping now");
    let (completion, output) = state.decline(&next);
    let label = next.label();
    send_report(
        link,
        state,
        in_flight,
        (completion, &label),
        &output,
        config.log_frame(),
    )
    .await
}

/// Starts the handler of `assignment` on this loop's free slot.
fn start_task(
    assignment: Assignment,
    registered: &Registered,
    config: &LoopConfig,
    control: &Control,
    state: &mut LoopState,
) {
    let settings = RunSettings {
        root: config.root.clone(),
        worker: registered.name.clone(),
        kill_grace: config.kill_grace,
        groups: Arc::clone(&config.groups),
        lease: state.lease,
        previews: Arc::clone(&state.previews),
        gpus: Arc::clone(&config.gpus),
    };
    state.task = Some(TaskRun::start(
        assignment,
        Arc::clone(&config.registry),
        settings,
        control.running_counter(),
    ));
}

/// Logs the server's refusal of a request that needs no answer.
fn refused(sent: Sent, state: &LoopState, error: &RequestError) {
    match sent {
        Sent::Heartbeat => warn!(error = %error, "the server refused a heartbeat"),
        // The task may have ended on the server's side (canceled, timed out, its job
        // deleted) a moment ago.
        Sent::Log(task) | Sent::Progress(task)
            if matches!(
                error,
                RequestError::StaleAttempt { .. }
                    | RequestError::UnknownJob(_)
                    | RequestError::UnknownTask { .. }
            ) =>
        {
            let task = state.label_of(task);
            debug!(task = %task, error = %error, "the server no longer takes this task's output");
        }
        Sent::Log(task) => {
            let task = state.label_of(task);
            warn!(task = %task, error = %error, "the server refused output lines");
        }
        Sent::Progress(task) => {
            let task = state.label_of(task);
            warn!(task = %task, error = %error, "the server refused progress");
        }
        Sent::Preview(task) => {
            let task = state.label_of(task);
            warn!(task = %task, error = %error, "the server refused a frame preview");
        }
        Sent::Completion(task, attempt) => {
            let task = state.label_of(task);
            warn!(task = %task, attempt, error = %error, "the server refused a result");
        }
        Sent::Tools => warn!(error = %error, "the server refused the tools' versions"),
    }
}

/// Sleeps until `at`; never resolves for `None`.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whether the server still counts `task` as this loop's, so that it is named at
/// registration and its end reported. Not once it was abandoned for another task, nor once
/// its lease ran out: the server hands such a task on (at once, when this loop comes back
/// without it), and a report of it would only be refused, or worse, taken as this worker
/// stopping for good.
fn still_ours(task: &TaskRun) -> bool {
    !matches!(task.halted(), Some(Halt::Abandoned | Halt::LeaseExpired))
}

/// Waits for the running task to end; never resolves when there is none.
async fn task_end(task: &mut Option<TaskRun>) -> Completion {
    match task {
        Some(task) => task.finished().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use buildcat_proto::codec;

    use super::*;

    #[test]
    fn a_log_frame_of_many_short_lines_decodes_whole() {
        let job = "00000000-0000-7000-8000-000000000001"
            .parse()
            .unwrap_or_else(|e| panic!("bad test id: {e}"));
        let task = TaskId::new(job, 3);
        let frame = ClientFrame {
            id: 8,
            request: Request::Log {
                task,
                attempt: 1,
                lines: vec![String::new(); MAX_LOG_FRAME_LINES],
                // Every line from stderr: the most its stream can cost.
                stderr: (0..MAX_LOG_FRAME_LINES as u32).collect(),
            },
        };
        let bytes = codec::encode_value(&frame).unwrap_or_else(|e| panic!("encode: {e}"));
        let back: ClientFrame =
            codec::decode_value(&bytes).unwrap_or_else(|e| panic!("decode: {e}"));
        assert_eq!(back, frame);
    }
}
