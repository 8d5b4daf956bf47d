//! What the log says about each message and connection: local refusals with the user and the
//! reason, a TLS handshake on a plain port, and the per-message line's recipients, Message-ID
//! and upstream queue id. Each test captures only its own thread's log.

use crate::common::*;

#[tokio::test]
async fn a_message_refused_locally_leaves_one_line_with_user_and_reason() {
    let (log, _guard) = LogCapture::this_thread();
    let w = World::start_with(|c| c.limits.max_recipients = 1).await;
    let mut c = w.logged_in().await;
    c.cmd("MAIL FROM:<\"a\\\\b\"@evil.example>")
        .await
        .expect_code(550);
    c.cmd("MAIL FROM:<intruder@evil.example>")
        .await
        .expect_code(550);
    c.cmd(&format!("MAIL FROM:<{MAILBOX}>"))
        .await
        .expect_code(250);
    c.cmd("RCPT TO:<a@example.net>").await.expect_code(250);
    c.cmd("RCPT TO:<b@example.net>").await.expect_code(452);
    c.cmd("RCPT TO:<c@example.net>").await.expect_code(452);
    c.cmd("QUIT").await;
    let text = log.text();
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("message refused locally"))
        .collect();
    assert_eq!(refused.len(), 3, "{text}");
    assert!(
        refused[1].contains(&format!("user={USER}"))
            && refused[1].contains("sender=intruder@evil.example")
            && refused[1].contains("reason=\"sender not allowed\""),
        "{text}"
    );
    assert!(
        refused[0].contains(r#"sender="a\\\\b"@evil.example"#),
        "escaped: {}",
        refused[0]
    );
    assert!(
        refused[2].contains("reason=\"too many recipients\""),
        "{text}"
    );
    assert!(refused.iter().all(|l| l.contains(" INFO ")), "{text}");
}

#[tokio::test]
async fn a_recipient_outside_the_accounts_domains_is_refused_at_rcpt_and_logged() {
    let (log, _guard) = LogCapture::this_thread();
    let w = World::start_with(|c| {
        account_mut(c).allowed_recipient_domains = vec!["contoso.com".into()];
    })
    .await;
    let mut c = w.logged_in().await;
    c.cmd(&format!("MAIL FROM:<{MAILBOX}>"))
        .await
        .expect_code(250);
    c.cmd("RCPT TO:<someone@example.net>").await.expect_start(
        "550 5.7.1 Recipient <someone@example.net> not allowed: this relay sends only to contoso.com",
    );
    c.cmd("RCPT TO:<colleague@contoso.com>")
        .await
        .expect_code(250);
    c.cmd("DATA").await.expect_code(354);
    c.send_raw(b"Subject: x\r\n\r\nhi\r\n.\r\n").await;
    c.read_reply().await.expect_code(250);
    c.cmd("QUIT").await;
    assert_eq!(w.upstream.messages()[0].rcpts, ["colleague@contoso.com"]);
    let text = log.text();
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("message refused locally"))
        .collect();
    assert_eq!(refused.len(), 1, "{text}");
    assert!(
        refused[0].contains(&format!("sender={MAILBOX}"))
            && refused[0].contains("reason=\"recipient domain not allowed\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_tls_handshake_on_the_plain_port_is_logged_at_info() {
    let (log, _guard) = LogCapture::this_thread();
    let w = World::start().await;
    let mut c = w.client().await;
    c.send_raw(&[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x03])
        .await;
    assert!(c.read_reply().await.text.contains("TLS handshake"));
    assert!(c.is_closed().await);
    let text = log.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("TLS handshake to a plain-text port"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains(" INFO "), "{text}");
}

/// The line for a delivered message, with `rcpts` and `body` sent through `w`.
async fn delivered_line(w: &World, log: &LogCapture, rcpts: &[&str], body: &[u8]) -> String {
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, rcpts, body).await.expect_code(250);
    c.cmd("QUIT").await;
    let text = log.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("message delivered"))
        .collect();
    lines.last().unwrap_or_else(|| panic!("{text}")).to_string()
}

#[tokio::test]
async fn the_message_line_names_recipients_message_id_and_upstream_queue_id() {
    let (log, _guard) = LogCapture::this_thread();
    let w = World::start().await;
    w.upstream.script(|s| {
        s.final_reply = Some(
            "250 2.6.0 <PH0PR11MB4871.1@PH0PR11MB4871.namprd11.prod.outlook.com> \
             [InternalId=1176821656, Hostname=PH0PR11MB4871] Queued mail for delivery"
                .into(),
        )
    });
    let body = b"From: <sender@contoso.com>\r\nMessage-ID:\r\n <invoice-42\x1b[31m@billing.contoso.com>\r\nSubject: Invoice\r\n\r\nMessage-ID: <not-this@x>\r\n";
    let line = delivered_line(&w, &log, &["a@example.net", "b@fabrikam.example"], body).await;
    assert!(
        line.contains(r#"to=["a@example.net","b@fabrikam.example"]"#),
        "{line}"
    );
    assert!(
        line.contains("message_id=<invoice-42\\u{1b}[31m@billing.contoso.com>"),
        "escaped: {line}"
    );
    assert!(
        line.contains("upstream_id=<PH0PR11MB4871.1@PH0PR11MB4871.namprd11.prod.outlook.com>"),
        "{line}"
    );
    assert!(line.contains(r#"session="new""#), "{line}");

    let line = delivered_line(
        &w,
        &log,
        &["a@example.net"],
        b"Subject: no id\r\n\r\nhi\r\n",
    )
    .await;
    assert!(!line.contains("message_id="), "no header, no field: {line}");
    assert!(
        line.contains(r#"session="reused""#),
        "the first message's session, kept: {line}"
    );
}

#[tokio::test]
async fn log_recipients_domain_keeps_addresses_out_of_the_log() {
    let (log, _guard) = LogCapture::this_thread();
    let w =
        World::start_with(|c| c.log.recipients = xoauth_relay::config::LogRecipients::Domain).await;
    let rcpts = [
        "alice@fabrikam.example",
        "bob@example.net",
        "carol@fabrikam.example",
    ];
    let line = delivered_line(&w, &log, &rcpts, &message("x", "s")).await;
    assert!(
        line.contains(r#"to=["example.net","fabrikam.example"]"#),
        "{line}"
    );
    assert!(!line.contains("alice") && !line.contains("bob"), "{line}");
}
