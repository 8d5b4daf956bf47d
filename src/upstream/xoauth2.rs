//! SASL XOAUTH2 (Google, "OAuth 2.0 Mechanism"; Microsoft, "Authenticate an IMAP, POP or
//! SMTP connection using OAuth"): the client response and the error challenge.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::reply::sanitize;
use crate::secret::Secret;

/// `base64("user=" user ^A "auth=Bearer " token ^A ^A)`.
pub fn client_response(user: &str, token: &str) -> Secret<String> {
    let raw = format!("user={user}\x01auth=Bearer {token}\x01\x01");
    Secret::new(STANDARD.encode(raw))
}

/// Decodes the base64 JSON a server may send as a `334` challenge after a refused token
/// (Google's form). Returns it as one sanitised line for the log; it names a status and scope,
/// never the token.
pub fn decode_challenge(text: &str) -> Option<String> {
    let raw = STANDARD.decode(text.trim()).ok()?;
    let json = String::from_utf8(raw).ok()?;
    Some(sanitize(&json).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsoft_test_vector() {
        let got = client_response(
            "test@contoso.onmicrosoft.com",
            "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA",
        );
        assert_eq!(
            got.expose(),
            "dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ=="
        );
    }

    #[test]
    fn challenge_json() {
        let b64 = STANDARD.encode(
            r#"{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}"#,
        );
        assert_eq!(
            decode_challenge(&b64).unwrap(),
            r#"{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}"#
        );
        assert!(decode_challenge("%%%").is_none());
    }
}
