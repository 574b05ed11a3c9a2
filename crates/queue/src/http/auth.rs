//! The token check: with a token set, a request must carry it as `Authorization: Bearer
//! TOKEN` or as a `buildcat_token` cookie (what the web page will keep), or it gets a 401
//! and reaches no handler, so it changes nothing. Requests let in take one of a bounded
//! number of places; past them the answer is 503.

use axum::Json;
use axum::extract::{Request, State};
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
        Some(token) => presented(request.headers()).any(|given| same(token, given)),
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
