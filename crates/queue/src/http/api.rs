//! The routes of `/api/v1/` and `/metrics`, and how the server's answers become HTTP.
//!
//! Each handler asks the core one question ([`CoreHandle::call`]) and shows the reply through
//! the views the CLI's `--json` prints. Errors are `{"error": "..."}` with the server's own
//! message (it says what to do) and a status that fits: 404 for what does not exist, 409
//! for a job in the wrong state, 400 for bad input, 503 while storage fails or the server
//! stops.

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use buildcat_proto::view::{
    ChangeView, FarmView, JobStatusView, JobView, LogPageView, TaskStatusView, WorkerView,
};
use buildcat_proto::{
    Change, JobQuery, JobRef, JobState, Reply, Request, RequestError, Requeue, TaskRef,
};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, auth, events, login, metrics, openapi, origin, page, previews, throughput};
use crate::server::CoreHandle;
use crate::server::HubClosed;

/// How many jobs a listing gives when the query names no limit: as many as `buildcat jobs`.
const DEFAULT_JOB_LIMIT: u32 = 50;

/// Every route. A tidy test checks each `.route(` here is in the OpenAPI document.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/info", get(info))
        .route("/api/v1/jobs", get(jobs))
        .route("/api/v1/jobs/{job}", get(job))
        .route("/api/v1/jobs/{job}", delete(delete_job))
        .route("/api/v1/jobs/{job}/tasks/{index}", get(task))
        .route("/api/v1/jobs/{job}/tasks/{index}/log", get(log))
        .route("/api/v1/jobs/{job}/cancel", post(cancel_job))
        .route("/api/v1/jobs/{job}/tasks/{index}/cancel", post(cancel_task))
        .route("/api/v1/jobs/{job}/requeue", post(requeue))
        .route("/api/v1/jobs/{job}/pause", post(pause))
        .route("/api/v1/jobs/{job}/resume", post(resume))
        .route("/api/v1/jobs/{job}/priority", post(priority))
        .route("/api/v1/jobs/{job}/previews", get(previews::list))
        .route("/api/v1/jobs/{job}/previews/latest", get(previews::latest))
        .route("/api/v1/queues/{queue}/pause", post(pause_queue))
        .route("/api/v1/queues/{queue}/resume", post(resume_queue))
        .route("/api/v1/workers", get(workers))
        .route("/api/v1/workers/{name}/enable", post(enable_worker))
        .route("/api/v1/workers/{name}/pause", post(pause_worker))
        .route("/api/v1/workers/{name}/resume", post(resume_worker))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics::scrape))
        .route("/api/v1/events", get(events::farm))
        .route("/api/v1/jobs/{job}/events", get(events::job))
        .route(
            "/api/v1/jobs/{job}/tasks/{index}/log/events",
            get(events::log),
        )
        .route("/api/v1/throughput", get(throughput::route))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), auth::require))
        // After the token check's layer, so outside it: the page and its assets hold no
        // data, and logging in is how a browser gets the token.
        .route("/api/v1/login", post(login::login))
        .route("/api/v1/login", get(login::signed_in))
        .merge(page::router())
        // Outermost, so it covers every route above, the login and the page included: a
        // request from another site's page is refused before the token check counts it.
        .layer(middleware::from_fn_with_state(state.clone(), origin::check))
        .with_state(state)
}

/// An answer that is not a success, as JSON.
#[derive(Debug)]
pub(crate) struct ApiError {
    /// Fits what went wrong.
    status: StatusCode,
    /// What went wrong and what to do, shown as `error`.
    message: String,
}

impl ApiError {
    /// The request lacks the right token.
    pub(crate) fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    /// Bad input from the caller.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// The server could not answer (storage, shutdown).
    pub(crate) fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }

    /// Nothing there (yet): `message` says what and what to do.
    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// The core answered something this route does not expect: a bug, said plainly.
    pub(crate) fn unexpected(reply: &Reply) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("internal error: unexpected reply {reply:?}; please report it"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> ApiError {
        let status = match &error {
            RequestError::UnknownJob(_)
            | RequestError::UnknownTask { .. }
            | RequestError::UnknownWorker(_) => StatusCode::NOT_FOUND,
            RequestError::WrongState { .. } => StatusCode::CONFLICT,
            RequestError::Storage(_) | RequestError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            message: error.to_string(),
        }
    }
}

impl From<HubClosed> for ApiError {
    fn from(closed: HubClosed) -> ApiError {
        ApiError::unavailable(closed.to_string())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request(format!("bad query: {}", rejection.body_text()))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        ApiError::bad_request(format!(
            "bad body: {}; send JSON such as {{\"priority\": 10}}",
            rejection.body_text()
        ))
    }
}

/// The way into the core, unless the server is stopping.
pub(crate) fn current_core(state: &AppState) -> Result<CoreHandle, ApiError> {
    let core = state.core.read().ok().and_then(|slot| slot.clone());
    core.ok_or_else(|| ApiError::from(RequestError::ShuttingDown))
}

/// Asks the core one question.
pub(crate) async fn ask(state: &AppState, request: Request) -> Result<Reply, ApiError> {
    Ok(current_core(state)?.call(request).await??)
}

/// A job as the path names it: its number or its UUID.
pub(crate) fn job_ref(text: &str) -> Result<JobRef, ApiError> {
    text.parse::<JobRef>().map_err(ApiError::bad_request)
}

/// A task as the path names it: its job and its index.
pub(crate) fn task_ref(job: &str, index: &str) -> Result<TaskRef, ApiError> {
    let index = index.parse::<u32>().map_err(|_| {
        ApiError::bad_request(format!(
            "task index `{index}` is not a number; tasks are numbered from 0 (the 3 of 42.3)"
        ))
    })?;
    Ok(TaskRef {
        job: job_ref(job)?,
        index: Some(index),
    })
}

/// `GET /api/v1/info`: the farm at a glance, as `buildcat info --json`.
async fn info(State(state): State<AppState>) -> Result<Json<FarmView>, ApiError> {
    match ask(&state, Request::Info).await? {
        Reply::Info(info) => Ok(Json(FarmView::from(&info))),
        other => Err(ApiError::unexpected(&other)),
    }
}

/// `GET /api/v1/workers`: the connected workers, as `info --json` lists them.
async fn workers(State(state): State<AppState>) -> Result<Response, ApiError> {
    match ask(&state, Request::Info).await? {
        Reply::Info(info) => {
            let workers: Vec<WorkerView> = info.workers.iter().map(WorkerView::from).collect();
            Ok(Json(json!({ "workers": workers })).into_response())
        }
        other => Err(ApiError::unexpected(&other)),
    }
}

/// The filters of `GET /api/v1/jobs`, as `buildcat jobs` takes them.
#[derive(Debug, Deserialize)]
struct JobsParams {
    /// Only this queue.
    queue: Option<String>,
    /// Only jobs in this state.
    state: Option<String>,
    /// Only jobs of this submitter (`user` or `user@host`).
    user: Option<String>,
    /// At most this many.
    limit: Option<u32>,
}

/// `GET /api/v1/jobs`: jobs newest first, as `buildcat jobs --json`.
async fn jobs(
    State(state): State<AppState>,
    params: Result<Query<JobsParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let job_state = params
        .state
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let query = JobQuery {
        queue: params.queue,
        state: job_state,
        user: params.user,
        limit: params.limit.unwrap_or(DEFAULT_JOB_LIMIT),
    };
    match ask(&state, Request::Jobs(query)).await? {
        Reply::Jobs { jobs, more } => {
            let views: Vec<JobView> = jobs.iter().map(JobView::from).collect();
            Ok(Json(json!({ "jobs": views, "more": more })).into_response())
        }
        other => Err(ApiError::unexpected(&other)),
    }
}

/// `GET /api/v1/jobs/{job}`: the job and its tasks, as `buildcat status JOB --json`.
async fn job(
    State(state): State<AppState>,
    Path(job): Path<String>,
) -> Result<Json<JobStatusView>, ApiError> {
    match ask(&state, Request::Job(job_ref(&job)?)).await? {
        Reply::Job(status) => Ok(Json(JobStatusView::from(&status))),
        other => Err(ApiError::unexpected(&other)),
    }
}

/// `GET /api/v1/jobs/{job}/tasks/{index}`: one task, as `buildcat status JOB.TASK --json`.
async fn task(
    State(state): State<AppState>,
    Path((job, index)): Path<(String, String)>,
) -> Result<Json<TaskStatusView>, ApiError> {
    match ask(&state, Request::Task(task_ref(&job, &index)?)).await? {
        Reply::Task(status) => Ok(Json(TaskStatusView::from(&status))),
        other => Err(ApiError::unexpected(&other)),
    }
}

/// Where a page of output starts.
#[derive(Debug, Deserialize)]
struct LogParams {
    /// Bytes into the output: 0, or a page's `next`.
    from: Option<u64>,
}

/// `GET /api/v1/jobs/{job}/tasks/{index}/log?from=BYTES`: one page of a task's output.
async fn log(
    State(state): State<AppState>,
    Path((job, index)): Path<(String, String)>,
    params: Result<Query<LogParams>, QueryRejection>,
) -> Result<Json<LogPageView>, ApiError> {
    let Query(params) = params?;
    let request = Request::Logs {
        task: task_ref(&job, &index)?,
        from: params.from.unwrap_or(0),
        follow: false,
    };
    match ask(&state, request).await? {
        Reply::Log(page) => Ok(Json(LogPageView::from(&page))),
        other => Err(ApiError::unexpected(&other)),
    }
}

/// What an action did, as `buildcat cancel --json` and its siblings print it; when the one
/// job or task named could not be changed, its error with a fitting status instead.
fn changes(reply: Reply) -> Result<Response, ApiError> {
    let Reply::Changes(changes) = reply else {
        return Err(ApiError::unexpected(&reply));
    };
    if let [
        Change {
            result: Err(error), ..
        },
    ] = changes.as_slice()
    {
        return Err(ApiError::from(error.clone()));
    }
    let views: Vec<ChangeView> = changes.iter().map(ChangeView::from).collect();
    Ok(Json(json!({ "jobs": views })).into_response())
}

/// `POST /api/v1/jobs/{job}/cancel`.
async fn cancel_job(
    State(state): State<AppState>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    let target = TaskRef::job(job_ref(&job)?);
    changes(ask(&state, Request::Cancel(vec![target])).await?)
}

/// `POST /api/v1/jobs/{job}/tasks/{index}/cancel`.
async fn cancel_task(
    State(state): State<AppState>,
    Path((job, index)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let target = task_ref(&job, &index)?;
    changes(ask(&state, Request::Cancel(vec![target])).await?)
}

/// Whether a requeue takes finished tasks too.
#[derive(Debug, Deserialize)]
struct RequeueParams {
    /// Finished tasks too (render again after a fix), not only failed and canceled ones.
    all: Option<bool>,
}

/// `POST /api/v1/jobs/{job}/requeue?all=true`.
async fn requeue(
    State(state): State<AppState>,
    Path(job): Path<String>,
    params: Result<Query<RequeueParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let request = Request::Requeue(Requeue::Tasks {
        targets: vec![TaskRef::job(job_ref(&job)?)],
        all: params.all.unwrap_or(false),
    });
    changes(ask(&state, request).await?)
}

/// `POST /api/v1/jobs/{job}/pause`.
async fn pause(
    State(state): State<AppState>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    changes(ask(&state, Request::Pause(vec![job_ref(&job)?])).await?)
}

/// `POST /api/v1/jobs/{job}/resume`.
async fn resume(
    State(state): State<AppState>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    changes(ask(&state, Request::Resume(vec![job_ref(&job)?])).await?)
}

/// The body of a priority change.
#[derive(Debug, Deserialize)]
struct PriorityBody {
    /// The job's new priority: higher runs first within its queue.
    priority: i32,
}

/// `POST /api/v1/jobs/{job}/priority` with `{"priority": N}`.
async fn priority(
    State(state): State<AppState>,
    Path(job): Path<String>,
    body: Result<Json<PriorityBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let job = job_ref(&job)?;
    let Json(body) = body?;
    let request = Request::SetPriority {
        job,
        priority: body.priority,
    };
    changes(ask(&state, request).await?)
}

/// `DELETE /api/v1/jobs/{job}`: removes an ended job now.
async fn delete_job(
    State(state): State<AppState>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    changes(ask(&state, Request::Delete(vec![job_ref(&job)?])).await?)
}

/// Holds or lets go every job of a queue; answers as `buildcat pause --queue Q --json`.
async fn hold_queue(state: &AppState, queue: String, paused: bool) -> Result<Response, ApiError> {
    if queue.trim().is_empty() {
        return Err(ApiError::bad_request(
            "the queue name is empty; name the queue, such as `default`",
        ));
    }
    let request = Request::PauseQueue {
        queue: queue.clone(),
        paused,
    };
    match ask(state, request).await? {
        Reply::Ack => Ok(Json(json!({ "queue": queue, "paused": paused })).into_response()),
        other => Err(ApiError::unexpected(&other)),
    }
}

/// `POST /api/v1/queues/{queue}/pause`.
async fn pause_queue(
    State(state): State<AppState>,
    Path(queue): Path<String>,
) -> Result<Response, ApiError> {
    hold_queue(&state, queue, true).await
}

/// `POST /api/v1/queues/{queue}/resume`.
async fn resume_queue(
    State(state): State<AppState>,
    Path(queue): Path<String>,
) -> Result<Response, ApiError> {
    hold_queue(&state, queue, false).await
}

/// `POST /api/v1/workers/{name}/enable`: a quarantined worker takes work again.
async fn enable_worker(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    match ask(&state, Request::EnableWorker(name.clone())).await? {
        Reply::Ack => Ok(Json(json!({ "worker": name, "enabled": true })).into_response()),
        other => Err(ApiError::unexpected(&other)),
    }
}

/// Pauses or resumes the worker named `name`; answers `{"worker": name, "paused": ..}`.
async fn hold_worker(state: &AppState, name: String, paused: bool) -> Result<Response, ApiError> {
    let request = Request::PauseWorker {
        name: name.clone(),
        paused,
    };
    match ask(state, request).await? {
        Reply::Ack => Ok(Json(json!({ "worker": name, "paused": paused })).into_response()),
        other => Err(ApiError::unexpected(&other)),
    }
}

/// `POST /api/v1/workers/{name}/pause`: the worker finishes its task and takes no more.
async fn pause_worker(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    hold_worker(&state, name, true).await
}

/// `POST /api/v1/workers/{name}/resume`: a paused worker takes work again.
async fn resume_worker(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    hold_worker(&state, name, false).await
}

/// Anything else: a JSON 404 that says where the API is.
async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such endpoint; /api/v1/openapi.json lists them".to_owned(),
    }
}
