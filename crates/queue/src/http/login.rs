//! `POST /api/v1/login`: the page sends the token once, and gets it back as an HttpOnly,
//! SameSite=Strict `buildcat_token` cookie. The page's script never keeps the token (it
//! could not set an HttpOnly cookie itself), and another site cannot make the browser send
//! it. A wrong token gets 401 and no cookie.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::api::ApiError;
use super::auth::{COOKIE, same};

/// What the page sends.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginBody {
    /// The token, as the server's `--http-token-file` holds it.
    token: String,
}

/// Checks the token and sets the cookie.
pub(crate) async fn login(
    State(state): State<AppState>,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|rejection| {
        ApiError::bad_request(format!(
            "bad body: {}; send JSON such as {{\"token\": \"...\"}}",
            rejection.body_text()
        ))
    })?;
    let Some(token) = state.token.as_deref() else {
        // Nothing to check: every request is served anyway.
        return Ok((StatusCode::OK, Json(json!({ "token": "not required" }))).into_response());
    };
    if !same(token, body.token.trim()) {
        return Err(ApiError::unauthorized(
            "that is not the server's token: paste the contents of the file the server was \
             started with (--http-token-file)",
        ));
    }
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    let cookie = HeaderValue::from_str(&cookie)
        .ok()
        .filter(|_| !token.contains([';', ',', '"', '\\']))
        .ok_or_else(|| {
            ApiError::bad_request(
                "the server's token holds characters a cookie cannot carry; make a token of \
             letters, digits and + / = (such as base64 from /dev/urandom)",
            )
        })?;
    Ok((
        StatusCode::OK,
        [(header::SET_COOKIE, cookie)],
        Json(json!({ "token": "accepted" })),
    )
        .into_response())
}
