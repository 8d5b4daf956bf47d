//! OAuth2 access tokens for the upstream: the [`TokenSource`] trait, the client-credentials
//! implementation, delegated sign-in (`delegated`), a single-flight cache and JWT claim decoding for diagnostics.

pub(crate) mod assertion;
pub(crate) mod cache;
pub(crate) mod claims;
pub(crate) mod client_credentials;
pub(crate) mod delegated;
mod error;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::BoxFuture;
use crate::secret::Secret;
use crate::stats::AccountStats;

pub(crate) use cache::TokenCache;
pub(crate) use error::{OAuthError, TokenError};

/// MSAL treats a token as expired 5 minutes early (MSAL.NET's `AccessTokenExpirationBuffer`); so do we.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A bearer token for the upstream and when it stops being usable.
#[derive(Debug)]
pub(crate) struct AccessToken {
    pub(crate) value: Secret<String>,
    /// When the token endpoint issued it (tokio's clock, so tests can pause time).
    pub(crate) acquired: Instant,
    /// `expires_in` as the endpoint said.
    pub(crate) lifetime: Duration,
}

impl AccessToken {
    pub(crate) fn new(value: String, lifetime: Duration) -> Self {
        Self {
            value: Secret::new(value),
            acquired: Instant::now(),
            lifetime,
        }
    }

    pub(crate) fn expires_at(&self) -> Instant {
        self.acquired + self.lifetime
    }

    /// From this instant on a new token is fetched: 5 minutes before expiry, or half-way for
    /// tokens that live less than 10 minutes (so a short-lived token is still reused).
    pub(crate) fn refresh_at(&self) -> Instant {
        self.expires_at() - REFRESH_MARGIN.min(self.lifetime / 2)
    }

    /// Still accepted upstream at `now`, with a little room for the SMTP round trips.
    pub(crate) fn usable_at(&self, now: Instant) -> bool {
        now + Duration::from_secs(30) < self.expires_at()
    }
}

/// Where tokens come from (client secret today; certificates or other providers later).
pub(crate) trait TokenSource: Send + Sync {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>>;
}

/// For accounts that sign in with a password (Azure Communication Services' AUTH LOGIN): hands
/// out one placeholder that the upstream does not send, without any request, and that lasts
/// a year so the cache never asks again. It keeps the route's shape the same for every account.
pub(crate) struct NoToken;

/// How long [`NoToken`]'s placeholder lasts.
const NO_TOKEN_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

impl TokenSource for NoToken {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        Box::pin(async { Ok(AccessToken::new(String::new(), NO_TOKEN_LIFETIME)) })
    }
}

/// A token source whose every fetch is recorded in the account's statistics.
pub(crate) struct Observed {
    pub(crate) inner: Arc<dyn TokenSource>,
    pub(crate) stats: Arc<AccountStats>,
    /// The account's name, for the log line of a recovery.
    pub(crate) account: String,
}

impl TokenSource for Observed {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        Box::pin(async move {
            let result = self.inner.fetch().await;
            let before = self.stats.last_token().and_then(|t| t.error);
            if let (Ok(_), Some(previous)) = (&result, before) {
                let failed = self.stats.token_fetches_failed.load(Ordering::Relaxed);
                tracing::info!(account = %self.account, %previous, failed_so_far = failed, "token request succeeded again after failing");
            }
            let seen = result
                .as_ref()
                .map(|t| t.lifetime)
                .map_err(|e| e.to_string());
            self.stats.token_fetched(seen);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refresh_point_arithmetic() {
        let cases = [
            (3599, 3599 - 300),
            (5400, 5400 - 300),
            (600, 300),
            (60, 30),
            (0, 0),
        ];
        for (lifetime, refresh_after) in cases {
            let t = AccessToken::new("t".into(), Duration::from_secs(lifetime));
            assert_eq!(
                t.refresh_at() - t.acquired,
                Duration::from_secs(refresh_after),
                "lifetime {lifetime}"
            );
            assert_eq!(t.expires_at() - t.acquired, Duration::from_secs(lifetime));
        }
        let t = AccessToken::new("t".into(), Duration::from_secs(3599));
        assert!(t.usable_at(t.acquired + Duration::from_secs(3500)));
        assert!(!t.usable_at(t.acquired + Duration::from_secs(3570)));
    }
}
