//! Signing in on another device: the device authorization grant (RFC 8628) for machines
//! without a browser. The relay prints Microsoft's URL and code, then polls the token endpoint
//! until the person has signed in, declined, or the code expired.

use std::io::Write;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::store::TokenStore;
use super::{Endpoint, LoginError, keep};
use crate::oauth::TokenError;
use crate::reply::sanitize;

/// RFC 8628 §3.5: `grant_type` of the polls.
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 8628 §3.2: the poll interval when Microsoft names none.
const DEFAULT_INTERVAL: u64 = 5;
/// RFC 8628 §3.5: `slow_down` adds this much to the interval.
const SLOW_DOWN: Duration = Duration::from_secs(5);
/// However long Microsoft says the code lives (15 minutes by default), the relay waits no
/// longer than this, and polls no slower than once a minute.
const MAX_WAIT: Duration = Duration::from_secs(30 * 60);
const MAX_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
struct DeviceCode {
    device_code: String,
    user_code: String,
    verification_uri: String,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
    #[serde(default)]
    message: Option<String>,
}

/// Runs the whole flow; the refresh token ends up in `store`.
pub(crate) async fn sign_in(
    endpoint: &Endpoint,
    store: &TokenStore,
    out: &mut dyn Write,
) -> Result<(), LoginError> {
    let form = [
        ("client_id", endpoint.client_id.as_str()),
        ("scope", endpoint.scope.as_str()),
    ];
    let body = endpoint
        .post(&endpoint.sibling("devicecode"), &form)
        .await?;
    let code: DeviceCode = serde_json::from_slice(&body).map_err(|e| {
        LoginError(format!(
            "unexpected answer from the devicecode endpoint: {e}"
        ))
    })?;
    // Microsoft's own words carry the URL and the code; they are printed to a terminal, so
    // without control characters.
    let message = code.message.as_deref().map(|m| sanitize(m).into_owned());
    let message = message.unwrap_or_else(|| {
        format!(
            "To sign in, open {} in a browser and enter the code {}.",
            sanitize(&code.verification_uri),
            sanitize(&code.user_code)
        )
    });
    let _ = writeln!(out, "{message}\n\nWaiting for the sign-in to finish…");
    let _ = out.flush();
    let lifetime = Duration::from_secs(code.expires_in).min(MAX_WAIT);
    let interval = Duration::from_secs(code.interval.unwrap_or(DEFAULT_INTERVAL).max(1));
    poll(endpoint, store, &code.device_code, interval, lifetime).await
}

async fn poll(
    endpoint: &Endpoint,
    store: &TokenStore,
    device_code: &str,
    mut interval: Duration,
    lifetime: Duration,
) -> Result<(), LoginError> {
    let until = Instant::now() + lifetime;
    let form = [("grant_type", DEVICE_GRANT), ("device_code", device_code)];
    loop {
        if Instant::now() + interval > until {
            return Err(expired());
        }
        tokio::time::sleep(interval.min(MAX_INTERVAL)).await;
        let error = match endpoint.grant(&form).await {
            Ok(granted) => return keep(granted, store),
            Err(error) => error,
        };
        match &error {
            TokenError::Refused { oauth: Some(o), .. } => match o.error.as_str() {
                "authorization_pending" => {}
                "slow_down" => interval += SLOW_DOWN,
                "expired_token" => return Err(expired()),
                "authorization_declined" => {
                    return Err(LoginError("the sign-in was declined".into()));
                }
                _ => return Err(error.into()),
            },
            // A lost poll is not a lost sign-in: the next one may get through.
            TokenError::Timeout(_) | TokenError::Unreachable(_) => {}
            _ => return Err(error.into()),
        }
    }
}

fn expired() -> LoginError {
    LoginError("the code expired before the sign-in finished; run login again".into())
}
