//! The relay's token source for a delegated account: the refresh-token grant (RFC 6749 §6),
//! storing the rotated refresh token before the access token is used.

use std::path::Path;
use std::sync::Arc;

use super::store::TokenStore;
use super::{Endpoint, sign_in_reason};
use crate::BoxFuture;
use crate::config::{Account, Timeouts};
use crate::oauth::{AccessToken, TokenError, TokenSource};

pub(crate) struct RefreshGrant {
    endpoint: Endpoint,
    /// `None` without a state directory: then nothing can be kept, and every fetch says so.
    store: Option<Arc<TokenStore>>,
    account: String,
}

impl RefreshGrant {
    pub(crate) fn new(
        account: &Account,
        state_dir: Option<&Path>,
        tls: Arc<rustls::ClientConfig>,
        timeouts: &Timeouts,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            endpoint: Endpoint::new(account, tls, timeouts)?,
            store: state_dir.map(|dir| Arc::new(TokenStore::new(dir, &account.name))),
            account: account.name.clone(),
        })
    }

    fn sign_in(&self, why: impl Into<String>) -> TokenError {
        TokenError::SignIn {
            account: self.account.clone(),
            why: why.into(),
        }
    }

    async fn request(&self) -> Result<AccessToken, TokenError> {
        let Some(store) = &self.store else {
            return Err(self.sign_in("no state_dir to keep a sign-in in"));
        };
        let stored = off_runtime(store, |s| s.load())
            .await
            .map_err(|e| store_error(store, &e))?;
        let Some(refresh) = stored else {
            let path = store.path().display();
            return Err(self.sign_in(format!("nobody has signed in yet: no {path}")));
        };
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose().as_str()),
            ("scope", self.endpoint.scope.as_str()),
        ];
        let granted = self.endpoint.grant(&form).await.map_err(|e| match &e {
            TokenError::Refused {
                oauth: Some(oauth),
                status,
            } if *status < 500 => sign_in_reason(oauth).map_or(e, |why| self.sign_in(why)),
            _ => e,
        })?;
        // Entra may stop honouring the old token once it issued a new one: keep the new one
        // first, and use nothing that could not be kept.
        if let Some(next) = granted.refresh {
            off_runtime(store, move |s| s.save(&next))
                .await
                .map_err(|e| store_error(store, &e))?;
        }
        Ok(granted.access)
    }
}

/// Runs a store operation (file reads, writes and fsyncs) on tokio's blocking threads.
async fn off_runtime<T: Send + 'static>(
    store: &Arc<TokenStore>,
    work: impl FnOnce(&TokenStore) -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || work(&store))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

fn store_error(store: &TokenStore, error: &std::io::Error) -> TokenError {
    TokenError::Store {
        path: store.path().display().to_string(),
        error: error.to_string(),
    }
}

impl TokenSource for RefreshGrant {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        Box::pin(self.request())
    }
}
