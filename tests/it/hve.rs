//! High Volume Email accounts: a recipient HVE refuses (it delivers inside the tenant only) is
//! explained in the log and in `check`.

use xoauth_relay::config::Provider;

use crate::common::*;

const REFUSAL: &str = "550 5.7.1 Delivery not authorized, message refused";

fn hve_world() -> World {
    let w = World::stand_ins(|config| account_mut(config).provider = Provider::Hve);
    w.upstream.script(|s| s.rcpt_reply = Some(REFUSAL.into()));
    w
}

#[tokio::test]
async fn an_outside_recipient_refused_by_hve_is_explained_in_the_log() {
    let (logs, _guard) = LogCapture::this_thread();
    let mut w = hve_world();
    w.restart().await;
    let mut c = w.logged_in().await;
    let reply = c
        .send_mail(MAILBOX, &["someone@example.net"], &message("a", "b"))
        .await;
    reply.expect_code(550);
    let log = logs.text();
    assert!(
        log.contains("High Volume Email delivers to recipients inside the tenant only"),
        "{log}"
    );
    assert!(log.contains("allowed_recipient_domains"), "{log}");
}

#[tokio::test]
async fn the_same_refusal_on_a_microsoft365_account_is_not_blamed_on_hve() {
    let (logs, _guard) = LogCapture::this_thread();
    let mut w = hve_world();
    account_mut(&mut w.config).provider = Provider::Microsoft365;
    w.restart().await;
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["someone@example.net"], &message("a", "b"))
        .await
        .expect_code(550);
    assert!(!logs.text().contains("High Volume Email"));
}

#[tokio::test]
async fn check_explains_an_outside_recipient_refused_by_hve() {
    let w = hve_world();
    let mut out = Vec::new();
    let ok = xoauth_relay::check::run(&w.config, Some("someone@example.net"), &mut out).await;
    let text = String::from_utf8(out).unwrap();
    assert!(!ok, "{text}");
    assert!(
        text.contains("refused upstream") || text.contains("550 5.7.1"),
        "{text}"
    );
    assert!(
        text.contains("HVE sends only to recipients in your own organization"),
        "{text}"
    );
}
