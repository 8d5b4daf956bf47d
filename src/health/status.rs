//! Readiness and the `/status` document, computed from the live state.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::State;
use crate::dates::{Day, now_unix, rfc3339};
use crate::expiry;
use crate::logging::Untrusted;
use crate::relay::Route;
use crate::stats::{AccountStats, TokenEvent};

/// Whether the relay can send, and why not.
#[derive(Debug)]
pub(crate) struct Readiness {
    pub(crate) ready: bool,
    pub(crate) reasons: Vec<String>,
    pub(crate) warnings: Vec<String>,
}

/// Ready when the listener is bound, the relay is not draining, and every account holds a
/// valid token and was last seen able to send: the latest evidence (a probe or a delivery)
/// was a success. Until the first probe answers, an account is "checking" (not ready).
pub(crate) fn readiness(state: &State) -> Readiness {
    let mut reasons = Vec::new();
    let mut warnings = Vec::new();
    if !state.stats.listener.bound.load(Ordering::Relaxed) {
        reasons.push("the SMTP listener is not bound".to_string());
    }
    if state.is_draining() {
        reasons.push("shutting down: draining connections".to_string());
    }
    let today = Day::today();
    for route in state.relay.routes() {
        account_reasons(&route, &mut reasons);
        warnings.extend(expiry::warning(&route.account, today));
    }
    warnings.extend(super::queue::warnings(state));
    Readiness {
        ready: reasons.is_empty(),
        reasons,
        warnings,
    }
}

fn account_reasons(route: &Route, reasons: &mut Vec<String>) {
    let name = &route.account.name;
    if !route
        .tokens
        .peek()
        .is_some_and(|t| t.usable_at(Instant::now()))
    {
        let why = match route.stats.last_token() {
            Some(TokenEvent { error: Some(e), .. }) => {
                format!("the last token request failed: {e}")
            }
            _ => "no token fetched yet".to_string(),
        };
        reasons.push(format!("account {name}: no valid token ({why})"));
    }
    if let Some(p) = route.stats.current_config_problem() {
        reasons.push(format!(
            "account {name}: the last {} failed: {}",
            p.by.label(),
            p.what
        ));
    } else if route.stats.unchecked() {
        reasons.push(format!(
            "account {name}: checking: the first upstream probe has not answered yet"
        ));
    }
}

/// The `/status` JSON document.
pub(crate) fn document(state: &State) -> Value {
    let stats = &state.stats;
    let l = &stats.listener;
    let accounts: serde_json::Map<String, Value> = state
        .relay
        .routes()
        .iter()
        .map(|r| (r.account.name.clone(), account(r)))
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started": rfc3339(stats.started_unix),
        "uptime_seconds": stats.uptime().as_secs(),
        "ready": readiness(state).ready,
        "draining": state.is_draining(),
        "listener": {
            "smtp": state.smtp.to_string(),
            "bound": l.bound.load(Ordering::Relaxed),
            "connections_now": l.connections_now.load(Ordering::Relaxed),
            "connections_total": l.connections_total.load(Ordering::Relaxed),
            "connections_refused": l.connections_refused.load(Ordering::Relaxed),
            "rejected_before_login": stats.rejected_unauthenticated.load(Ordering::Relaxed),
        },
        "auth_failures": stats.auth_failures.load(Ordering::Relaxed),
        "lockouts": lockouts(state),
        "last_reload": stats.last_reload().map(|r| json!({
            "at": rfc3339(r.at_unix),
            "result": if r.refused.is_none() { "ok" } else { "refused" },
            "problems": r.refused,
        })),
        "restart_needed": stats.restart_needed(),
        "lockout_refusals": stats.lockout_refusals.load(Ordering::Relaxed),
        "accounts": accounts,
        "queue": super::queue::document(state),
    })
}

/// The login lockouts in force: whose (an address, or a user name at it), until when, after how
/// many failures. A user name may be anything a client sent, so it is escaped.
fn lockouts(state: &State) -> Value {
    let now = now_unix();
    let all: Vec<Value> = state
        .guard
        .lockouts()
        .iter()
        .map(|l| {
            json!({
                "address": l.address.to_string(),
                "user": l.user.as_deref().map(|u| Untrusted(u).to_string()),
                "until": rfc3339(now + l.remaining.as_secs()),
                "seconds_left": l.remaining.as_secs(),
                "failures": l.failures,
            })
        })
        .collect();
    Value::Array(all)
}

fn account(route: &Route) -> Value {
    let s = &route.stats;
    let messages: serde_json::Map<String, Value> = s
        .outcomes()
        .iter()
        .map(|(o, n)| (o.label().to_string(), json!(n)))
        .collect();
    let a = &route.account;
    json!({
        "mailbox": a.mailbox,
        // A password account (ACS) has no token; its placeholder is not one to report.
        "token": if a.provider.uses_login() { Value::Null } else { token(route, s) },
        "messages": messages,
        "bytes_relayed": s.bytes_relayed.load(Ordering::Relaxed),
        "upstream_sessions": route.upstream.active_sessions(),
        "upstream_sessions_idle": route.upstream.idle_sessions(),
        "delivered_on_session": {
            "reused": s.on_reused_session.load(Ordering::Relaxed),
            "new": s.on_new_session.load(Ordering::Relaxed),
        },
        "last_delivery": s.last_delivery().map(|d| json!({ "at": rfc3339(d.at_unix), "reply": d.reply })),
        "config_problem": s.current_config_problem().map(|p| json!({ "at": rfc3339(p.at_unix), "what": p.what, "by": p.by.label() })),
        "can_send": can_send(s),
        "pacing": {
            "max_messages_per_minute": a.max_messages_per_minute,
            "max_recipients_per_day": a.max_recipients_per_day,
            "recipients_last_24h": route.pacer.recipients_last_24h(),
            "waits": s.pacing_waits.load(Ordering::Relaxed),
            "refusals": s.pacing_refusals.load(Ordering::Relaxed),
        },
        "client_secret": {
            "expires": a.client_secret_expires.map(|d| d.to_string()),
            "warning": expiry::warning(a, Day::today()),
        },
    })
}

/// When and how the account was last proven able to send, and its last failure (kept after
/// a success, so a flapping account shows what went wrong).
fn can_send(s: &AccountStats) -> Value {
    let state = if s.current_config_problem().is_some() {
        "failing"
    } else if s.unchecked() {
        "checking"
    } else {
        "yes"
    };
    json!({
        "state": state,
        "last_proven": s.last_proof().map(|p| json!({ "by": p.by.label(), "at": rfc3339(p.at_unix) })),
        "last_failure": s.last_failure().map(|p| json!({ "by": p.by.label(), "at": rfc3339(p.at_unix), "what": p.what })),
    })
}

fn token(route: &Route, s: &AccountStats) -> Value {
    let now = Instant::now();
    let current = route.tokens.peek().filter(|t| t.usable_at(now));
    let left = current
        .as_ref()
        .map(|t| t.expires_at().saturating_duration_since(now).as_secs());
    let last = s.last_token().map(|t| {
        json!({
            "at": rfc3339(t.at_unix),
            "result": if t.error.is_none() { "ok" } else { "error" },
            "error": t.error,
        })
    });
    json!({
        "valid": current.is_some(),
        "expires": left.map(|secs| rfc3339(now_unix() + secs)),
        "expires_in_seconds": left,
        "last_fetch": last,
        "fetches_ok": s.token_fetches_ok.load(Ordering::Relaxed),
        "fetches_failed": s.token_fetches_failed.load(Ordering::Relaxed),
    })
}

/// Seconds until the current token of `route` expires (0 when there is none).
pub(crate) fn token_seconds_left(route: &Route) -> u64 {
    if route.account.provider.uses_login() {
        return 0;
    }
    let now = Instant::now();
    route.tokens.peek().map_or(0, |t| {
        t.expires_at().saturating_duration_since(now).as_secs()
    })
}
