//! Proving that each account can send without sending mail: a probe opens an upstream session
//! (connect, STARTTLS, XOAUTH2) and quits, or asks an idle one of the account's `NOOP`. One prober per route runs at start-up and after a
//! reload that changed the account, then only while the account is failing: on a bounded
//! back-off and whenever a new token arrives. Its results, like those of real deliveries, are
//! the evidence `/readyz` and `/status` report.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::explain::explain;
use crate::error::{Class, RelayError};
use crate::oauth::AccessToken;
use crate::relay::Route;
use crate::stats::Evidence;
use crate::upstream::UpstreamError;

/// The first pause before probing a failing account again. An operator who just fixed the
/// setting (SMTP AUTH, consent, a secret) sees the relay ready within half a minute, and one
/// probe per 30 s is nothing next to Exchange's limits.
pub(crate) const FIRST_RETRY: Duration = Duration::from_secs(30);

/// The pause doubles up to this: a problem left alone overnight costs six sessions an hour,
/// and a fix is still noticed within ten minutes (well inside a `ready == 0 for 15m` alert).
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(10 * 60);

/// How a probe ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Authenticated: the account can send.
    Proven,
    /// The upstream or the token says no; the text explains it.
    Failed(String),
    /// Every connection slot is in use by deliveries: the account is evidently working.
    Busy,
    /// No usable token to probe with (the token refresh reports why).
    NoToken,
}

impl Verdict {
    fn is_good(&self) -> bool {
        matches!(self, Verdict::Proven | Verdict::Busy)
    }
}

/// Probes `route` once with its cached token and records the evidence.
pub(crate) async fn probe(route: &Route) -> Verdict {
    let Some(token) = route
        .tokens
        .peek()
        .filter(|t| t.usable_at(tokio::time::Instant::now()))
    else {
        return Verdict::NoToken;
    };
    let name = &route.account.name;
    let result = route.upstream.probe(&token).await;
    let verdict = match result {
        Ok(_) => {
            if route.stats.proven(Evidence::Probe) {
                tracing::info!(account = %name, "account can send again: the upstream probe authenticated");
            } else {
                tracing::debug!(account = %name, "upstream probe authenticated");
            }
            Verdict::Proven
        }
        Err(UpstreamError::Busy { .. }) => {
            tracing::debug!(account = %name, "probe skipped: every upstream connection slot is in use");
            Verdict::Busy
        }
        Err(e) => failed(route, e),
    };
    if verdict != Verdict::Busy {
        route.stats.probe_answered();
    }
    verdict
}

fn failed(route: &Route, e: UpstreamError) -> Verdict {
    let error = RelayError::Upstream(e);
    let what = explain(&error).map_or_else(|| error.to_string(), |x| x.what.to_string());
    let repeated = route
        .stats
        .current_config_problem()
        .is_some_and(|p| p.what == what);
    route.stats.problem(Evidence::Probe, what.clone());
    let name = &route.account.name;
    if repeated {
        tracing::debug!(account = %name, problem = %what, "upstream probe failed again");
    } else if error.class() == Class::Misconfigured {
        // The fix is explained once per account by the relay when a message fails, and by
        // `check`; the probe names the problem.
        tracing::error!(account = %name, error = %error, problem = %what, "upstream probe failed: the account cannot send (xoauth-relay check explains the fix)");
    } else {
        tracing::warn!(account = %name, error = %error, "upstream probe failed");
    }
    Verdict::Failed(what)
}

/// Probes `route` now, then again while it is failing, until `stop`.
pub(crate) async fn watch(route: Arc<Route>, stop: CancellationToken) {
    let mut retry = FIRST_RETRY;
    loop {
        let probed_with = route.tokens.peek();
        let verdict = probe(&route).await;
        if verdict.is_good() && route.stats.current_config_problem().is_none() {
            retry = FIRST_RETRY;
            if !healthy_until_doubt(&route, &stop).await {
                return;
            }
        }
        if !failing_until_retry(&route, &stop, &mut retry, probed_with).await {
            return;
        }
    }
}

/// A usable token other than `seen` is in the cache.
fn new_token(route: &Route, seen: Option<&Arc<AccessToken>>) -> bool {
    let now = tokio::time::Instant::now();
    route
        .tokens
        .peek()
        .filter(|t| t.usable_at(now))
        .is_some_and(|t| seen.is_none_or(|s| !Arc::ptr_eq(s, &t)))
}

/// While the account is fine: waits for a reason to doubt it, a delivery that found a problem
/// (then the back-off comes first: it just failed) or a token request refused for the
/// account's own fault (the secret revoked, say: the cached token may be revoked too, so the
/// probe comes at once). False on `stop`.
async fn healthy_until_doubt(route: &Route, stop: &CancellationToken) -> bool {
    loop {
        tokio::select! {
            _ = route.stats.failed.notified() => return true,
            _ = route.tokens.next_fetch() => {
                let refused = route.tokens.last_error().map(RelayError::Token);
                if refused.is_some_and(|e| e.class() == Class::Misconfigured) {
                    return true;
                }
            }
            _ = stop.cancelled() => return false,
        }
    }
}

/// While the account is failing: waits for the back-off, or less when a new token arrives
/// (a refresh after the operator fixed the secret). False on `stop`.
async fn failing_until_retry(
    route: &Route,
    stop: &CancellationToken,
    retry: &mut Duration,
    probed_with: Option<Arc<AccessToken>>,
) -> bool {
    let due = tokio::time::Instant::now() + *retry;
    loop {
        let fetched = route.tokens.next_fetch();
        tokio::pin!(fetched);
        fetched.as_mut().enable();
        if new_token(route, probed_with.as_ref()) {
            // It came while the probe ran (at start-up: while it found none).
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {
                *retry = (*retry * 2).min(MAX_RETRY);
                return true;
            }
            _ = &mut fetched => {
                if route.tokens.last_error().is_none() {
                    return true;
                }
            }
            _ = stop.cancelled() => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::time::Instant;

    use super::*;
    use crate::BoxFuture;
    use crate::message::Envelope;
    use crate::oauth::{TokenCache, TokenError, TokenSource};
    use crate::reply::Enhanced;
    use crate::stats::AccountStats;
    use crate::upstream::{Delivered, Probe, Upstream, UpstreamReply};

    /// Refuses AUTH with `535 5.7.139` while `refuse` is set; records when each probe came.
    #[derive(Default)]
    struct Exchange {
        refuse: AtomicBool,
        probes: Mutex<Vec<Instant>>,
    }

    impl Upstream for Exchange {
        fn deliver<'a>(
            &'a self,
            _: &'a AccessToken,
            _: &'a Envelope,
            _: &'a crate::message::Body,
            _: &'a crate::upstream::Progress,
        ) -> BoxFuture<'a, Result<Delivered, UpstreamError>> {
            unreachable!("probes send no mail")
        }

        fn probe<'a>(&'a self, _: &'a AccessToken) -> BoxFuture<'a, Result<Probe, UpstreamError>> {
            Box::pin(async move {
                self.probes.lock().unwrap().push(Instant::now());
                if self.refuse.load(Ordering::SeqCst) {
                    let reply = UpstreamReply {
                        code: 535,
                        enhanced: Some(Enhanced(5, 7, 139)),
                        text: "SmtpClientAuthentication is disabled".into(),
                    };
                    return Err(UpstreamError::AuthRejected {
                        mechanism: crate::upstream::Mechanism::Xoauth2,
                        reply,
                        challenge: None,
                    });
                }
                Ok(Probe {
                    tls_version: "TLSv1_3".into(),
                })
            })
        }
    }

    struct Tokens;

    impl TokenSource for Tokens {
        fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
            Box::pin(async { Ok(AccessToken::new("t".into(), Duration::from_secs(3600))) })
        }
    }

    /// A failing account is probed after 30 s, then at doubling pauses up to 10 minutes; a new
    /// token brings the next probe forward; once proven, probing stops.
    #[tokio::test(start_paused = true)]
    async fn failing_accounts_are_probed_on_a_bounded_back_off() {
        let exchange = Arc::new(Exchange::default());
        exchange.refuse.store(true, Ordering::SeqCst);
        let route = Arc::new(Route {
            account: Arc::new(crate::testkit::relay_config::example_account()),
            tokens: Arc::new(TokenCache::new(Arc::new(Tokens))),
            upstream: exchange.clone(),
            stats: Arc::new(AccountStats::default()),
            pacer: Arc::new(crate::pacing::Pacer::unlimited(Default::default())),
        });
        route.tokens.get().await.unwrap();
        let start = Instant::now();
        let stop = CancellationToken::new();
        let task = tokio::spawn(watch(route.clone(), stop.clone()));
        route.stats.probes_answered(8).await;
        let at: Vec<u64> = exchange.probes.lock().unwrap()[..8]
            .iter()
            .map(|t| (*t - start).as_secs())
            .collect();
        // 0, +30, +60, +120, +240, +480, +600, +600.
        assert_eq!(at, [0, 30, 90, 210, 450, 930, 1530, 2130]);
        assert!(route.stats.current_config_problem().is_some());

        // Fixed, and a new token arrives (say a refresh): probed at once, not in 10 minutes.
        exchange.refuse.store(false, Ordering::SeqCst);
        let token = route.tokens.peek().unwrap();
        route.tokens.invalidate(&token).await;
        let before = Instant::now();
        route.tokens.get().await.unwrap();
        route.stats.probes_answered(9).await;
        assert_eq!(before.elapsed(), Duration::ZERO);
        assert!(route.stats.current_config_problem().is_none());
        assert_eq!(
            route.stats.last_proof().map(|p| p.by),
            Some(Evidence::Probe)
        );

        tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
        assert_eq!(
            exchange.probes.lock().unwrap().len(),
            9,
            "healthy: no probes"
        );
        stop.cancel();
        task.await.unwrap();
    }
}
