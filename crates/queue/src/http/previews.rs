//! The routes of a job's frame previews: the list (`GET /api/v1/jobs/{job}/previews`) and
//! the newest image (`GET /api/v1/jobs/{job}/previews/latest`).
//!
//! The server never decodes a preview (a worker says its size and format), so the image is
//! served with its format's content type and `X-Content-Type-Options: nosniff`: a browser
//! shows it as that image or not at all, never as a page. `Cache-Control: no-store`, because
//! the same address shows a newer frame a moment later.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use buildcat_proto::view::PreviewView;
use buildcat_proto::{JobPreviews, PreviewFormat, Reply, Request};

use super::AppState;
use super::api::{ApiError, ask, job_ref};

/// The job's previews from the core; the newest image too if `image`.
async fn previews_of(state: &AppState, job: &str, image: bool) -> Result<JobPreviews, ApiError> {
    let request = Request::Previews {
        job: job_ref(job)?,
        image,
    };
    match ask(state, request).await? {
        Reply::Previews(previews) => Ok(previews),
        other => Err(ApiError::unexpected(&other)),
    }
}

/// `GET /api/v1/jobs/{job}/previews`: the job's previews, newest first.
pub(super) async fn list(
    State(state): State<AppState>,
    Path(job): Path<String>,
) -> Result<Json<Vec<PreviewView>>, ApiError> {
    let previews = previews_of(&state, &job, false).await?;
    Ok(Json(PreviewView::list(&previews)))
}

/// `GET /api/v1/jobs/{job}/previews/latest`: the newest preview's image; a JSON 404 while
/// the job has none.
pub(super) async fn latest(
    State(state): State<AppState>,
    Path(job): Path<String>,
) -> Result<Response, ApiError> {
    let previews = previews_of(&state, &job, true).await?;
    let (Some(newest), Some(image)) = (previews.previews.first(), previews.latest) else {
        return Err(ApiError::not_found(format!(
            "job {} has no preview yet: one comes when a task of it saves a frame (PNG, JPEG, \
             TIFF or OpenEXR); ask again later",
            previews.number
        )));
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type(newest.format)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        image,
    )
        .into_response())
}

/// The `Content-Type` of an image in `format`.
fn content_type(format: PreviewFormat) -> HeaderValue {
    HeaderValue::from_static(format.content_type())
}
