//! Table-style tests of the session: bytes in, replies and actions out, no sockets.

use std::sync::Arc;

use super::*;
use crate::config::SenderRule;

fn limits() -> SessionLimits {
    SessionLimits {
        hostname: Arc::from("relay.test"),
        max_message_size: 1000,
        max_recipients: 3,
        max_line_length: 512,
        max_auth_failures: 3,
        max_errors: 20,
        starttls: false,
        tls_required_for_auth: false,
        bare_line_endings: Default::default(),
    }
}

fn tls_limits() -> SessionLimits {
    SessionLimits {
        starttls: true,
        tls_required_for_auth: true,
        ..limits()
    }
}

fn alice() -> Arc<Submitter> {
    Arc::new(Submitter {
        user: "alice".into(),
        account: "acct".into(),
        allowed_senders: vec![
            SenderRule::Address("alice@example.com".into()),
            SenderRule::Domain("example.org".into()),
        ],
        allowed_recipient_domains: Vec::new(),
    })
}

/// Drives a session the way `conn` does, answering actions itself.
struct Harness {
    s: Session,
    relayed: Vec<Submission>,
    verdict: Reply,
    closed: bool,
    /// Bytes the client sent after STARTTLS in the same read (the driver drops them).
    dropped_after_starttls: usize,
}

impl Harness {
    fn new() -> Self {
        Self::with(limits())
    }

    fn with(limits: SessionLimits) -> Self {
        let mut s = Session::new(limits);
        s.greet();
        s.output().clear();
        Self {
            s,
            relayed: Vec::new(),
            verdict: Reply::new(250, (2, 0, 0), "queued upstream"),
            closed: false,
            dropped_after_starttls: 0,
        }
    }

    /// Feeds `input` and returns everything the session wrote.
    fn send(&mut self, input: &[u8]) -> String {
        let mut rest = input;
        loop {
            let (used, action) = self.s.feed(rest);
            rest = &rest[used..];
            match action {
                Action::Read => break,
                Action::Close => {
                    self.closed = true;
                    break;
                }
                Action::Authenticate(c) => {
                    let ok = c.username == "alice" && c.password.expose() == "pw";
                    if let Action::Close = self.s.auth_checked(ok.then(alice)) {
                        self.closed = true;
                        break;
                    }
                }
                Action::Relay(sub) => {
                    self.relayed.push(*sub);
                    self.s.relay_finished(self.verdict.clone());
                }
                Action::StartTls => {
                    self.dropped_after_starttls += rest.len();
                    rest = &[];
                    self.s.tls_started();
                    break;
                }
            }
        }
        assert!(rest.is_empty() || self.closed, "input left over");
        String::from_utf8(std::mem::take(self.s.output())).unwrap()
    }

    fn login(&mut self) {
        self.send(b"EHLO client\r\n");
        // "\0alice\0pw"
        assert_eq!(
            self.send(b"AUTH PLAIN AGFsaWNlAHB3\r\n"),
            "235 2.7.0 Authentication successful\r\n"
        );
    }
}

fn codes(replies: &str) -> Vec<&str> {
    replies.lines().map(|l| &l[..3]).collect()
}

#[test]
fn greeting_and_ehlo_advertise_what_we_support() {
    let mut s = Session::new(limits());
    s.greet();
    assert_eq!(
        s.output().as_slice(),
        b"220 relay.test ESMTP xoauth-relay ready\r\n"
    );
    let mut h = Harness::new();
    let ehlo = h.send(b"EHLO client.example\r\n");
    for cap in [
        "SIZE 1000",
        "8BITMIME",
        "SMTPUTF8",
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
        "AUTH PLAIN LOGIN",
    ] {
        assert!(
            ehlo.contains(&format!("250-{cap}\r\n")),
            "{cap} missing in {ehlo}"
        );
    }
    assert!(ehlo.ends_with("250 AUTH=PLAIN LOGIN\r\n"));
    assert!(!ehlo.contains("STARTTLS") && !ehlo.contains("CHUNKING"));
}

#[test]
fn auth_plain_and_login_variants() {
    let cases: &[(&[u8], &str)] = &[
        (b"AUTH PLAIN AGFsaWNlAHB3\r\n", "235"),
        (b"AUTH PLAIN\r\nAGFsaWNlAHB3\r\n", "334 \r\n235"),
        (
            b"AUTH LOGIN YWxpY2U=\r\ncHc=\r\n",
            "334 UGFzc3dvcmQ6\r\n235",
        ),
        (
            b"AUTH LOGIN\r\nYWxpY2U=\r\ncHc=\r\n",
            "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235",
        ),
        (
            b"auth login\r\nYWxpY2U=\r\ncHc=\r\n",
            "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235",
        ),
        (b"AUTH PLAIN\r\n*\r\n", "334 \r\n501 5.7.0"),
        (b"AUTH LOGIN\r\n*\r\n", "334 VXNlcm5hbWU6\r\n501 5.7.0"),
        (
            b"AUTH LOGIN YWxpY2U=\r\n*\r\n",
            "334 UGFzc3dvcmQ6\r\n501 5.7.0",
        ),
        (b"AUTH PLAIN !!!\r\n", "501 5.5.2"),
        (b"AUTH PLAIN =\r\n", "501 5.5.2"),
        (b"AUTH CRAM-MD5\r\n", "504 5.5.4"),
        (b"AUTH PLAIN AGFsaWNlAHdyb25n\r\n", "535 5.7.8"),
        (b"AUTH PLAIN AGJvYgBwdw==\r\n", "535 5.7.8"),
    ];
    for (input, want) in cases {
        let mut h = Harness::new();
        h.send(b"EHLO c\r\n");
        let got = h.send(input);
        assert!(
            got.starts_with(want),
            "{:?}: got {got:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn auth_rules() {
    let mut h = Harness::new();
    assert!(
        h.send(b"AUTH PLAIN AGFsaWNlAHB3\r\n")
            .starts_with("503 5.5.1 Send EHLO first")
    );
    h.login();
    assert!(
        h.send(b"AUTH PLAIN AGFsaWNlAHB3\r\n")
            .starts_with("503 5.5.1 Already")
    );
    let long = format!(
        "AUTH PLAIN\r\n{}\r\nNOOP\r\n",
        "A".repeat(MAX_SASL_LINE + 10)
    );
    let mut h = Harness::new();
    h.send(b"EHLO c\r\n");
    assert_eq!(codes(&h.send(long.as_bytes())), ["334", "500", "250"]);
}

#[test]
fn closes_after_too_many_auth_failures() {
    let mut h = Harness::new();
    h.send(b"EHLO c\r\n");
    let bad = b"AUTH PLAIN AGFsaWNlAHdyb25n\r\n";
    assert!(h.send(bad).starts_with("535"));
    assert!(h.send(bad).starts_with("535"));
    assert_eq!(h.s.auth_failures(), 2);
    assert!(h.send(bad).starts_with("421 4.7.0"));
    assert!(h.closed);
}

#[test]
fn mail_requires_auth_and_allowed_sender() {
    let mut h = Harness::new();
    h.send(b"EHLO c\r\n");
    assert!(
        h.send(b"MAIL FROM:<alice@example.com>\r\n")
            .starts_with("530 5.7.0")
    );
    h.login();
    let refused = h.send(b"MAIL FROM:<mallory@evil.test>\r\n");
    assert!(refused.starts_with("550 5.7.1 Sender mallory@evil.test not allowed for user alice; allowed: alice@example.com, @example.org"), "{refused}");
    assert!(
        h.send(b"MAIL FROM:<>\r\n")
            .starts_with("550 5.7.1 Sender <> not allowed")
    );
    assert!(
        h.send(b"MAIL FROM:<ALICE@Example.COM>\r\n")
            .starts_with("250 2.1.0")
    );
    assert!(
        h.send(b"MAIL FROM:<alice@example.com>\r\n")
            .starts_with("503")
    );
    assert!(h.send(b"RSET\r\n").starts_with("250"));
    assert!(
        h.send(b"MAIL FROM:<anyone@example.org>\r\n")
            .starts_with("250")
    );
}

#[test]
fn mail_parameters() {
    let mut h = Harness::new();
    h.login();
    let cases: &[(&str, &str)] = &[
        ("MAIL FROM:<alice@example.com> SIZE=1001", "552 5.3.4"),
        (
            "MAIL FROM:<alice@example.com> SIZE=1000 BODY=8BITMIME SMTPUTF8",
            "250",
        ),
        ("MAIL FROM:<alice@example.com> BODY=7BIT AUTH=<>", "250"),
        ("MAIL FROM:<alice@example.com> RET=HDRS", "555 5.5.4"),
        ("MAIL FROM:<alice@example.com> BODY=BINARYMIME", "555 5.5.4"),
        ("MAIL FROM:<alice@example.com> FOO=BAR", "555 5.5.4"),
        ("MAIL FROM alice", "501 5.5.2"),
    ];
    for (line, want) in cases {
        let got = h.send(format!("{line}\r\n").as_bytes());
        assert!(got.starts_with(want), "{line}: {got}");
        h.send(b"RSET\r\n");
    }
    h.send(b"MAIL FROM:<alice@example.com> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<b@x.test>\r\nDATA\r\nhi\r\n.\r\n");
    let env = &h.relayed[0].envelope;
    assert!(env.body_8bitmime && env.smtputf8);
}

#[test]
fn rcpt_and_data_sequence_rules() {
    let mut h = Harness::new();
    h.login();
    assert!(h.send(b"RCPT TO:<b@x.test>\r\n").starts_with("503"));
    assert!(h.send(b"DATA\r\n").starts_with("503"));
    h.send(b"MAIL FROM:<alice@example.com>\r\n");
    assert!(h.send(b"DATA\r\n").starts_with("554 5.5.1"));
    assert!(
        h.send(b"RCPT TO:<b@x.test> NOTIFY=NEVER\r\n")
            .starts_with("555")
    );
    let got = h.send(
        b"RCPT TO:<1@x.test>\r\nRCPT TO:<2@x.test>\r\nRCPT TO:<3@x.test>\r\nRCPT TO:<4@x.test>\r\n",
    );
    assert_eq!(codes(&got), ["250", "250", "250", "452"]);
    assert!(got.contains("452 4.5.3"));
}

#[test]
fn pipelined_transaction_relays_byte_exact_body() {
    let mut h = Harness::new();
    h.login();
    let body = b"Subject: x\r\n\r\n..leading dot\r\n.\xc3\xa9\r\nlast\r\n";
    let mut input =
        b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n"
            .to_vec();
    input.extend_from_slice(
        b"Subject: x\r\n\r\n...leading dot\r\n..\xc3\xa9\r\nlast\r\n.\r\nQUIT\r\n",
    );
    let got = h.send(&input);
    assert_eq!(codes(&got), ["250", "250", "250", "354", "250", "221"]);
    let sub = &h.relayed[0];
    assert_eq!(sub.body().in_memory().unwrap(), body);
    let shown = |a: &Address| a.to_string();
    let from = sub.envelope.mail_from.as_ref().map(shown);
    assert_eq!(from.as_deref(), Some("alice@example.com"));
    let rcpts: Vec<String> = sub.envelope.rcpts.iter().map(shown).collect();
    assert_eq!(rcpts, ["b@x.test", "c@y.test"]);
    assert_eq!(sub.submitter.account, "acct");
    assert!(h.closed);
}

#[test]
fn body_split_at_every_position_arrives_intact() {
    let wire = b"DATA\r\n.a\r\n..b\r\nc\r\n.\r\n";
    for split in 0..wire.len() {
        let mut h = Harness::new();
        h.login();
        h.send(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@x.test>\r\n");
        h.send(&wire[..split]);
        h.send(&wire[split..]);
        assert_eq!(h.relayed.len(), 1, "split {split}");
        assert_eq!(
            h.relayed[0].body().in_memory().unwrap(),
            b"a\r\n.b\r\nc\r\n",
            "split {split}"
        );
    }
}

#[test]
fn empty_body_and_first_line_dot() {
    let mut h = Harness::new();
    h.login();
    h.send(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n.\r\n");
    assert_eq!(h.relayed[0].body().in_memory().unwrap(), b"");
    h.send(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n..x\r\n.\r\n");
    assert_eq!(h.relayed[1].body().in_memory().unwrap(), b".x\r\n");
}

/// Bare-LF and bare-CR "ends of data" end nothing: what follows is part of the message, never
/// commands, and the message is refused for its bare line endings (nothing is relayed).
#[test]
fn smuggling_variants_do_not_end_data() {
    let smuggled: &[&[u8]] = &[
        b"a\r\n.\r\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<evil@x.test>\r\nDATA\r\nz\r\n",
        b"a\r\n.\r\r\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<evil@x.test>\r\nDATA\r\nz\r\n",
        b"a\n.\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<evil@x.test>\r\nDATA\r\nz\r\n",
        b"a\n.\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<evil@x.test>\r\nDATA\r\nz\r\n",
        b"a\r\n.\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<evil@x.test>\r\nDATA\r\nz\r\n",
        b"a\r.\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<evil@x.test>\r\nDATA\r\nz\r\n",
    ];
    for body in smuggled {
        let mut h = Harness::new();
        h.login();
        let mut input = b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n".to_vec();
        input.extend_from_slice(body);
        input.extend_from_slice(b".\r\nQUIT\r\n");
        let got = h.send(&input);
        let shown = String::from_utf8_lossy(body);
        assert_eq!(
            codes(&got),
            ["250", "250", "354", "550", "221"],
            "{shown:?}: {got}"
        );
        assert!(
            got.contains("550 5.6.0 Message refused: it contains a bare CR or LF"),
            "{got}"
        );
        assert!(h.relayed.is_empty(), "{shown:?}");
    }
}

/// With `bare_line_endings = "normalize"` the same bytes are one message, its line ends made
/// CRLF, and the "smuggled" commands are text inside it.
#[test]
fn normalized_smuggling_variants_are_one_message() {
    let mut h = Harness::with(SessionLimits {
        bare_line_endings: BareLineEndings::Normalize,
        ..limits()
    });
    h.login();
    let got = h.send(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@x.test>\r\nDATA\r\na\n.\nMAIL FROM:<x@evil>\r\nb\r.\r\nc\r\n.\r\r\nd\r\n.\r\n");
    assert_eq!(codes(&got), ["250", "250", "354", "250"]);
    assert_eq!(h.relayed.len(), 1);
    assert_eq!(
        h.relayed[0].body().in_memory().unwrap(),
        b"a\r\n.\r\nMAIL FROM:<x@evil>\r\nb\r\n.\r\nc\r\n\r\n\r\nd\r\n"
    );
}

#[test]
fn oversized_message_is_drained_not_buffered() {
    let mut h = Harness::new();
    h.login();
    h.send(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n");
    let line = [b'x'; 98];
    for _ in 0..100 {
        h.send(&line);
        h.send(b"\r\n");
        assert!(
            h.s.data.capacity() <= 4096,
            "buffer grew to {}",
            h.s.data.capacity()
        );
    }
    let got = h.send(b".\r\nNOOP\r\n");
    assert!(got.starts_with("552 5.3.4"), "{got}");
    assert!(got.ends_with("250 2.0.0 OK\r\n"));
    assert!(h.relayed.is_empty());
    assert_eq!(h.s.take_local_rejections(), 1);
    assert_eq!(h.s.take_local_rejections(), 0);
    // The transaction is gone; a new one works.
    assert!(h.send(b"RCPT TO:<b@x.test>\r\n").starts_with("503"));
}

#[test]
fn message_exactly_at_limit_is_accepted() {
    let mut h = Harness::new();
    h.login();
    let body: Vec<u8> = [vec![b'y'; 998], b"\r\n".to_vec()].concat();
    assert_eq!(body.len(), 1000);
    let mut input = b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n".to_vec();
    input.extend_from_slice(&body);
    input.extend_from_slice(b".\r\n");
    let got = h.send(&input);
    assert_eq!(codes(&got), ["250", "250", "354", "250"]);
    assert_eq!(h.relayed[0].body().in_memory().unwrap(), body.as_slice());
}

#[test]
fn relay_verdict_is_the_reply_to_the_dot() {
    let mut h = Harness::new();
    h.verdict = Reply::new(451, (4, 4, 1), "upstream unreachable");
    h.login();
    let got = h.send(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@x.test>\r\nDATA\r\nx\r\n.\r\n");
    assert!(got.ends_with("451 4.4.1 upstream unreachable\r\n"), "{got}");
    assert!(
        h.send(b"RCPT TO:<b@x.test>\r\n").starts_with("503"),
        "transaction must be cleared"
    );
}

#[test]
fn long_lines_unknown_commands_and_others() {
    let mut h = Harness::new();
    let long = format!("NOOP {}\r\nNOOP\r\n", "a".repeat(600));
    assert_eq!(codes(&h.send(long.as_bytes())), ["500", "250"]);
    let cases: &[(&str, &str)] = &[
        ("FOO", "500 5.5.1"),
        ("VRFY x", "252"),
        ("EXPN x", "502"),
        ("HELP", "214"),
        ("STARTTLS", "502"),
        ("ETRN x", "502"),
        ("NOOP", "250"),
        ("HELO c", "250 2.0.0 relay.test"),
    ];
    for (line, want) in cases {
        let got = h.send(format!("{line}\r\n").as_bytes());
        assert!(got.starts_with(want), "{line}: {got}");
    }
}

#[test]
fn bdat_payload_is_swallowed() {
    let mut h = Harness::new();
    h.login();
    h.send(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@x.test>\r\n");
    let got = h.send(b"BDAT 10 LAST\r\nQUIT\r\nXXXXNOOP\r\n");
    assert_eq!(codes(&got), ["502", "250"], "{got}");
    assert!(!h.closed);
}

#[test]
fn idle_and_shutdown_close_politely() {
    let mut h = Harness::new();
    assert!(h.s.is_idle());
    assert!(matches!(h.s.abort(reply::IDLE_TIMEOUT), Action::Close));
    assert_eq!(
        h.s.output().as_slice(),
        b"421 4.4.2 Idle timeout, closing connection\r\n"
    );
    let mut h = Harness::new();
    h.login();
    h.send(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@x.test>\r\nDATA\r\npartial");
    assert!(!h.s.is_idle(), "mid-DATA is not idle");
    h.send(b"\r\n.\r\n");
    assert!(h.s.is_idle());
    assert!(matches!(h.s.shutdown(), Action::Close));
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200 {
        let mut h = Harness::new();
        let mut input = Vec::new();
        for _ in 0..512 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let pick = [b'\r', b'\n', b'.', b' ', b':', b'<', b'>', 0, 0xff, b'A'];
            input.push(if seed.is_multiple_of(3) {
                pick[(seed >> 8) as usize % pick.len()]
            } else {
                (seed >> 16) as u8
            });
        }
        h.send(b"EHLO x\r\nAUTH PLAIN AGFsaWNlAHB3\r\n");
        let _ = h.send(&input);
    }
}

#[test]
fn starttls_listener_hides_auth_until_tls() {
    let mut h = Harness::with(tls_limits());
    let ehlo = h.send(b"EHLO c\r\n");
    assert!(
        ehlo.contains("250-STARTTLS\r\n") || ehlo.ends_with("250 STARTTLS\r\n"),
        "{ehlo}"
    );
    assert!(!ehlo.contains("AUTH"), "no AUTH before TLS: {ehlo}");
    assert!(
        h.send(b"AUTH PLAIN AGFsaWNlAHB3\r\n")
            .starts_with("538 5.7.11")
    );
    let mail = h.send(b"MAIL FROM:<alice@example.com>\r\n");
    assert!(
        mail.starts_with("530 5.7.0 Must issue a STARTTLS"),
        "{mail}"
    );
    let got = h.send(b"STARTTLS\r\nAUTH PLAIN AGFsaWNlAHB3\r\nMAIL FROM:<alice@example.com>\r\n");
    assert_eq!(got, "220 2.0.0 Ready to start TLS\r\n");
    assert!(
        h.dropped_after_starttls > 0,
        "pipelined clear text after STARTTLS is dropped"
    );
    assert!(h.s.submitter().is_none(), "nothing from before TLS counts");
    assert!(
        h.send(b"MAIL FROM:<alice@example.com>\r\n")
            .starts_with("503 5.5.1 Send EHLO first")
    );
    let ehlo = h.send(b"EHLO c\r\n");
    assert!(
        ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    assert!(
        h.send(b"STARTTLS\r\n")
            .starts_with("503 5.5.1 TLS already active")
    );
    assert!(h.send(b"AUTH PLAIN AGFsaWNlAHB3\r\n").starts_with("235"));
}

#[test]
fn starttls_needs_ehlo_and_a_tls_listener() {
    let mut h = Harness::with(tls_limits());
    assert!(
        h.send(b"STARTTLS\r\n")
            .starts_with("503 5.5.1 Send EHLO first")
    );
    let mut h = Harness::new();
    h.send(b"EHLO c\r\n");
    assert!(h.send(b"STARTTLS\r\n").starts_with("502"));
}

#[test]
fn implicit_tls_session_advertises_auth() {
    let mut s = Session::new(tls_limits());
    s.set_tls();
    let (_, _) = s.feed(b"EHLO c\r\n");
    let out = String::from_utf8(std::mem::take(s.output())).unwrap();
    assert!(
        out.contains("AUTH PLAIN LOGIN") && !out.contains("STARTTLS"),
        "{out}"
    );
}

#[test]
fn too_many_errors_close_the_connection() {
    let mut h = Harness::with(SessionLimits {
        max_errors: 3,
        ..limits()
    });
    assert!(h.send(b"FOO\r\n").starts_with("500"));
    assert!(h.send(b"RCPT TO:<a@b>\r\n").starts_with("503"));
    let got = h.send(b"BAR\r\nNOOP\r\n");
    assert!(
        got.ends_with("421 4.7.0 Too many errors, closing connection\r\n"),
        "{got}"
    );
    assert!(h.closed);
}

#[test]
fn trusted_network_sends_without_auth_within_its_senders() {
    let mut h = Harness::new();
    h.s.trust_network(alice());
    h.send(b"HELO printer\r\n");
    let refused = h.send(b"MAIL FROM:<other@evil.test>\r\n");
    assert_eq!(
        refused, "550 5.7.1 Sender other@evil.test not allowed for this client\r\n",
        "a device that did not log in is not told the allowed senders"
    );
    let got = h.send(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<x@y.test>\r\nDATA\r\nhi\r\n.\r\n");
    assert!(got.ends_with("250 2.0.0 queued upstream\r\n"), "{got}");
    assert_eq!(h.relayed[0].submitter.user, "alice");
    // A trusted device may still log in as someone else.
    h.send(b"EHLO c\r\n");
    assert!(h.send(b"AUTH PLAIN AGFsaWNlAHB3\r\n").starts_with("235"));
}

#[test]
fn each_local_refusal_is_kept_for_the_log_with_its_reason() {
    let mut h = Harness::new();
    h.login();
    h.send(b"MAIL FROM:<mallory@evil.test>\r\n");
    h.send(b"MAIL FROM:<alice@example.com> SIZE=5000\r\n");
    h.send(b"MAIL FROM:<alice@example.com>\r\n");
    for i in 0..6 {
        h.send(format!("RCPT TO:<r{i}@x.test>\r\n").as_bytes());
    }
    h.send(b"DATA\r\nbare\nLF\r\n.\r\n");
    let seen: Vec<(&str, String)> =
        h.s.take_refusals()
            .into_iter()
            .map(|r| (r.reason, r.sender))
            .collect();
    let alice = || "alice@example.com".to_string();
    assert_eq!(
        seen,
        [
            ("sender not allowed", "mallory@evil.test".to_string()),
            ("message too big (SIZE)", alice()),
            ("too many recipients", alice()),
            ("bare CR or LF in the message", alice()),
        ],
        "three refused RCPTs of one transaction are noted once"
    );
    assert_eq!(h.s.take_local_rejections(), 6, "but each is counted");
    assert!(h.s.take_refusals().is_empty());
}

#[test]
fn pending_refusals_are_bounded() {
    let mut h = Harness::new();
    h.login();
    let many = "MAIL FROM:<mallory@evil.test>\r\n".repeat(MAX_PENDING_REFUSALS * 2);
    h.send(many.as_bytes());
    assert_eq!(h.s.take_refusals().len(), MAX_PENDING_REFUSALS);
    assert_eq!(h.s.take_local_rejections(), 2 * MAX_PENDING_REFUSALS as u32);
}

#[test]
fn a_tls_handshake_in_clear_is_noted_and_closes() {
    let mut h = Harness::new();
    let got = h.send(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]);
    assert!(got.starts_with("500 5.5.1 TLS handshake"), "{got}");
    assert!(h.closed);
    assert!(h.s.take_tls_in_clear());
    assert!(!h.s.take_tls_in_clear(), "once");

    let mut h = Harness::new();
    h.send(b"EHLO client\r\n");
    h.send(&[0x16, 0x03, 0x01]);
    assert!(!h.s.take_tls_in_clear(), "only as the first bytes");
}

#[test]
fn recipients_outside_the_accounts_domains_are_refused_at_rcpt() {
    let mut h = Harness::new();
    let submitter = Submitter {
        allowed_recipient_domains: vec!["contoso.com".into(), "fabrikam.com".into()],
        ..Arc::unwrap_or_clone(alice())
    };
    h.s.trust_network(Arc::new(submitter));
    h.send(b"HELO app\r\nMAIL FROM:<alice@example.com>\r\n");
    let refused = h.send(b"RCPT TO:<someone@gmail.test>\r\n");
    assert_eq!(
        refused,
        "550 5.7.1 Recipient <someone@gmail.test> not allowed: this relay sends only to \
         contoso.com, fabrikam.com\r\n"
    );
    let sub = h.send(b"RCPT TO:<x@sub.contoso.com>\r\n");
    assert!(
        sub.starts_with("550 5.7.1"),
        "a subdomain is another domain: {sub}"
    );
    let got = h.send(b"RCPT TO:<Bob@Contoso.COM>\r\nDATA\r\nhi\r\n.\r\n");
    assert!(got.ends_with("250 2.0.0 queued upstream\r\n"), "{got}");
    let rcpts: Vec<String> = h.relayed[0]
        .envelope
        .rcpts
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(rcpts, ["Bob@Contoso.COM"]);
    let seen: Vec<(&str, String)> =
        h.s.take_refusals()
            .into_iter()
            .map(|r| (r.reason, r.sender))
            .collect();
    let alice = || "alice@example.com".to_string();
    assert_eq!(
        seen,
        [
            ("recipient domain not allowed", alice()),
            ("recipient domain not allowed", alice())
        ]
    );
}
