//! `xoauth-relay check` against the stand-ins: the checklist, its fixes, and its verdict.

use crate::common::*;
use xoauth_relay::testkit::TokenMode;

async fn checklist(w: &World, send_to: Option<&str>) -> (bool, String) {
    let mut out = Vec::new();
    let ok = xoauth_relay::check::run(&w.config, send_to, &mut out).await;
    (ok, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn all_good_and_a_test_message() {
    let w = World::start().await;
    let (ok, text) = checklist(&w, Some("admin@example.net")).await;
    assert!(ok, "{text}");
    assert!(
        text.contains("[ok]   token from https://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("valid for 59 min"), "{text}");
    assert!(
        text.contains("[ok]   token carries the SMTP.SendAsApp role"),
        "{text}"
    );
    assert!(
        text.contains("STARTTLS (TLSv1_3), AUTH XOAUTH2 accepted"),
        "{text}"
    );
    assert!(
        text.contains("[ok]   test message to admin@example.net accepted: 250"),
        "{text}"
    );
    assert!(text.ends_with("all checks passed\n"), "{text}");
    let m = &w.upstream.messages()[0];
    assert_eq!(m.rcpts, ["admin@example.net"]);
    assert!(String::from_utf8_lossy(&m.body).contains("Subject: xoauth-relay test message"));
    assert!(!text.contains(CLIENT_SECRET));
}

#[tokio::test]
async fn bad_secret_is_explained() {
    let w = World::start().await;
    w.tokens.set_mode(TokenMode::invalid_client_secret());
    let (ok, text) = checklist(&w, None).await;
    assert!(!ok);
    assert!(text.contains("[FAIL] token from"), "{text}");
    assert!(text.contains("AADSTS7000215"), "{text}");
    assert!(
        text.contains("Use the secret's Value, not its Secret ID"),
        "{text}"
    );
    assert!(text.ends_with("1 check(s) failed\n"), "{text}");
}

#[tokio::test]
async fn smtp_auth_disabled_lists_the_prerequisites() {
    let w = World::start().await;
    w.upstream.script(|s| {
        s.auth_reply = Some("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.".into())
    });
    let (ok, text) = checklist(&w, Some("admin@example.net")).await;
    assert!(!ok);
    assert!(
        text.contains("what: SMTP AUTH is disabled for this mailbox or tenant"),
        "{text}"
    );
    assert!(text.contains("Set-CASMailbox"), "{text}");
    assert!(
        text.contains("4. SMTP AUTH enabled for the mailbox"),
        "{text}"
    );
    assert!(
        !text.contains("test message"),
        "no test message after a failed AUTH: {text}"
    );
    assert!(w.upstream.messages().is_empty());
}

#[tokio::test]
async fn missing_role_is_a_warning_and_exchange_refusal_a_failure() {
    let w = World::start().await;
    w.tokens.set_roles(Vec::new());
    let (ok, text) = checklist(&w, None).await;
    assert!(
        text.contains("[warn] token roles [] do not include SMTP.SendAsApp"),
        "{text}"
    );
    assert!(
        !ok,
        "the stand-in, like Exchange, refuses a token without the role: {text}"
    );
    assert!(text.contains("Exchange refused the app's token"), "{text}");
}

#[tokio::test]
async fn unreachable_token_endpoint() {
    let mut w = World::start().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://{}/t/oauth2/v2.0/token",
        closed.local_addr().unwrap()
    );
    drop(closed);
    account_mut(&mut w.config).token_url = url;
    let (ok, text) = checklist(&w, None).await;
    assert!(!ok);
    assert!(
        text.contains("the Microsoft token endpoint cannot be reached"),
        "{text}"
    );
}
