//! Fuzz target `session`: arbitrary client bytes into the sans-I/O SMTP session, cut into
//! chunks at fuzzer-chosen points and driven the way `smtp::conn` drives it, checking the
//! session's invariants after every call.
//!
//! Input layout (so hand-written seeds stay readable, see `seeds/session/`):
//! - byte 0, flags: bits 0-1 = `max_message_size` from [`SIZES`], bit 2 = `max_recipients`
//!   3 instead of 1, bits 4-7 = the outcomes of the password checks, in turn (bit 4 the first,
//!   bit 5 the second, ..., then again from bit 4): `0x50` alternates success and failure
//!   starting with a failure, `0x00` fails every time (reaching the too-many-failures close);
//! - byte 1: `n`, the number of cut bytes (its low four bits); bit 4 set: bare CR and LF in
//!   messages are normalized instead of refused;
//! - the next `n` bytes: chunk lengths minus one, used in turn (no cut bytes: one chunk);
//! - the rest: what the client sends.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use xoauth_relay::message::Submitter;
use xoauth_relay::config::{BareLineEndings, SenderRule};
use xoauth_relay::reply::{self, Reply};
use xoauth_relay::message::Submission;
use xoauth_relay::smtp::session::{Action, Session, SessionLimits};

/// Message size limits to choose from; small ones so the fuzzer reaches the limit paths.
const SIZES: [usize; 4] = [1, 64, 1000, 65536];

/// RFC 5321 §4.5.3.1.5: a reply line, CRLF included, is at most 512 octets.
const MAX_REPLY_LINE: usize = 512;

/// The sender the fuzzed user may use; the seeds use it.
const SENDER: &str = "u@x.test";

fuzz_target!(|data: &[u8]| {
    let Some((flags, cuts, wire)) = split_input(data) else {
        return;
    };
    let normalize = data[1] & 0x10 != 0;
    let mut driver = Driver::new(flags, normalize);
    for chunk in chunks(wire, cuts) {
        if !driver.feed(chunk) {
            return;
        }
    }
    driver.finish();
});

fn split_input(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&flags, rest) = data.split_first()?;
    let (&n, rest) = rest.split_first()?;
    let n = usize::from(n % 16).min(rest.len());
    let (cuts, wire) = rest.split_at(n);
    Some((flags, cuts, wire))
}

/// The wire cut into reads: lengths cycle through `cuts` (each 1..=256).
fn chunks<'a>(wire: &'a [u8], cuts: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = wire;
    let mut i = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = match cuts {
            [] => rest.len(),
            _ => usize::from(cuts[i % cuts.len()]) + 1,
        };
        i += 1;
        let (head, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        Some(head)
    })
}

fn limits(flags: u8, normalize: bool) -> SessionLimits {
    SessionLimits {
        hostname: Arc::from("relay.test"),
        max_message_size: SIZES[usize::from(flags & 3)],
        max_recipients: if flags & 4 == 0 { 1 } else { 3 },
        max_line_length: 512,
        max_auth_failures: 3,
        max_errors: 20,
        // Half the inputs run against a STARTTLS listener that requires TLS for AUTH.
        starttls: flags & 8 != 0,
        tls_required_for_auth: flags & 8 != 0,
        bare_line_endings: if normalize {
            BareLineEndings::Normalize
        } else {
            BareLineEndings::Reject
        },
    }
}

fn user() -> Arc<Submitter> {
    Arc::new(Submitter {
        user: "u".into(),
        account: "a".into(),
        allowed_senders: vec![
            SenderRule::Address(SENDER.into()),
            SenderRule::Domain("y.test".into()),
        ],
        allowed_recipient_domains: Vec::new(),
    })
}

/// Plays the connection driver: answers each action and checks what the session wrote.
struct Driver {
    session: Session,
    limits: SessionLimits,
    /// Outcomes of the password checks, one bit each, cycling through four.
    auth_outcomes: u8,
    auth_checks: u32,
    authenticated: bool,
}

impl Driver {
    fn new(flags: u8, normalize: bool) -> Self {
        let limits = limits(flags, normalize);
        let mut session = Session::new(limits.clone());
        session.greet();
        let mut driver = Self {
            session,
            limits,
            auth_outcomes: flags >> 4,
            auth_checks: 0,
            authenticated: false,
        };
        let greeting = driver.take_output();
        assert!(greeting.starts_with(b"220 "), "greeting {greeting:?}");
        driver
    }

    /// Feeds one read until it is consumed; false once the session closed.
    fn feed(&mut self, chunk: &[u8]) -> bool {
        let mut rest = chunk;
        loop {
            let (used, action) = self.session.feed(rest);
            assert!(used <= rest.len());
            rest = &rest[used..];
            let out = self.take_output();
            let open = match action {
                Action::Read => {
                    assert!(rest.is_empty(), "Read with {} bytes unconsumed", rest.len());
                    return true;
                }
                Action::Close => {
                    // Input closes only with QUIT (221) or too many errors (421): a reply,
                    // never a silent hang-up.
                    let last = last_line(&out);
                    assert!(
                        last.starts_with(b"221 ") || last.starts_with(b"421 "),
                        "close {out:?}"
                    );
                    false
                }
                Action::StartTls => {
                    assert!(self.limits.starttls, "STARTTLS on a listener without TLS");
                    assert!(last_line(&out).starts_with(b"220 "), "starttls {out:?}");
                    // The driver drops what was pipelined after STARTTLS, then the handshake.
                    rest = &[];
                    self.session.tls_started();
                    self.authenticated = false;
                    true
                }
                Action::Authenticate(_) => self.authenticate(),
                Action::Relay(message) => {
                    self.relay(&message);
                    true
                }
            };
            if !open {
                self.closed();
                return false;
            }
        }
    }

    /// Answers a password check as the flags say; false when the session closed.
    fn authenticate(&mut self) -> bool {
        assert!(!self.authenticated, "AUTH accepted twice");
        let ok = (self.auth_outcomes >> (self.auth_checks % 4)) & 1 == 1;
        self.auth_checks += 1;
        let action = self.session.auth_checked(ok.then(user));
        let out = self.take_output();
        self.authenticated = ok;
        assert!(self.session.auth_failures() <= 3);
        match action {
            Action::Read => {
                let want: &[u8] = if ok { b"235 " } else { b"535 " };
                assert!(out.starts_with(want), "auth reply {out:?}");
                true
            }
            Action::Close => {
                assert!(!ok && out.starts_with(b"421 "), "auth close {out:?}");
                false
            }
            other => panic!("auth_checked returned {other:?}"),
        }
    }

    /// Checks the message against the limits and the envelope rules, then accepts it.
    fn relay(&mut self, message: &Submission) {
        assert!(self.authenticated, "relay without AUTH");
        let envelope = &message.envelope;
        let body = message.body().in_memory().expect("the session keeps the body in memory");
        assert!(
            body.len() <= self.limits.max_message_size,
            "body of {} octets over the limit {}",
            body.len(),
            self.limits.max_message_size
        );
        assert!(!envelope.rcpts.is_empty());
        assert!(envelope.rcpts.len() <= self.limits.max_recipients);
        assert!(message.submitter.may_send_as(envelope.mail_from.as_ref()));
        assert!(
            crlf_only(body),
            "a relayed body has only CRLF line ends, whatever the policy"
        );
        for address in envelope.mail_from.iter().chain(&envelope.rcpts) {
            let path = xoauth_relay::address::path(Some(address));
            assert!(!path.contains(['\r', '\n', '\0']), "{path:?}");
            assert!(address.is_ascii() || envelope.smtputf8, "UTF-8 without SMTPUTF8: {path}");
        }
        self.session
            .relay_finished(Reply::new(250, (2, 0, 0), "queued upstream"));
        let out = self.take_output();
        assert!(out.starts_with(b"250 "), "verdict {out:?}");
    }

    fn closed(&mut self) {
        assert!(self.session.is_closed());
    }

    /// The client went quiet: the session must close politely with a 421.
    fn finish(&mut self) {
        let action = if self.session.is_idle() {
            self.session.shutdown()
        } else {
            self.session.abort(reply::IDLE_TIMEOUT)
        };
        assert!(matches!(action, Action::Close));
        let out = self.take_output();
        assert!(out.starts_with(b"421 "), "close {out:?}");
        self.closed();
    }

    /// Takes what the session wrote (as the driver writes it out) and checks it is whole,
    /// well-formed reply lines.
    fn take_output(&mut self) -> Vec<u8> {
        let out = std::mem::take(self.session.output());
        check_replies(&out);
        out
    }
}

/// The last reply line written, without its CRLF (empty when nothing was written).
fn last_line(out: &[u8]) -> &[u8] {
    let body = out.strip_suffix(b"\r\n").unwrap_or(out);
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    &body[start..]
}

/// Whole CRLF-terminated lines, each `ddd` then space or hyphen, at most 512 octets, no stray
/// CR or LF inside, and a multi-line reply ends with a line of the same code.
fn check_replies(out: &[u8]) {
    let mut rest = out;
    let mut open: Option<&[u8]> = None;
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| panic!("partial line in {out:?}"));
        let line = &rest[..end];
        rest = &rest[end + 2..];
        assert!(
            !line.contains(&b'\r') && !line.contains(&b'\n'),
            "bare CR or LF in {line:?}"
        );
        assert!(line.len() + 2 <= MAX_REPLY_LINE, "reply line too long");
        assert!(line.len() >= 4, "short reply line {line:?}");
        assert!(
            line[..3].iter().all(u8::is_ascii_digit),
            "no code: {line:?}"
        );
        if let Some(code) = open {
            assert_eq!(code, &line[..3], "code changed inside a reply");
        }
        open = match line[3] {
            b'-' => Some(&line[..3]),
            b' ' => None,
            _ => panic!("bad separator in {line:?}"),
        };
    }
    assert!(open.is_none(), "multi-line reply not finished: {out:?}");
}

/// True when every CR and LF in `body` is part of a CRLF.
fn crlf_only(body: &[u8]) -> bool {
    body.iter().enumerate().all(|(i, &b)| match b {
        b'\r' => body.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && body[i - 1] == b'\r',
        _ => true,
    })
}
