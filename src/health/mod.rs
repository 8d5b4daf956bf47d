//! The loopback HTTP endpoints for people and monitoring: `/healthz` (alive), `/readyz` (can
//! send), `/status` (JSON) and `/metrics` (Prometheus text). Never shows a secret or token;
//! `/status` names the configured mailboxes and, for a login lockout, the client address and
//! user name (escaped); answers only requests addressed to a loopback host name.

mod host;
mod metrics;
mod queue;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State as Shared;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::relay::Relay;
use crate::smtp::guard::IpGuard;
use crate::stats::Stats;

pub(crate) use host::Exposure;
pub(crate) use status::readiness;

/// What the endpoints read: the statistics, the relay's routes, the listener's address, the
/// login lockouts and what the last reload said.
pub(crate) struct State {
    pub(crate) stats: Arc<Stats>,
    pub(crate) relay: Arc<Relay>,
    pub(crate) delivery: Arc<crate::delivery::Delivery>,
    pub(crate) smtp: SocketAddr,
    pub(crate) guard: Arc<IpGuard>,
}

impl State {
    fn is_draining(&self) -> bool {
        self.stats.draining.load(Ordering::Relaxed)
    }
}

/// Serves the endpoints on `listener` until `stop`.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    exposure: Exposure,
    stop: CancellationToken,
) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(exposure, host::guard))
        .with_state(state)
        .into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::warn!(error = %e, "health endpoint stopped");
    }
}

async fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

async fn readyz(Shared(state): Shared<Arc<State>>) -> Response {
    let r = readiness(&state);
    let code = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body =
        serde_json::json!({ "ready": r.ready, "reasons": r.reasons, "warnings": r.warnings });
    json(code, &body)
}

async fn status(Shared(state): Shared<Arc<State>>) -> Response {
    json(StatusCode::OK, &status::document(&state))
}

async fn metrics(Shared(state): Shared<Arc<State>>) -> Response {
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        metrics::render(&state),
    )
        .into_response()
}

fn json(code: StatusCode, value: &serde_json::Value) -> Response {
    let mut body = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into());
    body.push('\n');
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
