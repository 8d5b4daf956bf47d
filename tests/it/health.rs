//! The loopback HTTP endpoints and what they report: readiness transitions, the status
//! document, metrics after messages, background token refresh, secret-expiry warnings, reloads.

use std::time::Duration;

use crate::common::*;
use xoauth_relay::testkit::{Phase, TokenMode};

#[tokio::test]
async fn healthz_is_always_ok_and_unknown_paths_are_404() {
    let w = World::start_with(with_health).await;
    let (code, body) = http_json(w.health(), "/healthz").await;
    assert_eq!((code, body["status"].as_str()), (200, Some("ok")));
    assert_eq!(http_get(w.health(), "/nope").await.0, 404);
}

#[tokio::test(start_paused = true)]
async fn readiness_follows_the_token_endpoint() {
    let mut w = World::stand_ins(with_health);
    w.tokens.set_mode(TokenMode::invalid_client_secret());
    w.restart().await;
    w.tokens.wait_for_calls(1).await;
    let (code, body) = http_json(w.health(), "/readyz").await;
    assert_eq!(code, 503, "{body}");
    let reason = body["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with("account contoso: no valid token (the last token request failed"),
        "{reason}"
    );
    assert!(reason.contains("AADSTS7000215"), "{reason}");
    let (_, status) = http_json(w.health(), "/status").await;
    let token = &status["accounts"]["contoso"]["token"];
    assert_eq!(token["valid"], false);
    assert_eq!(token["last_fetch"]["result"], "error");
    assert_eq!(token["fetches_failed"], 1);

    // The secret is fixed; the background refresh retries after its back-off and recovers.
    w.tokens.set_mode(TokenMode::Ok);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (code, body) = http_json(w.health(), "/readyz").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["reasons"].as_array().unwrap().len(), 0);
    let (_, status) = http_json(w.health(), "/status").await;
    let token = &status["accounts"]["contoso"]["token"];
    assert_eq!(token["valid"], true);
    let left = token["expires_in_seconds"].as_u64().unwrap();
    assert!((3590..=3599).contains(&left), "{left}");
    assert_eq!(token["last_fetch"]["result"], "ok");
}

#[tokio::test]
async fn a_configuration_refusal_from_exchange_makes_the_relay_not_ready() {
    let w = World::start_with(with_health).await;
    w.tokens.wait_for_calls(1).await;
    w.upstream.script(|s| {
        s.auth_reply = Some("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.".into())
    });
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
        .await
        .expect_code(451);
    let (code, body) = http_json(w.health(), "/readyz").await;
    assert_eq!(code, 503);
    assert_eq!(
        body["reasons"][0],
        "account contoso: the last delivery failed: SMTP AUTH is disabled for this mailbox or tenant"
    );
    w.upstream.script(|s| s.auth_reply = None);
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
        .await
        .expect_code(250);
    assert_eq!(
        http_get(w.health(), "/readyz").await.0,
        200,
        "a success clears it"
    );
}

#[tokio::test]
async fn status_and_metrics_count_messages() {
    let w = World::start_with(with_health).await;
    w.upstream.script(|s| {
        s.rcpt_replies
            .insert("gone@example.net".into(), "550 5.1.1 User unknown".into());
    });
    let mut c = w.logged_in().await;
    let body = message("a@example.net", "x");
    c.send_mail(MAILBOX, &["a@example.net"], &body)
        .await
        .expect_code(250);
    c.send_mail(MAILBOX, &["a@example.net"], &body)
        .await
        .expect_code(250);
    c.send_mail(MAILBOX, &["gone@example.net"], &body)
        .await
        .expect_code(550);
    c.cmd("MAIL FROM:<someone@else.test>")
        .await
        .expect_code(550);
    c.auth_plain(USER, "wrong").await;
    let mut bad = w.client().await;
    bad.ehlo().await;
    bad.auth_plain(USER, "wrong").await.expect_code(535);

    let (code, status) = http_json(w.health(), "/status").await;
    assert_eq!(code, 200);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    let a = &status["accounts"]["contoso"];
    assert_eq!(a["mailbox"], MAILBOX);
    assert_eq!(a["messages"]["delivered"], 2);
    assert_eq!(a["messages"]["rejected_upstream"], 1);
    assert_eq!(a["messages"]["rejected_locally"], 1);
    assert_eq!(a["messages"]["temporary_failure"], 0);
    assert_eq!(a["bytes_relayed"], 2 * body.len());
    assert_eq!(a["upstream_sessions"], 0);
    assert!(
        a["last_delivery"]["reply"]
            .as_str()
            .unwrap()
            .starts_with("550 5.1.1 <gone@example.net>")
    );
    assert_eq!(status["listener"]["connections_now"], 2);
    assert_eq!(status["listener"]["connections_total"], 2);
    assert_eq!(status["auth_failures"], 1);
    assert_eq!(status["ready"], true);

    let (code, metrics) = http_get(w.health(), "/metrics").await;
    assert_eq!(code, 200);
    for line in [
        "xoauth_relay_messages_total{account=\"contoso\",outcome=\"delivered\"} 2",
        "xoauth_relay_messages_total{account=\"contoso\",outcome=\"rejected_upstream\"} 1",
        "xoauth_relay_messages_total{account=\"contoso\",outcome=\"rejected_locally\"} 1",
        "xoauth_relay_upstream_replies_total{account=\"contoso\",class=\"2xx\",code=\"250\"} 2",
        "xoauth_relay_upstream_replies_total{account=\"contoso\",class=\"5xx\",code=\"550\"} 1",
        "xoauth_relay_token_fetches_total{account=\"contoso\",result=\"ok\"} 1",
        "xoauth_relay_auth_failures_total 1",
        "xoauth_relay_sessions_active 2",
        "xoauth_relay_delivery_duration_seconds_count{account=\"contoso\"} 3",
        "xoauth_relay_ready 1",
        "# TYPE xoauth_relay_delivery_duration_seconds histogram",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    assert!(metrics.contains("xoauth_relay_token_expiry_seconds{account=\"contoso\"} 35"));
    assert!(!metrics.contains("@"), "no address in metrics");
    let everything = format!("{status}{metrics}");
    for secret in [CLIENT_SECRET, PASSWORD] {
        assert!(!everything.contains(secret));
    }
    for token in w.tokens.issued() {
        assert!(!everything.contains(&token[..40]));
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_relay_keeps_its_token_fresh() {
    let w = World::start_with(with_health).await;
    w.tokens.wait_for_calls(1).await;
    for hour in 1..=3 {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(
            w.tokens.calls() > hour,
            "refreshed in the background (hour {hour})"
        );
        assert_eq!(http_get(w.health(), "/readyz").await.0, 200);
    }
    // The first message after the idle hours does not wait for the token endpoint.
    let before = w.tokens.calls();
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
        .await
        .expect_code(250);
    assert_eq!(w.tokens.calls(), before);
}

#[tokio::test]
async fn secret_expiry_warning_in_status_and_readyz() {
    let today = xoauth_relay::dates::Day::today();
    let w = World::start_with(|c| {
        with_health(c);
        account_mut(c).client_secret_expires = Some(xoauth_relay::dates::Day(today.0 + 10));
    })
    .await;
    w.probed(1).await;
    let (code, ready) = http_json(w.health(), "/readyz").await;
    assert_eq!(code, 200, "a warning does not make the relay unready");
    let warning = ready["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("client secret of account contoso expires on"),
        "{warning}"
    );
    assert!(warning.contains("in 10 days"), "{warning}");
    let (_, status) = http_json(w.health(), "/status").await;
    assert_eq!(
        status["accounts"]["contoso"]["client_secret"]["warning"],
        warning
    );
    let (_, metrics) = http_get(w.health(), "/metrics").await;
    assert!(metrics.contains("xoauth_relay_client_secret_expiry_days{account=\"contoso\"} 10"));
}

#[tokio::test(start_paused = true)]
async fn draining_is_not_ready_while_a_message_finishes() {
    let mut w = World::start_with(with_health).await;
    w.upstream
        .script(|s| s.delay_at = Some((Phase::DataEnd, Duration::from_secs(20))));
    let health = w.health();
    w.probed(1).await;
    let mut c = w.logged_in().await;
    c.open_data(MAILBOX, "a@example.net").await;
    c.send_raw(b"Subject: x\r\n\r\nx\r\n.\r\n").await;
    // The start-up probe's connection, then the message's.
    w.upstream.wait_for_connections(2).await;
    let stopping = tokio::spawn(w.relay.take().unwrap().stop());
    tokio::task::yield_now().await;
    let (code, body) = http_json(health, "/readyz").await;
    assert_eq!(code, 503);
    assert!(body["reasons"].to_string().contains("draining"), "{body}");
    c.read_reply().await.expect_code(250);
    stopping.await.unwrap();
}

#[tokio::test]
async fn reload_adds_users_and_accounts_without_dropping_connections() {
    let w = World::start_with(with_health).await;
    let mut old_session = w.logged_in().await;
    let relay = w.relay.as_ref().unwrap();
    let mut new = w.config.clone();
    let mut second = new.users[0].clone();
    second.name = "printer".into();
    second.password = Some(xoauth_relay::config::PasswordCheck::Plain(
        xoauth_relay::secret::Secret::new("scan".into()),
    ));
    new.users.push(second);
    let summary = relay.daemon.reload(new.clone()).unwrap();
    assert_eq!(summary.users, 2);
    assert!(
        summary.changed.is_empty(),
        "unchanged account keeps its token: {summary:?}"
    );
    // The connection opened before the reload still works.
    old_session
        .send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
        .await
        .expect_code(250);
    let mut c = w.client().await;
    c.ehlo().await;
    c.auth_plain("printer", "scan").await.expect_code(235);
    assert_eq!(w.tokens.calls(), 1, "the token survived the reload");

    // Changing the account's settings gives it a new route (and a new token).
    let mut changed = new.clone();
    std::sync::Arc::make_mut(changed.accounts.get_mut("contoso").unwrap()).max_connections = 1;
    let summary = relay.daemon.reload(changed).unwrap();
    assert_eq!(summary.changed, ["contoso"]);
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
        .await
        .expect_code(250);
}

#[tokio::test]
async fn only_loopback_host_names_are_answered() {
    let w = World::start_with(with_health).await;
    for path in ["/status", "/metrics", "/readyz", "/healthz"] {
        let (code, body) = http_get_host(w.health(), path, "Host: evil.example\r\n").await;
        assert_eq!(code, 421, "{path}: {body}");
        assert!(!body.contains(MAILBOX), "{path}: {body}");
        let (code, _) = http_get_host(w.health(), path, "Host: evil.example:8025\r\n").await;
        assert_eq!(code, 421, "{path} with a port");
    }
    let twice = "Host: localhost\r\nHost: evil.example\r\n";
    assert_eq!(http_get_host(w.health(), "/status", twice).await.0, 421);
    for host in ["127.0.0.1:8025", "[::1]", "LocalHost", "relay.localhost"] {
        let line = format!("Host: {host}\r\n");
        let (code, body) = http_get_host(w.health(), "/status", &line).await;
        assert_eq!(code, 200, "{host}: {body}");
        assert!(body.contains(MAILBOX), "{host}: {body}");
    }
}

#[tokio::test]
async fn health_public_opens_monitoring_endpoints_but_not_status() {
    let lan_host = "Host: 192.168.1.10:8025\r\n";
    let w = World::start_with(|c| {
        with_health(c);
        c.listen.health_public = true;
    })
    .await;
    for path in ["/metrics", "/readyz", "/healthz"] {
        let (code, body) = http_get_host(w.health(), path, lan_host).await;
        assert!(code == 200 || code == 503, "{path}: {code} {body}");
    }
    let (code, body) = http_get_host(w.health(), "/status", lan_host).await;
    assert_eq!(code, 421, "/status stays loopback: {body}");
    assert!(!body.contains(MAILBOX));

    let w = World::start_with(|c| {
        with_health(c);
        c.listen.health_public = true;
        c.listen.status_public = true;
    })
    .await;
    let (code, body) = http_get_host(w.health(), "/status", lan_host).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(MAILBOX), "{body}");
}

const SMTP_AUTH_DISABLED: &str =
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.";

/// SMTP AUTH disabled from the start: the start-up probe finds it before any message, and
/// once Exchange is fixed the back-off probe finds that too, again without a message.
#[tokio::test(start_paused = true)]
async fn a_probe_proves_readiness_without_sending_mail() {
    let mut w = World::stand_ins(with_health);
    w.upstream
        .script(|s| s.auth_reply = Some(SMTP_AUTH_DISABLED.into()));
    w.restart().await;
    w.probed(1).await;
    let (code, body) = http_json(w.health(), "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(
        body["reasons"][0],
        "account contoso: the last probe failed: SMTP AUTH is disabled for this mailbox or tenant"
    );
    let (_, metrics) = http_get(w.health(), "/metrics").await;
    assert!(metrics.lines().any(|l| l == "xoauth_relay_ready 0"));
    let (_, status) = http_json(w.health(), "/status").await;
    let can_send = &status["accounts"]["contoso"]["can_send"];
    assert_eq!(can_send["state"], "failing", "{can_send}");
    assert_eq!(can_send["last_failure"]["by"], "probe");
    assert!(can_send["last_proven"].is_null());

    // Fixed on Microsoft's side: the next probe (after the first back-off) sees it.
    w.upstream.script(|s| s.auth_reply = None);
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(
        http_get(w.health(), "/readyz").await.0,
        503,
        "not before the back-off"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.probed(2).await;
    let (code, body) = http_json(w.health(), "/readyz").await;
    assert_eq!(code, 200, "{body}");
    let (_, status) = http_json(w.health(), "/status").await;
    let can_send = &status["accounts"]["contoso"]["can_send"];
    assert_eq!(can_send["state"], "yes", "{can_send}");
    assert_eq!(can_send["last_proven"]["by"], "probe");
    assert_eq!(
        can_send["last_failure"]["by"], "probe",
        "the last failure stays visible"
    );
    assert!(w.upstream.messages().is_empty(), "no mail was sent");
    let transcripts = w.upstream.transcripts();
    assert_eq!(transcripts.len(), 2);
    assert!(
        transcripts.iter().all(|t| !t.contains(&"MAIL".to_string())),
        "{transcripts:?}"
    );
}

/// Until the first probe answers the relay says it is checking (READY=1 went out already:
/// it does not wait on the network).
#[tokio::test]
async fn readiness_is_checking_until_the_first_probe_answers() {
    let mut w = World::stand_ins(with_health);
    w.upstream.script(|s| s.hang_at = Some(Phase::Greeting));
    w.restart().await;
    w.tokens.wait_for_calls(1).await;
    let (code, body) = http_json(w.health(), "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(
        body["reasons"][0],
        "account contoso: checking: the first upstream probe has not answered yet"
    );
    let (_, status) = http_json(w.health(), "/status").await;
    assert_eq!(
        status["accounts"]["contoso"]["can_send"]["state"],
        "checking"
    );
    let probing = w.upstream.wait_for_connections(1);
    let connected = tokio::time::timeout(Duration::from_secs(30), probing).await;
    connected.expect("the probe connected");
    assert_eq!(
        http_get(w.health(), "/readyz").await.0,
        503,
        "still checking"
    );
}

/// A refusal seen by a delivery is cleared by a probe once Exchange is fixed, not only by the
/// next message that happens to get through.
#[tokio::test(start_paused = true)]
async fn a_delivery_failure_is_cleared_by_a_later_probe() {
    let w = World::start_with(with_health).await;
    w.probed(1).await;
    w.upstream
        .script(|s| s.auth_reply = Some(SMTP_AUTH_DISABLED.into()));
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
        .await
        .expect_code(451);
    let (code, body) = http_json(w.health(), "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body["reasons"][0]
            .as_str()
            .unwrap()
            .contains("the last delivery failed")
    );
    w.upstream.script(|s| s.auth_reply = None);
    tokio::time::sleep(Duration::from_secs(31)).await;
    w.probed(2).await;
    assert_eq!(http_get(w.health(), "/readyz").await.0, 200);
    assert_eq!(w.upstream.messages().len(), 0);
}

/// A reload that corrects the account is proven by its probe.
#[tokio::test(start_paused = true)]
async fn a_reload_that_fixes_the_account_is_ready_after_its_probe() {
    let w = World::start_with(|c| {
        with_health(c);
        account_mut(c).mailbox = "typo@contoso.com".into();
    })
    .await;
    w.probed(1).await;
    let (code, body) = http_json(w.health(), "/readyz").await;
    assert_eq!(code, 503, "{body}");
    let relay = w.relay.as_ref().unwrap();
    let mut fixed = w.config.clone();
    account_mut(&mut fixed).mailbox = MAILBOX.into();
    let summary = relay.daemon.reload(fixed).unwrap();
    assert_eq!(summary.changed, ["contoso"]);
    w.probed(2).await;
    let (code, body) = http_json(w.health(), "/readyz").await;
    assert_eq!(code, 200, "{body}");
    assert!(w.upstream.messages().is_empty());
}

/// Settings that changed but wait for a restart, and how the last reload ended, are in
/// `/status` (a refused file: see the SIGHUP test in `reload.rs`).
#[tokio::test]
async fn status_shows_settings_waiting_for_a_restart() {
    let w = World::start_with(with_health).await;
    let (_, status) = http_json(w.health(), "/status").await;
    assert!(status["last_reload"].is_null());
    assert_eq!(status["restart_needed"], serde_json::json!([]));
    let mut new = w.config.clone();
    new.limits.max_connections += 1;
    w.relay.as_ref().unwrap().daemon.reload(new).unwrap();
    let (_, status) = http_json(w.health(), "/status").await;
    assert_eq!(status["last_reload"]["result"], "ok", "{status}");
    assert_eq!(status["restart_needed"], serde_json::json!(["limits"]));
}

/// The client secret revoked with the cached token: the refused refresh (the account's fault)
/// makes the relay probe with the token it still holds, and Exchange's refusal turns it red
/// before any message fails and before the token expires.
#[tokio::test(start_paused = true)]
async fn a_refused_token_refresh_is_checked_with_a_probe() {
    let w = World::start_with(with_health).await;
    w.probed(1).await;
    assert_eq!(http_get(w.health(), "/readyz").await.0, 200);
    w.tokens.token_registry().revoke(&w.tokens.issued()[0]);
    w.tokens.set_mode(TokenMode::invalid_client_secret());
    // The refresh point is 5 minutes before the token's hour is up.
    tokio::time::sleep(Duration::from_secs(3600 - 290)).await;
    w.probed(2).await;
    let (code, body) = http_json(w.health(), "/readyz").await;
    assert_eq!(code, 503, "{body}");
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("the last probe failed"), "{reasons}");
    let (_, status) = http_json(w.health(), "/status").await;
    assert_eq!(
        status["accounts"]["contoso"]["token"]["valid"], true,
        "{status}"
    );
    assert!(w.upstream.messages().is_empty());
}

/// Pacing shows in `/status` and `/metrics`: the recipients counted against the daily budget
/// and the messages it refused.
#[tokio::test]
async fn pacing_is_visible_in_status_and_metrics() {
    let w = World::start_with(|c| {
        with_health(c);
        account_mut(c).max_recipients_per_day = 3;
    })
    .await;
    let mut c = w.logged_in().await;
    let body = message("a@example.net", "budget");
    let two = ["a@example.net", "b@example.net"];
    c.send_mail(MAILBOX, &two, &body).await.expect_code(250);
    c.send_mail(MAILBOX, &two, &body).await.expect_code(452);
    let (_, status) = http_json(w.health(), "/status").await;
    let pacing = &status["accounts"]["contoso"]["pacing"];
    assert_eq!(pacing["max_recipients_per_day"], 3, "{pacing}");
    assert_eq!(pacing["max_messages_per_minute"], 30, "{pacing}");
    assert_eq!(pacing["recipients_last_24h"], 2, "{pacing}");
    assert_eq!(pacing["refusals"], 1, "{pacing}");
    assert_eq!(pacing["waits"], 0, "{pacing}");
    let (_, metrics) = http_get(w.health(), "/metrics").await;
    for line in [
        "xoauth_relay_recipients_last_24h{account=\"contoso\"} 2",
        "xoauth_relay_pacing_refusals_total{account=\"contoso\"} 1",
        "xoauth_relay_pacing_waits_total{account=\"contoso\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

/// A client certificate's own expiry is in the expiry metric, as a secret's date is.
#[tokio::test]
async fn a_client_certificate_expiry_is_in_the_metric() {
    use xoauth_relay::testkit::client_cert::{self, APP_CERT_PEM, APP_KEY_PEM};
    let w = World::start_with(|c| {
        with_health(c);
        let mut certificate = client_cert::credential(APP_CERT_PEM, APP_KEY_PEM);
        certificate.not_after = Some(xoauth_relay::dates::Day(
            xoauth_relay::dates::Day::today().0 + 7,
        ));
        account_mut(c).client_certificate = Some(certificate);
    })
    .await;
    let (_, metrics) = http_get(w.health(), "/metrics").await;
    let line = "xoauth_relay_client_secret_expiry_days{account=\"contoso\"} 7";
    assert!(metrics.lines().any(|l| l == line), "{metrics}");
}
