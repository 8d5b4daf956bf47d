//! End to end with an SMTP client nobody here wrote: Python's `smtplib` talks to the built
//! `xoauth-relay run` binary, which relays to the in-process stand-ins for Microsoft 365.
//! The relay is configured through a real TOML file and an environment override, listens on
//! port 0, and its bound address is read from its own log line (no fixed ports, no sleeping).

use std::time::Duration;

use crate::common::binary::{RelayProcess, Scratch, config_text, python, write_ca};
use crate::common::*;
use xoauth_relay::testkit::{FakeTokenEndpoint, FakeUpstream, TestPki, init_crypto};

/// The Python side: every step prints one JSON line the test checks.
const CLIENT: &str = r#"
import json, smtplib, sys
host, port = sys.argv[1], int(sys.argv[2])
out = {}
def attempt(name, fn):
    try:
        result = fn()
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], bytes):
            out[name] = [result[0], result[1].decode("utf-8", "replace")]
        else:
            out[name] = ["ok", repr(result)]
    except smtplib.SMTPResponseException as e:
        out[name] = [e.smtp_code, e.smtp_error.decode("utf-8", "replace")]
    except smtplib.SMTPRecipientsRefused as e:
        code, text = list(e.recipients.values())[0]
        out[name] = [code, text.decode("utf-8", "replace")]

body = ("From: Sender <sender@contoso.com>\r\nTo: <a@example.net>\r\nSubject: caf\u00e9\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        ".leading dot\r\n\u00fcber 8-bit\r\n" + "x" * 990 + "\r\n").encode("utf-8")

with smtplib.SMTP(host, port, timeout=30) as s:
    s.ehlo("python.test")
    out["features"] = sorted(s.esmtp_features.keys())
    attempt("mail_before_auth", lambda: s.mail("sender@contoso.com"))
    s.rset()
    attempt("bad_login", lambda: s.login("xenocept", "wrong-password"))
    s.login("xenocept", "local-pass")
    out["plain_send"] = s.sendmail("sender@contoso.com", ["a@example.net", "bcc@example.org"], body,
                                   mail_options=["BODY=8BITMIME"])
    attempt("foreign_sender", lambda: s.sendmail("ceo@fabrikam.com", ["a@example.net"], b"Subject: x\r\n\r\nx\r\n"))
    attempt("refused_rcpt", lambda: s.sendmail("sender@contoso.com", ["a@example.net", "gone@example.net"], b"Subject: y\r\n\r\ny\r\n"))

with smtplib.SMTP(host, port, timeout=30) as s:
    s.ehlo()
    s.user, s.password = "xenocept", "local-pass"
    code, _ = s.auth("LOGIN", s.auth_login)
    out["login_mechanism"] = code
    s.sendmail("sender@contoso.com", ["b@example.net"], b"Subject: login\r\n\r\nvia AUTH LOGIN\r\n")

import urllib.request
health = sys.argv[3]
out["readyz"] = urllib.request.urlopen("http://%s/readyz" % health, timeout=10).status
out["status"] = json.load(urllib.request.urlopen("http://%s/status" % health, timeout=10))
out["metrics"] = urllib.request.urlopen("http://%s/metrics" % health, timeout=10).read().decode()
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smtplib_through_the_built_binary() {
    init_crypto();
    let pki = TestPki::new().unwrap();
    let tokens = FakeTokenEndpoint::start(&pki).unwrap();
    tokens.set_expected(CLIENT_ID, CLIENT_SECRET);
    let upstream = FakeUpstream::start(&pki, tokens.token_registry()).unwrap();
    upstream.script(|s| {
        s.rcpt_replies
            .insert("gone@example.net".into(), "550 5.1.1 User unknown".into());
    });
    let dir = Scratch::new("e2e");
    write_ca(&dir.0, &pki);
    let hash = xoauth_relay::auth::hash_password(PASSWORD).unwrap();
    let users = format!(
        "[[users]]\nname = \"{USER}\"\npassword_hash = \"{hash}\"\naccount = \"contoso\"\n"
    );
    let config = dir.0.join("relay.toml");
    std::fs::write(&config, config_text(&dir.0, &tokens, &upstream, &users)).unwrap();
    let relay = RelayProcess::start(&config, &[("E2E_CLIENT_SECRET", CLIENT_SECRET)]);
    let (host, port) = relay.smtp.rsplit_once(':').unwrap();
    let (host, port, health) = (host.to_string(), port.to_string(), relay.health.clone());

    let stdout = python(CLIENT, &[&host, &port, &health]).await;
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json from python");

    let features: Vec<&str> = result["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for f in [
        "8bitmime",
        "auth",
        "enhancedstatuscodes",
        "pipelining",
        "size",
        "smtputf8",
    ] {
        assert!(features.contains(&f), "{f} not advertised: {features:?}");
    }
    assert_eq!(result["mail_before_auth"][0], 530);
    assert_eq!(result["bad_login"][0], 535);
    assert_eq!(
        result["plain_send"],
        serde_json::json!({}),
        "no recipient refused"
    );
    assert_eq!(result["foreign_sender"][0], 550);
    assert!(
        result["foreign_sender"][1]
            .as_str()
            .unwrap()
            .contains("allowed: sender@contoso.com")
    );
    assert_eq!(result["refused_rcpt"][0], 550);
    assert!(
        result["refused_rcpt"][1]
            .as_str()
            .unwrap()
            .contains("<gone@example.net>"),
        "{}",
        result["refused_rcpt"]
    );
    assert_eq!(result["login_mechanism"], 235);

    tokio::time::timeout(Duration::from_secs(10), upstream.wait_for_messages(2))
        .await
        .unwrap();
    let got = upstream.messages();
    assert_eq!(
        got.len(),
        2,
        "the refused-recipient message must not be delivered"
    );
    let first = &got[0];
    assert_eq!(first.rcpts, ["a@example.net", "bcc@example.org"]);
    assert_eq!(first.xoauth2_user, MAILBOX);
    let sent = format!(
        "From: Sender <sender@contoso.com>\r\nTo: <a@example.net>\r\nSubject: caf\u{e9}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         .leading dot\r\n\u{fc}ber 8-bit\r\n{}\r\n",
        "x".repeat(990)
    );
    assert_eq!(
        String::from_utf8_lossy(&first.body),
        sent,
        "byte-exact through smtplib and the relay"
    );
    assert!(first.mail_params.contains("BODY=8BITMIME"));
    assert_eq!(got[1].rcpts, ["b@example.net"]);
    assert_eq!(tokens.calls(), 1, "one token for the whole run");

    assert_eq!(result["readyz"], 200);
    let status = &result["status"]["accounts"]["contoso"];
    assert_eq!(status["mailbox"], MAILBOX);
    assert_eq!(status["messages"]["delivered"], 2);
    assert_eq!(
        status["messages"]["rejected_locally"], 1,
        "the foreign sender"
    );
    assert_eq!(
        status["messages"]["rejected_upstream"], 1,
        "the refused recipient"
    );
    assert_eq!(status["token"]["valid"], true);
    // smtplib tries PLAIN, then LOGIN, before giving up on the wrong password.
    assert_eq!(result["status"]["auth_failures"], 2);
    let metrics = result["metrics"].as_str().unwrap();
    assert!(
        metrics
            .contains("xoauth_relay_messages_total{account=\"contoso\",outcome=\"delivered\"} 2"),
        "{metrics}"
    );
    let all = serde_json::to_string(&result).unwrap();
    assert!(
        !all.contains(CLIENT_SECRET) && !all.contains(PASSWORD),
        "no secret in the endpoints"
    );
}

/// The Python side of the certificate run: one allowed recipient, one outside the domains.
const CERT_CLIENT: &str = r#"
import json, smtplib, sys
out = {}
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=30) as s:
    s.login("xenocept", "local-pass")
    out["allowed"] = s.sendmail("sender@contoso.com", ["a@example.net"], b"Subject: c\r\n\r\ncert\r\n")
    try:
        s.sendmail("sender@contoso.com", ["x@elsewhere.example"], b"Subject: d\r\n\r\nd\r\n")
        out["outside"] = "accepted"
    except smtplib.SMTPRecipientsRefused as e:
        code, text = list(e.recipients.values())[0]
        out["outside"] = [code, text.decode()]
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_account_with_recipient_domains_through_the_built_binary() {
    use xoauth_relay::testkit::client_cert::{self, APP_CERT_PEM, APP_KEY_PEM};
    init_crypto();
    let pki = TestPki::new().unwrap();
    let tokens = FakeTokenEndpoint::start(&pki).unwrap();
    tokens.set_expected(CLIENT_ID, CLIENT_SECRET);
    tokens.set_certificate(client_cert::der(APP_CERT_PEM).as_ref());
    let upstream = FakeUpstream::start(&pki, tokens.token_registry()).unwrap();
    let dir = Scratch::new("e2e-cert");
    write_ca(&dir.0, &pki);
    std::fs::write(dir.0.join("app.pem"), APP_CERT_PEM).unwrap();
    std::fs::write(dir.0.join("app.key"), APP_KEY_PEM).unwrap();
    let users =
        format!("[[users]]\nname = \"{USER}\"\npassword = \"{PASSWORD}\"\naccount = \"contoso\"\n");
    let text = config_text(&dir.0, &tokens, &upstream, &users).replace(
        "client_secret_env = \"E2E_CLIENT_SECRET\"",
        "provider = \"microsoft365\"\nclient_certificate = \"app.pem\"\nclient_key = \"app.key\"\n\
         allowed_recipient_domains = [\"example.net\"]",
    );
    assert!(text.contains("client_certificate"), "{text}");
    let config = dir.0.join("relay.toml");
    std::fs::write(&config, text).unwrap();
    let relay = RelayProcess::start(&config, &[]);
    let (host, port) = relay.smtp.rsplit_once(':').unwrap();
    let (host, port) = (host.to_string(), port.to_string());
    let stdout = python(CERT_CLIENT, &[&host, &port]).await;
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json from python");
    assert_eq!(result["allowed"], serde_json::json!({}), "{result}");
    assert_eq!(result["outside"][0], 550, "{result}");
    assert!(
        result["outside"][1]
            .as_str()
            .unwrap()
            .starts_with("5.7.1 Recipient <x@elsewhere.example> not allowed"),
        "{result}"
    );
    tokio::time::timeout(Duration::from_secs(10), upstream.wait_for_messages(1))
        .await
        .unwrap();
    assert_eq!(upstream.messages().len(), 1);
    let req = tokens.last_request().expect("a token request");
    assert!(
        req.client_assertion.is_some() && req.client_secret.is_none(),
        "{req:?}"
    );
}
