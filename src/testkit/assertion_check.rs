//! The fake token endpoint's check of a JWT client assertion, as Entra makes it: signed PS256
//! by the key of the certificate registered on the app (found by `x5t#S256`), for this token
//! URL, issued by and about the client, inside its lifetime, and never seen before.

use std::collections::VecDeque;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PSS_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::Value;

use super::aad::AadError;

/// How many `jti` values are remembered; far more than any test sends.
const MAX_SEEN: usize = 4096;

/// Clock skew tolerated on `nbf` and `exp`.
const SKEW_SECS: u64 = 300;

/// Longest lifetime accepted (`exp - nbf`).
const MAX_LIFETIME_SECS: u64 = 60 * 60;

/// What the assertion must match.
pub(crate) struct Expected<'a> {
    /// The certificate registered on the app (DER); `None`: the app has none.
    pub certificate: Option<&'a [u8]>,
    pub client_id: &'a str,
    /// The token URL the request was sent to.
    pub audience: &'a str,
    pub now_unix: u64,
}

/// The `jti` values seen, oldest first, bounded.
#[derive(Default)]
pub(crate) struct SeenIds(VecDeque<String>);

impl SeenIds {
    /// False when `jti` was seen before; records it otherwise.
    fn first_use(&mut self, jti: &str) -> bool {
        if self.0.iter().any(|seen| seen == jti) {
            return false;
        }
        if self.0.len() == MAX_SEEN {
            self.0.pop_front();
        }
        self.0.push_back(jti.to_owned());
        true
    }
}

/// `Ok` when Entra would accept the assertion.
pub(crate) fn verify(
    jwt: &str,
    expected: &Expected<'_>,
    seen: &mut SeenIds,
) -> Result<(), AadError> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(invalid_jwt(
            "the assertion is not a JWS compact serialization",
        ));
    };
    let header = decode_json(header)?;
    let claims = decode_json(claims)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| invalid_jwt("the signature is not base64url"))?;
    let certificate = expected
        .certificate
        .ok_or_else(|| mismatch("no certificate is registered on the application"))?;
    check_header(&header, certificate)?;
    let public = crate::tls::subject_public_key(certificate)
        .ok_or_else(|| mismatch("the registered certificate has no readable key"))?;
    let signed = &jwt[..jwt.len() - parts[2].len() - 1];
    UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, public)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| mismatch("the signature does not verify with the registered certificate"))?;
    check_claims(&claims, expected)?;
    let jti = text(&claims, "jti").ok_or_else(|| invalid_jwt("jti is missing"))?;
    if !seen.first_use(jti) {
        return Err(invalid_jwt(
            "the jti was used before (a replayed assertion)",
        ));
    }
    Ok(())
}

fn check_header(header: &Value, certificate: &[u8]) -> Result<(), AadError> {
    if text(header, "alg") != Some("PS256") {
        return Err(invalid_jwt("alg is not PS256"));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, certificate);
    if text(header, "x5t#S256") != Some(URL_SAFE_NO_PAD.encode(digest.as_ref()).as_str()) {
        return Err(mismatch(
            "the key was not found (x5t#S256 names another certificate)",
        ));
    }
    Ok(())
}

fn check_claims(claims: &Value, expected: &Expected<'_>) -> Result<(), AadError> {
    if text(claims, "aud") != Some(expected.audience) {
        return Err(invalid_jwt("aud is not this token endpoint's URL"));
    }
    for name in ["iss", "sub"] {
        if text(claims, name) != Some(expected.client_id) {
            return Err(invalid_jwt(&format!("{name} is not the client_id")));
        }
    }
    let number = |name| claims.get(name).and_then(Value::as_u64);
    let (Some(nbf), Some(exp)) = (number("nbf"), number("exp")) else {
        return Err(invalid_jwt("nbf or exp is missing"));
    };
    let now = expected.now_unix;
    if nbf > now + SKEW_SECS || exp + SKEW_SECS < now || exp <= nbf || exp - nbf > MAX_LIFETIME_SECS
    {
        return Err(AadError::new(
            401,
            "invalid_client",
            vec![700024],
            "Client assertion is not within its valid time range.",
        ));
    }
    Ok(())
}

fn text<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    value.get(name).and_then(Value::as_str)
}

fn decode_json(part: &str) -> Result<Value, AadError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| invalid_jwt("a part is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| invalid_jwt("a part is not JSON"))
}

/// AADSTS700027: the assertion was not signed by a certificate registered on the app.
fn mismatch(reason: &str) -> AadError {
    AadError::new(
        401,
        "invalid_client",
        vec![700027],
        &format!("Client assertion failed signature validation. [Reason - {reason}]"),
    )
}

/// AADSTS50027: the assertion is not a well-formed or acceptable JWT.
fn invalid_jwt(reason: &str) -> AadError {
    AadError::new(
        401,
        "invalid_client",
        vec![50027],
        &format!("JWT token is invalid or malformed. [Reason - {reason}]"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::assertion::{LIFETIME_SECS, client_assertion};
    use crate::testkit::client_cert::{
        self, APP_CERT_PEM, APP_KEY_PEM, OTHER_CERT_PEM, OTHER_KEY_PEM,
    };

    const CLIENT: &str = "11111111-2222-3333-4444-555555555555";
    const AUD: &str = "https://login.example/contoso/oauth2/v2.0/token";
    const NOW: u64 = 2_000_000_000;

    fn assertion(cert: &str, key: &str, now: u64) -> String {
        let credential = client_cert::credential(cert, key);
        let rng = ring::rand::SystemRandom::new();
        client_assertion(&credential, CLIENT, AUD, now, &rng).expect("signed")
    }

    fn check(jwt: &str, seen: &mut SeenIds) -> Result<(), Vec<u32>> {
        let der = client_cert::der(APP_CERT_PEM);
        let expected = Expected {
            certificate: Some(der.as_ref()),
            client_id: CLIENT,
            audience: AUD,
            now_unix: NOW,
        };
        verify(jwt, &expected, seen).map_err(|e| e.codes)
    }

    #[test]
    fn the_relays_assertion_has_the_documented_header_and_claims() {
        let jwt = assertion(APP_CERT_PEM, APP_KEY_PEM, NOW);
        let parts: Vec<&str> = jwt.split('.').collect();
        let header = decode_json(parts[0]).unwrap();
        let claims = decode_json(parts[1]).unwrap();
        let credential = client_cert::credential(APP_CERT_PEM, APP_KEY_PEM);
        assert_eq!(
            header,
            serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": credential.thumbprint_s256})
        );
        assert_eq!(claims["aud"], AUD);
        assert_eq!(
            (claims["iss"].as_str(), claims["sub"].as_str()),
            (Some(CLIENT), Some(CLIENT))
        );
        assert_eq!(
            (claims["nbf"].as_u64(), claims["iat"].as_u64()),
            (Some(NOW), Some(NOW))
        );
        assert_eq!(claims["exp"].as_u64(), Some(NOW + LIFETIME_SECS));
        assert_eq!(claims["jti"].as_str().map(str::len), Some(32));
        let again = assertion(APP_CERT_PEM, APP_KEY_PEM, NOW);
        assert_ne!(
            decode_json(again.split('.').nth(1).unwrap()).unwrap()["jti"],
            claims["jti"]
        );
        assert!(
            !format!("{credential:?}").contains("PRIVATE"),
            "{credential:?}"
        );
        assert!(
            format!("{credential:?}").contains("key: \"***\""),
            "{credential:?}"
        );
    }

    #[test]
    fn a_good_assertion_passes_once() {
        let mut seen = SeenIds::default();
        let jwt = assertion(APP_CERT_PEM, APP_KEY_PEM, NOW);
        assert_eq!(check(&jwt, &mut seen), Ok(()));
        assert_eq!(check(&jwt, &mut seen), Err(vec![50027]), "a replayed jti");
    }

    #[test]
    fn another_certificate_or_key_gets_700027() {
        let mut seen = SeenIds::default();
        let other = assertion(OTHER_CERT_PEM, OTHER_KEY_PEM, NOW);
        assert_eq!(
            check(&other, &mut seen),
            Err(vec![700027]),
            "x5t#S256 of another cert"
        );
        // The registered certificate's thumbprint, signed with another key.
        let jwt = assertion(APP_CERT_PEM, APP_KEY_PEM, NOW);
        let forged = assertion(OTHER_CERT_PEM, OTHER_KEY_PEM, NOW);
        let (head_claims, _) = jwt.rsplit_once('.').unwrap();
        let (_, other_signature) = forged.rsplit_once('.').unwrap();
        let spliced = format!("{head_claims}.{other_signature}");
        assert_eq!(check(&spliced, &mut seen), Err(vec![700027]));
        let mut none = SeenIds::default();
        let expected = Expected {
            certificate: None,
            client_id: CLIENT,
            audience: AUD,
            now_unix: NOW,
        };
        assert_eq!(
            verify(&jwt, &expected, &mut none).map_err(|e| e.codes),
            Err(vec![700027])
        );
    }

    #[test]
    fn claims_outside_what_entra_accepts_are_refused() {
        let mut seen = SeenIds::default();
        let stale = assertion(APP_CERT_PEM, APP_KEY_PEM, NOW - 2 * 60 * 60);
        assert_eq!(check(&stale, &mut seen), Err(vec![700024]));
        let early = assertion(APP_CERT_PEM, APP_KEY_PEM, NOW + 2 * 60 * 60);
        assert_eq!(check(&early, &mut seen), Err(vec![700024]));
        let credential = client_cert::credential(APP_CERT_PEM, APP_KEY_PEM);
        let rng = ring::rand::SystemRandom::new();
        let wrong_aud = client_assertion(&credential, CLIENT, "https://elsewhere/t", NOW, &rng);
        assert_eq!(check(&wrong_aud.unwrap(), &mut seen), Err(vec![50027]));
        let wrong_iss = client_assertion(&credential, "someone-else", AUD, NOW, &rng);
        assert_eq!(check(&wrong_iss.unwrap(), &mut seen), Err(vec![50027]));
        assert_eq!(check("not.a.jwt", &mut seen), Err(vec![50027]));
        assert_eq!(check("", &mut seen), Err(vec![50027]));
    }

    #[test]
    fn seen_ids_are_bounded() {
        let mut seen = SeenIds::default();
        for i in 0..MAX_SEEN + 10 {
            assert!(seen.first_use(&i.to_string()));
        }
        assert_eq!(seen.0.len(), MAX_SEEN);
        assert!(!seen.first_use(&(MAX_SEEN + 9).to_string()));
    }
}
