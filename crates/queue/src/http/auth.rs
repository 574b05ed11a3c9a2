//! The token check: with a token set, a request must carry it as `Authorization: Bearer
//! TOKEN` or as a `buildcat_token` cookie (what the web page will keep), or it gets a 401
//! and reaches no handler, so it changes nothing. An address that presents too many wrong
//! tokens gets 429 for a while ([`super::guesses`]). Requests let in take one of a bounded
//! number of places; past them the answer is 503.

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::AppState;

/// The cookie the web page keeps the token in.
pub(super) const COOKIE: &str = "buildcat_token";

/// Lets a request through when no token is set or it carries the token.
pub(crate) async fn require(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = match state.token.as_deref() {
        None => true,
        Some(token) => {
            let peer = peer(&request);
            let now = std::time::Instant::now();
            if state.guesses.blocked(peer, now) {
                return too_many_guesses();
            }
            let mut given = presented(request.headers()).peekable();
            let guessed = given.peek().is_some();
            let right = given.any(|given| same(token, given));
            if guessed && !right {
                state.guesses.wrong(peer, now);
            }
            right
        }
    };
    if allowed {
        let Ok(_place) = state.in_flight.try_acquire() else {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                Json(json!({
                    "error": "the server is answering too many HTTP requests at once; try again in a moment"
                })),
            )
                .into_response();
        };
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({
            "error": "this server requires a token: send `Authorization: Bearer TOKEN` (the \
                      contents of the server's --http-token-file) or a buildcat_token cookie"
        })),
    )
        .into_response()
}

/// The address a request came from (unspecified when the server was not told it).
pub(super) fn peer(request: &Request) -> std::net::IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<super::guesses::PeerAddr>>()
        .map_or(
            std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            |info| info.0.0.ip(),
        )
}

/// The answer to an address slowed down for guessing tokens.
pub(super) fn too_many_guesses() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(
            header::RETRY_AFTER,
            super::guesses::WINDOW.as_secs().to_string(),
        )],
        Json(json!({
            "error": format!(
                "too many wrong tokens from this address; wait {} s, then send the contents of \
                 the server's --http-token-file",
                super::guesses::WINDOW.as_secs()
            )
        })),
    )
        .into_response()
}

/// Every token the request carries: bearer tokens and `buildcat_token` cookies.
pub(super) fn presented(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| {
            let (name, token) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(token)
        });
    bearer.chain(cookies)
}

/// Compares in constant time, so the time a wrong guess takes says nothing of how close it
/// was (only whether its length was right).
pub(super) fn same(token: &str, given: &str) -> bool {
    token.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn tokens(pairs: &[(header::HeaderName, &'static str)]) -> Vec<String> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(name.clone(), HeaderValue::from_static(value));
        }
        presented(&headers).map(str::to_owned).collect()
    }

    #[test]
    fn bearer_and_cookie_tokens_are_found() {
        assert_eq!(tokens(&[(header::AUTHORIZATION, "Bearer abc")]), ["abc"]);
        assert_eq!(tokens(&[(header::AUTHORIZATION, "bearer  abc ")]), ["abc"]);
        assert!(tokens(&[(header::AUTHORIZATION, "Basic abc")]).is_empty());
        assert_eq!(
            tokens(&[(header::COOKIE, "theme=dark; buildcat_token=xyz")]),
            ["xyz"]
        );
        assert!(tokens(&[(header::COOKIE, "other_token=xyz")]).is_empty());
    }

    #[test]
    fn only_the_same_token_matches() {
        assert!(same("s3cret", "s3cret"));
        assert!(!same("s3cret", "s3creT"));
        assert!(!same("s3cret", "s3cre"));
        assert!(!same("s3cret", ""));
    }
}
