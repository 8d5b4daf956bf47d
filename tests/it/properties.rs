//! Property tests: SASL decoding never panics and round-trips, and DATA is transparent: any
//! body a client dot-stuffs arrives byte-identical, whatever the read boundaries; one with a
//! bare CR or LF is refused, or arrives with those made CRLF when the relay normalizes.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use xoauth_relay::config::{BareLineEndings, SenderRule};
use xoauth_relay::message::Submitter;
use xoauth_relay::reply::Reply;
use xoauth_relay::smtp::sasl;
use xoauth_relay::smtp::session::{Action, Session, SessionLimits};
use xoauth_relay::testkit::smtp_client::dot_stuff;

fn limits(bare_line_endings: BareLineEndings) -> SessionLimits {
    SessionLimits {
        hostname: Arc::from("relay.test"),
        max_message_size: 1 << 20,
        max_recipients: 10,
        max_line_length: 4096,
        max_auth_failures: 3,
        max_errors: 20,
        starttls: false,
        tls_required_for_auth: false,
        bare_line_endings,
    }
}

/// Feeds `chunks` to a logged-in session with a transaction open and returns the relayed body.
fn relay_body(chunks: &[Vec<u8>], policy: BareLineEndings) -> Option<Vec<u8>> {
    let mut s = Session::new(limits(policy));
    let user = Arc::new(Submitter {
        user: "u".into(),
        account: "a".into(),
        allowed_senders: vec![SenderRule::Address("u@x.test".into())],
        allowed_recipient_domains: Vec::new(),
    });
    let (_, action) = s.feed(b"EHLO c\r\nAUTH PLAIN AHUAcA==\r\n");
    assert!(matches!(action, Action::Authenticate(_)));
    s.auth_checked(Some(user));
    let (_, action) = s.feed(b"MAIL FROM:<u@x.test>\r\nRCPT TO:<r@y.test>\r\nDATA\r\n");
    assert!(matches!(action, Action::Read));
    let mut got = None;
    for chunk in chunks {
        let mut rest: &[u8] = chunk;
        loop {
            let (used, action) = s.feed(rest);
            rest = &rest[used..];
            match action {
                Action::Relay(m) => {
                    got = Some(m.body().in_memory().unwrap().to_vec());
                    s.relay_finished(Reply::new(250, (2, 0, 0), "ok"));
                }
                Action::Read | Action::Close => break,
                Action::Authenticate(_) | Action::StartTls => unreachable!("not inside DATA"),
            }
        }
    }
    got
}

/// `body` with every CR or LF that is not part of a CRLF replaced by CRLF.
fn normalized(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    for (i, &b) in body.iter().enumerate() {
        let crlf = (b == b'\r' && body.get(i + 1) == Some(&b'\n'))
            || (b == b'\n' && i > 0 && body[i - 1] == b'\r');
        if (b == b'\r' || b == b'\n') && !crlf {
            out.extend_from_slice(b"\r\n");
        } else {
            out.push(b);
        }
    }
    out
}

/// Bodies rich in the bytes that matter: CR, LF, dots.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => any::<u8>(),
        2 => Just(b'.'),
        2 => Just(b'\r'),
        2 => Just(b'\n'),
    ];
    proptest::collection::vec(byte, 0..600).prop_map(|mut b| {
        if !b.is_empty() && !b.ends_with(b"\r\n") {
            b.extend_from_slice(b"\r\n");
        }
        b
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn data_is_transparent(body in body(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let wire = dot_stuff(&body);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for p in points.into_iter().chain([wire.len()]) {
            chunks.push(wire[start..p].to_vec());
            start = p;
        }
        let normal = normalized(&body);
        let clean = normal == body;
        prop_assert_eq!(relay_body(&chunks, BareLineEndings::Reject), clean.then(|| body.clone()));
        prop_assert_eq!(relay_body(&chunks, BareLineEndings::Normalize), Some(normal));
    }

    #[test]
    fn plain_round_trips(user in "[^\u{0}]{1,40}", pass in "[^\u{0}]{0,40}") {
        let blob = STANDARD.encode(format!("\0{user}\0{pass}"));
        let c = sasl::decode_plain(blob.as_bytes()).unwrap();
        prop_assert_eq!(c.username, user);
        prop_assert_eq!(c.password.expose(), &pass);
    }

    #[test]
    fn login_field_round_trips(field in "[^\u{0}]{0,60}") {
        let blob = STANDARD.encode(&field);
        let text = if blob.is_empty() { "=".to_string() } else { blob };
        prop_assert_eq!(sasl::decode_login_field(text.as_bytes()).unwrap(), field);
    }

    #[test]
    fn sasl_never_panics_on_garbage(input in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = sasl::decode_plain(&input);
        let _ = sasl::decode_login_field(&input);
        let encoded = STANDARD.encode(&input);
        let _ = sasl::decode_plain(encoded.as_bytes());
    }
}
