//! Delegated sign-in: a user signs in once (`xoauth-relay login`), the relay keeps the refresh
//! token in `state_dir` and trades it for access tokens (Microsoft identity platform, "OAuth
//! 2.0 authorization code flow", "OAuth 2.0 device authorization grant", "Refresh tokens").
//! `store` keeps the token, `refresh` is the relay's token source, `browser` and `device` are
//! the two ways of signing in, `pkce` the proof for the first; this file holds what they share:
//! the public-client requests to the token endpoint and which refusals need a new sign-in.

pub(crate) mod browser;
pub(crate) mod device;
pub(crate) mod pkce;
pub(crate) mod refresh;
pub(crate) mod store;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::client_credentials::{http_client, parse_success, read_bounded, transport_error};
use super::{AccessToken, OAuthError, TokenError};
use crate::config::{Account, Timeouts};
use crate::secret::Secret;

/// OAuth `error` values that only a new sign-in clears (RFC 6749 §5.2; OpenID Connect Core
/// §3.1.2.6 for `interaction_required`).
const SIGN_IN_ERRORS: [&str; 2] = ["invalid_grant", "interaction_required"];

/// AADSTS codes that only a new sign-in clears ("Microsoft Entra authentication and
/// authorization error codes"): refresh token expired (70008, 700082) or revoked (50173),
/// sign-in frequency (70043), password changed (50089), MFA (50076, 50079, 50072),
/// Conditional Access (53003), a single-page-app token's fixed lifetime ended (700084).
const SIGN_IN_CODES: [u32; 10] = [
    70008, 700082, 50173, 70043, 50089, 50076, 50079, 50072, 53003, 700084,
];

/// Why Microsoft's refusal means the user must sign in again, or `None` if it does not.
pub(crate) fn sign_in_reason(oauth: &OAuthError) -> Option<String> {
    let by_code = oauth.codes.iter().any(|c| SIGN_IN_CODES.contains(c));
    if !by_code && !SIGN_IN_ERRORS.contains(&oauth.error.as_str()) {
        return None;
    }
    let mut why = format!("Microsoft refused the sign-in kept: {}", oauth.error);
    if !oauth.summary.is_empty() {
        why.push_str(&format!(", {}", oauth.summary));
    }
    Some(why)
}

/// Why a sign-in did not finish, in words for the person at the terminal.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct LoginError(pub(crate) String);

impl From<TokenError> for LoginError {
    fn from(error: TokenError) -> Self {
        let public = matches!(&error, TokenError::Refused { oauth: Some(o), .. }
            if o.codes.contains(&7000218));
        let mut text = error.to_string();
        if public {
            // Entra wants a secret from a confidential client: the registration is not public.
            text.push_str(
                "; the app registration is not a public client: in Entra admin center > App \
                 registrations > the app > Authentication, add the redirect URI http://localhost \
                 under \"Mobile and desktop applications\" and set \"Allow public client flows\" \
                 to Yes",
            );
        }
        LoginError(text)
    }
}

/// Keeps a new sign-in's refresh token; a grant without one is a scope without
/// `offline_access`.
pub(crate) fn keep(granted: Granted, store: &store::TokenStore) -> Result<(), LoginError> {
    let Some(refresh) = granted.refresh else {
        return Err(LoginError(
            "Microsoft sent no refresh token: the account's scope must include offline_access"
                .into(),
        ));
    };
    store.save(&refresh).map_err(|e| {
        LoginError(format!(
            "cannot store the refresh token in {}: {e}",
            store.path().display()
        ))
    })
}

/// A public client's view of the account's token endpoint: no secret, the user's scope.
pub(crate) struct Endpoint {
    http: reqwest::Client,
    pub(crate) token_url: String,
    pub(crate) client_id: String,
    pub(crate) scope: String,
    total: Duration,
}

/// What a successful grant returned.
pub(crate) struct Granted {
    pub(crate) access: AccessToken,
    /// The next refresh token; Entra sends one with each grant when `offline_access` is asked.
    pub(crate) refresh: Option<Secret<String>>,
}

impl Endpoint {
    pub(crate) fn new(
        account: &Account,
        tls: Arc<rustls::ClientConfig>,
        timeouts: &Timeouts,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: http_client(&tls, timeouts)?,
            token_url: account.token_url.clone(),
            client_id: account.client_id.clone(),
            scope: account.scope.clone(),
            total: timeouts.token_total,
        })
    }

    /// Another endpoint next to the token endpoint: `authorize`, `devicecode`.
    pub(crate) fn sibling(&self, leaf: &str) -> String {
        let base = self
            .token_url
            .strip_suffix("/token")
            .unwrap_or(&self.token_url);
        format!("{base}/{leaf}")
    }

    /// Posts `form` to `url`: the body of a 200, else the refusal. Bounded by the token deadline.
    pub(crate) async fn post(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<Vec<u8>, TokenError> {
        let exchange = async {
            let response = self
                .http
                .post(url)
                .form(form)
                .send()
                .await
                .map_err(|e| transport_error(e, self.total))?;
            let status = response.status().as_u16();
            let body = read_bounded(response)
                .await
                .map_err(|e| transport_error(e, self.total))?;
            if status != 200 {
                return Err(TokenError::Refused {
                    status,
                    oauth: OAuthError::parse(&body),
                });
            }
            Ok(body)
        };
        tokio::time::timeout(self.total, exchange)
            .await
            .unwrap_or(Err(TokenError::Timeout(self.total)))
    }

    /// A grant at the token endpoint; `client_id` is added to `form`.
    pub(crate) async fn grant(&self, form: &[(&str, &str)]) -> Result<Granted, TokenError> {
        let mut all = vec![("client_id", self.client_id.as_str())];
        all.extend_from_slice(form);
        let body = self.post(&self.token_url, &all).await?;
        parse_granted(&body)
    }
}

fn parse_granted(body: &[u8]) -> Result<Granted, TokenError> {
    #[derive(Deserialize)]
    struct Refresh {
        #[serde(default)]
        refresh_token: Option<String>,
    }
    let access = parse_success(body)?;
    let refresh = serde_json::from_slice::<Refresh>(body)
        .map_err(|e| TokenError::Malformed(format!("not a token response ({e})")))?
        .refresh_token
        .filter(|t| !t.is_empty() && !t.contains(char::is_whitespace))
        .map(Secret::new);
    Ok(Granted { access, refresh })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(error: &str, codes: Vec<u32>) -> OAuthError {
        OAuthError {
            error: error.into(),
            codes,
            summary: "AADSTS70043: The refresh token has expired.".into(),
            ..OAuthError::default()
        }
    }

    #[test]
    fn refusals_that_only_a_new_sign_in_fixes() {
        for code in SIGN_IN_CODES {
            assert!(
                sign_in_reason(&refusal("invalid_request", vec![code])).is_some(),
                "{code}"
            );
        }
        for error in SIGN_IN_ERRORS {
            assert!(sign_in_reason(&refusal(error, vec![])).is_some(), "{error}");
        }
        let why = sign_in_reason(&refusal("invalid_grant", vec![70043])).unwrap();
        assert!(
            why.contains("invalid_grant, AADSTS70043: The refresh token has expired."),
            "{why}"
        );
        for other in [
            refusal("invalid_client", vec![7000215]),
            refusal("temporarily_unavailable", vec![50033]),
            refusal("unauthorized_client", vec![700016]),
        ] {
            assert_eq!(sign_in_reason(&other), None, "{other:?}");
        }
    }

    #[test]
    fn a_confidential_app_registration_is_named_at_login() {
        let refused = |code| TokenError::Refused {
            status: 401,
            oauth: Some(OAuthError {
                error: "invalid_client".into(),
                codes: vec![code],
                ..OAuthError::default()
            }),
        };
        let hint = LoginError::from(refused(7000218)).0;
        assert!(hint.contains("is not a public client"), "{hint}");
        assert!(hint.contains("Allow public client flows"), "{hint}");
        let other = LoginError::from(refused(700016)).0;
        assert!(!other.contains("public client"), "{other}");
    }

    #[test]
    fn grants_carry_the_next_refresh_token() {
        let g = parse_granted(
            br#"{"token_type":"Bearer","expires_in":3599,"access_token":"a","refresh_token":"r2"}"#,
        )
        .unwrap();
        assert_eq!(g.access.value.expose(), "a");
        assert_eq!(g.refresh.unwrap().expose(), "r2");
        let g = parse_granted(br#"{"expires_in":60,"access_token":"a"}"#).unwrap();
        assert!(g.refresh.is_none());
        let g = parse_granted(br#"{"expires_in":60,"access_token":"a","refresh_token":"a b"}"#);
        assert!(
            g.unwrap().refresh.is_none(),
            "a token with a space is no token"
        );
    }
}
