//! The queue as monitoring sees it: per account the queued, held and failed messages, the
//! oldest one's age and the next attempt, in `/status`, `/metrics` and `/readyz`'s warnings.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::State;
use crate::dates::rfc3339;
use crate::delivery::AccountQueue;

/// `/status`'s `queue`: the mode, the spool's use, the counters and each account's queue.
pub(super) fn document(state: &State) -> Value {
    let d = &state.delivery;
    let c = &d.queue.counters;
    let settings = d.settings();
    let accounts: serde_json::Map<String, Value> = d
        .queue
        .summary()
        .into_iter()
        .map(|(name, q)| (name, account(&q, d.now_unix())))
        .collect();
    json!({
        "mode": if d.spool().is_some() { settings.mode.name() } else { "sync" },
        "spool": d.spool().map(|s| json!({
            "dir": s.root().display().to_string(),
            "bytes": s.used(),
            "max_bytes": s.max_size(),
        })),
        "queued_total": c.queued.load(Ordering::Relaxed),
        "retries_total": c.retries.load(Ordering::Relaxed),
        "delivered_from_queue_total": c.delivered.load(Ordering::Relaxed),
        "bounced_total": c.bounced.load(Ordering::Relaxed),
        "ambiguous_total": c.ambiguous.load(Ordering::Relaxed),
        "deleted_total": c.deleted.load(Ordering::Relaxed),
        "accounts": accounts,
    })
}

fn account(q: &AccountQueue, now: u64) -> Value {
    json!({
        "queued": q.queued,
        "held": q.held,
        "failed": q.failed,
        "oldest_age_seconds": q.oldest_arrived.map(|a| now.saturating_sub(a)),
        "next_attempt": q.next_attempt.map(rfc3339),
    })
}

/// `/readyz` warnings: a message waiting longer than `delivery.warn_queue_age`.
pub(super) fn warnings(state: &State) -> Vec<String> {
    let limit = state.delivery.settings().warn_queue_age.as_secs();
    let now = state.delivery.now_unix();
    state
        .delivery
        .queue
        .summary()
        .into_iter()
        .filter_map(|(name, q)| {
            let age = now.saturating_sub(q.oldest_arrived?);
            (age > limit).then(|| {
                format!(
                    "account {name}: a queued message has waited {} min (more than delivery.warn_queue_age); {} queued, {} held",
                    age / 60,
                    q.queued,
                    q.held
                )
            })
        })
        .collect()
}

/// The queue's samples for `/metrics`.
pub(super) fn metrics(out: &mut String, state: &State) {
    let d = &state.delivery;
    let summary = d.queue.summary();
    super::metrics::header(
        out,
        "queue_messages",
        "gauge",
        "Messages in the spool, by state (queued: waiting for an attempt; held: waiting for an operator; failed: given up, kept in failed/).",
    );
    for (name, q) in &summary {
        let account = super::metrics::esc(name);
        for (state, n) in [("queued", q.queued), ("held", q.held), ("failed", q.failed)] {
            let _ = writeln!(
                out,
                "xoauth_relay_queue_messages{{account=\"{account}\",state=\"{state}\"}} {n}"
            );
        }
    }
    super::metrics::header(
        out,
        "queue_oldest_seconds",
        "gauge",
        "Age of the oldest message still queued or held.",
    );
    let now = d.now_unix();
    for (name, q) in &summary {
        let age = q.oldest_arrived.map_or(0, |a| now.saturating_sub(a));
        let _ = writeln!(
            out,
            "xoauth_relay_queue_oldest_seconds{{account=\"{}\"}} {age}",
            super::metrics::esc(name)
        );
    }
    let c = &d.queue.counters;
    let counters = [
        (
            "queue_queued_total",
            "Messages committed to the queue instead of delivered at once.",
            &c.queued,
        ),
        (
            "queue_retries_total",
            "Attempts at queued messages.",
            &c.retries,
        ),
        (
            "queue_delivered_total",
            "Queued messages Microsoft accepted.",
            &c.delivered,
        ),
        (
            "queue_bounces_total",
            "Queued messages given up (bounced or expired), each kept in failed/.",
            &c.bounced,
        ),
        (
            "queue_ambiguous_total",
            "Attempts whose final dot went upstream without a verdict (the message may be delivered twice).",
            &c.ambiguous,
        ),
        (
            "queue_deleted_total",
            "Queued messages deleted by an operator.",
            &c.deleted,
        ),
    ];
    for (name, help, value) in counters {
        super::metrics::header(out, name, "counter", help);
        let _ = writeln!(out, "xoauth_relay_{name} {}", value.load(Ordering::Relaxed));
    }
    if let Some(spool) = d.spool() {
        super::metrics::header(
            out,
            "spool_bytes",
            "gauge",
            "Octets of messages being received or queued (bounded by spool.max_size).",
        );
        let _ = writeln!(out, "xoauth_relay_spool_bytes {}", spool.used());
        super::metrics::header(out, "spool_max_bytes", "gauge", "spool.max_size.");
        let _ = writeln!(out, "xoauth_relay_spool_max_bytes {}", spool.max_size());
    }
}
