//! Sending what a task reports: its output in bounded `Log` frames, its latest progress, and
//! its result after both.

use buildcat_proto::{ClientFrame, Completion, Outcome, Request, RequestId, TaskId};
use futures_util::SinkExt;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, warn};

use super::{InFlight, LogFrame, LoopState, Sent};
use crate::connection::{LinkError, ServerLink};
use crate::output::{OutputReady, TaskOutput};

/// Sends what is left of a task's output, then its result.
///
/// `label` names the task as people do (`42.3`), for logs.
pub(super) async fn send_report(
    link: &mut ServerLink,
    state: &mut LoopState,
    in_flight: &mut InFlight,
    (completion, label): (Completion, &str),
    output: &TaskOutput,
    log_frame: LogFrame,
) -> Result<(), LinkError> {
    let (task, attempt) = (completion.task, completion.attempt);
    send_output(
        link,
        state,
        in_flight,
        (task, label, attempt),
        output,
        log_frame,
    )
    .await?;
    let id = state.request_id();
    send_completion(link, id, completion, label).await?;
    in_flight.insert(id, (Sent::Completion(task, attempt), Instant::now()));
    Ok(())
}

/// Sends everything `output` holds: its lines in frames of at most `log_frame`, then its
/// latest progress. What could not be sent is put back for the next connection.
pub(super) async fn send_output(
    link: &mut ServerLink,
    state: &mut LoopState,
    in_flight: &mut InFlight,
    (task, label, attempt): (TaskId, &str, u32),
    output: &TaskOutput,
    log_frame: LogFrame,
) -> Result<(), LinkError> {
    loop {
        let batch = output.take_batch(log_frame.lines, log_frame.bytes);
        if batch.lines.is_empty() {
            break;
        }
        if batch.dropped > 0 {
            warn!(
                task = %label,
                dropped = batch.dropped,
                "dropped the oldest output lines of the task: more were waiting to be sent than \
                 the worker holds"
            );
        }
        let id = state.request_id();
        let frame = ClientFrame {
            id,
            request: Request::Log {
                task,
                attempt,
                lines: batch.lines.clone(),
                stderr: batch.stderr.clone(),
            },
        };
        if let Err(error) = link.send(frame).await {
            output.put_back(batch);
            return Err(error.into());
        }
        in_flight.insert(id, (Sent::Log(task), Instant::now()));
    }
    if let Some(progress) = output.take_progress() {
        let id = state.request_id();
        let request = Request::Progress {
            task,
            attempt,
            progress: progress.clone(),
        };
        if let Err(error) = link.send(ClientFrame { id, request }).await {
            output.put_back_progress(progress);
            return Err(error.into());
        }
        in_flight.insert(id, (Sent::Progress(task), Instant::now()));
    }
    Ok(())
}

/// Resolves when the running task's output is due to be sent: a full frame at once,
/// anything else at `not_before`. Never resolves when no task runs.
pub(super) async fn output_due(
    output: Option<&TaskOutput>,
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

/// Sends a task's result.
async fn send_completion(
    link: &mut ServerLink,
    id: RequestId,
    completion: Completion,
    label: &str,
) -> Result<(), LinkError> {
    let outcome = match &completion.outcome {
        Outcome::Finished(_) | Outcome::FinishedWithTasks { .. } => "finished",
        Outcome::Failed(_) => "failed",
        Outcome::Canceled => "canceled",
        Outcome::Interrupted => "interrupted",
    };
    debug!(task = %label, attempt = completion.attempt, outcome, "sending the result");
    let frame = ClientFrame {
        id,
        request: Request::Complete(completion),
    };
    link.send(frame).await?;
    Ok(())
}
