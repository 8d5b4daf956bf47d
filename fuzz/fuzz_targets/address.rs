//! Fuzz target `address`: arbitrary MAIL FROM and RCPT TO argument text into the address
//! parser. Never panics; whatever it accepts is written back as one path that parses to the
//! same address and carries no CR, LF, NUL or unquoted space or `>`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xoauth_relay::address::{Address, parse_mail, parse_rcpt, path};

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Ok(mail) = parse_mail(text) {
        if let Some(from) = &mail.from {
            round_trip(from);
        }
    }
    if let Ok(to) = parse_rcpt(text) {
        round_trip(&to);
    }
    if let Ok(a) = Address::parse(text) {
        round_trip(&a);
    }
});

fn round_trip(address: &Address) {
    let written = path(Some(address));
    assert!(!written.contains(['\r', '\n', '\0']), "{written:?}");
    if !address.local_part().contains([' ', '>', '"', '\\']) {
        assert!(!written[1..written.len() - 1].contains([' ', '>']), "{written:?}");
    }
    let again = parse_rcpt(&written).unwrap_or_else(|e| panic!("{written:?} does not parse: {e}"));
    assert_eq!(&again, address, "{written:?}");
}
