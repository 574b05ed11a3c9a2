//! The HTTP port of a standby server: every request is answered `503 Service Unavailable`
//! with a body that names the active server, so a dashboard, a script or a Prometheus
//! scraper pointed at a standby learns where to go instead of meeting a closed port.
//!
//! A standby has no farm state to show, so this is not the HTTP shell: one axum fallback
//! answers every path, `/api/...` with JSON (`{"error": ..., "standby": true, "active":
//! ...}`), anything else with plain text. It serves a duplicate of the HTTP listener (the
//! listener itself is the HTTP shell's once this server is active), over TLS with the
//! server's certificate when the server has TLS, as the shell does.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

/// How long a client is told to wait before asking again (`Retry-After`): about how long a
/// takeover takes once the active server is gone.
const RETRY_AFTER_SECONDS: u32 = 5;

/// The standby's HTTP answers, served in a task of their own for as long as this is kept:
/// dropping it (at takeover) stops them and frees the port for the HTTP shell.
pub(crate) struct Answering(tokio::task::JoinHandle<()>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts answering every request on `listener` with a standby's 503 naming the active
/// server as `active` says now (over TLS with `tls`), until the result is dropped.
///
/// # Errors
/// When the listener cannot be duplicated (out of file descriptors, most often).
pub(crate) fn answer_on(
    listener: &TcpListener,
    tls: Option<TlsAcceptor>,
    active: watch::Receiver<String>,
) -> std::io::Result<Answering> {
    let duplicate = duplicate(listener)?;
    let app = Router::new().fallback(move |uri: Uri| {
        let active = active.borrow().clone();
        async move { answer(&uri, &active) }
    });
    debug!(tls = tls.is_some(), "standby: answering http requests");
    Ok(Answering(tokio::spawn(async move {
        let served = match tls {
            None => axum::serve(duplicate, app).await,
            Some(acceptor) => match super::tls::TlsListener::new(duplicate, acceptor) {
                Ok(listener) => axum::serve(listener, app).await,
                Err(error) => Err(error),
            },
        };
        if let Err(error) = served {
            warn!(%error, "standby: the http port stopped answering");
        }
    })))
}

/// A second handle on the same listening socket: axum serves a listener it owns, and the
/// HTTP shell takes the listener itself once this server is active (dropping the duplicate
/// closes only its handle).
fn duplicate(listener: &TcpListener) -> std::io::Result<TcpListener> {
    #[cfg(unix)]
    let owned = {
        use std::os::fd::AsFd;
        std::net::TcpListener::from(listener.as_fd().try_clone_to_owned()?)
    };
    #[cfg(windows)]
    let owned = {
        use std::os::windows::io::AsSocket;
        std::net::TcpListener::from(listener.as_socket().try_clone_to_owned()?)
    };
    owned.set_nonblocking(true)?;
    TcpListener::from_std(owned)
}

/// The answer to a request for `uri`: 503, naming `active`.
fn answer(uri: &Uri, active: &str) -> Response {
    let message = format!("standby; the active server is {active}");
    let mut response = if uri.path().starts_with("/api/") {
        let body = serde_json::json!({
            "error": message,
            "standby": true,
            "active": active,
        });
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{message}\n")).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::answer;
    use axum::http::{StatusCode, Uri, header};

    /// The answer's status, `Retry-After` and body.
    async fn parts(path: &str) -> (StatusCode, String, String) {
        let uri: Uri = path.parse().expect("a path");
        let response = answer(&uri, "a:7878");
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("a body");
        (status, retry, String::from_utf8_lossy(&body).into_owned())
    }

    /// The API gets JSON naming the active server, the rest plain text; both are 503 and
    /// say when to ask again.
    #[tokio::test]
    async fn answers_name_the_active_server() {
        let (status, retry, body) = parts("/api/v1/info").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry, "5");
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["active"], "a:7878");
        assert_eq!(json["standby"], true);
        assert_eq!(json["error"], "standby; the active server is a:7878");
        let (status, _, body) = parts("/metrics").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "standby; the active server is a:7878\n");
    }
}
