//! The signed JWT a certificate credential sends instead of a client secret (Microsoft identity
//! platform, "Certificate credentials for application authentication"; RFC 7523 §2.2). Pure:
//! the time and the randomness come from the caller.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom;

use crate::config::ClientCertificate;

/// `client_assertion_type` for a JWT client assertion (RFC 7523 §2.2).
pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid; Entra wants a short-lived one and it is used at once.
pub(crate) const LIFETIME_SECS: u64 = 10 * 60;

/// `header.claims.signature`, signed PS256, for `client_id` at the token URL `audience`.
pub(crate) fn client_assertion(
    certificate: &ClientCertificate,
    client_id: &str,
    audience: &str,
    now_unix: u64,
    rng: &dyn SecureRandom,
) -> Result<String, String> {
    let header = serde_json::json!({
        "alg": "PS256",
        "typ": "JWT",
        "x5t#S256": certificate.thumbprint_s256,
    });
    let claims = serde_json::json!({
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": jti(rng)?,
        "nbf": now_unix,
        "iat": now_unix,
        "exp": now_unix + LIFETIME_SECS,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = certificate.sign_ps256(signing_input.as_bytes(), rng)?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// 128 random bits, so Entra's replay check never sees the same `jti` twice.
fn jti(rng: &dyn SecureRandom) -> Result<String, String> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes)
        .map_err(|_| "the system random number generator failed".to_owned())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
