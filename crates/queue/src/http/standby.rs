//! The HTTP port of a standby server: every request is answered `503 Service Unavailable`
//! with a body that names the active server, so a dashboard, a script or a Prometheus
//! scraper pointed at a standby learns where to go instead of meeting a closed port.
//!
//! A standby has no farm state to show, so this is not the HTTP shell: a few lines of
//! HTTP/1.1 that read a request's head and answer it, one request per connection. `/api/...`
//! gets JSON (`{"error": ..., "standby": true, "active": ...}`), anything else plain text.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

/// The longest request head read: a request line and a few headers; a longer one is
/// answered all the same, from what was read.
const MAX_HEAD: usize = 16 * 1024;

/// How long a peer has to send its request head and take the answer.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// How long an accept failure (out of file descriptors, most often) pauses the loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(500);

/// How long a client is told to wait before asking again (`Retry-After`): about how long a
/// takeover takes once the active server is gone.
const RETRY_AFTER_SECONDS: u32 = 5;

/// Answers every request on `listener` with a standby's 503 naming `active`, for as long as
/// it is polled (it never returns).
pub(crate) async fn serve(listener: &TcpListener, active: &str) {
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                debug!(%peer, "standby: answering an http request");
                let active = active.to_owned();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(ANSWER_LIMIT, answer(socket, &active)).await;
                });
            }
            Err(error) => {
                warn!(%error, "standby: http accept failed");
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

/// Reads one request head from `socket` and answers it.
async fn answer(mut socket: TcpStream, active: &str) {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    let path = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let _ = socket.write_all(response(&path, active).as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// The whole HTTP response to a request for `path`.
fn response(path: &str, active: &str) -> String {
    let message = format!("standby; the active server is {active}");
    let (content_type, body) = if path.starts_with("/api/") {
        let body = serde_json::json!({
            "error": message,
            "standby": true,
            "active": active,
        });
        ("application/json", format!("{body}\n"))
    } else {
        ("text/plain; charset=utf-8", format!("{message}\n"))
    };
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: {content_type}\r\nContent-Length: \
         {}\r\nRetry-After: {RETRY_AFTER_SECONDS}\r\nCache-Control: no-store\r\nConnection: \
         close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::response;

    /// The API gets JSON naming the active server, the rest plain text; both are 503.
    #[test]
    fn answers_name_the_active_server() {
        let api = response("/api/v1/info", "a:7878");
        assert!(api.starts_with("HTTP/1.1 503 "), "{api}");
        let body = api.split("\r\n\r\n").nth(1).expect("a body");
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(json["active"], "a:7878");
        assert_eq!(json["error"], "standby; the active server is a:7878");
        let metrics = response("/metrics", "a:7878");
        assert!(metrics.starts_with("HTTP/1.1 503 "), "{metrics}");
        assert!(
            metrics.ends_with("standby; the active server is a:7878\n"),
            "{metrics}"
        );
        let length: usize = metrics
            .lines()
            .find_map(|line| line.strip_prefix("Content-Length: "))
            .and_then(|n| n.trim().parse().ok())
            .expect("a length");
        assert_eq!(length, metrics.split("\r\n\r\n").nth(1).map_or(0, str::len));
    }
}
