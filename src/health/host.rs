//! The `Host` check in front of every endpoint: only loopback names are answered, so a web
//! page whose DNS name is rebound to 127.0.0.1 cannot make a browser on this machine read
//! `/status` (mailbox names) for it.

use std::net::IpAddr;

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Refuses a request whose `Host` is not a loopback name with `421 Misdirected Request`.
/// A request without `Host` (HTTP/1.0) passes: browsers always send one.
pub(crate) async fn loopback_only(request: Request, next: Next) -> Response {
    if host_allowed(request.headers()) {
        return next.run(request).await;
    }
    let body = "This endpoint answers only to localhost, 127.0.0.1 or [::1].\n";
    (StatusCode::MISDIRECTED_REQUEST, body).into_response()
}

fn host_allowed(headers: &HeaderMap) -> bool {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) => true,
        (Some(host), None) => host.to_str().is_ok_and(is_loopback_host),
        // Two Host headers: which one a proxy would have used is anyone's guess.
        (Some(_), Some(_)) => false,
    }
}

/// `localhost`, a name under `.localhost` (RFC 6761: never resolved off this machine), or a
/// loopback address literal; each with an optional port. An address literal cannot be
/// rebound, but only loopback ones name this endpoint.
fn is_loopback_host(host: &str) -> bool {
    let name = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    let literal = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(&name);
    literal.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn strip_port(host: &str) -> &str {
    let Some((name, port)) = host.rsplit_once(':') else {
        return host;
    };
    // A bare IPv6 literal has colons but no port; a bracketed one ends in `]` before it.
    let is_port = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    if is_port && (!name.contains(':') || name.ends_with(']')) {
        name
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_with_or_without_port() {
        for host in [
            "localhost",
            "LOCALHOST:8025",
            "localhost.",
            "status.localhost:80",
            "127.0.0.1",
            "127.0.0.2:8025",
            "[::1]",
            "[::1]:8025",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn other_names_are_refused() {
        for host in [
            "evil.example",
            "evil.example:8025",
            "localhost.evil.example",
            "evillocalhost",
            "192.168.1.10:8025",
            "[2001:db8::1]:8025",
            "0.0.0.0",
            "",
            "localhost:abc",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
