//! SIGHUP on the built binary: a valid new configuration adds a user without dropping
//! connections; an invalid one is refused with its problems logged and the old one kept.

use crate::common::binary::{RelayProcess, Scratch, config_text, write_ca};
use crate::common::*;
use xoauth_relay::testkit::{FakeTokenEndpoint, FakeUpstream, TestPki, init_crypto};

fn user(name: &str, password: &str) -> String {
    format!("[[users]]\nname = \"{name}\"\npassword = \"{password}\"\naccount = \"contoso\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_users_and_refuses_a_broken_file() {
    init_crypto();
    let pki = TestPki::new().unwrap();
    let tokens = FakeTokenEndpoint::start(&pki).unwrap();
    tokens.set_expected(CLIENT_ID, CLIENT_SECRET);
    let upstream = FakeUpstream::start(&pki, tokens.token_registry()).unwrap();
    let dir = Scratch::new("reload");
    write_ca(&dir.0, &pki);
    let path = dir.0.join("relay.toml");
    std::fs::write(
        &path,
        config_text(&dir.0, &tokens, &upstream, &user(USER, PASSWORD)),
    )
    .unwrap();
    let mut relay = RelayProcess::start(&path, &[("E2E_CLIENT_SECRET", CLIENT_SECRET)]);
    let addr = relay.smtp.parse().unwrap();
    let mut kept = Client::connect(addr).await;
    kept.ehlo().await;
    kept.auth_plain(USER, PASSWORD).await.expect_code(235);

    let both = format!("{}\n{}", user(USER, PASSWORD), user("printer", "scan"));
    std::fs::write(&path, config_text(&dir.0, &tokens, &upstream, &both)).unwrap();
    relay.signal("HUP");
    relay.wait_for_log("configuration reloaded");
    let mut c = Client::connect(addr).await;
    c.ehlo().await;
    c.auth_plain("printer", "scan").await.expect_code(235);
    kept.send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
        .await
        .expect_code(250);

    let broken = format!(
        "{}\nmax_recipents = 5\n",
        config_text(&dir.0, &tokens, &upstream, &both)
    );
    std::fs::write(&path, broken).unwrap();
    relay.signal("HUP");
    let refusal = relay.wait_for_log("reload refused");
    assert!(refusal.contains("max_recipents"), "{refusal}");
    let health = relay.health.parse().unwrap();
    let (_, status) = http_json(health, "/status").await;
    assert_eq!(status["last_reload"]["result"], "refused", "{status}");
    let problems = status["last_reload"]["problems"].as_str().unwrap();
    assert!(problems.contains("max_recipents"), "{problems}");
    let mut c = Client::connect(addr).await;
    c.ehlo().await;
    c.auth_plain("printer", "scan").await.expect_code(235);
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "c"))
        .await
        .expect_code(250);

    relay.signal("TERM");
    relay.wait_for_log("stopped");
    assert_eq!(relay.wait(), Some(0));
}
