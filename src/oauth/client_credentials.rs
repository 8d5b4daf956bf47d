//! The OAuth2 client-credentials request to the tenant's token endpoint (Microsoft identity
//! platform, "OAuth 2.0 client credentials flow").
//! The secret, or the signed client assertion of a certificate credential, travels in the form
//! body only, never in the URL or a log.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{AccessToken, OAuthError, TokenError, TokenSource, assertion};
use crate::BoxFuture;
use crate::config::{Account, ClientCertificate, Timeouts};
use crate::secret::Secret;

/// A token response is a few KiB; anything far larger is not one.
const MAX_BODY: usize = 256 * 1024;

pub(crate) struct ClientCredentials {
    http: reqwest::Client,
    url: String,
    client_id: String,
    credential: Credential,
    scope: String,
    total: Duration,
}

/// The app's credential, as configured.
enum Credential {
    Secret(Secret<String>),
    Certificate(ClientCertificate),
}

/// The credential as sent in one request.
enum Proof<'a> {
    Secret(&'a Secret<String>),
    /// A signed JWT: as good as the key for its ten minutes, so it is kept like a secret.
    Assertion(Secret<String>),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    /// Seconds; old endpoints sent it as a string.
    expires_in: serde_json::Value,
    #[serde(default)]
    token_type: Option<String>,
}

impl ClientCredentials {
    /// `tls` decides which certificates are trusted (built-in roots plus the account's
    /// `ca_file`), the same as for the SMTP host.
    pub(crate) fn new(
        account: &Account,
        tls: Arc<rustls::ClientConfig>,
        timeouts: &Timeouts,
    ) -> Result<Self, reqwest::Error> {
        let http = http_client(&tls, timeouts)?;
        Ok(Self {
            http,
            url: account.token_url.clone(),
            client_id: account.client_id.clone(),
            credential: match &account.client_certificate {
                Some(certificate) => Credential::Certificate(certificate.clone()),
                None => Credential::Secret(account.client_secret.clone()),
            },
            scope: account.scope.clone(),
            total: timeouts.token_total,
        })
    }

    async fn request(&self) -> Result<AccessToken, TokenError> {
        let proof = self.proof()?;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("scope", self.scope.as_str()),
        ];
        match &proof {
            Proof::Secret(secret) => form.push(("client_secret", secret.expose().as_str())),
            Proof::Assertion(jwt) => {
                form.push(("client_assertion_type", assertion::ASSERTION_TYPE));
                form.push(("client_assertion", jwt.expose().as_str()));
            }
        }
        let response = self
            .http
            .post(&self.url)
            .form(&form)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let body = read_bounded(response)
            .await
            .map_err(|e| self.transport_error(e))?;
        if status != 200 {
            return Err(TokenError::Refused {
                status,
                oauth: OAuthError::parse(&body),
            });
        }
        parse_success(&body)
    }

    /// What proves the app's identity in this request; an assertion is made fresh each time.
    fn proof(&self) -> Result<Proof<'_>, TokenError> {
        match &self.credential {
            Credential::Secret(secret) => Ok(Proof::Secret(secret)),
            Credential::Certificate(certificate) => {
                let rng = ring::rand::SystemRandom::new();
                let now = crate::dates::now_unix();
                assertion::client_assertion(certificate, &self.client_id, &self.url, now, &rng)
                    .map(|jwt| Proof::Assertion(Secret::new(jwt)))
                    .map_err(TokenError::Signing)
            }
        }
    }

    fn transport_error(&self, e: reqwest::Error) -> TokenError {
        transport_error(e, self.total)
    }
}

/// What a failed HTTP exchange with the token endpoint was, `total` being its deadline.
pub(super) fn transport_error(e: reqwest::Error, total: Duration) -> TokenError {
    if e.is_timeout() {
        return TokenError::Timeout(total);
    }
    let e = e.without_url();
    match certificate_error(&e) {
        Some(tls) => TokenError::Certificate(crate::tls::describe(tls)),
        None => TokenError::Unreachable(error_chain(&e)),
    }
}

/// The HTTP client for Microsoft's token endpoints, trusting what `tls` trusts.
pub(super) fn http_client(
    tls: &rustls::ClientConfig,
    timeouts: &Timeouts,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls.clone())
        .connect_timeout(timeouts.token_connect)
        .timeout(timeouts.token_total)
        .http1_only()
        .user_agent(concat!("xoauth-relay/", env!("CARGO_PKG_VERSION")))
        .build()
}

impl TokenSource for ClientCredentials {
    fn fetch(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        Box::pin(async move {
            // reqwest has its own deadline; this one also covers reading the body.
            tokio::time::timeout(self.total, self.request())
                .await
                .unwrap_or(Err(TokenError::Timeout(self.total)))
        })
    }
}

pub(super) async fn read_bounded(
    mut response: reqwest::Response,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub(super) fn parse_success(body: &[u8]) -> Result<AccessToken, TokenError> {
    let parsed: TokenResponse = serde_json::from_slice(body)
        .map_err(|e| TokenError::Malformed(format!("not a token response ({e})")))?;
    if let Some(kind) = parsed.token_type.as_deref()
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(TokenError::Malformed(format!(
            "token_type is {kind:?}, not Bearer"
        )));
    }
    let seconds = match &parsed.expires_in {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| TokenError::Malformed("expires_in is missing or not a number".into()))?;
    if parsed.access_token.is_empty() {
        return Err(TokenError::Malformed("access_token is empty".into()));
    }
    Ok(AccessToken::new(
        parsed.access_token,
        Duration::from_secs(seconds),
    ))
}

/// The rustls certificate error somewhere in `e`'s sources. rustls' error travels inside
/// (nested) `io::Error`s, whose `source()` skips it, so each `io::Error` is opened as well.
fn certificate_error<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut next = Some(e);
    while let Some(error) = next {
        let mut inner: &(dyn std::error::Error + 'static) = error;
        for _ in 0..4 {
            match inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(wrapped) => inner = wrapped,
                None => break,
            }
        }
        if let Some(
            tls @ (rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented),
        ) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(tls);
        }
        next = error.source();
    }
    None
}

/// "error sending request: connection refused" style text from an error and its sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_success_bodies() {
        let t = parse_success(br#"{"token_type":"Bearer","expires_in":3599,"access_token":"abc"}"#)
            .unwrap();
        assert_eq!(t.lifetime, Duration::from_secs(3599));
        assert_eq!(t.value.expose(), "abc");
        let t = parse_success(br#"{"expires_in":"60","access_token":"abc"}"#).unwrap();
        assert_eq!(t.lifetime, Duration::from_secs(60));
        for bad in [
            &br#"{"expires_in":60}"#[..],
            br#"{"expires_in":"x","access_token":"a"}"#,
            br#"{"expires_in":1,"access_token":""}"#,
            br#"{"token_type":"mac","expires_in":1,"access_token":"a"}"#,
            b"<html>",
        ] {
            assert!(
                matches!(parse_success(bad), Err(TokenError::Malformed(_))),
                "{bad:?}"
            );
        }
    }
}
