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
async fn smtp_auth_disabled_is_named_without_the_prerequisites_list() {
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
    assert!(
        text.contains(&format!("Set-CASMailbox -Identity {MAILBOX}")),
        "{text}"
    );
    assert!(
        !text.contains("refused the token"),
        "the token was fine: {text}"
    );
    assert!(
        !text.contains("New-ServicePrincipal") && !text.contains("1. "),
        "check knows which prerequisite is missing; no list: {text}"
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

async fn checklist_with(w: &World, options: xoauth_relay::check::Options<'_>) -> (bool, String) {
    let mut out = Vec::new();
    let ok = xoauth_relay::check::run_with(&w.config, options, &mut out).await;
    (ok, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn service_unavailable_greeting_is_not_a_connection_limit() {
    let w = World::start().await;
    w.upstream
        .script(|s| s.greeting = Some("421 4.3.2 Service not available".into()));
    let (ok, text) = checklist(&w, None).await;
    assert!(!ok, "{text}");
    assert!(text.contains("421 4.3.2 Service not available"), "{text}");
    assert!(
        text.contains("what: the SMTP server refused service when the relay connected"),
        "{text}"
    );
    assert!(!text.contains("max_connections"), "{text}");
    assert!(!text.contains("more than 3 connections"), "{text}");
}

#[tokio::test]
async fn untrusted_token_endpoint_certificate_points_to_ca_file() {
    let mut w = World::start().await;
    account_mut(&mut w.config).extra_roots.clear();
    let (ok, text) = checklist(&w, None).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("the token endpoint's TLS certificate is not trusted"),
        "{text}"
    );
    assert!(
        text.contains("issued by CN=xoauth-relay test CA "),
        "the issuer is named: {text}"
    );
    assert!(text.contains("accounts.contoso.ca_file"), "{text}");
    assert!(!text.contains("cannot be reached"), "{text}");
    assert!(!text.contains("DNS"), "{text}");
}

#[tokio::test]
async fn untrusted_smtp_certificate_points_to_ca_file() {
    let mut w = World::start().await;
    let other = xoauth_relay::testkit::TestPki::new().unwrap();
    let proxy =
        xoauth_relay::testkit::FakeUpstream::start(&other, w.tokens.token_registry()).unwrap();
    account_mut(&mut w.config).smtp_port = proxy.port();
    let (ok, text) = checklist(&w, None).await;
    assert!(!ok, "{text}");
    assert!(text.contains("[ok]   token from"), "{text}");
    assert!(
        text.contains("what: the SMTP server's certificate could not be verified"),
        "{text}"
    );
    assert!(
        text.contains("issued by CN=xoauth-relay test CA "),
        "{text}"
    );
    assert!(text.contains("accounts.contoso.ca_file"), "{text}");
}

#[tokio::test]
async fn token_refused_lists_the_causes_once_with_the_accounts_values() {
    let w = World::start().await;
    w.upstream
        .script(|s| s.auth_reply = Some("535 5.7.3 Authentication unsuccessful [X]".into()));
    let (ok, text) = checklist(&w, Some("admin@example.net")).await;
    assert!(!ok, "{text}");
    assert!(text.contains("refused AUTH XOAUTH2: 535 5.7.3"), "{text}");
    assert!(
        text.contains("the token carries SMTP.SendAsApp, so consent is in place"),
        "{text}"
    );
    assert_eq!(text.matches("New-ServicePrincipal").count(), 1, "{text}");
    assert!(text.contains(&format!("-AppId {CLIENT_ID}")), "{text}");
    assert!(text.contains(&format!("-Identity {MAILBOX}")), "{text}");
    assert!(
        !text.contains("<mailbox>") && !text.contains("<client_id>"),
        "{text}"
    );
    assert!(w.upstream.messages().is_empty());
}

#[tokio::test]
async fn each_allowed_sender_is_tried_and_refusals_named() {
    use xoauth_relay::config::SenderRule;
    let mut w = World::start().await;
    w.config.users[0].allowed_senders = vec![
        SenderRule::Address(MAILBOX.into()),
        SenderRule::Address("billing@contoso.com".into()),
        SenderRule::Address("other@contoso.com".into()),
    ];
    w.upstream
        .script(|s| s.send_as = Some(vec!["billing@contoso.com".into()]));
    let (ok, text) = checklist(&w, Some("admin@example.net")).await;
    assert!(!ok, "{text}");
    assert!(text.contains("(sent as billing@contoso.com)"), "{text}");
    assert!(text.contains("as other@contoso.com refused"), "{text}");
    assert!(
        text.contains("what: the mailbox may not send as this sender (554 5.2.252 SendAsDenied)"),
        "{text}"
    );
    assert!(!text.contains("5.7.60"), "{text}");
    assert!(
        text.contains("Exchange refused 1 of 3 senders: other@contoso.com"),
        "{text}"
    );
    let senders: Vec<String> = w
        .upstream
        .messages()
        .into_iter()
        .map(|m| m.mail_from)
        .collect();
    assert_eq!(senders, [MAILBOX, "billing@contoso.com"]);

    let options = xoauth_relay::check::Options {
        send_to: Some("admin@example.net"),
        from: Some("billing@contoso.com"),
    };
    let (ok, text) = checklist_with(&w, options).await;
    assert!(ok, "{text}");
    assert_eq!(
        w.upstream.messages().len(),
        3,
        "one more message, from billing: {text}"
    );
}

#[tokio::test]
async fn empty_or_malformed_send_to_is_refused_locally() {
    let w = World::start().await;
    for bad in ["", "  ", "not an address", "a@b@c", "<x@example.net>"] {
        let (ok, text) = checklist(&w, Some(bad)).await;
        assert!(!ok, "{bad:?}: {text}");
        assert!(text.contains("is not an e-mail address"), "{bad:?}: {text}");
        assert!(!text.contains("test message to"), "{bad:?}: {text}");
    }
    assert!(w.upstream.messages().is_empty());
}

#[tokio::test]
async fn client_secret_expiry_is_reported() {
    use xoauth_relay::dates::Day;
    let mut w = World::start().await;
    account_mut(&mut w.config).client_secret_expires = Some(Day(Day::today().0 - 3));
    let (_, text) = checklist(&w, None).await;
    assert!(
        text.contains("[warn] the client secret of account contoso expired on"),
        "{text}"
    );
    account_mut(&mut w.config).client_secret_expires = Some(Day(Day::today().0 + 5));
    let (_, text) = checklist(&w, None).await;
    assert!(text.contains("in 5 days"), "{text}");
}

#[tokio::test]
async fn one_transient_token_failure_is_retried() {
    // No relay: its own token request could take the one failure before `check` does.
    let w = World::stand_ins(|_| {});
    w.tokens.set_mode_for(1, TokenMode::ServerError);
    let (ok, text) = checklist(&w, None).await;
    assert!(ok, "{text}");
    assert!(text.contains("attempt 1 failed"), "{text}");
    assert!(text.contains("failed on its side (HTTP 500)"), "{text}");
    assert!(text.contains("[ok]   token from"), "{text}");
}

#[tokio::test]
async fn a_persistent_token_endpoint_failure_is_microsofts_side() {
    let w = World::stand_ins(|_| {});
    w.tokens.set_mode(TokenMode::ServerError);
    let (ok, text) = checklist(&w, None).await;
    assert!(!ok, "{text}");
    assert!(text.contains("still failing after 3 attempts"), "{text}");
    assert!(text.contains("Microsoft's side"), "{text}");
    assert!(!text.contains("refused"), "{text}");
    assert_eq!(w.tokens.calls(), 3, "{text}");
}

#[tokio::test]
async fn a_hanging_token_endpoint_is_announced_before_the_wait() {
    let mut w = World::start().await;
    w.config.timeouts.token_total = std::time::Duration::from_millis(300);
    w.tokens.set_mode(TokenMode::Hang);
    let (ok, text) = checklist(&w, None).await;
    assert!(!ok, "{text}");
    let announced = text
        .find("[..]   requesting a token from https://127.0.0.1:")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(text.contains("/token (up to 0.3 s)…"), "{text}");
    let failed = text
        .find("[FAIL] token from")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(announced < failed, "{text}");
}

#[tokio::test]
async fn a_certificate_credential_is_checked_and_explained() {
    use xoauth_relay::testkit::client_cert::{
        self, APP_CERT_PEM, APP_KEY_PEM, OTHER_CERT_PEM, OTHER_KEY_PEM,
    };
    let mut w = World::start().await;
    w.tokens
        .set_certificate(client_cert::der(APP_CERT_PEM).as_ref());
    let account = account_mut(&mut w.config);
    account.client_secret = Default::default();
    account.client_certificate = Some(client_cert::credential(OTHER_CERT_PEM, OTHER_KEY_PEM));
    let (ok, text) = checklist(&w, None).await;
    assert!(!ok, "{text}");
    assert!(text.contains("AADSTS700027"), "{text}");
    assert!(
        text.contains("Certificates & secrets > Certificates")
            && text.contains("accounts.contoso.client_certificate"),
        "{text}"
    );
    let mut certificate = client_cert::credential(APP_CERT_PEM, APP_KEY_PEM);
    // The fixture lasts ten years; the warning is about the date read from the certificate.
    let not_after = xoauth_relay::dates::Day(xoauth_relay::dates::Day::today().0 + 5);
    certificate.not_after = Some(not_after);
    account_mut(&mut w.config).client_certificate = Some(certificate);
    let (ok, text) = checklist(&w, None).await;
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "[warn] the client certificate (fixture.pem) of account contoso expires on {not_after}, in 5 days"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn check_names_the_delivery_mode_and_what_waits_in_the_spool() {
    let dir = crate::common::binary::Scratch::new("check-spool");
    let mut w = World::start().await;
    let (_, text) = checklist(&w, None).await;
    assert!(text.contains("[ok]   delivery: sync"), "{text}");
    w.config.state_dir = Some(dir.0.clone());
    w.config.delivery.mode = xoauth_relay::config::DeliveryMode::Hybrid;
    std::fs::create_dir_all(dir.0.join("spool/failed")).unwrap();
    std::fs::write(dir.0.join("spool/failed/0190A1B2C3D40000.meta"), "{}").unwrap();
    let (ok, text) = checklist(&w, None).await;
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "delivery: hybrid; spool {}: 0 queued (0 held)",
            dir.0.join("spool").display()
        )),
        "{text}"
    );
    std::fs::write(dir.0.join("not-a-dir"), "").unwrap();
    w.config.state_dir = Some(dir.0.join("not-a-dir"));
    let (ok, text) = checklist(&w, None).await;
    assert!(!ok, "{text}");
    assert!(text.contains("is not writable for this user"), "{text}");
}
