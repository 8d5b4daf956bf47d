//! What the log says, checked with the process-wide subscriber capturing every line at TRACE
//! level, whatever `RUST_LOG` says: known failures are explained once, and no secret, token,
//! AUTH payload or message content appears anywhere in it, on the success path or on any
//! failure path. One test only in this binary, so no other test's lines mix in.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use xoauth_relay::testkit::{Phase, Script, TokenMode};
use xoauth_relay::upstream::xoauth2;

/// In every subject and body; nothing of a message's content belongs in the log.
const MARKER: &str = "zq-MARKER-8f1c2e7d";
const WRONG_PLAIN: &str = "wrong-plain-pw-5e2b";
const WRONG_LOGIN: &str = "wrong-login-pw-91ad";

/// A leaked piece of a token this long is caught: every window of this many characters is
/// searched for, at half-window steps.
const WINDOW: usize = 40;

#[tokio::test]
async fn log_explains_failures_and_never_leaks_secrets() {
    let log = LogCapture::start();
    forward_log_crate_records();
    let mut secrets = Secrets::default();
    secrets.add("client secret", CLIENT_SECRET);
    for password in [PASSWORD, WRONG_PLAIN, WRONG_LOGIN] {
        secrets.add("local password", password);
    }
    secrets.add("message marker", MARKER);

    known_failures_are_explained_once(&log, &mut secrets).await;
    greeting_refusal_is_not_a_connection_limit(&log, &mut secrets).await;
    success_paths(&mut secrets).await;
    local_auth_failures(&mut secrets).await;
    client_text_cannot_forge_log_lines(&log, &mut secrets).await;
    token_endpoint_failures(&mut secrets).await;
    upstream_failures(&mut secrets).await;
    refused_cached_token_is_replaced(&mut secrets).await;
    token_recovery_is_logged(&log, &mut secrets).await;

    let text = log.text();
    log_is_not_trivial(&text);
    secrets.assert_absent(&text);
}

/// The explanation of a known failure is logged once, then referred to, and given again once
/// the problem returns after a success.
async fn known_failures_are_explained_once(log: &LogCapture, secrets: &mut Secrets) {
    let w = World::start().await;
    w.upstream.script(|s| {
        s.auth_reply = Some("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.".into())
    });
    one_message(&w, secrets).await.expect_code(451);
    one_message(&w, secrets).await.expect_code(451);
    let text = log.text();
    // The fix names the account's own mailbox, not a placeholder.
    let fix =
        format!("Set-CASMailbox -Identity {MAILBOX} -SmtpClientAuthenticationDisabled $false");
    assert_eq!(text.matches(&fix).count(), 1, "{text}");
    assert!(!text.contains("<mailbox>"), "{text}");
    assert_eq!(text.matches("message not delivered").count(), 2, "{text}");
    assert!(text.contains("same problem as explained earlier"), "{text}");
    assert!(text.contains("xenocept"), "{text}");
    w.upstream.script(|s| s.auth_reply = None);
    one_message(&w, secrets).await.expect_code(250);
    assert!(log.text().contains("message delivered"));
    secrets.add_tokens(&w);
}

/// `421 4.3.2` at the greeting is Exchange being unavailable, not the 3-connection limit
/// (`432 4.3.2` after AUTH): the log must not advise lowering max_connections.
async fn greeting_refusal_is_not_a_connection_limit(log: &LogCapture, secrets: &mut Secrets) {
    let w = World::start().await;
    w.upstream
        .script(|s| s.greeting = Some("421 4.3.2 Service not available".into()));
    let before = log.text().len();
    one_message(&w, secrets).await.expect_start("451 4.3.2");
    let text = log.text()[before..].to_string();
    assert!(
        text.contains("the SMTP server refused service when the relay connected"),
        "{text}"
    );
    assert!(!text.contains("max_connections"), "{text}");
    assert!(!text.contains("more than 3 connections"), "{text}");
    secrets.add_tokens(&w);
}

/// A message through AUTH PLAIN and one through AUTH LOGIN.
async fn success_paths(secrets: &mut Secrets) {
    let w = World::start().await;
    one_message(&w, secrets).await.expect_code(250);
    let mut c = w.client().await;
    c.ehlo().await;
    login(&mut c, USER, PASSWORD, secrets)
        .await
        .expect_code(235);
    send_marked(&mut c).await.expect_code(250);
    assert_eq!(w.upstream.messages().len(), 2);
    secrets.add_tokens(&w);
}

/// Wrong local passwords (PLAIN, LOGIN) and cancelled exchanges (PLAIN, LOGIN).
async fn local_auth_failures(secrets: &mut Secrets) {
    let w = World::start().await;
    let mut c = w.client().await;
    c.ehlo().await;
    plain(&mut c, USER, WRONG_PLAIN, secrets)
        .await
        .expect_code(535);
    login(&mut c, USER, WRONG_LOGIN, secrets)
        .await
        .expect_code(535);
    c.cmd("AUTH PLAIN").await.expect_code(334);
    c.cmd("*").await.expect_code(501);
    c.cmd("AUTH LOGIN").await.expect_code(334);
    c.cmd(&secrets.base64("AUTH LOGIN user", USER))
        .await
        .expect_code(334);
    c.cmd("*").await.expect_code(501);
    plain(&mut c, USER, PASSWORD, secrets)
        .await
        .expect_code(235);
    secrets.add_tokens(&w);
}

/// A user name with a line break and terminal escapes is logged escaped: no forged line, no
/// raw control byte anywhere in the log.
async fn client_text_cannot_forge_log_lines(log: &LogCapture, secrets: &mut Secrets) {
    let w = World::start().await;
    let forged = "x\n2026-12-01T00:00:00.000000Z  INFO FORGED-LINE user=admin\x1b[2K\r";
    let mut c = w.client().await;
    c.ehlo().await;
    plain(&mut c, forged, WRONG_PLAIN, secrets)
        .await
        .expect_code(535);
    login(&mut c, forged, WRONG_LOGIN, secrets)
        .await
        .expect_code(535);
    let text = log.text();
    assert!(text.contains("FORGED-LINE"), "the attempt is logged");
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with("2026-12-01T00:00:00.000000Z"),
            "forged: {line}"
        );
    }
    let raw = text
        .bytes()
        .filter(|b| b.is_ascii_control() && *b != b'\n')
        .count();
    assert_eq!(raw, 0, "raw control bytes in the log");
}

/// The token endpoint refuses the secret, fails, or answers garbage; the relay fetches at
/// start and again for the message.
async fn token_endpoint_failures(secrets: &mut Secrets) {
    let modes = [
        TokenMode::invalid_client_secret(),
        TokenMode::ServerError,
        TokenMode::Garbage,
    ];
    for mode in modes {
        let mut w = World::stand_ins(|_| {});
        w.tokens.set_mode(mode.clone());
        w.restart().await;
        one_message(&w, secrets).await.expect_code(451);
        assert!(w.tokens.calls() >= 1, "{mode:?}");
        secrets.add_tokens(&w);
    }
}

/// A token request that succeeds after failures says so, with the account.
async fn token_recovery_is_logged(log: &LogCapture, secrets: &mut Secrets) {
    let mut w = World::stand_ins(|_| {});
    w.tokens.set_mode(TokenMode::ServerError);
    w.restart().await;
    w.tokens.wait_for_calls(1).await;
    w.tokens.set_mode(TokenMode::Ok);
    one_message(&w, secrets).await.expect_code(250);
    secrets.add_tokens(&w);
    let text = log.text();
    let line = text
        .lines()
        .find(|l| l.contains("token request succeeded again after failing"))
        .unwrap_or_else(|| panic!("no recovery line in\n{text}"));
    assert!(line.contains("account=contoso"), "{line}");
}

type ScriptChange = fn(&mut Script);

/// Every way Exchange (the fake) refuses or fails, each with a fresh relay.
async fn upstream_failures(secrets: &mut Secrets) {
    let cases: [(ScriptChange, &str); 10] = [
        (
            |s| {
                s.auth_reply = Some("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.".into())
            },
            "451 4.3.5",
        ),
        (
            |s| s.auth_reply = Some("535 5.7.3 Authentication unsuccessful [SN2PR00CA0018]".into()),
            "451 4.3.5",
        ),
        (
            |s| s.auth_reply = Some("432 4.3.2 Concurrent connections limit exceeded.".into()),
            "451 4.3.2",
        ),
        (
            |s| {
                s.mail_reply = Some(
                    "550 5.7.60 SMTP; Client does not have permissions to send as this sender"
                        .into(),
                )
            },
            "550 5.7.60",
        ),
        (
            |s| s.rcpt_reply = Some("550 5.1.1 User unknown".into()),
            "550 5.1.1",
        ),
        (
            |s| {
                s.final_reply =
                    Some("552 5.3.4 Message size exceeds fixed maximum message size".into())
            },
            "552 5.3.4",
        ),
        (|s| s.drop_at = Some(Phase::Auth), "451 "),
        (|s| s.drop_at = Some(Phase::DataEnd), "451 "),
        (|s| s.offer_starttls = false, "451 4.3.5"),
        (
            |s| {
                s.auth_json_challenge = Some(r#"{"status":"401","schemes":"bearer","scope":"https://outlook.office365.com/"}"#.into())
            },
            "451 4.3.5",
        ),
    ];
    for (change, want) in cases {
        let w = World::start().await;
        w.upstream.script(change);
        one_message(&w, secrets).await.expect_start(want);
        secrets.add_tokens(&w);
    }
}

/// A revoked cached token: refused at AUTH, replaced, and the message goes through.
async fn refused_cached_token_is_replaced(secrets: &mut Secrets) {
    let w = World::start().await;
    one_message(&w, secrets).await.expect_code(250);
    let first = w.tokens.issued()[0].clone();
    w.tokens.token_registry().revoke(&first);
    // Exchange ends the idle session the first message left, so the second logs in anew.
    w.upstream.close_all_connections();
    one_message(&w, secrets).await.expect_code(250);
    assert_eq!(w.tokens.calls(), 2, "one refetch");
    secrets.add_tokens(&w);
}

/// The log must show the relay working and explaining, so an empty log cannot pass.
fn log_is_not_trivial(text: &str) {
    for expected in [
        "message delivered",
        "message not delivered",
        "authentication failed",
        "what went wrong and how to fix it",
        "Set-CASMailbox",                           // 535 5.7.139
        "New-ServicePrincipal",                     // 535 5.7.3
        "Add-RecipientPermission",                  // 5.7.60
        "max_connections",                          // 432 4.3.2
        "Use the secret's Value",                   // invalid_client
        "did not offer STARTTLS",                   // no STARTTLS
        "challenge: {",                             // the 334 JSON challenge
        "cached token refused; fetching a new one", // recovered by refetch
    ] {
        assert!(text.contains(expected), "{expected:?} missing from the log");
    }
}

/// Logs in with AUTH PLAIN (initial response), remembering the payload.
async fn plain(c: &mut Client, user: &str, password: &str, secrets: &mut Secrets) -> Reply {
    let payload = secrets.base64("AUTH PLAIN payload", &format!("\0{user}\0{password}"));
    c.cmd(&format!("AUTH PLAIN {payload}")).await
}

/// Logs in with AUTH LOGIN (both fields as continuations), remembering the payloads.
async fn login(c: &mut Client, user: &str, password: &str, secrets: &mut Secrets) -> Reply {
    c.cmd("AUTH LOGIN").await.expect_code(334);
    c.cmd(&secrets.base64("AUTH LOGIN user", user))
        .await
        .expect_code(334);
    c.cmd(&secrets.base64("AUTH LOGIN password", password))
        .await
}

/// One marked message after EHLO and AUTH PLAIN; the reply to the final dot.
async fn one_message(w: &World, secrets: &mut Secrets) -> Reply {
    let mut c = w.client().await;
    c.ehlo().await;
    plain(&mut c, USER, PASSWORD, secrets)
        .await
        .expect_code(235);
    send_marked(&mut c).await
}

async fn send_marked(c: &mut Client) -> Reply {
    let body = format!(
        "From: <{MAILBOX}>\r\nTo: <a@example.net>\r\nSubject: {MARKER} subject\r\n\r\n\
         body {MARKER}\r\n.{MARKER} after a leading dot\r\n"
    );
    c.send_mail(MAILBOX, &["a@example.net"], body.as_bytes())
        .await
}

/// Everything that must never reach the log, gathered while the scenarios run.
#[derive(Default)]
struct Secrets {
    items: Vec<(&'static str, String)>,
}

impl Secrets {
    fn add(&mut self, what: &'static str, value: &str) {
        self.items.push((what, value.to_string()));
    }

    /// Remembers the base64 of `raw` and returns it, for sending.
    fn base64(&mut self, what: &'static str, raw: &str) -> String {
        let encoded = STANDARD.encode(raw);
        self.add(what, &encoded);
        encoded
    }

    /// Every token the world's endpoint issued, and the XOAUTH2 blob the relay made of it.
    fn add_tokens(&mut self, w: &World) {
        for token in w.tokens.issued() {
            self.add("access token", &token);
            let blob = xoauth2::client_response(MAILBOX, &token);
            self.add("XOAUTH2 blob", blob.expose());
        }
    }

    fn assert_absent(&self, log: &str) {
        assert!(
            self.items.iter().any(|(what, _)| *what == "access token"),
            "no token was issued, so the token checks prove nothing"
        );
        for (what, value) in &self.items {
            for piece in windows(value) {
                assert!(
                    !log.contains(piece),
                    "{what} leaked into the log: {piece:?}"
                );
            }
        }
    }
}

/// The whole value, and for long values every `WINDOW`-character piece at half-window steps,
/// so a prefix, a suffix or any slice of 1.5 windows or more is caught too.
fn windows(value: &str) -> Vec<&str> {
    let mut pieces = vec![value];
    if value.len() > WINDOW && value.is_ascii() {
        let starts = (0..=value.len() - WINDOW).step_by(WINDOW / 2);
        pieces.extend(starts.map(|i| &value[i..i + WINDOW]));
        pieces.push(&value[value.len() - WINDOW..]);
    }
    pieces
}

/// rustls and reqwest log through the `log` crate, not `tracing`; the relay installs no bridge,
/// so their records go nowhere. Forward them into the capture anyway, at every level, so the
/// proof also holds for a build that bridges them.
fn forward_log_crate_records() {
    struct Forward;
    impl log::Log for Forward {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            tracing::trace!(
                log.target = record.target(),
                log.level = %record.level(),
                "{}",
                record.args()
            );
        }
        fn flush(&self) {}
    }
    static FORWARD: Forward = Forward;
    log::set_logger(&FORWARD).expect("only one log forwarder");
    log::set_max_level(log::LevelFilter::Trace);
}
