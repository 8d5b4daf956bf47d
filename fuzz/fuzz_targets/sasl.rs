//! Fuzz target `sasl`: one AUTH PLAIN or AUTH LOGIN response line, as the client sent it, into
//! `smtp::sasl`. Never panics; whatever decodes is well-formed and survives a round trip.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use xoauth_relay::smtp::sasl;

/// RFC 4616 allows 255 octets per field; the decoder's bound is three of them.
const MAX_FIELD: usize = 3 * 256;

fuzz_target!(|line: &[u8]| {
    check_plain(line);
    check_login(line);
});

/// `authzid NUL authcid NUL passwd`: the parts come back without NULs, the user is named, and
/// encoding them again decodes to the same credentials.
fn check_plain(line: &[u8]) {
    let Ok(c) = sasl::decode_plain(line) else {
        return;
    };
    let password = c.password.expose();
    assert!(!c.username.is_empty());
    assert!(!c.username.contains('\0') && !password.contains('\0'));
    let again = STANDARD.encode(format!("\0{}\0{password}", c.username));
    let back = sasl::decode_plain(again.as_bytes()).expect("re-encoded PLAIN decodes");
    assert_eq!(back.username, c.username);
    assert_eq!(back.password.expose(), password);
}

/// One LOGIN field: bounded, no NUL, and stable under re-encoding.
fn check_login(line: &[u8]) {
    let Ok(field) = sasl::decode_login_field(line) else {
        return;
    };
    assert!(field.len() <= MAX_FIELD && !field.contains('\0'));
    if field.is_empty() {
        // An empty field is written `=` (RFC 4954); its base64 is the empty string.
        return;
    }
    let again = STANDARD.encode(&field);
    assert_eq!(sasl::decode_login_field(again.as_bytes()), Ok(field));
}
