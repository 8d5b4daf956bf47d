//! Who may ask: by default only this machine, by a loopback name, so a web page whose DNS name
//! is rebound to 127.0.0.1 cannot make a browser on this machine read `/status` (mailbox
//! names) for it. `listen.health_public` opens `/healthz`, `/readyz` and `/metrics` to other
//! machines (a Prometheus elsewhere); `/status` needs `listen.status_public` as well.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Which endpoints answer other machines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Exposure {
    /// `/healthz`, `/readyz`, `/metrics`.
    pub(crate) health_public: bool,
    /// `/status` (and any other path).
    pub(crate) status_public: bool,
}

impl Exposure {
    fn is_public(self, path: &str) -> bool {
        match path {
            "/healthz" | "/readyz" | "/metrics" => self.health_public,
            _ => self.status_public,
        }
    }
}

/// A public endpoint answers anyone. Any other refuses, with `421 Misdirected Request`, a
/// request whose `Host` is not a loopback name (a request without `Host`, HTTP/1.0, passes:
/// browsers always send one), and with `403 Forbidden` one from another machine, which could
/// send any `Host` it likes once the listener is on a network address.
pub(crate) async fn guard(
    State(exposure): State<Exposure>,
    request: Request,
    next: Next,
) -> Response {
    if exposure.is_public(request.uri().path()) {
        return next.run(request).await;
    }
    if !peer_is_local(request.extensions().get::<ConnectInfo<SocketAddr>>()) {
        let body = "This endpoint answers only to this machine (see listen.status_public).\n";
        return (StatusCode::FORBIDDEN, body).into_response();
    }
    if host_allowed(request.headers()) {
        return next.run(request).await;
    }
    let body = "This endpoint answers only to localhost, 127.0.0.1 or [::1].\n";
    (StatusCode::MISDIRECTED_REQUEST, body).into_response()
}

/// The request came from this machine; without the peer's address, assume it did not.
fn peer_is_local(peer: Option<&ConnectInfo<SocketAddr>>) -> bool {
    peer.is_some_and(|c| c.0.ip().to_canonical().is_loopback())
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
    fn what_each_setting_opens() {
        let closed = Exposure::default();
        let health = Exposure {
            health_public: true,
            status_public: false,
        };
        let all = Exposure {
            health_public: true,
            status_public: true,
        };
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert!(!closed.is_public(path) && health.is_public(path) && all.is_public(path));
        }
        for path in ["/status", "/other", "/metrics/"] {
            assert!(!closed.is_public(path) && !health.is_public(path) && all.is_public(path));
        }
    }

    #[test]
    fn only_a_loopback_peer_is_local() {
        let peer = |a: &str| ConnectInfo(a.parse::<SocketAddr>().unwrap());
        for local in ["127.0.0.1:5000", "[::1]:5000", "[::ffff:127.0.0.1]:5000"] {
            assert!(peer_is_local(Some(&peer(local))), "{local}");
        }
        for remote in ["192.168.1.10:5000", "[2001:db8::1]:5000", "0.0.0.0:1"] {
            assert!(!peer_is_local(Some(&peer(remote))), "{remote}");
        }
        assert!(!peer_is_local(None));
    }

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
