//! End to end for a delegated account through the built binary: `xoauth-relay login` with
//! the test as the browser (the URL read from its stdout, followed through the fake
//! `/authorize` back to the relay's loopback redirect), then `xoauth-relay run` and a message
//! from Python's `smtplib`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::binary::{BIN, RelayProcess, Scratch, python, write_ca};
use crate::common::*;
use xoauth_relay::testkit::{FakeTokenEndpoint, FakeUpstream, TestPki, init_crypto};

const SEND: &str = r#"
import smtplib, sys
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=30) as s:
    s.login(sys.argv[3], sys.argv[4])
    refused = s.sendmail(sys.argv[5], ["a@example.net"], b"Subject: delegated\r\n\r\nsent with a user's sign-in\r\n")
    print("refused=%r" % (refused,))
"#;

fn config_text(
    dir: &std::path::Path,
    tokens: &FakeTokenEndpoint,
    upstream: &FakeUpstream,
) -> String {
    let hash = xoauth_relay::auth::hash_password(PASSWORD).unwrap();
    format!(
        r#"hostname = "relay.e2e"
state_dir = "{state}"

[listen]
smtp = "127.0.0.1:0"
health = "127.0.0.1:0"

[delivery]
mode = "sync"

[[users]]
name = "{USER}"
password_hash = "{hash}"
account = "contoso"

[accounts.contoso]
mailbox = "{MAILBOX}"
tenant = "{TENANT}"
client_id = "{CLIENT_ID}"
auth = "delegated"
token_url = "{url}"
smtp_host = "127.0.0.1"
smtp_port = {port}
ca_file = "{ca}"
"#,
        state = dir.join("state").display(),
        url = tokens.url(TENANT),
        port = upstream.port(),
        ca = dir.join("ca.pem").display(),
    )
}

/// The test's browser: trusts the fake's CA and does not follow redirects by itself.
fn browser(pki: &TestPki) -> reqwest::Client {
    init_crypto();
    reqwest::Client::builder()
        .tls_backend_preconfigured(pki.client_config().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_in_a_scripted_browser_then_run_and_send_with_smtplib() {
    let pki = TestPki::new().unwrap();
    let tokens = FakeTokenEndpoint::start(&pki).unwrap();
    tokens.set_expected(CLIENT_ID, "unused: a public client sends none");
    let upstream = FakeUpstream::start(&pki, tokens.token_registry()).unwrap();
    upstream.script(|s| s.allowed_users = Some(vec![MAILBOX.to_string()]));
    let dir = Scratch::new("e2e-delegated");
    write_ca(&dir.0, &pki);
    let config = dir.0.join("relay.toml");
    std::fs::write(&config, config_text(&dir.0, &tokens, &upstream)).unwrap();

    let mut login = Command::new(BIN)
        .args(["login", "contoso", "--no-browser", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xoauth-relay login");
    let stdout = login.stdout.take().unwrap();
    let (url, rest) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let url = lines
            .by_ref()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("https://")
                    .map(|u| format!("https://{u}"))
            })
            .expect("the sign-in URL on stdout");
        (url, lines)
    })
    .await
    .unwrap();
    assert!(url.contains("/oauth2/v2.0/authorize?"), "{url}");
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    let browser = browser(&pki);
    let answer = browser.get(&url).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 302);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("http://localhost:"), "{location}");
    // The relay listens on 127.0.0.1; go there rather than ask the resolver about localhost.
    let loopback = location.replacen("http://localhost:", "http://127.0.0.1:", 1);
    let page = browser.get(&loopback).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("Signed in"));
    let (status, said) = tokio::task::spawn_blocking(move || {
        let said: Vec<String> = rest.collect();
        (login.wait().unwrap(), said.join("\n"))
    })
    .await
    .unwrap();
    assert!(status.success(), "login failed: {said}");
    let file = dir.0.join("state/tokens/contoso.refresh");
    assert!(
        said.contains(&format!("stored in {}", file.display())),
        "{said}"
    );
    let signed_in = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_eq!(tokens.refresh_tokens(), vec![signed_in.clone()]);
    let request = tokens.last_request().unwrap();
    assert_eq!(request.grant_type, "authorization_code");
    assert!(!request.has_secret());

    let relay = RelayProcess::start(&config, &[]);
    let (host, port) = relay.smtp.rsplit_once(':').unwrap();
    let said = python(SEND, &[host, port, USER, PASSWORD, MAILBOX]).await;
    assert!(said.contains("refused={}"), "{said}");
    let messages = upstream.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].xoauth2_user, MAILBOX);
    let scp = xoauth_relay::testkit::SMTP_SCOPE;
    let info = tokens.token_registry().lookup(&messages[0].token).unwrap();
    assert_eq!(info.scopes, [scp], "sent with the user's token");
    let rotated = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_ne!(
        rotated, signed_in,
        "the relay stored the rotated refresh token"
    );
    assert_eq!(tokens.refresh_tokens(), vec![rotated]);
    drop(relay);
}
