//! What the running relay has seen, for `/status`, `/readyz` and `/metrics`: counters and last
//! events per account and for the listener. Cheap to update (atomics, short mutexes) because it
//! is touched on every connection and message. Never holds an address, secret or token.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::dates::now_unix;

/// How a message ended, as counted in `xoauth_relay_messages_total{outcome=…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Delivered,
    RejectedUpstream,
    RejectedLocally,
    TemporaryFailure,
}

impl Outcome {
    pub(crate) const ALL: [Outcome; 4] = [
        Outcome::Delivered,
        Outcome::RejectedUpstream,
        Outcome::RejectedLocally,
        Outcome::TemporaryFailure,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::RejectedUpstream => "rejected_upstream",
            Outcome::RejectedLocally => "rejected_locally",
            Outcome::TemporaryFailure => "temporary_failure",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds (seconds) of the delivery-duration histogram buckets.
pub(crate) const DURATION_BUCKETS: [f64; 10] =
    [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

/// A Prometheus-style histogram with fixed buckets.
#[derive(Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Cumulative counts per bucket, the total count and the sum in seconds.
    pub(crate) fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        let mut running = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                running += b.load(Ordering::Relaxed);
                running
            })
            .collect();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (cumulative, self.count.load(Ordering::Relaxed), sum)
    }
}

/// A token fetch as it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenEvent {
    pub(crate) at_unix: u64,
    /// `None` when the fetch succeeded.
    pub(crate) error: Option<String>,
    /// For a success: when the token expires.
    pub(crate) expires_unix: Option<u64>,
}

/// The last message relayed for an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeliveryEvent {
    pub(crate) at_unix: u64,
    /// The reply the client got, e.g. `250 2.0.0 Delivered upstream: OK <id>`.
    pub(crate) reply: String,
}

/// How an account was last seen to work, or to fail: a probe (connect, STARTTLS, XOAUTH2,
/// QUIT) or a real delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evidence {
    Probe,
    Delivery,
}

impl Evidence {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Evidence::Probe => "probe",
            Evidence::Delivery => "delivery",
        }
    }
}

/// The account was seen able to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Proof {
    pub(crate) by: Evidence,
    pub(crate) at_unix: u64,
}

/// A problem seen on a probe or a delivery attempt that keeps the account from sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigProblem {
    pub(crate) at_unix: u64,
    pub(crate) what: String,
    pub(crate) by: Evidence,
}

/// Whether the account can send, as far as the evidence goes.
#[derive(Debug, Default)]
struct Sendable {
    /// The last success of a probe or a delivery.
    proven: Option<Proof>,
    /// The failure that stands now (cleared by the next success).
    problem: Option<ConfigProblem>,
    /// The most recent failure, kept after a success for `/status`.
    last_failure: Option<ConfigProblem>,
}

/// Everything counted for one account.
#[derive(Default)]
pub(crate) struct AccountStats {
    outcomes: [AtomicU64; 4],
    pub(crate) bytes_relayed: AtomicU64,
    replies: Mutex<BTreeMap<u16, u64>>,
    pub(crate) token_fetches_ok: AtomicU64,
    pub(crate) token_fetches_failed: AtomicU64,
    last_token: Mutex<Option<TokenEvent>>,
    last_delivery: Mutex<Option<DeliveryEvent>>,
    sendable: Mutex<Sendable>,
    /// Wakes the account's prober when a delivery finds a problem, so it starts probing on
    /// its back-off (one stored permit: a failure while it probes is not lost).
    pub(crate) failed: tokio::sync::Notify,
    /// Probes that answered (proven or failed), and a wake-up for each.
    pub(crate) probes: AtomicU64,
    probed: tokio::sync::Notify,
    pub(crate) durations: Histogram,
    /// Messages that waited for a slot under `max_messages_per_minute`.
    pub(crate) pacing_waits: AtomicU64,
    /// Messages refused by either pacing limit.
    pub(crate) pacing_refusals: AtomicU64,
    /// Recipients counted against `max_recipients_per_day` in the last 24 hours, as of the
    /// account's last message (or start).
    pub(crate) recipients_24h: AtomicU64,
    /// Delivered messages by the upstream session they went on: one that had carried a
    /// message before, or a new one.
    pub(crate) on_reused_session: AtomicU64,
    pub(crate) on_new_session: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data are counters and last events; a panic elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AccountStats {
    pub(crate) fn count(&self, outcome: Outcome) {
        self.outcomes[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn session_used(&self, reused: bool) {
        let counter = if reused {
            &self.on_reused_session
        } else {
            &self.on_new_session
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn outcomes(&self) -> [(Outcome, u64); 4] {
        Outcome::ALL.map(|o| (o, self.outcomes[o.index()].load(Ordering::Relaxed)))
    }

    /// Records the upstream's reply code; only real SMTP codes, so the label set stays bounded.
    pub(crate) fn upstream_reply(&self, code: u16) {
        if (200..600).contains(&code) {
            *lock(&self.replies).entry(code).or_default() += 1;
        }
    }

    pub(crate) fn replies(&self) -> BTreeMap<u16, u64> {
        lock(&self.replies).clone()
    }

    pub(crate) fn token_fetched(&self, result: Result<Duration, String>) {
        let at_unix = now_unix();
        let event = match result {
            Ok(lifetime) => {
                self.token_fetches_ok.fetch_add(1, Ordering::Relaxed);
                TokenEvent {
                    at_unix,
                    error: None,
                    expires_unix: Some(at_unix + lifetime.as_secs()),
                }
            }
            Err(error) => {
                self.token_fetches_failed.fetch_add(1, Ordering::Relaxed);
                TokenEvent {
                    at_unix,
                    error: Some(error),
                    expires_unix: None,
                }
            }
        };
        *lock(&self.last_token) = Some(event);
    }

    pub(crate) fn last_token(&self) -> Option<TokenEvent> {
        lock(&self.last_token).clone()
    }

    pub(crate) fn delivered(&self, reply: String) {
        *lock(&self.last_delivery) = Some(DeliveryEvent {
            at_unix: now_unix(),
            reply,
        });
    }

    pub(crate) fn last_delivery(&self) -> Option<DeliveryEvent> {
        lock(&self.last_delivery).clone()
    }

    /// Evidence that the account can send: clears the standing problem. True when there was
    /// one (a recovery worth logging).
    pub(crate) fn proven(&self, by: Evidence) -> bool {
        let mut s = lock(&self.sendable);
        s.proven = Some(Proof {
            by,
            at_unix: now_unix(),
        });
        s.problem.take().is_some()
    }

    /// Evidence that the account cannot send until the operator fixes `what`.
    pub(crate) fn problem(&self, by: Evidence, what: String) {
        let problem = ConfigProblem {
            at_unix: now_unix(),
            what,
            by,
        };
        let mut s = lock(&self.sendable);
        s.last_failure = Some(problem.clone());
        s.problem = Some(problem);
        drop(s);
        if by == Evidence::Delivery {
            self.failed.notify_one();
        }
    }

    /// Counts a probe that answered.
    pub(crate) fn probe_answered(&self) {
        self.probes.fetch_add(1, Ordering::Relaxed);
        self.probed.notify_waiters();
    }

    /// Waits until at least `n` probes have answered.
    pub(crate) async fn probes_answered(&self, n: u64) {
        loop {
            let next = self.probed.notified();
            tokio::pin!(next);
            next.as_mut().enable();
            if self.probes.load(Ordering::Relaxed) >= n {
                return;
            }
            next.await;
        }
    }

    /// Clears the standing problem without proof of sending (the upstream answered about the
    /// message itself, e.g. `550` for a recipient, so the account got past AUTH).
    pub(crate) fn clear_problem(&self) {
        lock(&self.sendable).problem = None;
    }

    pub(crate) fn current_config_problem(&self) -> Option<ConfigProblem> {
        lock(&self.sendable).problem.clone()
    }

    pub(crate) fn last_failure(&self) -> Option<ConfigProblem> {
        lock(&self.sendable).last_failure.clone()
    }

    pub(crate) fn last_proof(&self) -> Option<Proof> {
        lock(&self.sendable).proven
    }

    /// No probe has answered and no delivery has ended yet: nothing is known.
    pub(crate) fn unchecked(&self) -> bool {
        let s = lock(&self.sendable);
        s.proven.is_none() && s.problem.is_none()
    }
}

/// How the last reload (SIGHUP) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReloadEvent {
    pub(crate) at_unix: u64,
    /// `None` when the new configuration is in use; else why it was refused.
    pub(crate) refused: Option<String>,
}

/// Connections on the SMTP listener.
#[derive(Default)]
pub(crate) struct ListenerStats {
    pub(crate) bound: AtomicBool,
    pub(crate) connections_now: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
}

/// The whole process.
pub(crate) struct Stats {
    pub(crate) started: std::time::Instant,
    pub(crate) started_unix: u64,
    pub(crate) listener: ListenerStats,
    pub(crate) auth_failures: AtomicU64,
    /// Connections and AUTH attempts refused because their address or user name is locked out.
    pub(crate) lockout_refusals: AtomicU64,
    /// Local rejections before a user logged in (policy rejections after login count per account).
    pub(crate) rejected_unauthenticated: AtomicU64,
    pub(crate) draining: AtomicBool,
    last_reload: Mutex<Option<ReloadEvent>>,
    /// Settings changed in the file that only a restart puts in effect.
    restart_needed: Mutex<Vec<&'static str>>,
    accounts: RwLock<BTreeMap<String, Arc<AccountStats>>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: std::time::Instant::now(),
            started_unix: now_unix(),
            listener: ListenerStats::default(),
            auth_failures: AtomicU64::new(0),
            lockout_refusals: AtomicU64::new(0),
            rejected_unauthenticated: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            last_reload: Mutex::new(None),
            restart_needed: Mutex::new(Vec::new()),
            accounts: RwLock::new(BTreeMap::new()),
        }
    }
}

impl Stats {
    /// The stats of `account`, created on first use; they survive a configuration reload.
    pub(crate) fn account(&self, account: &str) -> Arc<AccountStats> {
        if let Some(s) = self
            .accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(account)
        {
            return s.clone();
        }
        let mut all = self.accounts.write().unwrap_or_else(|e| e.into_inner());
        all.entry(account.to_string()).or_default().clone()
    }

    /// Records how a reload ended; `restart_needed` is kept from an accepted one only (a
    /// refused file changes nothing).
    pub(crate) fn reloaded(
        &self,
        refused: Option<String>,
        restart_needed: Option<Vec<&'static str>>,
    ) {
        *lock(&self.last_reload) = Some(ReloadEvent {
            at_unix: now_unix(),
            refused,
        });
        if let Some(settings) = restart_needed {
            *lock(&self.restart_needed) = settings;
        }
    }

    pub(crate) fn last_reload(&self) -> Option<ReloadEvent> {
        lock(&self.last_reload).clone()
    }

    pub(crate) fn restart_needed(&self) -> Vec<&'static str> {
        lock(&self.restart_needed).clone()
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        for ms in [10, 60, 60, 3000, 500_000] {
            h.observe(Duration::from_millis(ms));
        }
        let (buckets, count, sum) = h.snapshot();
        assert_eq!(buckets, vec![1, 3, 3, 3, 3, 3, 4, 4, 4, 4]);
        assert_eq!(count, 5);
        assert!((sum - 503.13).abs() < 1e-6, "{sum}");
    }

    #[test]
    fn accounts_and_bounded_reply_codes() {
        let stats = Stats::default();
        let a = stats.account("contoso");
        a.count(Outcome::Delivered);
        a.upstream_reply(250);
        a.upstream_reply(250);
        a.upstream_reply(999);
        assert!(Arc::ptr_eq(&a, &stats.account("contoso")));
        assert_eq!(a.outcomes()[0], (Outcome::Delivered, 1));
        assert_eq!(a.replies(), BTreeMap::from([(250, 2)]));
    }
}
