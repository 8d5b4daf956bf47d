//! The tokens the fake token endpoint issues and the fake upstream accepts: a shared registry
//! (issued, expired, revoked) and the JWT-shaped token text itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::time::Instant;

use super::pki::random_hex;

/// Audience of an Exchange Online token, as Entra writes it into `aud`.
pub const EXCHANGE_AUDIENCE: &str = "https://outlook.office.com";

/// The application permission Exchange wants for SMTP with client credentials.
pub const SMTP_ROLE: &str = "SMTP.SendAsApp";

/// The delegated permission Exchange wants for SMTP with a user's sign-in (`scp`).
pub const SMTP_SCOPE: &str = "SMTP.Send";

/// Minimum length of an issued token: Entra tokens are well over 1 KB, and that length is what
/// forces clients into the two-step `AUTH XOAUTH2` form (the inline form would pass 512 octets).
pub const MIN_TOKEN_LEN: usize = 1200;

/// What the registry knows about one issued token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The tenant from the token URL (`tid`).
    pub tenant: String,
    /// The client id (`appid`).
    pub client_id: String,
    /// The application roles (`roles`).
    pub roles: Vec<String>,
    /// The delegated permissions (`scp`) of a user's token.
    pub scopes: Vec<String>,
    /// When the fake upstream stops accepting it. A tokio `Instant`, so tests can move a paused
    /// clock past it.
    pub expires_at: Instant,
    /// Set by [`TokenRegistry::revoke`].
    pub revoked: bool,
}

impl TokenInfo {
    /// Not revoked and not expired.
    pub fn is_valid(&self) -> bool {
        !self.revoked && Instant::now() < self.expires_at
    }
}

/// A cheap-to-clone handle on the set of issued tokens, shared by the token endpoint (which
/// adds to it) and the fake upstream (which checks against it).
///
/// A std `Mutex` is enough: every critical section is a short map operation with no `.await`.
#[derive(Clone, Default)]
pub struct TokenRegistry {
    inner: Arc<Mutex<RegistryState>>,
}

#[derive(Default)]
struct RegistryState {
    tokens: HashMap<String, TokenInfo>,
    next_jti: u64,
}

/// The claims needed to mint a token.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// Tenant id or domain, goes into `tid`.
    pub tenant: String,
    /// Client (application) id, goes into `appid`.
    pub client_id: String,
    /// Application roles, omitted from the claims when empty.
    pub roles: Vec<String>,
    /// Delegated permissions (`scp`, space-separated), omitted when empty.
    pub scopes: Vec<String>,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

impl TokenRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mints a new token for `grant`, records it and returns its text.
    pub fn issue(&self, grant: &TokenGrant) -> String {
        let jti = self.next_jti();
        let token = mint_jwt(grant, jti);
        let info = TokenInfo {
            tenant: grant.tenant.clone(),
            client_id: grant.client_id.clone(),
            roles: grant.roles.clone(),
            scopes: grant.scopes.clone(),
            expires_at: Instant::now() + Duration::from_secs(grant.expires_in),
            revoked: false,
        };
        self.lock().tokens.insert(token.clone(), info);
        token
    }

    /// A token with the default Exchange role, for tests that skip the HTTP endpoint.
    pub fn issue_for_test(&self, tenant: &str, client_id: &str) -> String {
        self.issue(&TokenGrant {
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            roles: vec![SMTP_ROLE.to_string()],
            scopes: Vec::new(),
            expires_in: 3599,
        })
    }

    /// True if `token` was issued here, is not revoked and has not expired.
    pub fn check(&self, token: &str) -> bool {
        self.lookup(token).is_some_and(|info| info.is_valid())
    }

    /// Everything known about `token`, valid or not.
    pub fn lookup(&self, token: &str) -> Option<TokenInfo> {
        self.lock().tokens.get(token).cloned()
    }

    /// Makes `token` fail [`check`](Self::check) from now on. Returns false if it is unknown.
    pub fn revoke(&self, token: &str) -> bool {
        match self.lock().tokens.get_mut(token) {
            Some(info) => {
                info.revoked = true;
                true
            }
            None => false,
        }
    }

    /// Makes `token` expire now, as if its lifetime had run out. Returns false if unknown.
    pub fn expire(&self, token: &str) -> bool {
        match self.lock().tokens.get_mut(token) {
            Some(info) => {
                info.expires_at = Instant::now();
                true
            }
            None => false,
        }
    }

    /// Number of tokens issued so far.
    pub fn len(&self) -> usize {
        self.lock().tokens.len()
    }

    /// True when nothing was issued yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn next_jti(&self) -> u64 {
        let mut state = self.lock();
        state.next_jti += 1;
        state.next_jti
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryState> {
        // A panic while holding this lock can only come from a test thread; the map is still
        // consistent (every update is a single insert or field store), so keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Unix seconds now, from the wall clock (what Entra writes into `iat`/`nbf`/`exp`).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Builds `base64url(header).base64url(claims).base64url(signature)`. The signature is random
/// bytes of RS256 size: nobody verifies it, but it keeps the shape and length realistic.
fn mint_jwt(grant: &TokenGrant, jti: u64) -> String {
    let header =
        serde_json::json!({"typ": "JWT", "alg": "RS256", "x5t": "fake-x5t", "kid": "fake-kid"});
    let mut claims = claims(grant, jti);
    let signature = URL_SAFE_NO_PAD.encode(random_hex(128).as_bytes());
    let head = URL_SAFE_NO_PAD.encode(header.to_string());
    let unpadded = head.len() + URL_SAFE_NO_PAD.encode(claims.to_string()).len() + signature.len();
    // Pad the claims so the whole token reaches MIN_TOKEN_LEN (4 base64 chars per 3 bytes).
    let missing = MIN_TOKEN_LEN.saturating_sub(unpadded + 2);
    claims["xms_pad"] = serde_json::Value::String("x".repeat(missing * 3 / 4 + 3));
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{head}.{body}.{signature}")
}

fn claims(grant: &TokenGrant, jti: u64) -> serde_json::Value {
    let now = unix_now();
    let mut claims = serde_json::json!({
        "aud": EXCHANGE_AUDIENCE,
        "iss": format!("https://sts.windows.net/{}/", grant.tenant),
        "iat": now,
        "nbf": now,
        "exp": now + grant.expires_in,
        "app_displayname": "xoauth-relay fake",
        "appid": grant.client_id,
        "appidacr": "1",
        "idp": format!("https://sts.windows.net/{}/", grant.tenant),
        "oid": format!("00000000-0000-0000-0000-{jti:012}"),
        "sub": format!("00000000-0000-0000-0000-{jti:012}"),
        "tid": grant.tenant,
        "ver": "1.0",
        "jti": format!("fake-{jti}-{}", random_hex(8)),
    });
    if !grant.roles.is_empty() {
        claims["roles"] = serde_json::json!(grant.roles);
    }
    if !grant.scopes.is_empty() {
        claims["scp"] = serde_json::json!(grant.scopes.join(" "));
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> TokenGrant {
        TokenGrant {
            tenant: "contoso".into(),
            client_id: "app".into(),
            roles: vec![SMTP_ROLE.into()],
            scopes: Vec::new(),
            expires_in: 60,
        }
    }

    #[test]
    fn tokens_are_distinct_long_jwts() {
        let reg = TokenRegistry::new();
        let a = reg.issue(&grant());
        let b = reg.issue(&grant());
        assert_ne!(a, b);
        assert!(a.len() >= MIN_TOKEN_LEN, "{}", a.len());
        assert_eq!(a.split('.').count(), 3);
        let body = a.split('.').nth(1).unwrap_or_default();
        let json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).expect("b64")).expect("json");
        assert_eq!(json["tid"], "contoso");
        assert_eq!(json["roles"][0], SMTP_ROLE);
    }

    #[tokio::test]
    async fn revoke_and_expire() {
        let reg = TokenRegistry::new();
        let a = reg.issue(&grant());
        let b = reg.issue(&grant());
        assert!(reg.check(&a) && reg.check(&b));
        assert!(reg.revoke(&a));
        assert!(!reg.check(&a) && reg.check(&b));
        assert!(reg.expire(&b));
        assert!(!reg.check(&b));
        assert!(!reg.check("unknown"));
        assert!(!reg.revoke("unknown"));
    }
}
