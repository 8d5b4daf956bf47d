//! The loopback HTTP endpoints for people and monitoring: `/healthz` (alive), `/readyz` (can
//! send), `/status` (JSON) and `/metrics` (Prometheus text). Never shows a secret, token or
//! address other than the configured mailboxes, and answers only requests addressed to a
//! loopback host name.

mod host;
mod metrics;
mod status;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::daemon::Daemon;

pub use status::{Readiness, readiness};

/// Serves the endpoints on `listener` until `stop`.
pub async fn serve(listener: TcpListener, daemon: Arc<Daemon>, stop: CancellationToken) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn(host::loopback_only))
        .with_state(daemon);
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

async fn readyz(State(daemon): State<Arc<Daemon>>) -> Response {
    let r = readiness(&daemon);
    let code = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body =
        serde_json::json!({ "ready": r.ready, "reasons": r.reasons, "warnings": r.warnings });
    json(code, &body)
}

async fn status(State(daemon): State<Arc<Daemon>>) -> Response {
    json(StatusCode::OK, &status::document(&daemon))
}

async fn metrics(State(daemon): State<Arc<Daemon>>) -> Response {
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        metrics::render(&daemon),
    )
        .into_response()
}

fn json(code: StatusCode, value: &serde_json::Value) -> Response {
    let mut body = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into());
    body.push('\n');
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
