//! The client-facing listener over real sockets: AUTH variants and failures, MAIL before AUTH,
//! sender policy, size and recipient limits, the connection cap and the idle timeout.

use std::time::Duration;

use crate::common::*;
use xoauth_relay::config::{BareLineEndings, PasswordCheck, SenderRule};

#[tokio::test]
async fn auth_variants_over_the_wire() {
    let w = World::start().await;
    let mut c = w.client().await;
    c.greeting.expect_start("220 relay.test ESMTP");
    let ehlo = c.ehlo().await;
    assert!(ehlo.text.contains("250-AUTH PLAIN LOGIN"), "{}", ehlo.text);
    c.cmd("AUTH LOGIN").await.expect_start("334 VXNlcm5hbWU6");
    c.cmd("eGVub2NlcHQ=").await.expect_start("334 UGFzc3dvcmQ6");
    c.cmd("bG9jYWwtcGFzcw==").await.expect_code(235);

    let mut c = w.client().await;
    c.ehlo().await;
    c.cmd("AUTH PLAIN").await.expect_start("334 ");
    c.cmd("AHhlbm9jZXB0AGxvY2FsLXBhc3M=").await.expect_code(235);

    let mut c = w.client().await;
    c.ehlo().await;
    c.cmd("AUTH LOGIN eGVub2NlcHQ=")
        .await
        .expect_start("334 UGFzc3dvcmQ6");
    c.cmd("*").await.expect_start("501 5.7.0");
    c.cmd("AUTH CRAM-MD5").await.expect_start("504 5.5.4");
}

#[tokio::test]
async fn wrong_password_refused_from_the_first_login_and_argon2_works() {
    let hash = xoauth_relay::auth::hash_password("argon-pass").unwrap();
    let w = World::start_with(|c| c.users[0].password = Some(PasswordCheck::Argon2(hash))).await;
    let mut c = w.client().await;
    c.ehlo().await;
    c.auth_plain(USER, "anything")
        .await
        .expect_start("535 5.7.8");
    c.auth_plain("nobody", "argon-pass")
        .await
        .expect_start("535 5.7.8");
    c.auth_plain(USER, "argon-pass").await.expect_code(235);
    // A second login with the remembered password is fast and still right.
    let mut c = w.client().await;
    c.ehlo().await;
    c.auth_plain(USER, "argon-pass").await.expect_code(235);
}

#[tokio::test(start_paused = true)]
async fn failed_logins_are_delayed_more_each_time_then_disconnected() {
    let w = World::start_with(|c| c.limits.auth_failure_delay = Duration::from_secs(2)).await;
    let mut c = w.client().await;
    c.ehlo().await;
    let mut waited = Vec::new();
    for _ in 0..2 {
        let start = tokio::time::Instant::now();
        c.auth_plain(USER, "wrong").await.expect_start("535 5.7.8");
        waited.push(start.elapsed().as_secs());
    }
    assert_eq!(waited, [2, 4]);
    c.auth_plain(USER, "wrong").await.expect_start("421 4.7.0");
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn mail_before_auth_and_sender_policy() {
    let w = World::start_with(|c| {
        c.users[0].allowed_senders = vec![
            SenderRule::Address(MAILBOX.into()),
            SenderRule::Domain("contoso.com".into()),
        ];
    })
    .await;
    let mut c = w.client().await;
    c.ehlo().await;
    c.cmd(&format!("MAIL FROM:<{MAILBOX}>"))
        .await
        .expect_start("530 5.7.0 Authentication required");
    c.auth_plain(USER, PASSWORD).await.expect_code(235);
    c.cmd("MAIL FROM:<ceo@fabrikam.com>").await.expect_start(
        "550 5.7.1 Sender ceo@fabrikam.com not allowed for user xenocept; allowed: sender@contoso.com, @contoso.com",
    );
    c.send_mail(
        "helpdesk@contoso.com",
        &["a@example.net"],
        &message("a", "b"),
    )
    .await
    .expect_code(250);
    assert_eq!(w.upstream.messages()[0].mail_from, "helpdesk@contoso.com");
}

#[tokio::test]
async fn size_limit_declared_and_actual() {
    let w = World::start_with(|c| c.limits.max_message_size = 1000).await;
    let mut c = w.logged_in().await;
    let ehlo = c.cmd("EHLO again").await;
    assert!(ehlo.text.contains("250-SIZE 1000"), "{}", ehlo.text);
    c.cmd(&format!("MAIL FROM:<{MAILBOX}> SIZE=5000"))
        .await
        .expect_start("552 5.3.4");
    let big = vec![b'a'; 3000];
    let mut body = b"Subject: big\r\n\r\n".to_vec();
    for chunk in big.chunks(70) {
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    c.send_mail(MAILBOX, &["a@example.net"], &body)
        .await
        .expect_start("552 5.3.4");
    assert!(w.upstream.messages().is_empty());
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "small"))
        .await
        .expect_code(250);
}

#[tokio::test]
async fn recipient_limit() {
    let w = World::start_with(|c| c.limits.max_recipients = 2).await;
    let mut c = w.logged_in().await;
    c.cmd(&format!("MAIL FROM:<{MAILBOX}>"))
        .await
        .expect_code(250);
    c.cmd("RCPT TO:<a@example.net>").await.expect_code(250);
    c.cmd("RCPT TO:<b@example.net>").await.expect_code(250);
    c.cmd("RCPT TO:<c@example.net>")
        .await
        .expect_start("452 4.5.3");
    c.cmd("DATA").await.expect_code(354);
    c.send_raw(b"Subject: x\r\n\r\nx\r\n.\r\n").await;
    c.read_reply().await.expect_code(250);
    assert_eq!(
        w.upstream.messages()[0].rcpts,
        ["a@example.net", "b@example.net"]
    );
}

#[tokio::test]
async fn connection_cap_answers_421() {
    let w = World::start_with(|c| c.limits.max_connections = 2).await;
    let _a = w.client().await;
    let _b = w.client().await;
    let mut third = Client::connect(w.addr()).await;
    third.greeting.expect_start("421 4.7.0");
    assert!(third.is_closed().await);
}

#[tokio::test(start_paused = true)]
async fn idle_client_gets_421_after_the_timeout() {
    let w = World::start_with(|c| c.timeouts.idle = Duration::from_secs(300)).await;
    // Logged in: one that is not is closed sooner, at the login deadline.
    let mut c = w.logged_in().await;
    let start = tokio::time::Instant::now();
    let r = c.read_reply().await;
    r.expect_start("421 4.4.2");
    assert_eq!(start.elapsed().as_secs(), 300);
    assert!(c.is_closed().await);
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_the_message_in_flight_finish_and_closes_idle_sessions() {
    let mut w = World::start().await;
    w.probed(1).await;
    let slow = Duration::from_secs(20);
    w.upstream
        .script(|s| s.delay_at = Some((xoauth_relay::testkit::Phase::DataEnd, slow)));
    let mut busy = w.logged_in().await;
    let mut idle = w.logged_in().await;
    busy.open_data(MAILBOX, "a@example.net").await;
    busy.send_raw(b"Subject: x\r\n\r\nx\r\n.\r\n").await;
    // The start-up probe's connection, then the message's.
    w.upstream.wait_for_connections(2).await;
    let addr = w.addr();
    let started = tokio::time::Instant::now();
    let stopping = tokio::spawn(w.relay.take().unwrap().stop());
    idle.read_reply()
        .await
        .expect_start("421 4.3.0 Server shutting down");
    assert!(idle.is_closed().await);
    busy.read_reply().await.expect_code(250);
    assert_eq!(
        w.upstream.messages().len(),
        1,
        "the message in flight was delivered"
    );
    busy.read_reply().await.expect_start("421 4.3.0");
    stopping.await.unwrap();
    assert!(started.elapsed() >= slow && started.elapsed() < Duration::from_secs(30));
    assert!(
        Client::try_connect(addr).await.is_none(),
        "no new connections after stop"
    );
}

/// A domain rule cannot be bypassed with a quoted local part that ends in `>` and a
/// parameter: the address is checked as parsed and written upstream quoted, exactly one path,
/// no injected ENVID. The exact-address rule refuses it.
#[tokio::test]
async fn quoted_local_parts_cannot_inject_parameters() {
    let w = World::start_with(|c| {
        c.users[0].allowed_senders = vec![
            SenderRule::Address("relay@contoso.example".into()),
            SenderRule::Domain("sales.contoso.example".into()),
        ];
    })
    .await;
    let mut c = w.logged_in().await;
    let sender = r#""relay@contoso.example> ENVID=x"@sales.contoso.example"#;
    let rcpt = r#""a> NOTIFY=NEVER ORCPT=rfc822;b@example.net"@example.net"#;
    c.send_mail(sender, &[rcpt], &message("a", "b"))
        .await
        .expect_code(250);
    let got = &w.upstream.messages()[0];
    let mail = &got.envelope_lines[0];
    let params = mail.strip_prefix(&format!("MAIL FROM:<{sender}>"));
    let params: Vec<&str> = params.expect(mail).split_whitespace().collect();
    assert!(
        params.len() == 1 && params[0].starts_with("SIZE="),
        "only the relay's own SIZE: {mail}"
    );
    assert_eq!(got.envelope_lines[1], format!("RCPT TO:<{rcpt}>"));

    let w = World::start_with(|c| {
        c.users[0].allowed_senders = vec![SenderRule::Address("relay@contoso.example".into())];
    })
    .await;
    let mut c = w.logged_in().await;
    c.cmd(&format!("MAIL FROM:<{sender}>"))
        .await
        .expect_start("550 5.7.1");
    c.cmd("MAIL FROM:<\"relay\"@contoso.example>")
        .await
        .expect_code(250);
}

/// Addresses arrive as sent or are refused: no byte replaced, no UTF-8 without SMTPUTF8.
#[tokio::test]
async fn addresses_are_relayed_as_sent_or_refused() {
    let w = World::start_with(|c| {
        c.users[0].allowed_senders = vec![SenderRule::Domain("contoso.com".into())];
    })
    .await;
    let mut c = w.logged_in().await;
    c.send_raw(b"MAIL FROM:<a\xffb@contoso.com>\r\n").await;
    c.read_reply()
        .await
        .expect_start("501 5.1.7 Bad sender address syntax: the address is not valid UTF-8");
    c.cmd("MAIL FROM:<j\u{f6}rg@contoso.com>")
        .await
        .expect_start("553 5.6.7");
    c.cmd("MAIL FROM:<helpdesk@contoso.com>")
        .await
        .expect_code(250);
    c.cmd("RCPT TO:<m\u{fc}ller@example.net>")
        .await
        .expect_start("553 5.6.7");
    c.cmd("RSET").await.expect_code(250);
    c.cmd("MAIL FROM:<j\u{f6}rg@contoso.com> SMTPUTF8")
        .await
        .expect_code(250);
    c.cmd("RCPT TO:<m\u{fc}ller@example.net>")
        .await
        .expect_code(250);
    c.cmd("DATA").await.expect_code(354);
    c.send_raw(b"Subject: x\r\n\r\nhi\r\n.\r\n").await;
    c.read_reply().await.expect_code(250);
    let got = &w.upstream.messages()[0];
    assert_eq!(got.envelope_lines[1], "RCPT TO:<m\u{fc}ller@example.net>");
    let mail = &got.envelope_lines[0];
    assert!(
        mail.starts_with("MAIL FROM:<j\u{f6}rg@contoso.com>") && mail.contains(" SMTPUTF8"),
        "{mail}"
    );
}

/// SMTP smuggling through the whole relay: `\r\n.\r\r\n` does not end the message, so the
/// commands after it are never run; the message is refused for its bare CR and nothing at all
/// reaches the upstream.
#[tokio::test]
async fn smuggled_message_never_reaches_the_upstream() {
    let w = World::start().await;
    w.probed(1).await;
    let mut c = w.logged_in().await;
    c.open_data(MAILBOX, "a@example.net").await;
    let smuggled = format!(
        "Subject: hi\r\n\r\nhello\r\n.\r\r\nMAIL FROM:<{MAILBOX}>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n"
    );
    c.send_raw(smuggled.as_bytes()).await;
    c.read_reply()
        .await
        .expect_start("550 5.6.0 Message refused: it contains a bare CR or LF");
    c.cmd("NOOP").await.expect_code(250);
    assert!(w.upstream.messages().is_empty());
    assert_eq!(
        w.upstream.connections(),
        1,
        "no upstream session was opened but the start-up probe"
    );
}

/// With `bare_line_endings = "normalize"` a bare-LF message is delivered as one message with
/// CRLF line ends, and a dot after a bare LF arrives as sent.
#[tokio::test]
async fn normalized_bare_line_endings_arrive_as_crlf() {
    let w = World::start_with(|c| c.limits.bare_line_endings = BareLineEndings::Normalize).await;
    let mut c = w.logged_in().await;
    c.open_data(MAILBOX, "a@example.net").await;
    c.send_raw(b"Subject: x\n\nline\n.\nMAIL FROM:<x@y.z>\r\nend\r\n.\r\n")
        .await;
    c.read_reply().await.expect_code(250);
    let got = w.upstream.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].body,
        b"Subject: x\r\n\r\nline\r\n.\r\nMAIL FROM:<x@y.z>\r\nend\r\n"
    );
}

#[tokio::test(start_paused = true)]
async fn past_the_grace_period_a_client_mid_message_is_told_421() {
    let grace = Duration::from_secs(10);
    let mut w = World::start_with(|c| c.timeouts.shutdown_grace = grace).await;
    let mut c = w.logged_in().await;
    c.open_data(MAILBOX, "a@example.net").await;
    c.send_raw(b"Subject: half a message\r\n\r\n").await;
    let started = tokio::time::Instant::now();
    let stopping = tokio::spawn(w.relay.take().unwrap().stop());
    c.read_reply()
        .await
        .expect_start("421 4.3.0 Server shutting down");
    assert_eq!(started.elapsed(), grace);
    assert!(c.is_closed().await);
    stopping.await.unwrap();
    assert!(w.upstream.messages().is_empty());
}
