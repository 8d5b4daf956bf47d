//! `/metrics` in the Prometheus text format. Every name starts with `xoauth_relay_`; labels
//! are bounded (account name, outcome, reply class and code, result), never an address.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::State;
use super::status::{readiness, token_seconds_left};
use crate::dates::Day;
use crate::relay::Route;
use crate::stats::DURATION_BUCKETS;

/// Appends `# HELP` and `# TYPE` lines.
pub(super) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(
        out,
        "# HELP xoauth_relay_{name} {help}\n# TYPE xoauth_relay_{name} {kind}"
    );
}

/// A label value with `\`, `"` and newlines escaped as the format requires.
pub(super) fn esc(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) fn render(state: &State) -> String {
    let mut out = String::with_capacity(4096);
    process(&mut out, state);
    let mut routes = state.relay.routes();
    routes.sort_by(|a, b| a.account.name.cmp(&b.account.name));
    messages(&mut out, &routes);
    upstream(&mut out, &routes);
    tokens(&mut out, &routes);
    pacing(&mut out, &routes);
    durations(&mut out, &routes);
    super::queue::metrics(&mut out, state);
    out
}

/// One sample per account.
fn per_account(
    out: &mut String,
    routes: &[std::sync::Arc<Route>],
    (name, kind, help): (&str, &str, &str),
    value: impl Fn(&Route) -> u64,
) {
    header(out, name, kind, help);
    for r in routes {
        let account = esc(&r.account.name);
        let _ = writeln!(
            out,
            "xoauth_relay_{name}{{account=\"{account}\"}} {}",
            value(r)
        );
    }
}

fn pacing(out: &mut String, routes: &[std::sync::Arc<Route>]) {
    let help = "Messages that waited for a slot of max_messages_per_minute.";
    per_account(out, routes, ("pacing_waits_total", "counter", help), |r| {
        r.stats.pacing_waits.load(Ordering::Relaxed)
    });
    let help = "Messages refused by max_messages_per_minute or max_recipients_per_day.";
    per_account(
        out,
        routes,
        ("pacing_refusals_total", "counter", help),
        |r| r.stats.pacing_refusals.load(Ordering::Relaxed),
    );
    let help = "Recipients counted against max_recipients_per_day in the last 24 hours.";
    per_account(out, routes, ("recipients_last_24h", "gauge", help), |r| {
        r.pacer.recipients_last_24h()
    });
}

fn process(out: &mut String, state: &State) {
    let s = &state.stats;
    let l = &s.listener;
    let gauges = [
        ("up", "gauge", "1 while the process serves.", 1.0),
        (
            "ready",
            "gauge",
            "1 when every account can send (see /readyz).",
            f64::from(u8::from(readiness(state).ready)),
        ),
        (
            "uptime_seconds",
            "gauge",
            "Seconds since start.",
            s.uptime().as_secs_f64(),
        ),
        (
            "sessions_active",
            "gauge",
            "Client SMTP connections open now.",
            l.connections_now.load(Ordering::Relaxed) as f64,
        ),
        (
            "connections_total",
            "counter",
            "Client SMTP connections accepted.",
            l.connections_total.load(Ordering::Relaxed) as f64,
        ),
        (
            "connections_refused_total",
            "counter",
            "Client connections refused at the connection limit.",
            l.connections_refused.load(Ordering::Relaxed) as f64,
        ),
        (
            "auth_failures_total",
            "counter",
            "Failed local AUTH attempts.",
            s.auth_failures.load(Ordering::Relaxed) as f64,
        ),
        (
            "lockout_refusals_total",
            "counter",
            "Client connections and AUTH attempts refused because the address, or the user name at it, is locked out after failed logins.",
            s.lockout_refusals.load(Ordering::Relaxed) as f64,
        ),
    ];
    for (name, kind, help, value) in gauges {
        header(out, name, kind, help);
        let _ = writeln!(out, "xoauth_relay_{name} {value}");
    }
    header(out, "build_info", "gauge", "Version of the running binary.");
    let _ = writeln!(
        out,
        "xoauth_relay_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
}

fn messages(out: &mut String, routes: &[std::sync::Arc<Route>]) {
    header(
        out,
        "messages_total",
        "counter",
        "Messages by account and outcome (delivered, rejected_upstream, rejected_locally, temporary_failure).",
    );
    for r in routes {
        for (outcome, n) in r.stats.outcomes() {
            let _ = writeln!(
                out,
                "xoauth_relay_messages_total{{account=\"{}\",outcome=\"{}\"}} {n}",
                esc(&r.account.name),
                outcome.label()
            );
        }
    }
    let help = "Message octets accepted by the upstream.";
    per_account(out, routes, ("bytes_relayed_total", "counter", help), |r| {
        r.stats.bytes_relayed.load(Ordering::Relaxed)
    });
}

fn upstream(out: &mut String, routes: &[std::sync::Arc<Route>]) {
    header(
        out,
        "upstream_replies_total",
        "counter",
        "Final upstream replies by class and code.",
    );
    for r in routes {
        for (code, n) in r.stats.replies() {
            let (name, class) = (esc(&r.account.name), code / 100);
            let _ = writeln!(
                out,
                "xoauth_relay_upstream_replies_total{{account=\"{name}\",class=\"{class}xx\",code=\"{code}\"}} {n}"
            );
        }
    }
    let help = "Upstream SMTP sessions open now.";
    per_account(
        out,
        routes,
        ("upstream_sessions_active", "gauge", help),
        |r| r.upstream.active_sessions() as u64,
    );
    pool(out, routes);
}

fn pool(out: &mut String, routes: &[std::sync::Arc<Route>]) {
    let help = "Upstream SMTP sessions open and idle, kept for the next message.";
    per_account(
        out,
        routes,
        ("upstream_sessions_idle", "gauge", help),
        |r| r.upstream.idle_sessions() as u64,
    );
    header(
        out,
        "delivered_on_session_total",
        "counter",
        "Delivered messages by upstream session: reused (no new login) or new.",
    );
    for r in routes {
        let name = esc(&r.account.name);
        let reused = r.stats.on_reused_session.load(Ordering::Relaxed);
        let new = r.stats.on_new_session.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "xoauth_relay_delivered_on_session_total{{account=\"{name}\",session=\"reused\"}} {reused}"
        );
        let _ = writeln!(
            out,
            "xoauth_relay_delivered_on_session_total{{account=\"{name}\",session=\"new\"}} {new}"
        );
    }
}

fn tokens(out: &mut String, routes: &[std::sync::Arc<Route>]) {
    header(
        out,
        "token_fetches_total",
        "counter",
        "Token requests by result.",
    );
    for r in routes {
        let name = esc(&r.account.name);
        let (ok, failed) = (
            r.stats.token_fetches_ok.load(Ordering::Relaxed),
            r.stats.token_fetches_failed.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "xoauth_relay_token_fetches_total{{account=\"{name}\",result=\"ok\"}} {ok}"
        );
        let _ = writeln!(
            out,
            "xoauth_relay_token_fetches_total{{account=\"{name}\",result=\"error\"}} {failed}"
        );
    }
    let help = "Seconds until the cached token expires (0 without one).";
    per_account(
        out,
        routes,
        ("token_expiry_seconds", "gauge", help),
        token_seconds_left,
    );
    header(
        out,
        "client_secret_expiry_days",
        "gauge",
        "Days until the account's credential expires: client_secret_expires, or the client certificate's notAfter.",
    );
    for r in routes {
        if let Some(day) = crate::expiry::expires(&r.account) {
            let _ = writeln!(
                out,
                "xoauth_relay_client_secret_expiry_days{{account=\"{}\"}} {}",
                esc(&r.account.name),
                day.0 - Day::today().0
            );
        }
    }
}

fn durations(out: &mut String, routes: &[std::sync::Arc<Route>]) {
    header(
        out,
        "delivery_duration_seconds",
        "histogram",
        "Time from the client's final dot to the reply.",
    );
    for r in routes {
        let name = esc(&r.account.name);
        let (buckets, count, sum) = r.stats.durations.snapshot();
        for (le, n) in DURATION_BUCKETS.iter().zip(&buckets) {
            let _ = writeln!(
                out,
                "xoauth_relay_delivery_duration_seconds_bucket{{account=\"{name}\",le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "xoauth_relay_delivery_duration_seconds_bucket{{account=\"{name}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "xoauth_relay_delivery_duration_seconds_sum{{account=\"{name}\"}} {sum}"
        );
        let _ = writeln!(
            out,
            "xoauth_relay_delivery_duration_seconds_count{{account=\"{name}\"}} {count}"
        );
    }
}
