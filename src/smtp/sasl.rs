//! Decoding of the AUTH PLAIN (RFC 4616) and AUTH LOGIN client responses. Pure functions on
//! the base64 text of one response line; nothing here logs, because the input is a password.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::secret::Secret;

/// Largest decoded PLAIN response we accept; RFC 4616 limits each field to 255 octets.
const MAX_DECODED: usize = 3 * 256;

/// Credentials presented by a local client.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslError {
    /// The client sent `*`.
    Cancelled,
    /// Not valid base64.
    BadBase64,
    /// Valid base64, but not a well-formed response (wrong shape, not UTF-8, proxy authorization).
    Malformed,
}

/// True when the response line is the client's `*` (cancel the exchange).
pub fn is_cancel(line: &[u8]) -> bool {
    line == b"*"
}

/// Decodes one base64 response. `=` is RFC 4954's spelling of an empty response.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>, SaslError> {
    if is_cancel(text) {
        return Err(SaslError::Cancelled);
    }
    if text == b"=" {
        return Ok(Vec::new());
    }
    if text.len() > MAX_DECODED * 4 / 3 + 4 {
        return Err(SaslError::Malformed);
    }
    STANDARD.decode(text).map_err(|_| SaslError::BadBase64)
}

/// Decodes `authzid NUL authcid NUL passwd`. An authorization identity other than the
/// authentication identity is refused: the relay does not act on behalf of other users.
pub fn decode_plain(text: &[u8]) -> Result<Credentials, SaslError> {
    let raw = decode_base64(text)?;
    let mut parts = raw.split(|b| *b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    if authcid.is_empty() || (!authzid.is_empty() && authzid != authcid) {
        return Err(SaslError::Malformed);
    }
    Ok(Credentials {
        username: utf8(authcid)?,
        password: Secret::new(utf8(passwd)?),
    })
}

/// Decodes one AUTH LOGIN field (the username or the password).
pub fn decode_login_field(text: &[u8]) -> Result<String, SaslError> {
    let raw = decode_base64(text)?;
    if raw.len() > MAX_DECODED || raw.contains(&0) {
        return Err(SaslError::Malformed);
    }
    utf8(&raw)
}

fn utf8(bytes: &[u8]) -> Result<String, SaslError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| SaslError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> Vec<u8> {
        STANDARD.encode(s).into_bytes()
    }

    #[test]
    fn plain_variants() {
        let ok = |raw: &[u8]| decode_plain(&b64(raw));
        let c = ok(b"\0alice\0s3cret").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.expose().as_str()),
            ("alice", "s3cret")
        );
        let c = ok(b"alice\0alice\0pw").unwrap();
        assert_eq!(c.username, "alice");
        let c = ok("\0j\u{f6}rg@example.com\0p\u{e4}ss".as_bytes()).unwrap();
        assert_eq!(c.username, "j\u{f6}rg@example.com");
        assert_eq!(c.password.expose(), "p\u{e4}ss");
        assert_eq!(ok(b"\0alice\0").unwrap().password.expose(), "");
    }

    #[test]
    fn plain_failures() {
        let table: &[(&[u8], SaslError)] = &[
            (b"*", SaslError::Cancelled),
            (b"not base64!", SaslError::BadBase64),
            (b"=", SaslError::Malformed),
        ];
        for (input, want) in table {
            assert_eq!(decode_plain(input).unwrap_err(), *want, "{input:?}");
        }
        let malformed: &[&[u8]] = &[
            b"alice\0pw",
            b"\0\0pw",
            b"bob\0alice\0pw",
            b"\0alice\0pw\0extra",
            b"\0\xff\xfe\0pw",
        ];
        for raw in malformed {
            assert_eq!(
                decode_plain(&b64(raw)).unwrap_err(),
                SaslError::Malformed,
                "{raw:?}"
            );
        }
    }

    #[test]
    fn login_fields() {
        assert_eq!(decode_login_field(b"YWxpY2U=").unwrap(), "alice");
        assert_eq!(decode_login_field(b"=").unwrap(), "");
        assert_eq!(decode_login_field(b"*"), Err(SaslError::Cancelled));
        assert_eq!(decode_login_field(b"%%%"), Err(SaslError::BadBase64));
        assert_eq!(decode_login_field(&b64(b"a\0b")), Err(SaslError::Malformed));
        assert_eq!(
            decode_login_field(&b64(&[b'a'; 2000])),
            Err(SaslError::Malformed)
        );
    }
}
