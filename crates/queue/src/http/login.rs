//! `POST /api/v1/login`: the page sends the token once, and gets it back as an HttpOnly,
//! SameSite=Strict `buildcat_token` cookie. The page's script never keeps the token (it
//! could not set an HttpOnly cookie itself), and another site cannot make the browser send
//! it. A wrong token gets 401 and no cookie, and counts toward slowing its address down
//! (429, as for every request: [`super::guesses`]). `GET /api/v1/login` says whether a token is
//! needed and whether this request carries it, so the page can ask for it without first
//! provoking a 401.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::api::ApiError;
use super::auth::{COOKIE, presented, same, too_many_guesses};
use super::guesses::PeerAddr;

/// What the page sends.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginBody {
    /// The token, as the server's `--http-token-file` holds it.
    token: String,
}

/// Checks the token and sets the cookie.
pub(crate) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let peer = peer.0.ip();
    let now = std::time::Instant::now();
    if state.token.is_some() && state.guesses.blocked(peer, now) {
        return Ok(too_many_guesses());
    }
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
        state.guesses.wrong(peer, now);
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

/// `GET /api/v1/login`: `{"required": BOOL, "signed_in": BOOL}`: whether the server needs a
/// token, and whether this request carries the right one. Says nothing of the token itself.
pub(crate) async fn signed_in(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (required, signed_in) = match state.token.as_deref() {
        None => (false, true),
        Some(token) => (true, presented(&headers).any(|given| same(token, given))),
    };
    Json(json!({ "required": required, "signed_in": signed_in })).into_response()
}
