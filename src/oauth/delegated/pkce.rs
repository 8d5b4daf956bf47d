//! Proof Key for Code Exchange (RFC 7636) with the S256 method, and the `state` value that
//! ties a redirect to the request that caused it (RFC 6749 §10.12).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

use crate::secret::Secret;

/// A code verifier and its challenge.
pub(crate) struct Pkce {
    /// Sent only with the code, to the token endpoint.
    pub(crate) verifier: Secret<String>,
    /// Sent in the browser's URL.
    pub(crate) challenge: String,
}

impl Pkce {
    pub(crate) fn new(rng: &dyn SecureRandom) -> Result<Self, ring::error::Unspecified> {
        let verifier = random_text(rng)?;
        Ok(Self {
            challenge: challenge(&verifier),
            verifier: Secret::new(verifier),
        })
    }
}

/// 32 random bytes, base64url: 43 characters, the verifier length RFC 7636 §4.1 recommends.
pub(crate) fn random_text(rng: &dyn SecureRandom) -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2).
pub(crate) fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// The system's random source, for the verifier and `state`.
pub(crate) fn system_random() -> SystemRandom {
    SystemRandom::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_is_the_rfc_7636_example() {
        // RFC 7636 Appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_are_fresh_unreserved_text_of_43_characters() {
        let rng = system_random();
        let a = Pkce::new(&rng).unwrap();
        let b = Pkce::new(&rng).unwrap();
        assert_ne!(a.verifier.expose(), b.verifier.expose());
        let v = a.verifier.expose();
        assert_eq!(v.len(), 43);
        assert!(
            v.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(a.challenge, challenge(v));
    }
}
