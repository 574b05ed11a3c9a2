//! Sending what a job reports: its output in bounded `Log` frames, its latest progress, and
//! its result after both.

use buildcat_proto::{ClientFrame, Completion, JobId, Outcome, Request, RequestId};
use futures_util::SinkExt;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, warn};

use super::{InFlight, LogFrame, LoopState, Sent};
use crate::connection::{LinkError, ServerLink};
use crate::output::{JobOutput, OutputReady};

/// Sends what is left of a job's output, then its result.
pub(super) async fn send_report(
    link: &mut ServerLink,
    state: &mut LoopState,
    in_flight: &mut InFlight,
    completion: Completion,
    output: &JobOutput,
    log_frame: LogFrame,
) -> Result<(), LinkError> {
    let (job, attempt) = (completion.job, completion.attempt);
    send_output(link, state, in_flight, (job, attempt), output, log_frame).await?;
    let id = state.request_id();
    send_completion(link, id, completion).await?;
    in_flight.insert(id, (Sent::Completion(job, attempt), Instant::now()));
    Ok(())
}

/// Sends everything `output` holds: its lines in frames of at most `log_frame`, then its
/// latest progress. What could not be sent is put back for the next connection.
pub(super) async fn send_output(
    link: &mut ServerLink,
    state: &mut LoopState,
    in_flight: &mut InFlight,
    (job, attempt): (JobId, u32),
    output: &JobOutput,
    log_frame: LogFrame,
) -> Result<(), LinkError> {
    loop {
        let batch = output.take_batch(log_frame.lines, log_frame.bytes);
        if batch.lines.is_empty() {
            break;
        }
        if batch.dropped > 0 {
            warn!(
                job = %job,
                dropped = batch.dropped,
                "dropped the oldest output lines of the job: more were waiting to be sent than \
                 the worker holds"
            );
        }
        let id = state.request_id();
        let frame = ClientFrame {
            id,
            request: Request::Log {
                job,
                attempt,
                lines: batch.lines.clone(),
            },
        };
        if let Err(error) = link.send(frame).await {
            output.put_back(batch);
            return Err(error.into());
        }
        in_flight.insert(id, (Sent::Log(job), Instant::now()));
    }
    if let Some(progress) = output.take_progress() {
        let id = state.request_id();
        let request = Request::Progress {
            job,
            attempt,
            progress: progress.clone(),
        };
        if let Err(error) = link.send(ClientFrame { id, request }).await {
            output.put_back_progress(progress);
            return Err(error.into());
        }
        in_flight.insert(id, (Sent::Progress(job), Instant::now()));
    }
    Ok(())
}

/// Resolves when the running job's output is due to be sent: a full frame at once,
/// anything else at `not_before`. Never resolves when no job runs.
pub(super) async fn output_due(
    output: Option<&JobOutput>,
    not_before: Instant,
    log_frame: LogFrame,
) {
    let Some(output) = output else {
        return std::future::pending().await;
    };
    loop {
        match output.pending(log_frame.lines, log_frame.bytes) {
            OutputReady::Full => return,
            OutputReady::Some => {
                tokio::select! {
                    () = sleep_until(not_before) => return,
                    () = output.changed() => {}
                }
            }
            OutputReady::Nothing => output.changed().await,
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
        Outcome::Canceled => "canceled",
        Outcome::Interrupted => "interrupted",
    };
    debug!(job = %completion.job, attempt = completion.attempt, outcome, "sending the result");
    let frame = ClientFrame {
        id,
        request: Request::Complete(completion),
    };
    link.send(frame).await?;
    Ok(())
}
