//! A per-account token cache with single-flight refresh: however many sessions need a token at
//! once, one request goes to the token endpoint and they all get its result.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{AccessToken, TokenError, TokenSource};

/// A token handed out by the cache.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: Arc<AccessToken>,
    /// Fetched for this request (as opposed to reused from the cache). A fresh token that the
    /// upstream refuses is not worth refetching.
    pub fresh: bool,
}

#[derive(Default)]
struct State {
    token: Option<Arc<AccessToken>>,
    /// The last failed fetch and its sequence number in `fetches`.
    failure: Option<(u64, TokenError)>,
}

pub struct TokenCache {
    source: Arc<dyn TokenSource>,
    /// An async mutex, held across the fetch on purpose: that is what makes concurrent callers
    /// wait for the one request in flight instead of starting their own.
    state: Mutex<State>,
    /// Completed fetches, read before queueing so a caller can tell whether a failure it finds
    /// happened while it waited (share it) or before it arrived (try again).
    fetches: AtomicU64,
}

impl TokenCache {
    pub fn new(source: Arc<dyn TokenSource>) -> Self {
        Self {
            source,
            state: Mutex::new(State::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// A token that is good for a while, fetching one if needed.
    pub async fn get(&self) -> Result<Issued, TokenError> {
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
                state.failure = None;
                Ok(Issued { token, fresh: true })
            }
            Err(error) => {
                state.failure = Some((seq, error.clone()));
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
    pub async fn invalidate(&self, token: &Arc<AccessToken>) {
        let mut state = self.state.lock().await;
        if state.token.as_ref().is_some_and(|t| Arc::ptr_eq(t, token)) {
            state.token = None;
        }
    }

    /// When the cached token expires, if there is one (for status reports).
    pub async fn expires_at(&self) -> Option<Instant> {
        self.state
            .lock()
            .await
            .token
            .as_ref()
            .map(|t| t.expires_at())
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
