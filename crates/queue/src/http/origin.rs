//! Requests from other sites' pages: refused before any handler or the token check runs.
//!
//! A browser sends a "simple" cross-site POST (a form, or `fetch` with a text body) without
//! asking first, and job numbers are sequential, so without this any page the user visits
//! could cancel the farm's jobs through the API on loopback, where no token is set. So a
//! state-changing request (any method but GET, HEAD and OPTIONS) is refused with 403 when it
//! carries an `Origin` that is not the server's own (same scheme, host and port as the
//! request's `Host`) or `Sec-Fetch-Site: cross-site`. Requests with neither header (the
//! `buildcat` command, curl, scripts) and the server's own page (same origin) are let in.
//!
//! DNS rebinding: a page on `evil.example` whose name is then pointed at 127.0.0.1 is the
//! same origin as far as the browser knows, but sends `Host: evil.example`. Without a
//! token, a request of any method is refused unless its `Host` is a loopback address, a
//! `localhost` name or the address the server listens on. With a token, the token guards
//! (the cookie is `SameSite=Strict` to the real origin, so a rebound page never has it).

use std::net::IpAddr;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::debug;

use super::AppState;

/// Who the server is to a browser, for comparing with what a request says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Own {
    /// Whether the shell serves HTTPS: an `Origin` must name the same scheme.
    pub(crate) https: bool,
    /// The address the listener is bound to: a `Host` naming it is the server itself, as
    /// is any IP address when it is bound to every interface (a rebinding needs a name).
    pub(crate) listen: Option<IpAddr>,
}

impl Own {
    /// The scheme pages served by this shell have.
    fn scheme(self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

/// Lets a request through unless it comes from another site's page or names a foreign
/// host (see the module's docs).
pub(crate) async fn check(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request_host(&request);
    if state.token.is_none()
        && let Some(host) = &host
        && !host_allowed(host, state.own)
    {
        debug!(host = %host, "http request naming a foreign host refused");
        return refuse(format!(
            "this server does not answer for the host `{host}` without a token: a page of \
             another site may have pointed that name at it; open the page by its own address \
             (such as http://127.0.0.1:PORT/), or start the server with --http-token-file to \
             serve other names"
        ));
    }
    if changes_state(request.method())
        && let Some(why) = cross_site(request.headers(), host.as_ref(), state.own)
    {
        debug!(method = %request.method(), why = %why, "cross-site http request refused");
        return refuse(format!(
            "refused a {} from another site's page ({why}): the farm is changed only by its \
             own page, the buildcat command or scripts (which send no Origin header)",
            request.method()
        ));
    }
    next.run(request).await
}

/// Whether a request of this method may change the farm: everything but reads.
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The `Host` the request names (or the authority of its URI), if it names one that parses.
fn request_host(request: &Request) -> Option<Authority> {
    match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok()?.parse().ok(),
        None => request.uri().authority().cloned(),
    }
}

/// Why a request is cross-site, if it is: `Sec-Fetch-Site: cross-site`, or an `Origin`
/// other than the server's own as the request's `Host` names it.
fn cross_site(headers: &HeaderMap, host: Option<&Authority>, own: Own) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes().eq_ignore_ascii_case(b"cross-site")
    {
        return Some("Sec-Fetch-Site: cross-site".to_owned());
    }
    let origin = headers.get(header::ORIGIN)?;
    let shown = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    let same = origin
        .to_str()
        .ok()
        .zip(host)
        .is_some_and(|(origin, host)| same_origin(origin, host, own));
    (!same).then(|| format!("Origin: {shown}"))
}

/// Whether `origin` (`scheme://host[:port]`) is this server as `host` names it.
fn same_origin(origin: &str, host: &Authority, own: Own) -> bool {
    let Ok(origin) = origin.parse::<Uri>() else {
        // `null` (a sandboxed frame, a file) and anything malformed.
        return false;
    };
    let (Some(scheme), Some(authority)) = (origin.scheme_str(), origin.authority()) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(own.scheme())
        || origin
            .path_and_query()
            .is_some_and(|path| path.as_str() != "/")
    {
        return false;
    }
    let default_port = if own.https { 443 } else { 80 };
    authority.host().eq_ignore_ascii_case(host.host())
        && authority.port_u16().unwrap_or(default_port) == host.port_u16().unwrap_or(default_port)
}

/// Whether a request naming `host` may be answered without a token: loopback addresses,
/// `localhost` names (which browsers resolve to loopback themselves) and the address the
/// server listens on.
fn host_allowed(host: &Authority, own: Own) -> bool {
    let name = host.host();
    let bare = name
        .strip_prefix('[')
        .and_then(|name| name.strip_suffix(']'))
        .unwrap_or(name);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        let ip = ip.to_canonical();
        return ip.is_loopback()
            || own
                .listen
                .is_some_and(|listen| listen.is_unspecified() || listen.to_canonical() == ip);
    }
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// A 403 that says why.
fn refuse(message: String) -> Response {
    (StatusCode::FORBIDDEN, Json(json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const LOOPBACK: Own = Own {
        https: false,
        listen: Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
    };

    fn authority(text: &str) -> Authority {
        text.parse().expect("an authority")
    }

    fn why(pairs: &[(&'static str, &'static str)], host: &str, own: Own) -> Option<String> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        cross_site(&headers, Some(&authority(host)), own)
    }

    #[test]
    fn the_servers_own_origin_is_same_origin() {
        let host = "127.0.0.1:2229";
        assert_eq!(
            why(&[("origin", "http://127.0.0.1:2229")], host, LOOPBACK),
            None
        );
        assert_eq!(
            why(&[("origin", "HTTP://127.0.0.1:2229")], host, LOOPBACK),
            None
        );
        assert_eq!(
            why(&[("sec-fetch-site", "same-origin")], host, LOOPBACK),
            None
        );
        assert_eq!(why(&[], host, LOOPBACK), None);
        assert_eq!(
            why(&[("origin", "http://localhost")], "localhost:80", LOOPBACK),
            None
        );
        let https = Own {
            https: true,
            ..LOOPBACK
        };
        assert_eq!(
            why(&[("origin", "https://[::1]:8443")], "[::1]:8443", https),
            None
        );
    }

    #[test]
    fn another_scheme_host_or_port_is_cross_origin() {
        let host = "127.0.0.1:2229";
        for origin in [
            "http://evil.example",
            "http://127.0.0.1:2230",
            "https://127.0.0.1:2229",
            "http://localhost:2229",
            "null",
            "http://127.0.0.1:2229/path",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ORIGIN,
                HeaderValue::from_str(origin).expect("a value"),
            );
            assert!(
                cross_site(&headers, Some(&authority(host)), LOOPBACK).is_some(),
                "{origin} was taken as the server's own"
            );
        }
        let reason = why(&[("sec-fetch-site", "cross-site")], host, LOOPBACK);
        assert_eq!(reason.as_deref(), Some("Sec-Fetch-Site: cross-site"));
        let reason = why(&[("origin", "http://evil.example")], host, LOOPBACK);
        assert_eq!(reason.as_deref(), Some("Origin: http://evil.example"));
    }

    #[test]
    fn reads_pass_and_changes_are_checked() {
        assert!(!changes_state(&Method::GET));
        assert!(!changes_state(&Method::HEAD));
        assert!(!changes_state(&Method::OPTIONS));
        assert!(changes_state(&Method::POST));
        assert!(changes_state(&Method::DELETE));
        assert!(changes_state(&Method::PUT));
        assert!(changes_state(&Method::PATCH));
    }

    #[test]
    fn only_loopback_names_and_the_listen_address_are_hosts() {
        for host in [
            "127.0.0.1:2229",
            "127.0.0.2",
            "[::1]:2229",
            "localhost:2229",
            "LocalHost.",
            "farm.localhost:2229",
        ] {
            assert!(host_allowed(&authority(host), LOOPBACK), "{host} refused");
        }
        for host in [
            "evil.example:2229",
            "10.0.0.5:2229",
            "localhost.evil.example",
        ] {
            assert!(!host_allowed(&authority(host), LOOPBACK), "{host} allowed");
        }
        let lan = Own {
            https: false,
            listen: Some("10.0.0.5".parse().expect("an address")),
        };
        assert!(host_allowed(&authority("10.0.0.5:2229"), lan));
        assert!(!host_allowed(&authority("10.0.0.6:2229"), lan));
        let every = Own {
            https: false,
            listen: Some("0.0.0.0".parse().expect("an address")),
        };
        assert!(host_allowed(&authority("10.0.0.6:2229"), every));
        assert!(!host_allowed(&authority("evil.example:2229"), every));
    }
}
