//! Live feeds as server-sent events, so the page updates without polling loops that grow
//! with the farm.
//!
//! - `GET /api/v1/events`: the farm feed. It waits on the hub's generation
//!   ([`CoreHandle::changes`]) and sends a small `changed` event (the generation as data)
//!   at most once per [`COALESCE`]; the page refetches the views it shows. It opens with a
//!   `ready` event, so a reader knows it is listening.
//! - `GET /api/v1/jobs/{job}/events`: one job's events, from a `Watch` on a connection of
//!   its own: `task` (a task's view), `progress` (`{"index", "progress": {"done",
//!   "frame_percent", "outputs", "total"}}`),
//!   `ended` (the job's final view), then `end`.
//! - `GET /api/v1/jobs/{job}/tasks/{index}/log/events?from=BYTES`: a task's output as it is
//!   printed, from a `Logs { follow }`: `log` events (a page each), then `end` when the task
//!   ends.
//!
//! A request the core refuses becomes a `refused` event (`{"error"}`) followed by `end`; the
//! page closes its `EventSource` on `end` (it would reconnect otherwise). A feed ends when
//! the browser goes away (its link to the core is dropped with the stream, which tells the
//! core) or when the server stops. Every feed sends a keep-alive comment every
//! [`KEEP_ALIVE`].

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use buildcat_proto::view::{JobStatusView, LogPageView, ProgressView, TaskView};
use buildcat_proto::{JobEvent, Request, RequestId, Role, ServerFrame};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;

use super::AppState;
use super::api::{ApiError, current_core, job_ref, task_ref};
use crate::server::{Frames, Link};

/// Live streams open at once, at most. Each holds a place until the browser goes away, and
/// a job or log feed also a connection in the core with its outbox; 64 is far more than the
/// tabs of a studio's wranglers (a page holds two or three feeds), and few enough that a
/// flood of `EventSource`s cannot pile up connections in the core. More get 503.
pub(crate) const MAX_STREAMS: usize = 64;

/// The shortest time between two `changed` events: what changed meanwhile is told in the
/// next one, so a busy farm costs a page at most four refetches a second.
const COALESCE: Duration = Duration::from_millis(250);

/// How often an idle feed sends a comment: keeps proxies from closing it and lets the
/// server notice a browser that went away.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The request id a feed uses on its own connection.
const FEED_ID: RequestId = 1;

/// A place for one more stream, or the 503 that says there are too many.
fn place(state: &AppState) -> Result<OwnedSemaphorePermit, ApiError> {
    std::sync::Arc::clone(&state.streams)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::unavailable(format!(
                "too many live streams are open (at most {MAX_STREAMS}); close other tabs of \
                 the page, or try again in a moment"
            ))
        })
}

/// Wraps a feed's events into the response: keep-alives, and an end when the server stops.
fn respond<S>(state: &AppState, events: S) -> Response
where
    S: Stream<Item = Event> + Send + 'static,
{
    let stopping = state.stopping.clone();
    let events = events
        .take_until(async move { stopping.cancelled().await })
        .map(Ok::<Event, Infallible>);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// An event with JSON data.
fn event(name: &str, data: &impl serde::Serialize) -> Event {
    let data = serde_json::to_string(data)
        .unwrap_or_else(|error| json!({ "error": error.to_string() }).to_string());
    Event::default().event(name).data(data)
}

/// `GET /api/v1/events`: the farm feed.
pub(crate) async fn farm(State(state): State<AppState>) -> Result<Response, ApiError> {
    let place = place(&state)?;
    // Only the generation is held, not the handle: an open page must not keep the hub alive.
    let changes = current_core(&state)?.changes();
    let ready = Event::default()
        .event("ready")
        .data(changes.borrow().to_string());
    let changed = stream::unfold((changes, place), |(mut changes, place)| async move {
        changes.changed().await.ok()?;
        tokio::time::sleep(COALESCE).await;
        let generation = *changes.borrow_and_update();
        let event = Event::default()
            .event("changed")
            .data(generation.to_string());
        Some((event, (changes, place)))
    });
    Ok(respond(
        &state,
        stream::once(async { ready }).chain(changed),
    ))
}

/// Where a feed on its own connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Events flow.
    Running,
    /// A refusal was sent; `end` is next.
    EndNext,
    /// `end` was sent: nothing follows it.
    Done,
}

/// What a feed on its own connection holds while it runs.
struct Feed {
    /// Its connection; dropped with the stream, which tells the core the feed ended.
    _link: Link,
    /// The connection's frames.
    frames: Frames,
    /// Its place among the open streams.
    _place: OwnedSemaphorePermit,
    /// Where it is.
    stage: Stage,
}

/// The last event of a feed.
fn end() -> Event {
    Event::default().event("end").data("{}")
}

/// Opens a connection, asks `request` on it, and turns the frames that answer into events
/// with `translate` (`None` for frames the feed does not show).
async fn feed(
    state: &AppState,
    request: Request,
    translate: fn(JobEvent) -> Option<Event>,
) -> Result<Response, ApiError> {
    let place = place(state)?;
    let core = current_core(state)?;
    let (link, frames) = core.open(Role::Client).await?;
    drop(core);
    link.request(FEED_ID, request).await?;
    let feed = Feed {
        _link: link,
        frames,
        _place: place,
        stage: Stage::Running,
    };
    let events = stream::unfold(feed, move |mut feed| async move {
        match feed.stage {
            Stage::Done => return None,
            Stage::EndNext => {
                feed.stage = Stage::Done;
                return Some((end(), feed));
            }
            Stage::Running => {}
        }
        loop {
            let event = match feed.frames.recv().await? {
                ServerFrame::Event { id, event } if id == FEED_ID => match translate(event) {
                    Some(event) => event,
                    None => continue,
                },
                ServerFrame::Reply { id, reply } if id == FEED_ID => match reply {
                    Ok(_) => {
                        feed.stage = Stage::Done;
                        end()
                    }
                    Err(error) => {
                        feed.stage = Stage::EndNext;
                        event("refused", &json!({ "error": error.to_string() }))
                    }
                },
                ServerFrame::Closing(reason) => {
                    feed.stage = Stage::EndNext;
                    event("refused", &json!({ "error": reason }))
                }
                _ => continue,
            };
            return Some((event, feed));
        }
    });
    Ok(respond(state, events))
}

/// `GET /api/v1/jobs/{job}/events`: one job's events.
pub(crate) async fn job(
    State(state): State<AppState>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    let job = job_ref(&job)?;
    feed(
        &state,
        Request::Watch(vec![job]),
        |job_event| match job_event {
            JobEvent::Task { task, .. } => Some(event("task", &TaskView::from(&task))),
            JobEvent::Progress { task, progress } => Some(event(
                "progress",
                &json!({
                    "index": task.index,
                    "progress": ProgressView::from(&progress),
                }),
            )),
            JobEvent::Ended(status) => Some(event("ended", &JobStatusView::from(&status))),
            JobEvent::Log { .. } => None,
        },
    )
    .await
}

/// Where a followed log starts.
#[derive(Debug, Deserialize)]
pub(crate) struct FollowParams {
    /// Bytes into the output: 0, or a page's `next` to carry on where a page stopped.
    from: Option<u64>,
}

/// `GET /api/v1/jobs/{job}/tasks/{index}/log/events?from=BYTES`: a task's output, live.
pub(crate) async fn log(
    State(state): State<AppState>,
    Path((job, index)): Path<(String, String)>,
    params: Result<Query<FollowParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let request = Request::Logs {
        task: task_ref(&job, &index)?,
        from: params.from.unwrap_or(0),
        follow: true,
    };
    feed(&state, request, |job_event| match job_event {
        JobEvent::Log { page, .. } => Some(event("log", &LogPageView::from(&page))),
        _ => None,
    })
    .await
}
