//! Tokens as the relay uses them: one request for many sessions, refresh before expiry,
//! recovery from a revoked token, and each way the token endpoint can fail.

use std::time::Duration;

use crate::common::*;
use xoauth_relay::testkit::TokenMode;

#[tokio::test]
async fn many_sessions_at_once_cause_one_token_request() {
    let w = World::start().await;
    assert_eq!(w.send_concurrently(20).await, vec![250; 20]);
    assert_eq!(w.tokens.calls(), 1, "single flight");
    let req = w.tokens.last_request().unwrap();
    assert_eq!(req.client_id, CLIENT_ID);
    assert_eq!(req.grant_type, "client_credentials");
    assert_eq!(req.scope, "https://outlook.office365.com/.default");
    assert_eq!(req.tenant, TENANT);
    assert_eq!(
        req.client_secret.as_ref().map(|s| s.expose().as_str()),
        Some(CLIENT_SECRET)
    );
}

#[tokio::test(start_paused = true)]
async fn token_is_refreshed_five_minutes_before_expiry() {
    let w = World::start().await;
    w.tokens.set_expires_in(3600);
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "1"))
        .await
        .expect_code(250);
    assert_eq!(w.tokens.calls(), 1);
    tokio::time::advance(Duration::from_secs(3600 - 301)).await;
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "2"))
        .await
        .expect_code(250);
    assert_eq!(w.tokens.calls(), 1, "still fresh enough");
    tokio::time::advance(Duration::from_secs(2)).await;
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "3"))
        .await
        .expect_code(250);
    assert_eq!(w.tokens.calls(), 2, "refreshed inside the 5-minute margin");
    let m = w.upstream.messages();
    assert_eq!(m[0].token, m[1].token);
    assert_ne!(m[1].token, m[2].token);
}

#[tokio::test]
async fn revoked_token_is_replaced_once_and_the_message_goes_through() {
    let w = World::start().await;
    w.probed(1).await;
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "1"))
        .await
        .expect_code(250);
    let first = w.tokens.issued()[0].clone();
    w.tokens.token_registry().revoke(&first);
    // Exchange ends the idle session message 1 left, so message 2 logs in anew.
    w.upstream.close_all_connections();
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "2"))
        .await
        .expect_code(250);
    assert_eq!(w.tokens.calls(), 2, "exactly one refetch");
    assert_eq!(
        w.upstream.auth_attempts(),
        4,
        "the start-up probe, first AUTH, refused AUTH, one retry"
    );
    assert_ne!(w.upstream.messages()[1].token, first);
}

#[tokio::test]
async fn a_fresh_token_refused_is_not_retried() {
    // The token endpoint is down at start, so the cache is empty when the message comes and
    // the message's token is fetched for it.
    let mut w = World::stand_ins(|_| {});
    w.tokens.set_mode(TokenMode::ServerError);
    w.upstream
        .script(|s| s.auth_reply = Some("535 5.7.3 Authentication unsuccessful [X]".into()));
    w.restart().await;
    w.tokens.wait_for_calls(1).await;
    w.tokens.set_mode(TokenMode::Ok);
    let mut c = w.logged_in().await;
    let r = c
        .send_mail(MAILBOX, &["a@example.net"], &message("a", "1"))
        .await;
    r.expect_start("451 4.3.5 Relay misconfigured: Exchange refused the app's token");
    assert_eq!(
        w.tokens.calls(),
        2,
        "failed start-up fetch, then the message's own"
    );
    // The new token wakes the prober (the account had none); its AUTH is the second.
    w.probed(1).await;
    assert_eq!(
        w.upstream.auth_attempts(),
        2,
        "a token fetched for this message is not retried"
    );
}

#[tokio::test]
async fn cached_token_refused_twice_gives_up_after_one_retry() {
    let w = World::start().await;
    w.probed(1).await;
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "1"))
        .await
        .expect_code(250);
    assert_eq!(w.tokens.calls(), 1);
    w.upstream
        .script(|s| s.auth_reply = Some("535 5.7.3 Authentication unsuccessful [X]".into()));
    // Exchange ends the idle session message 1 left, so message 2 logs in anew.
    w.upstream.close_all_connections();
    let r = c
        .send_mail(MAILBOX, &["a@example.net"], &message("a", "2"))
        .await;
    r.expect_code(451);
    assert_eq!(w.tokens.calls(), 2);
    assert_eq!(
        w.upstream.auth_attempts(),
        4,
        "probe, message 1, message 2 twice"
    );
}

#[tokio::test]
async fn token_endpoint_failures_become_temporary_replies() {
    let cases: Vec<(TokenMode, &str)> = vec![
        (
            TokenMode::invalid_client_secret(),
            "451 4.3.5 Relay misconfigured: Microsoft rejected the client secret (AADSTS7000215)",
        ),
        (
            TokenMode::expired_client_secret(),
            "451 4.3.5 Relay misconfigured: the client secret has expired (AADSTS7000222)",
        ),
        (
            TokenMode::application_not_found(),
            "451 4.3.5 Relay misconfigured: the application was not found in the tenant (AADSTS700016)",
        ),
        (
            TokenMode::tenant_not_found(),
            "451 4.3.5 Relay misconfigured: the tenant was not found (AADSTS90002)",
        ),
        (
            TokenMode::invalid_scope(),
            "451 4.3.5 Relay misconfigured: the token scope is not valid (AADSTS70011)",
        ),
        (
            TokenMode::resource_principal_not_found(),
            "451 4.3.5 Relay misconfigured: Exchange Online was not found in the tenant (AADSTS500011)",
        ),
        (
            TokenMode::ServerError,
            "451 4.7.0 upstream authorization temporarily unavailable; try again later",
        ),
        (
            TokenMode::Garbage,
            "451 4.7.0 upstream authorization temporarily unavailable",
        ),
    ];
    for (mode, want) in cases {
        let mut w = World::stand_ins(|_| {});
        w.tokens.set_mode(mode.clone());
        w.restart().await;
        let mut c = w.logged_in().await;
        let r = c
            .send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
            .await;
        r.expect_start(want);
        assert!(w.upstream.messages().is_empty());
        assert_eq!(
            w.upstream.connections(),
            0,
            "no upstream connection without a token"
        );
    }
}

#[tokio::test]
async fn wrong_secret_in_the_config_is_reported_like_microsoft_does() {
    let w = World::start_with(|c| {
        let account = account_mut(c);
        account.client_secret =
            xoauth_relay::secret::Secret::new("the-secret-id-not-the-value".into());
    })
    .await;
    let mut c = w.logged_in().await;
    let r = c
        .send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
        .await;
    r.expect_start(
        "451 4.3.5 Relay misconfigured: Microsoft rejected the client secret (AADSTS7000215)",
    );
}

#[tokio::test(start_paused = true)]
async fn hanging_token_endpoint_times_out_with_a_temporary_reply() {
    let mut w = World::stand_ins(|c| c.timeouts.token_total = Duration::from_secs(30));
    w.tokens.set_mode(TokenMode::Hang);
    w.restart().await;
    let mut c = w.logged_in().await;
    let started = tokio::time::Instant::now();
    let r = c
        .send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
        .await;
    r.expect_start("451 4.7.0 upstream authorization temporarily unavailable");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "{waited:?}"
    );
    // The endpoint recovers; the next message fetches a token and goes through.
    w.tokens.set_mode(TokenMode::Ok);
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
        .await
        .expect_code(250);
}

#[tokio::test]
async fn smtp_auth_disabled_is_not_retried_with_a_new_token() {
    let w = World::start().await;
    w.probed(1).await;
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "1"))
        .await
        .expect_code(250);
    w.upstream.script(|s| {
        s.auth_reply = Some(
            "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.".into(),
        )
    });
    // Exchange ends the idle session message 1 left, so message 2 logs in anew.
    w.upstream.close_all_connections();
    let r = c
        .send_mail(MAILBOX, &["a@example.net"], &message("a", "2"))
        .await;
    r.expect_start("451 4.3.5 Relay misconfigured: SMTP AUTH is disabled");
    assert_eq!(
        w.tokens.calls(),
        1,
        "no token request: a new token cannot help"
    );
    assert_eq!(
        w.upstream.auth_attempts(),
        3,
        "the start-up probe and one AUTH each"
    );
}

mod certificate_credential {
    use crate::common::*;
    use xoauth_relay::testkit::client_cert::{
        self, APP_CERT_PEM, APP_KEY_PEM, OTHER_CERT_PEM, OTHER_KEY_PEM,
    };

    /// A relay whose account signs in with `cert`, against an app that has `APP_CERT_PEM`.
    async fn world(cert: &str, key: &str) -> World {
        let mut w = World::stand_ins(|c| {
            let account = account_mut(c);
            account.client_secret = Default::default();
            account.client_certificate = Some(client_cert::credential(cert, key));
        });
        w.tokens
            .set_certificate(client_cert::der(APP_CERT_PEM).as_ref());
        w.restart().await;
        w
    }

    #[tokio::test]
    async fn a_relay_with_a_certificate_sends_a_client_assertion_and_delivers() {
        let w = world(APP_CERT_PEM, APP_KEY_PEM).await;
        let mut c = w.logged_in().await;
        c.send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
            .await
            .expect_code(250);
        let req = w.tokens.last_request().expect("a token request");
        assert_eq!(req.client_id, CLIENT_ID);
        assert_eq!(
            req.client_assertion_type,
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        assert!(
            req.client_assertion.is_some() && req.client_secret.is_none(),
            "{req:?}"
        );
        let m = w.upstream.messages();
        assert_eq!(
            (m.len(), m[0].token.as_str()),
            (1, w.tokens.issued()[0].as_str())
        );
    }

    #[tokio::test]
    async fn a_certificate_the_app_does_not_know_is_explained() {
        let w = world(OTHER_CERT_PEM, OTHER_KEY_PEM).await;
        let mut c = w.logged_in().await;
        let r = c
            .send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
            .await;
        r.expect_start(
            "451 4.3.5 Relay misconfigured: Microsoft did not accept the client certificate \
             (AADSTS700027)",
        );
        assert!(w.upstream.messages().is_empty());
    }
}
