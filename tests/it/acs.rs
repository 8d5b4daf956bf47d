//! Azure Communication Services accounts: AUTH LOGIN with the SMTP Username and the client
//! secret through the same session pool, no token request, and the explanation of a refusal.

use xoauth_relay::config::Provider;

use crate::common::*;

const ACS_USER: &str = "relay-smtp-user";

/// The test account turned into an ACS one; the fake upstream knows its login.
fn acs_world(password: &'static str) -> World {
    let w = World::stand_ins(|config| {
        with_health(config);
        let a = account_mut(config);
        a.provider = Provider::Acs;
        a.smtp_username = Some(ACS_USER.into());
    });
    w.upstream
        .script(move |s| s.login = Some((ACS_USER.into(), password.into())));
    w
}

async fn send(w: &World, subject: &str) -> Reply {
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", subject))
        .await
}

#[tokio::test]
async fn acs_delivers_with_auth_login_and_no_token() {
    let mut w = acs_world(CLIENT_SECRET);
    w.restart().await;
    w.probed(1).await;
    send(&w, "one").await.expect_code(250);
    send(&w, "two").await.expect_code(250);
    let got = w.upstream.messages();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].xoauth2_user, ACS_USER);
    assert_eq!(w.tokens.calls(), 0, "an ACS account asks for no token");
    // One session, one login, carried both messages (the probe's own session is closed).
    let sessions: Vec<Vec<String>> = w
        .upstream
        .transcripts()
        .into_iter()
        .filter(|t| t.iter().any(|v| v == "MAIL"))
        .collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let count = |verb: &str| sessions[0].iter().filter(|v| *v == verb).count();
    assert_eq!((count("AUTH"), count("MAIL")), (1, 2), "{sessions:?}");
    assert_eq!(
        w.upstream.auth_attempts(),
        2,
        "the probe's login and the messages'"
    );
    let (code, body) = http_json(w.health(), "/readyz").await;
    assert_eq!(code, 200, "{body}");
    let (_, status) = http_json(w.health(), "/status").await;
    let account = &status["accounts"]["contoso"];
    assert!(account["token"].is_null(), "{account}");
    assert_eq!(account["can_send"]["state"], "yes", "{account}");
    let (_, metrics) = http_get(w.health(), "/metrics").await;
    assert!(
        metrics.contains("xoauth_relay_token_expiry_seconds{account=\"contoso\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_wrong_acs_secret_is_explained() {
    let (logs, _guard) = LogCapture::this_thread();
    let mut w = acs_world("another-secret");
    w.restart().await;
    w.probed(1).await;
    let reply = send(&w, "x").await;
    reply.expect_code(451);
    assert!(
        reply
            .text
            .contains("Azure Communication Services refused the SMTP username or secret"),
        "{}",
        reply.text
    );
    assert_eq!(w.tokens.calls(), 0);
    // The probe's login and the message's: a password is not retried as a stale token is.
    assert_eq!(w.upstream.auth_attempts(), 2);
    let log = logs.text();
    assert!(log.contains("SMTP Usernames"), "{log}");
    assert!(!log.contains(CLIENT_SECRET), "{log}");
    assert!(!log.contains("another-secret"), "{log}");
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode("another-secret");
    assert!(!log.contains(&encoded), "{log}");
}

async fn checklist(w: &World) -> (bool, String) {
    let mut out = Vec::new();
    let ok = xoauth_relay::check::run(&w.config, None, &mut out).await;
    (ok, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn check_signs_in_to_acs_without_a_token() {
    let w = acs_world(CLIENT_SECRET);
    let (ok, text) = checklist(&w).await;
    assert!(ok, "{text}");
    assert!(!text.contains("token"), "{text}");
    assert!(
        text.contains("STARTTLS (TLSv1_3), AUTH LOGIN accepted"),
        "{text}"
    );
    assert_eq!(w.tokens.calls(), 0);
}

#[tokio::test]
async fn check_explains_a_refused_acs_login() {
    let w = acs_world("another-secret");
    let (ok, text) = checklist(&w).await;
    assert!(!ok);
    assert!(
        text.contains("the upstream refused AUTH LOGIN: 535 5.7.3"),
        "{text}"
    );
    assert!(text.contains("SMTP Usernames"), "{text}");
    assert!(
        text.contains("Communication and Email Service Owner"),
        "{text}"
    );
    assert!(!text.contains(CLIENT_SECRET), "{text}");
    assert_eq!(w.tokens.calls(), 0);
}

#[tokio::test]
async fn a_sender_acs_refuses_is_explained_as_its_domain_not_being_linked() {
    let (logs, _guard) = LogCapture::this_thread();
    let mut w = acs_world(CLIENT_SECRET);
    w.upstream.script(|s| {
        s.mail_reply = Some("550 5.7.1 Sender domain not verified for this resource".into())
    });
    w.restart().await;
    send(&w, "refused").await.expect_code(550);
    let log = logs.text();
    assert!(
        log.contains("Azure Communication Services refused the sender address"),
        "{log}"
    );
    assert!(log.contains("Provision domains"), "{log}");
}

#[tokio::test]
async fn the_same_refusal_on_a_microsoft365_account_is_not_blamed_on_acs() {
    let (logs, _guard) = LogCapture::this_thread();
    let mut w = World::stand_ins(|_| {});
    w.upstream
        .script(|s| s.mail_reply = Some("550 5.7.1 Sender refused".into()));
    w.restart().await;
    send(&w, "refused").await.expect_code(550);
    assert!(!logs.text().contains("Azure Communication Services"));
}
