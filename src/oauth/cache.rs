//! A per-account token cache with single-flight refresh: however many sessions need a token at
//! once, one request goes to the token endpoint and they all get its result.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Mutex, Notify, futures::Notified};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{AccessToken, TokenError, TokenSource};

/// A token handed out by the cache.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub(crate) token: Arc<AccessToken>,
    /// Fetched for this request (as opposed to reused from the cache). A fresh token that the
    /// upstream refuses is not worth refetching.
    pub(crate) fresh: bool,
}

#[derive(Default)]
struct State {
    token: Option<Arc<AccessToken>>,
    /// The last failed fetch and its sequence number in `fetches`.
    failure: Option<(u64, TokenError)>,
}

pub(crate) struct TokenCache {
    source: Arc<dyn TokenSource>,
    /// An async mutex, held across the fetch on purpose: that is what makes concurrent callers
    /// wait for the one request in flight instead of starting their own.
    state: Mutex<State>,
    /// Completed fetches, read before queueing so a caller can tell whether a failure it finds
    /// happened while it waited (share it) or before it arrived (try again).
    fetches: AtomicU64,
    /// A copy of the cached token readable without waiting for a fetch in progress (for
    /// readiness checks); a std lock, held only to clone or replace the `Arc`.
    published: RwLock<Option<Arc<AccessToken>>>,
    /// Wakes those waiting for the next fetch to end (the account's prober).
    fetched: Notify,
    /// The error of the last fetch, `None` after a success; a std lock like `published`.
    last_error: RwLock<Option<TokenError>>,
}

/// First pause after a failed background refresh; it doubles up to [`MAX_BACKOFF`].
pub(crate) const MIN_BACKOFF: Duration = Duration::from_secs(5);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);

impl TokenCache {
    pub(crate) fn new(source: Arc<dyn TokenSource>) -> Self {
        Self {
            source,
            state: Mutex::new(State::default()),
            fetches: AtomicU64::new(0),
            published: RwLock::new(None),
            fetched: Notify::new(),
            last_error: RwLock::new(None),
        }
    }

    /// Completes when the next fetch ends, with a token or an error; `enable` it before looking
    /// at [`peek`](Self::peek) so a fetch in between is not missed.
    pub(crate) fn next_fetch(&self) -> Notified<'_> {
        self.fetched.notified()
    }

    /// The error of the last fetch, if it failed.
    pub(crate) fn last_error(&self) -> Option<TokenError> {
        self.last_error
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn fetch_ended(&self, error: Option<TokenError>) {
        *self.last_error.write().unwrap_or_else(|e| e.into_inner()) = error;
        self.fetched.notify_waiters();
    }

    /// The cached token, if any, without waiting (it may be past its refresh point).
    pub(crate) fn peek(&self) -> Option<Arc<AccessToken>> {
        self.published
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn publish(&self, token: Option<Arc<AccessToken>>) {
        *self.published.write().unwrap_or_else(|e| e.into_inner()) = token;
    }

    /// Keeps a fresh token in the cache until `stop`: fetches one now, then again at each
    /// refresh point, backing off after failures. An idle relay thus always holds a valid token
    /// and the first message after a quiet hour does not wait for the token endpoint.
    pub(crate) async fn keep_fresh(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let due = self.peek().map_or_else(Instant::now, |t| t.refresh_at());
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.cancelled() => return,
            }
            if self.refresh_succeeded().await {
                backoff = MIN_BACKOFF;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// True when the cache now holds a token that is not yet due for refresh.
    async fn refresh_succeeded(&self) -> bool {
        match self.get().await {
            Ok(issued) => issued.fresh || Instant::now() < issued.token.refresh_at(),
            Err(error) => {
                tracing::warn!(%error, "background token refresh failed; will retry");
                false
            }
        }
    }

    /// A token that is good for a while, fetching one if needed.
    pub(crate) async fn get(&self) -> Result<Issued, TokenError> {
        let seen = self.fetches.load(Ordering::Acquire);
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some(token) = state.token.as_ref().filter(|t| now < t.refresh_at()) {
            return Ok(Issued {
                token: token.clone(),
                fresh: false,
            });
        }
        if let Some((seq, error)) = &state.failure
            && *seq > seen
        {
            return Err(error.clone());
        }
        let result = self.source.fetch().await;
        let seq = self.fetches.fetch_add(1, Ordering::AcqRel) + 1;
        match result {
            Ok(token) => {
                let token = Arc::new(token);
                state.token = Some(token.clone());
                self.publish(state.token.clone());
                state.failure = None;
                self.fetch_ended(None);
                Ok(Issued { token, fresh: true })
            }
            Err(error) => {
                state.failure = Some((seq, error.clone()));
                self.fetch_ended(Some(error.clone()));
                // A refresh that fails before the old token expires should not stop mail.
                match state.token.as_ref().filter(|t| t.usable_at(Instant::now())) {
                    Some(token) => {
                        tracing::warn!(%error, "token refresh failed; using the current token until it expires");
                        Ok(Issued {
                            token: token.clone(),
                            fresh: false,
                        })
                    }
                    None => Err(error),
                }
            }
        }
    }

    /// Forgets `token` after the upstream refused it, unless it was already replaced.
    pub(crate) async fn invalidate(&self, token: &Arc<AccessToken>) {
        let mut state = self.state.lock().await;
        if state.token.as_ref().is_some_and(|t| Arc::ptr_eq(t, token)) {
            state.token = None;
            self.publish(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;
    use crate::BoxFuture;

    /// Counts fetches; fails while `fail` is set; each fetch yields to let others queue.
    struct Counting {
        calls: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
        lifetime: Duration,
    }

    impl TokenSource for Counting {
        fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                if self.fail.load(Ordering::SeqCst) {
                    return Err(TokenError::Unreachable("down".into()));
                }
                Ok(AccessToken::new(format!("token-{n}"), self.lifetime))
            })
        }
    }

    fn cache(lifetime: u64) -> (Arc<Counting>, TokenCache) {
        let src = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            fail: false.into(),
            lifetime: Duration::from_secs(lifetime),
        });
        (src.clone(), TokenCache::new(src))
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_fetch() {
        let (src, cache) = cache(3600);
        let cache = Arc::new(cache);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let c = cache.clone();
                tokio::spawn(async move { c.get().await.unwrap().token.value.expose().clone() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "token-0");
        }
        assert_eq!(src.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_five_minutes_before_expiry() {
        let (src, cache) = cache(3600);
        assert!(cache.get().await.unwrap().fresh);
        tokio::time::advance(Duration::from_secs(3600 - 301)).await;
        let again = cache.get().await.unwrap();
        assert!(!again.fresh);
        assert_eq!(src.calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        let renewed = cache.get().await.unwrap();
        assert!(renewed.fresh);
        assert_eq!(renewed.token.value.expose(), "token-1");
    }

    #[tokio::test(start_paused = true)]
    async fn failure_is_shared_by_waiters_then_retried() {
        let (src, cache) = cache(3600);
        src.fail.store(true, Ordering::SeqCst);
        let cache = Arc::new(cache);
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let c = cache.clone();
                tokio::spawn(async move { c.get().await })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().is_err());
        }
        assert_eq!(
            src.calls.load(Ordering::SeqCst),
            1,
            "waiters share the failure"
        );
        src.fail.store(false, Ordering::SeqCst);
        assert!(cache.get().await.is_ok(), "a later caller tries again");
        assert_eq!(src.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_refresh_keeps_using_a_still_valid_token() {
        let (src, cache) = cache(3600);
        cache.get().await.unwrap();
        tokio::time::advance(Duration::from_secs(3400)).await;
        src.fail.store(true, Ordering::SeqCst);
        let t = cache.get().await.unwrap();
        assert_eq!(t.token.value.expose(), "token-0");
        tokio::time::advance(Duration::from_secs(190)).await;
        assert!(
            cache.get().await.is_err(),
            "an expired token is not handed out"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn background_refresh_keeps_a_token_and_backs_off() {
        let (src, cache) = cache(3600);
        let cache = Arc::new(cache);
        let stop = CancellationToken::new();
        let task = tokio::spawn(cache.clone().keep_fresh(stop.clone()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(src.calls.load(Ordering::SeqCst), 1, "fetched at start");
        assert!(cache.peek().is_some());
        tokio::time::sleep(Duration::from_secs(3300)).await;
        assert_eq!(
            src.calls.load(Ordering::SeqCst),
            2,
            "refreshed 5 minutes before expiry"
        );
        src.fail.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3900)).await;
        // Failed at the refresh point (6600 s), then after 5, 10, 20, 40, 80 and 160 s.
        assert_eq!(src.calls.load(Ordering::SeqCst), 2 + 7);
        src.fail.store(false, Ordering::SeqCst);
        tokio::time::sleep(MAX_BACKOFF).await;
        assert!(cache.peek().is_some_and(|t| t.usable_at(Instant::now())));
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_only_drops_the_refused_token() {
        let (_, cache) = cache(3600);
        let first = cache.get().await.unwrap().token;
        cache.invalidate(&first).await;
        let second = cache.get().await.unwrap();
        assert!(second.fresh);
        cache.invalidate(&first).await;
        assert!(
            !cache.get().await.unwrap().fresh,
            "a stale invalidate keeps the new token"
        );
    }
}
