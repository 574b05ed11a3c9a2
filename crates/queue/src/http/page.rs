//! The web page: one HTML file, its script and its style sheet, embedded in the binary
//! (`assets/`), so the server needs no files beside it and the browser loads nothing from
//! elsewhere. The script is a small single-page app in plain JavaScript (views chosen by
//! the URL's `#/...`), which reads the same JSON routes as any script and listens to the
//! live feeds of [`events`](super::events).
//!
//! These routes sit outside the token check: they hold no data (the page asks for the
//! token and logs in through `/api/v1/login` when the API answers 401).

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

/// The page, with `{{version}}` standing for the server's version.
const INDEX: &str = include_str!("assets/index.html");
/// The app.
const SCRIPT: &str = include_str!("assets/app.js");
/// Its style.
const STYLE: &str = include_str!("assets/app.css");
/// The tab's icon (also keeps the browser from asking for a missing `/favicon.ico`).
const ICON: &str = include_str!("assets/icon.svg");

/// Every asset: path, content type, body. The end-to-end test requests each.
pub(crate) const ASSETS: &[(&str, &str, &str)] = &[
    ("/assets/app.js", "text/javascript; charset=utf-8", SCRIPT),
    ("/assets/app.css", "text/css; charset=utf-8", STYLE),
    ("/assets/icon.svg", "image/svg+xml", ICON),
];

/// Assets are revalidated on every load (they are small, and change with the server's
/// version): the page never runs a script older than its server.
const CACHE: &str = "no-cache";

/// The page's routes.
pub(crate) fn router() -> Router<AppState> {
    let mut router = Router::new().route("/", get(index)).route(
        "/favicon.ico",
        get(|| async { asset("image/svg+xml", ICON) }),
    );
    for (path, content_type, body) in ASSETS {
        router = router.route(path, get(move || async move { asset(content_type, body) }));
    }
    router
}

/// One asset with its type.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, CACHE),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the page.
async fn index() -> Response {
    let page = INDEX.replace("{{version}}", buildcat_proto::SOFTWARE_VERSION);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Everything the page loads comes from this server; no inline script.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; \
                 script-src 'self'; frame-ancestors 'none'",
            ),
        ],
        page,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_what_the_server_serves() {
        for (path, _, _) in ASSETS {
            if path.ends_with(".js") || path.ends_with(".css") || path.ends_with(".svg") {
                assert!(INDEX.contains(path), "index.html does not load {path}");
            }
        }
        for text in [INDEX, SCRIPT, STYLE, ICON] {
            // The SVG namespace is a name, not a place the browser loads from.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "an asset refers to another site; everything must be served by the server"
            );
        }
    }
}
