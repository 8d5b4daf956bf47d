//! The other account kinds end to end: Python's `smtplib` through the built binary to the
//! stand-ins, for a High Volume Email account (app-only XOAUTH2; an outside recipient refused and
//! explained) and an Azure Communication Services one (AUTH LOGIN with the SMTP Username and the
//! secret, no token).

use std::time::Duration;

use crate::common::binary::{RelayProcess, Scratch, config_text, python, write_ca};
use crate::common::*;
use xoauth_relay::testkit::{FakeTokenEndpoint, FakeUpstream, TestPki, init_crypto};

const CLIENT: &str = r#"
import json, smtplib, sys
out = []
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=30) as s:
    s.login("xenocept", "local-pass")
    for to in sys.argv[3:]:
        try:
            s.sendmail("sender@contoso.com", [to], b"Subject: kind\r\n\r\nhello\r\n")
            out.append(250)
        except smtplib.SMTPResponseException as e:
            out.append(e.smtp_code)
        except smtplib.SMTPRecipientsRefused as e:
            out.append(list(e.recipients.values())[0][0])
print(json.dumps(out))
"#;

fn users() -> String {
    format!("[[users]]\nname = \"{USER}\"\npassword = \"{PASSWORD}\"\naccount = \"contoso\"\n")
}

/// Sends one message to each of `to` with smtplib; the codes it got.
async fn send(relay: &RelayProcess, to: &[&str]) -> Vec<u16> {
    let (host, port) = relay.smtp.rsplit_once(':').unwrap();
    let mut args = vec![host, port];
    args.extend(to);
    let stdout = python(CLIENT, &args).await;
    serde_json::from_str(stdout.trim()).expect("json from python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_volume_email_account_through_the_built_binary() {
    init_crypto();
    let pki = TestPki::new().unwrap();
    let tokens = FakeTokenEndpoint::start(&pki).unwrap();
    tokens.set_expected(CLIENT_ID, CLIENT_SECRET);
    let upstream = FakeUpstream::start(&pki, tokens.token_registry()).unwrap();
    upstream.script(|s| {
        s.rcpt_replies.insert(
            "someone@elsewhere.example".into(),
            "550 5.7.1 Delivery not authorized, message refused".into(),
        );
    });
    let dir = Scratch::new("e2e-hve");
    write_ca(&dir.0, &pki);
    let text = config_text(&dir.0, &tokens, &upstream, &users()).replace(
        "client_secret_env = \"E2E_CLIENT_SECRET\"",
        "provider = \"hve\"\nclient_secret_env = \"E2E_CLIENT_SECRET\"",
    );
    let config = dir.0.join("relay.toml");
    std::fs::write(&config, text).unwrap();
    let mut relay = RelayProcess::start(&config, &[("E2E_CLIENT_SECRET", CLIENT_SECRET)]);
    let codes = send(
        &relay,
        &["colleague@contoso.com", "someone@elsewhere.example"],
    )
    .await;
    assert_eq!(codes, [250, 550]);
    relay.wait_for_log("High Volume Email delivers to recipients inside the tenant only");
    tokio::time::timeout(Duration::from_secs(10), upstream.wait_for_messages(1))
        .await
        .unwrap();
    let got = upstream.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpts, ["colleague@contoso.com"]);
    assert_eq!(got[0].xoauth2_user, MAILBOX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_communication_services_account_through_the_built_binary() {
    init_crypto();
    let pki = TestPki::new().unwrap();
    let tokens = FakeTokenEndpoint::start(&pki).unwrap();
    let upstream = FakeUpstream::start(&pki, tokens.token_registry()).unwrap();
    upstream.script(|s| s.login = Some(("relay-smtp-user".into(), CLIENT_SECRET.into())));
    let dir = Scratch::new("e2e-acs");
    write_ca(&dir.0, &pki);
    let text: String = config_text(&dir.0, &tokens, &upstream, &users())
        .lines()
        .filter(|l| !["tenant", "client_id", "token_url"].iter().any(|k| l.starts_with(k)))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace(
            "client_secret_env = \"E2E_CLIENT_SECRET\"",
            "provider = \"acs\"\nsmtp_username = \"relay-smtp-user\"\nclient_secret_env = \"E2E_CLIENT_SECRET\"",
        );
    let config = dir.0.join("relay.toml");
    std::fs::write(&config, text).unwrap();
    let relay = RelayProcess::start(&config, &[("E2E_CLIENT_SECRET", CLIENT_SECRET)]);
    assert_eq!(
        send(&relay, &["a@example.net", "b@example.net"]).await,
        [250, 250]
    );
    tokio::time::timeout(Duration::from_secs(10), upstream.wait_for_messages(2))
        .await
        .unwrap();
    let got = upstream.messages();
    assert_eq!(got[0].xoauth2_user, "relay-smtp-user");
    assert_eq!(tokens.calls(), 0, "an ACS account asks for no token");
}
