//! Every way the upstream can fail, what the client is told, and what the log explains.

use std::time::Duration;

use crate::common::*;
use xoauth_relay::testkit::{Phase, TestPki};

/// A change to the fake upstream's behaviour.
type ScriptChange = fn(&mut xoauth_relay::testkit::Script);

async fn one_message(w: &World) -> Reply {
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
        .await
}

#[tokio::test]
async fn exchange_refusals_map_to_clear_replies() {
    let cases: Vec<(ScriptChange, &str)> = vec![
        (
            |s| {
                s.auth_reply = Some("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.".into())
            },
            "451 4.3.5 Relay misconfigured: SMTP AUTH is disabled for this mailbox or tenant",
        ),
        (
            |s| {
                s.auth_reply = Some("535 5.7.3 Authentication unsuccessful [SN2PR00CA0018.namprd00.prod.outlook.com]".into())
            },
            "451 4.3.5 Relay misconfigured: Exchange refused the app's token",
        ),
        (
            |s| {
                s.auth_reply = Some("432 4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more information.".into())
            },
            "451 4.3.2 upstream: 432 4.3.2 Concurrent connections limit exceeded",
        ),
        (
            |s| {
                s.mail_reply = Some(
                    "550 5.7.60 SMTP; Client does not have permissions to send as this sender"
                        .into(),
                )
            },
            "550 5.7.60 refused upstream at MAIL FROM: 550 5.7.60 SMTP; Client does not have permissions",
        ),
        (
            |s| {
                s.final_reply = Some("554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message".into())
            },
            "451 4.2.0 sending quota of the mailbox exceeded",
        ),
        (
            |s| {
                s.final_reply =
                    Some("552 5.3.4 Message size exceeds fixed maximum message size".into())
            },
            "552 5.3.4 refused upstream at end of data",
        ),
        (
            |s| s.data_reply = Some("554 5.6.0 Corrupt message content".into()),
            "554 5.6.0 refused upstream at DATA",
        ),
        (
            |s| {
                s.auth_json_challenge = Some(
                    r#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#
                        .into(),
                )
            },
            "451 4.3.5 Relay misconfigured",
        ),
        (
            |s| s.advertise_xoauth2 = false,
            "451 4.3.5 Relay misconfigured: the SMTP server does not offer XOAUTH2",
        ),
    ];
    for (script, want) in cases {
        let w = World::start().await;
        w.upstream.script(script);
        one_message(&w).await.expect_start(want);
        assert!(w.upstream.messages().is_empty(), "{want}");
    }
}

#[tokio::test]
async fn upstream_without_starttls_is_refused_before_any_credentials() {
    let w = World::start().await;
    w.probed(1).await;
    w.upstream.script(|s| s.offer_starttls = false);
    one_message(&w)
        .await
        .expect_start("451 4.3.5 Relay misconfigured: the SMTP server did not offer STARTTLS");
    let transcripts = w.upstream.transcripts();
    let transcript = transcripts.last().expect("the message's session");
    assert!(
        !transcript.iter().any(|v| v == "AUTH"),
        "no AUTH without TLS: {transcript:?}"
    );
    assert_eq!(w.upstream.auth_attempts(), 1, "only the start-up probe's");
}

#[tokio::test]
async fn upstream_with_an_untrusted_certificate_is_refused() {
    let other = TestPki::new().unwrap();
    let w = World::start_with(|c| {
        let account = account_mut(c);
        account.extra_roots = vec![other.ca_der()];
    })
    .await;
    // The token endpoint uses the same untrusted certificate, so the failure shows there first,
    // as the misconfiguration it is (`ca_file`), not as an outage.
    one_message(&w).await.expect_start(
        "451 4.3.5 Relay misconfigured: the token endpoint's certificate could not be verified",
    );
    assert_eq!(w.tokens.calls(), 0, "no request reached the endpoint");
}

#[tokio::test]
async fn untrusted_smtp_certificate_alone_is_a_tls_failure() {
    let other = TestPki::new().unwrap();
    let w = World::start().await;
    let fake =
        xoauth_relay::testkit::FakeUpstream::start(&other, w.tokens.token_registry()).unwrap();
    let mut w = w;
    account_mut(&mut w.config).smtp_port = fake.port();
    w.restart().await;
    one_message(&w).await.expect_start(
        "451 4.3.5 Relay misconfigured: the SMTP server's certificate could not be verified",
    );
    assert_eq!(fake.auth_attempts(), 0);
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn unreachable_upstream_is_temporary() {
    let mut w = World::start().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    account_mut(&mut w.config).smtp_port = port;
    w.restart().await;
    one_message(&w)
        .await
        .expect_start("451 4.4.1 cannot reach the upstream server; try again later");
}

#[tokio::test]
async fn dropped_connection_is_temporary() {
    for phase in [
        Phase::Greeting,
        Phase::Ehlo,
        Phase::Auth,
        Phase::Mail,
        Phase::Rcpt,
        Phase::DataStart,
        Phase::DataEnd,
    ] {
        let w = World::start().await;
        w.upstream.script(|s| s.drop_at = Some(phase));
        let r = one_message(&w).await;
        assert_eq!(r.code, 451, "{phase:?}: {}", r.text);
        assert!(w.upstream.messages().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn silent_upstream_hits_the_phase_deadline() {
    let cases = [
        (
            Phase::Greeting,
            300,
            "451 4.4.2 upstream timed out during greeting",
        ),
        (Phase::Auth, 300, "451 4.4.2 upstream timed out during AUTH"),
        (
            Phase::Mail,
            300,
            "451 4.4.2 upstream timed out during RCPT TO",
        ),
        (
            Phase::DataStart,
            120,
            "451 4.4.2 upstream timed out during DATA",
        ),
        (
            Phase::DataEnd,
            600,
            "451 4.4.2 upstream timed out during end of data",
        ),
    ];
    for (phase, seconds, want) in cases {
        let w = World::start_with(|c| c.timeouts.idle = Duration::from_secs(3600)).await;
        w.upstream.script(|s| s.hang_at = Some(phase));
        let mut c = w.logged_in().await;
        let started = tokio::time::Instant::now();
        c.send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
            .await
            .expect_start(want);
        assert_eq!(started.elapsed().as_secs(), seconds, "{phase:?}");
    }
}
