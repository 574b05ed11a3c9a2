//! One worker loop: a connection to the server that runs one job at a time, and survives
//! the server going away.
//!
//! The loop alternates between reaching the server ([`connection::open`], retried with
//! backoff) and a session on the registered connection. The job and the results not yet
//! acknowledged live in [`LoopState`], outside any one connection: a job keeps running while
//! the loop reconnects, the registration names it in `running`, and its result is sent (or
//! sent again) on whichever connection is up when it is ready.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use buildcat_proto::{
    ClientFrame, CodecError, Completion, JobId, Outcome, Reply, Request, RequestError, RequestId,
    SOFTWARE_VERSION, ServerFrame, WorkerRegistration,
};
use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep, sleep_until};
use tracing::{debug, error, info, warn};

use crate::backoff::Backoff;
use crate::connection::{self, LinkError, Registered, ServerLink};
use crate::control::Control;
use crate::error::WorkerError;
use crate::job::RunningJob;
use crate::registry::Registry;

/// The shortest silence from the server taken as a dead connection.
const MIN_SILENCE: Duration = Duration::from_secs(10);

/// How many heartbeat periods of silence mean the connection is dead.
const SILENT_PERIODS: u32 = 4;

/// What one loop needs to know; fixed when the worker is built.
#[derive(Debug)]
pub(crate) struct LoopConfig {
    /// The name this loop registers under.
    pub(crate) name: String,
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
}

/// What a loop carries from one connection to the next.
#[derive(Debug, Default)]
struct LoopState {
    /// The job running now, if any.
    job: Option<RunningJob>,
    /// Results sent (or to be sent) that the server has not acknowledged, oldest first.
    unacked: Vec<Completion>,
    /// The id of the next request; never reused, even across connections.
    next_id: RequestId,
}

impl LoopState {
    /// Nothing running and nothing to report: the loop may stop.
    fn is_idle(&self) -> bool {
        self.job.is_none() && self.unacked.is_empty()
    }

    /// A fresh request id.
    fn request_id(&mut self) -> RequestId {
        self.next_id += 1;
        self.next_id
    }

    /// The jobs the server should keep leased to this loop: the running one first (the
    /// server treats the first it can reclaim as the job this loop is busy with), then those
    /// whose results it has not acknowledged.
    fn held_jobs(&self) -> Vec<(JobId, u32)> {
        let running = self.job.iter().map(|job| (job.job, job.attempt));
        let reported = self.unacked.iter().map(|done| (done.job, done.attempt));
        running.chain(reported).collect()
    }

    /// Forgets a result the server has settled.
    fn settle(&mut self, job: JobId, attempt: u32) {
        self.unacked
            .retain(|done| (done.job, done.attempt) != (job, attempt));
    }
}

/// How a session on one connection ended.
enum SessionEnd {
    /// The loop is to stop: asked to, and nothing is left to run or report.
    Stopped,
    /// The connection is gone; reconnect.
    Lost(LinkError),
}

/// Something that happened while connected.
enum Event {
    /// A frame, an error, or the end of the connection.
    Frame(Option<Result<ServerFrame, CodecError>>),
    /// The running job ended.
    JobEnded(Completion),
    /// Time for a heartbeat.
    Heartbeat,
    /// The worker was asked to stop.
    Stop,
    /// The server has been silent for too long.
    Silent(Duration),
}

/// Runs one loop until it is asked to stop and has nothing left, or a fatal error.
pub(crate) async fn run_loop(config: LoopConfig, control: Arc<Control>) -> Result<(), WorkerError> {
    let mut state = LoopState::default();
    let mut backoff = Backoff::new();
    loop {
        if control.stopping() && state.is_idle() {
            return Ok(());
        }
        let registration = registration(&config, &state);
        let request_id = state.request_id();
        let attempt = tokio::select! {
            // An idle loop stops at once, even in the middle of connecting.
            () = control.stop().cancelled(), if state.is_idle() => return Ok(()),
            attempt = connection::open(
                &config.server,
                config.max_frame,
                request_id,
                registration,
            ) => attempt,
        };
        let (error, lost) = match attempt {
            Ok((link, registered)) => {
                backoff.reset();
                info!(
                    server = %config.server,
                    worker = %registered.name,
                    heartbeat = ?registered.heartbeat,
                    resumed = state.held_jobs().len(),
                    "registered"
                );
                match session(link, registered, &config, &control, &mut state).await {
                    SessionEnd::Stopped => return Ok(()),
                    SessionEnd::Lost(error) => (error, true),
                }
            }
            Err(error) => {
                if let Some(reason) = error.fatal() {
                    error!(
                        server = %config.server,
                        error = %reason,
                        "the buildcat server refused this worker"
                    );
                    return Err(WorkerError::Refused {
                        server: config.server.clone(),
                        reason: reason.clone(),
                    });
                }
                (error, false)
            }
        };
        let delay = backoff.next_delay();
        let server = &config.server;
        if lost {
            warn!(
                server = %server,
                error = %error,
                retry_in = ?delay,
                "lost the connection to the buildcat server"
            );
        } else {
            warn!(
                server = %server,
                error = %error,
                retry_in = ?delay,
                "cannot reach the buildcat server"
            );
        }
        tokio::select! {
            () = control.stop().cancelled(), if state.is_idle() => return Ok(()),
            () = sleep(delay) => {}
        }
    }
}

/// The registration this loop sends on a new connection.
fn registration(config: &LoopConfig, state: &LoopState) -> WorkerRegistration {
    WorkerRegistration {
        name: config.name.clone(),
        host: config.host.clone(),
        root: config.root.to_string_lossy().into_owned(),
        queues: config.queues.clone(),
        kinds: config.registry.kinds().map(str::to_owned).collect(),
        pid: std::process::id(),
        version: SOFTWARE_VERSION.to_owned(),
        running: state.held_jobs(),
    }
}

/// Serves one registered connection until it is lost or the loop is to stop.
async fn session(
    mut link: ServerLink,
    registered: Registered,
    config: &LoopConfig,
    control: &Control,
    state: &mut LoopState,
) -> SessionEnd {
    // Completion requests in flight on this connection, by request id.
    let mut in_flight: HashMap<RequestId, (JobId, u32)> = HashMap::new();

    // Results the previous connection did not get acknowledged go first.
    for completion in state.unacked.clone() {
        let id = state.request_id();
        in_flight.insert(id, (completion.job, completion.attempt));
        if let Err(error) = send_completion(&mut link, id, completion).await {
            return SessionEnd::Lost(error);
        }
    }

    let period = registered.heartbeat;
    let mut heartbeat = interval_at(Instant::now() + period, period);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let silence_limit = (period * SILENT_PERIODS).max(MIN_SILENCE);
    let mut last_heard = Instant::now();

    loop {
        if control.stopping() && state.is_idle() {
            debug!("stopping: nothing running and nothing to report");
            return SessionEnd::Stopped;
        }
        let event = tokio::select! {
            frame = link.next() => Event::Frame(frame),
            completion = job_end(&mut state.job) => Event::JobEnded(completion),
            _ = heartbeat.tick() => Event::Heartbeat,
            () = control.stop().cancelled(), if !control.stopping() => Event::Stop,
            () = sleep_until(last_heard + silence_limit) => Event::Silent(silence_limit),
        };
        match event {
            Event::Frame(None) => return SessionEnd::Lost(LinkError::Closed),
            Event::Frame(Some(Err(error))) => return SessionEnd::Lost(error.into()),
            Event::Frame(Some(Ok(frame))) => {
                last_heard = Instant::now();
                if let Err(error) =
                    handle_frame(frame, &registered, config, control, state, &mut in_flight)
                {
                    return SessionEnd::Lost(error);
                }
            }
            Event::JobEnded(completion) => {
                state.job = None;
                let id = state.request_id();
                in_flight.insert(id, (completion.job, completion.attempt));
                state.unacked.push(completion.clone());
                if let Err(error) = send_completion(&mut link, id, completion).await {
                    return SessionEnd::Lost(error);
                }
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
            }
            Event::Stop => {
                if !state.is_idle() {
                    info!("stopping once the running job is reported");
                }
            }
            Event::Silent(limit) => return SessionEnd::Lost(LinkError::Silent(limit)),
        }
    }
}

/// Acts on one frame from the server; an error means the connection must be dropped.
fn handle_frame(
    frame: ServerFrame,
    registered: &Registered,
    config: &LoopConfig,
    control: &Control,
    state: &mut LoopState,
    in_flight: &mut HashMap<RequestId, (JobId, u32)>,
) -> Result<(), LinkError> {
    match frame {
        ServerFrame::Closing(reason) => Err(LinkError::Closing(reason)),
        ServerFrame::Reply { id, reply } => {
            let Some((job, attempt)) = in_flight.remove(&id) else {
                // Heartbeats are the only other requests; their answers need no action.
                if let Err(error) = reply {
                    warn!(request = id, error = %error, "the server refused a heartbeat");
                }
                return Ok(());
            };
            match reply {
                Ok(Reply::Ack) => {
                    debug!(job = %job, attempt, "result acknowledged");
                }
                Ok(_) => {
                    return Err(LinkError::Unexpected(format!(
                        "a reply other than `Ack` to the result of job {job}"
                    )));
                }
                Err(RequestError::StaleAttempt { .. }) => {
                    warn!(
                        job = %job,
                        attempt,
                        "the server no longer expects this result; dropping it"
                    );
                }
                // Not stored, but may be later: keep it and send it again on a new connection.
                Err(error @ (RequestError::Storage(_) | RequestError::ShuttingDown)) => {
                    return Err(LinkError::ResultRefused { job, error });
                }
                Err(error) => {
                    error!(
                        job = %job,
                        attempt,
                        error = %error,
                        "the server refused this result; dropping it"
                    );
                }
            }
            state.settle(job, attempt);
            control.complete();
            Ok(())
        }
        ServerFrame::Assign(assignment) => {
            // The server assigns only to a loop it counts as idle, so it no longer counts the
            // running job as this loop's (e.g. it was handed to another worker while this one
            // was away) and would refuse its result. Stop spending the machine on it.
            if let Some(abandoned) = state.job.take() {
                warn!(
                    job = %abandoned.job,
                    attempt = abandoned.attempt,
                    next_job = %assignment.job,
                    "the server no longer counts the running job as this worker's; abandoning it"
                );
                drop(abandoned);
            }
            if control.stopping() || !control.reserve() {
                // The job goes back to the server's queue when this loop disconnects, which
                // it does as soon as nothing is left to report.
                info!(job = %assignment.job, "declining a job: this worker is stopping");
                return Ok(());
            }
            state.job = Some(RunningJob::start(
                assignment,
                Arc::clone(&config.registry),
                config.root.clone(),
                registered.name.clone(),
            ));
            Ok(())
        }
    }
}

/// Sends a job's result.
async fn send_completion(
    link: &mut ServerLink,
    id: RequestId,
    completion: Completion,
) -> Result<(), LinkError> {
    let outcome = match &completion.outcome {
        Outcome::Finished(_) => "finished",
        Outcome::Failed(_) => "failed",
    };
    debug!(job = %completion.job, attempt = completion.attempt, outcome, "sending the result");
    let request = Request::Complete(completion);
    link.send(ClientFrame { id, request }).await?;
    Ok(())
}

/// Waits for the running job to end; never resolves when there is none.
async fn job_end(job: &mut Option<RunningJob>) -> Completion {
    match job {
        Some(job) => job.finished().await,
        None => std::future::pending().await,
    }
}
