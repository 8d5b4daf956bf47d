//! Messages through the relay to the stand-in for Microsoft 365: byte-exact bodies, envelopes,
//! many recipients, all-or-nothing recipients, and the per-account connection cap.

use crate::common::*;

#[tokio::test]
async fn message_arrives_byte_exact_with_xoauth2_as_the_mailbox() {
    let w = World::start().await;
    let mut c = w.logged_in().await;
    let mut body = b"From: <sender@contoso.com>\r\nTo: <a@example.net>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\n".to_vec();
    body.extend_from_slice("8-bit: caf\u{e9} \u{1f600}\r\n".as_bytes());
    body.extend_from_slice(b".leading dot\r\n..two dots\r\n.\r\n");
    body.extend_from_slice(&[b'x'; 998]);
    body.extend_from_slice(b"\r\nlast line\r\n");
    let r = c.send_mail(MAILBOX, &["a@example.net"], &body).await;
    r.expect_code(250).expect_start("250 2.0.0 OK <");
    let got = w.upstream.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, body, "body must arrive byte for byte");
    assert_eq!(got[0].mail_from, MAILBOX);
    assert_eq!(got[0].rcpts, ["a@example.net"]);
    assert_eq!(got[0].xoauth2_user, MAILBOX);
    assert!(got[0].tls);
    assert!(w.tokens.issued().contains(&got[0].token));
    assert!(
        got[0].mail_params.contains("SIZE="),
        "{}",
        got[0].mail_params
    );
    // The message's session (the start-up probe has one of its own, without MAIL).
    let transcripts = w.upstream.transcripts();
    let transcript = transcripts
        .iter()
        .find(|t| t.iter().any(|v| v == "MAIL"))
        .expect("the message's session");
    let starttls = transcript
        .iter()
        .position(|v| v == "STARTTLS")
        .expect("STARTTLS used");
    let auth = transcript
        .iter()
        .position(|v| v == "AUTH")
        .expect("AUTH used");
    assert!(starttls < auth, "AUTH only after STARTTLS: {transcript:?}");
    c.cmd("QUIT").await.expect_code(221);
}

#[tokio::test]
async fn ten_megabyte_attachment_arrives_intact() {
    let w = World::start().await;
    let mut c = w.logged_in().await;
    let mut body = b"Subject: big\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    let mut seed = 7u32;
    while body.len() < 10 * 1024 * 1024 {
        let line: Vec<u8> = (0..76)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/."
                    [(seed >> 16) as usize % 65]
            })
            .collect();
        body.extend_from_slice(&line);
        body.extend_from_slice(b"\r\n");
    }
    c.send_mail(MAILBOX, &["a@example.net"], &body)
        .await
        .expect_code(250);
    let got = w.upstream.messages();
    assert_eq!(got[0].body.len(), body.len());
    assert!(got[0].body == body, "10 MB body differs");
}

#[tokio::test]
async fn bcc_only_recipients_are_delivered_from_the_envelope() {
    let w = World::start().await;
    let mut c = w.logged_in().await;
    let body =
        b"From: <sender@contoso.com>\r\nTo: undisclosed-recipients:;\r\nSubject: bcc\r\n\r\nhi\r\n";
    c.send_mail(
        MAILBOX,
        &["hidden1@example.net", "hidden2@example.org"],
        body,
    )
    .await
    .expect_code(250);
    let got = &w.upstream.messages()[0];
    assert_eq!(got.rcpts, ["hidden1@example.net", "hidden2@example.org"]);
    assert_eq!(got.body, body, "no header added or changed");
}

#[tokio::test]
async fn one_hundred_fifty_recipients_pipelined_upstream() {
    let w = World::start().await;
    let mut c = w.logged_in().await;
    let rcpts: Vec<String> = (0..150).map(|i| format!("r{i}@example.net")).collect();
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    c.send_mail(MAILBOX, &refs, &message("r0@example.net", "many"))
        .await
        .expect_code(250);
    assert_eq!(w.upstream.messages()[0].rcpts, rcpts);
}

/// One refused recipient cancels the message for all. With PIPELINING, DATA went in the
/// envelope's group and the server answered `354` for the others, so the relay drops that
/// connection before any message data; without it, the transaction is reset before DATA.
#[tokio::test]
async fn refused_recipient_cancels_the_whole_message() {
    for pipelining in [true, false] {
        let w = World::start().await;
        w.upstream.script(|s| {
            s.pipelining = pipelining;
            s.rcpt_replies.insert(
                "bad@example.net".into(),
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found".into(),
            );
        });
        let mut c = w.logged_in().await;
        let r = c
            .send_mail(
                MAILBOX,
                &["good@example.net", "bad@example.net", "also@example.net"],
                &message("x", "y"),
            )
            .await;
        r.expect_code(550).expect_start("550 5.1.10 <bad@example.net> refused upstream at RCPT TO: 550 5.1.10 RESOLVER.ADR.RecipientNotFound");
        assert!(w.upstream.messages().is_empty(), "nobody may receive it");
        let cancelled: Vec<Vec<String>> = w
            .upstream
            .transcripts()
            .into_iter()
            .filter(|t| t.iter().any(|v| v == "RCPT"))
            .collect();
        assert_eq!(cancelled.len(), 1, "{cancelled:?}");
        if pipelining {
            assert_eq!(
                cancelled[0].last().map(String::as_str),
                Some("DATA"),
                "dropped at 354, before any message data: {cancelled:?}"
            );
        } else {
            assert_eq!(
                w.upstream.transactions_reset(),
                1,
                "the upstream transaction is reset"
            );
        }
        // The client's session goes on: the next message works.
        c.send_mail(MAILBOX, &["good@example.net"], &message("x", "y"))
            .await
            .expect_code(250);
    }
}

#[tokio::test]
async fn temporary_recipient_refusal_is_temporary_for_the_client() {
    let w = World::start().await;
    w.upstream
        .script(|s| s.rcpt_reply = Some("452 4.5.3 Too many recipients".into()));
    let mut c = w.logged_in().await;
    let r = c
        .send_mail(MAILBOX, &["a@example.net"], &message("x", "y"))
        .await;
    r.expect_code(451)
        .expect_start("451 4.5.3 upstream: 452 4.5.3 Too many recipients");
}

#[tokio::test]
async fn body_parameters_are_passed_upstream() {
    let w = World::start().await;
    let mut c = w.logged_in().await;
    c.cmd(&format!(
        "MAIL FROM:<{MAILBOX}> BODY=8BITMIME SMTPUTF8 SIZE=100"
    ))
    .await
    .expect_code(250);
    c.cmd("RCPT TO:<j\u{f6}rg@example.net>")
        .await
        .expect_code(250);
    c.cmd("DATA").await.expect_code(354);
    c.send_raw("Subject: \u{e9}\r\n\r\n\u{e9}\r\n.\r\n".as_bytes())
        .await;
    c.read_reply().await.expect_code(250);
    let got = &w.upstream.messages()[0];
    assert!(
        got.mail_params.contains("BODY=8BITMIME"),
        "{}",
        got.mail_params
    );
    assert!(got.mail_params.contains("SMTPUTF8"), "{}", got.mail_params);
    assert_eq!(got.rcpts, ["j\u{f6}rg@example.net"]);
}

#[tokio::test]
async fn smtputf8_refused_when_upstream_lacks_it() {
    let w = World::start().await;
    w.upstream.script(|s| s.smtputf8 = false);
    let mut c = w.logged_in().await;
    c.cmd(&format!("MAIL FROM:<{MAILBOX}> SMTPUTF8"))
        .await
        .expect_code(250);
    c.cmd("RCPT TO:<a@example.net>").await.expect_code(250);
    c.cmd("DATA").await.expect_code(354);
    c.send_raw(b"x\r\n.\r\n").await;
    c.read_reply()
        .await
        .expect_code(554)
        .expect_start("554 5.6.7");
    assert!(w.upstream.messages().is_empty());
}

#[tokio::test]
async fn never_more_upstream_connections_than_the_account_allows() {
    let w = World::start_with(|c| {
        account_mut(c).max_connections = 2;
    })
    .await;
    w.upstream.script(|s| s.max_concurrent_sessions = Some(2));
    assert_eq!(w.send_concurrently(8).await, vec![250; 8]);
    assert_eq!(w.upstream.messages().len(), 8);
    assert!(
        w.upstream.max_concurrent() <= 2,
        "peak {}",
        w.upstream.max_concurrent()
    );
}

#[tokio::test]
async fn the_daily_recipient_budget_refuses_before_the_upstream_and_survives_a_restart() {
    let state = std::env::temp_dir().join(format!("xoauth-relay-budget-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let mut w = World::start_with(|c| {
        account_mut(c).max_recipients_per_day = 3;
        c.state_dir = Some(state.clone());
    })
    .await;
    let mut c = w.logged_in().await;
    let body = message("a@example.net", "budget");
    c.send_mail(MAILBOX, &["a@example.net", "b@example.net"], &body)
        .await
        .expect_code(250);
    let r = c
        .send_mail(MAILBOX, &["c@example.net", "d@example.net"], &body)
        .await;
    r.expect_start("452 4.5.3 Daily recipient limit reached");
    assert!(r.text.contains("at most 3 recipients in 24 hours"), "{r:?}");
    assert_eq!(
        w.upstream.messages().len(),
        1,
        "refused before the upstream"
    );
    drop(c);
    w.restart().await;
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["c@example.net", "d@example.net"], &body)
        .await
        .expect_code(452);
    c.send_mail(MAILBOX, &["c@example.net"], &body)
        .await
        .expect_code(250);
    assert_eq!(w.upstream.messages().len(), 2);
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test]
async fn beyond_the_message_rate_and_the_slot_wait_the_client_gets_451() {
    let w = World::start_with(|c| {
        account_mut(c).max_messages_per_minute = 1;
        c.timeouts.upstream_slot_wait = std::time::Duration::from_secs(5);
    })
    .await;
    let mut c = w.logged_in().await;
    let body = message("a@example.net", "rate");
    c.send_mail(MAILBOX, &["a@example.net"], &body)
        .await
        .expect_code(250);
    c.send_mail(MAILBOX, &["a@example.net"], &body)
        .await
        .expect_start(
            "451 4.7.0 Sending rate limit reached: this account sends at most 1 messages a minute",
        );
    assert_eq!(w.upstream.messages().len(), 1);
}
