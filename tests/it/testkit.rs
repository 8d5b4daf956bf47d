//! Integration tests of the Microsoft 365 stand-ins themselves (`xoauth_relay::testkit`):
//! the token endpoint through reqwest, the SMTP upstream through mail-send, all on loopback.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mail_send::smtp::message::Parameters;
use mail_send::{Credentials, SmtpClient, SmtpClientBuilder};
use rustls_pki_types::CertificateDer;
use serde_json::Value;
use smtp_proto::{AUTH_XOAUTH2, EXT_START_TLS, Response};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use xoauth_relay::testkit::{
    self, DEFAULT_SCOPE, FakeTokenEndpoint, FakeUpstream, Phase, TestPki, TokenMode,
};

const TENANT: &str = "contoso.onmicrosoft.com";
const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const SECRET: &str = "s3cr3t~value+/=&";
const USER: &str = "relay@contoso.test";

/// Short client timeout for the "server never answers" cases: the one place a real timeout is
/// used. A paused tokio clock would auto-advance while the runtime waits on real sockets, so it
/// could fire before the server even saw the request; instead each test first waits (by
/// notification) until the server has the request, and only then gives it this long to answer.
const NO_ANSWER_WINDOW: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------------
// helpers

fn pki() -> TestPki {
    TestPki::new().expect("test PKI")
}

/// A rustls client config with the given CA as its only root, ring provider passed explicitly.
fn rustls_client_config_trusting(ca: CertificateDer<'static>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).expect("CA accepted");
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn http_client(ca: CertificateDer<'static>) -> reqwest::Client {
    testkit::init_crypto();
    reqwest::Client::builder()
        .tls_backend_preconfigured(rustls_client_config_trusting(ca))
        .build()
        .expect("reqwest client")
}

async fn post_token(client: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> (u16, String) {
    let response = client.post(url).form(form).send().await.expect("response");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

fn good_form() -> Vec<(&'static str, &'static str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("scope", DEFAULT_SCOPE),
    ]
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).expect("JSON body")
}

fn jwt_claims(token: &str) -> Value {
    let claims = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("base64url")).expect("claims")
}

/// Asserts an Entra error body: status, `error`, first code and the description prefix.
fn assert_aad_error(status: u16, body: &str, want_status: u16, error: &str, code: u64) {
    assert_eq!(status, want_status, "{body}");
    let v = json(body);
    assert_eq!(v["error"], error);
    assert_eq!(v["error_codes"][0], code);
    let description = v["error_description"].as_str().expect("description");
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    assert!(description.contains("\r\nTrace ID: ") && description.contains("\r\nTimestamp: "));
    assert_eq!(v["trace_id"].as_str().map(str::len), Some(36));
    assert!(v["correlation_id"].is_string() && v["timestamp"].is_string());
    assert_eq!(
        v["error_uri"],
        format!("https://login.microsoftonline.com/error?code={code}")
    );
}

/// A token endpoint and an upstream that share one registry.
struct Stack {
    pki: TestPki,
    endpoint: FakeTokenEndpoint,
    upstream: FakeUpstream,
}

fn stack() -> Stack {
    let pki = pki();
    let endpoint = FakeTokenEndpoint::start(&pki).expect("endpoint");
    let upstream = FakeUpstream::start(&pki, endpoint.token_registry()).expect("upstream");
    Stack {
        pki,
        endpoint,
        upstream,
    }
}

async fn token_from(stack: &Stack) -> String {
    let client = http_client(stack.pki.ca_der());
    let (status, body) = post_token(&client, &stack.endpoint.url(TENANT), &good_form()).await;
    assert_eq!(status, 200, "{body}");
    json(&body)["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

fn builder(ca: CertificateDer<'static>, upstream: &FakeUpstream) -> SmtpClientBuilder<String> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(rustls_client_config_trusting(ca)));
    let mut b = SmtpClientBuilder::new_with_tls_connector("localhost".to_string(), 587, connector)
        .implicit_tls(false)
        .helo_host("relay.test")
        .timeout(Duration::from_secs(10))
        .say_ehlo(false);
    // Dial the fake's port while verifying the certificate for "localhost": mail-send derives
    // the connect address from the TLS name, so the address is set after.
    b.addr = upstream.addr().to_string();
    b
}

type TlsClient = SmtpClient<TlsStream<TcpStream>>;

/// Greeting, EHLO, STARTTLS, fresh EHLO: ready for AUTH.
async fn connect_tls(stack: &Stack) -> TlsClient {
    let mut client = builder(stack.pki.ca_der(), &stack.upstream)
        .connect()
        .await
        .expect("STARTTLS session");
    let caps = client.ehlo("relay.test").await.expect("EHLO after TLS");
    assert_ne!(
        caps.auth_mechanisms & AUTH_XOAUTH2,
        0,
        "XOAUTH2 advertised after TLS"
    );
    client
}

fn xoauth2_blob(user: &str, token: &str) -> String {
    STANDARD.encode(format!("user={user}\x01auth=Bearer {token}\x01\x01"))
}

/// The two-step form Exchange documents: `AUTH XOAUTH2`, `334 `, then the blob.
async fn auth_two_step(client: &mut TlsClient, user: &str, token: &str) -> Response<String> {
    let challenge = client.cmd(b"AUTH XOAUTH2\r\n").await.expect("334");
    // smtp-proto 0.2.5 parses "334 \r\n" as message "\r", hence the trim.
    assert_eq!((challenge.code, challenge.message.trim()), (334, ""));
    let blob = format!("{}\r\n", xoauth2_blob(user, token));
    client.cmd(blob.as_bytes()).await.expect("AUTH reply")
}

async fn logged_in(stack: &Stack) -> TlsClient {
    let token = token_from(stack).await;
    let mut client = connect_tls(stack).await;
    let reply = auth_two_step(&mut client, USER, &token).await;
    assert_eq!(reply.code, 235, "{reply:?}");
    client
}

fn unexpected(result: mail_send::Result<impl std::fmt::Debug>) -> Response<String> {
    match result {
        Err(mail_send::Error::UnexpectedReply(reply)) => reply,
        other => panic!("expected an SMTP error reply, got {other:?}"),
    }
}

fn params() -> Parameters<'static> {
    Parameters::default()
}

// ---------------------------------------------------------------------------------------------
// token endpoint

#[tokio::test]
async fn token_endpoint_issues_a_jwt_shaped_token() {
    let pki = pki();
    let endpoint = FakeTokenEndpoint::start(&pki).expect("endpoint");
    endpoint.set_expected(CLIENT_ID, SECRET);
    let client = http_client(pki.ca_der());

    let (status, body) = post_token(&client, &endpoint.url(TENANT), &good_form()).await;

    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(
        (v["expires_in"].as_u64(), v["ext_expires_in"].as_u64()),
        (Some(3599), Some(3599))
    );
    let token = v["access_token"].as_str().expect("token");
    assert!(token.len() >= 1200, "token length {}", token.len());
    let claims = jwt_claims(token);
    assert_eq!(claims["aud"], "https://outlook.office.com");
    assert_eq!(
        (claims["tid"].as_str(), claims["appid"].as_str()),
        (Some(TENANT), Some(CLIENT_ID))
    );
    assert_eq!(claims["roles"], serde_json::json!(["SMTP.SendAsApp"]));
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    assert_eq!(exp.zip(iat).map(|(e, i)| e - i), Some(3599));
    assert!(claims["nbf"].is_u64() && claims["jti"].is_string() && claims["iss"].is_string());

    assert_eq!(endpoint.calls(), 1);
    assert_eq!(endpoint.issued(), vec![token.to_string()]);
    assert!(endpoint.token_registry().check(token));
    let seen = endpoint.last_request().expect("recorded");
    assert_eq!(
        (seen.tenant.as_str(), seen.grant_type.as_str()),
        (TENANT, "client_credentials")
    );
    assert_eq!(
        (seen.client_id.as_str(), seen.scope.as_str()),
        (CLIENT_ID, DEFAULT_SCOPE)
    );
    assert!(seen.has_secret());
    // The secret is kept (percent-decoded) but never printed.
    assert_eq!(
        seen.client_secret.as_ref().map(|s| s.expose().as_str()),
        Some(SECRET)
    );
    assert!(!format!("{seen:?}").contains("s3cr3t"));
}

#[tokio::test]
async fn every_token_is_distinct_and_keep_alive_works() {
    let pki = pki();
    let endpoint = FakeTokenEndpoint::start(&pki).expect("endpoint");
    let client = http_client(pki.ca_der());
    let url = endpoint.url(TENANT);
    let (_, first) = post_token(&client, &url, &good_form()).await;
    let (_, second) = post_token(&client, &url, &good_form()).await;
    assert_ne!(json(&first)["access_token"], json(&second)["access_token"]);
    assert_eq!(endpoint.calls(), 2);
    assert_eq!(endpoint.issued().len(), 2);
}

#[tokio::test]
async fn token_endpoint_validates_credentials_scope_and_grant() {
    let pki = pki();
    let endpoint = FakeTokenEndpoint::start(&pki).expect("endpoint");
    endpoint.set_expected(CLIENT_ID, SECRET);
    let client = http_client(pki.ca_der());
    let url = endpoint.url(TENANT);
    let with = |key: &'static str, value: &'static str| {
        let mut form = good_form();
        form.retain(|(k, _)| *k != key);
        form.push((key, value));
        form
    };

    let (s, b) = post_token(&client, &url, &with("client_secret", "wrong")).await;
    assert_aad_error(s, &b, 401, "invalid_client", 7000215);
    let (s, b) = post_token(&client, &url, &with("client_id", "someone-else")).await;
    assert_aad_error(s, &b, 400, "unauthorized_client", 700016);
    let (s, b) = post_token(
        &client,
        &url,
        &with("scope", "https://graph.microsoft.com/.default"),
    )
    .await;
    assert_aad_error(s, &b, 400, "invalid_scope", 70011);
    let (s, b) = post_token(&client, &url, &with("grant_type", "password")).await;
    assert_aad_error(s, &b, 400, "unsupported_grant_type", 70003);
    let (s, b) = post_token(&client, &url, &with("client_secret", "")).await;
    assert_aad_error(s, &b, 401, "invalid_client", 7000218);

    assert_eq!(endpoint.calls(), 5);
    assert!(endpoint.issued().is_empty());
}

#[tokio::test]
async fn token_endpoint_error_modes() {
    let pki = pki();
    let endpoint = FakeTokenEndpoint::start(&pki).expect("endpoint");
    let client = http_client(pki.ca_der());
    let url = endpoint.url(TENANT);
    let cases = [
        (
            TokenMode::invalid_client_secret(),
            401,
            "invalid_client",
            7000215,
        ),
        (
            TokenMode::expired_client_secret(),
            401,
            "invalid_client",
            7000222,
        ),
        (
            TokenMode::application_not_found(),
            400,
            "unauthorized_client",
            700016,
        ),
        (TokenMode::tenant_not_found(), 400, "invalid_request", 90002),
        (TokenMode::invalid_scope(), 400, "invalid_scope", 70011),
        (
            TokenMode::resource_principal_not_found(),
            400,
            "invalid_resource",
            500011,
        ),
        (
            TokenMode::error(503, "temporarily_unavailable", vec![50033], "Retry."),
            503,
            "temporarily_unavailable",
            50033,
        ),
    ];
    for (mode, status, error, code) in cases {
        endpoint.set_mode(mode);
        let (s, b) = post_token(&client, &url, &good_form()).await;
        assert_aad_error(s, &b, status, error, code);
    }

    endpoint.set_mode(TokenMode::ServerError);
    let (s, b) = post_token(&client, &url, &good_form()).await;
    assert_eq!(s, 500);
    assert!(serde_json::from_str::<Value>(&b).is_err(), "{b}");

    endpoint.set_mode(TokenMode::Garbage);
    let response = client
        .post(&url)
        .form(&good_form())
        .send()
        .await
        .expect("response");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.json::<Value>().await.is_err());

    assert_eq!(endpoint.calls(), 9);
    assert!(endpoint.issued().is_empty());
}

#[tokio::test]
async fn hang_mode_reads_the_request_and_never_answers() {
    let pki = pki();
    let endpoint = FakeTokenEndpoint::start(&pki).expect("endpoint");
    endpoint.set_mode(TokenMode::Hang);
    let client = http_client(pki.ca_der());
    let url = endpoint.url(TENANT);
    let request = tokio::spawn(async move { client.post(url).form(&good_form()).send().await });

    endpoint.wait_for_calls(1).await;
    let outcome = tokio::time::timeout(NO_ANSWER_WINDOW, request).await;

    assert!(outcome.is_err(), "the endpoint answered: {outcome:?}");
    assert_eq!(
        endpoint.last_request().map(|r| r.client_id),
        Some(CLIENT_ID.to_string())
    );
}

#[tokio::test]
async fn token_settings_change_lifetime_roles_and_tenants() {
    let pki = pki();
    let endpoint = FakeTokenEndpoint::start(&pki).expect("endpoint");
    endpoint.set_expires_in(60);
    endpoint.set_roles(Vec::new());
    endpoint.set_tenants(Some(vec![TENANT.to_string()]));
    let client = http_client(pki.ca_der());

    let (s, b) = post_token(&client, &endpoint.url(TENANT), &good_form()).await;
    assert_eq!(s, 200, "{b}");
    let v = json(&b);
    assert_eq!(v["expires_in"], 60);
    assert!(jwt_claims(v["access_token"].as_str().expect("token"))["roles"].is_null());

    let (s, b) = post_token(&client, &endpoint.url("fabrikam"), &good_form()).await;
    assert_aad_error(s, &b, 400, "invalid_request", 90002);
}

#[tokio::test]
async fn token_endpoint_rejects_other_paths_and_untrusting_clients() {
    let pki = pki();
    let endpoint = FakeTokenEndpoint::start(&pki).expect("endpoint");
    let client = http_client(pki.ca_der());
    let base = format!("https://127.0.0.1:{}", endpoint.addr().port());
    let response = client
        .get(format!("{base}/nothing"))
        .send()
        .await
        .expect("404");
    assert_eq!(response.status().as_u16(), 404);
    let response = client.get(endpoint.url(TENANT)).send().await.expect("405");
    assert_eq!(response.status().as_u16(), 405);

    let stranger = http_client(TestPki::new().expect("other PKI").ca_der());
    let result = stranger
        .post(endpoint.url(TENANT))
        .form(&good_form())
        .send()
        .await;
    assert!(result.is_err(), "a client trusting another CA connected");
}

// ---------------------------------------------------------------------------------------------
// fake upstream

#[tokio::test]
async fn two_step_xoauth2_then_a_message_arrives() {
    let stack = stack();
    let token = token_from(&stack).await;
    let mut client = connect_tls(&stack).await;

    let reply = auth_two_step(&mut client, USER, &token).await;
    assert_eq!((reply.code, reply.esc), (235, [2, 7, 0]), "{reply:?}");
    let mut p = Parameters::new();
    p.add(("BODY", "8BITMIME"));
    client
        .mail_from("sender@contoso.test", &p)
        .await
        .expect("MAIL");
    client
        .rcpt_to("rcpt@example.test", &params())
        .await
        .expect("RCPT");
    let done = client
        .data(b"Subject: hi\r\n\r\nhello")
        .await
        .expect("DATA");
    assert_eq!((done.code, done.esc), (250, [2, 0, 0]));
    client.quit().await.expect("QUIT");

    let got = stack.upstream.next_message().await;
    assert!(done.message.contains(&got.message_id), "{done:?}");
    assert_eq!(
        (got.mail_from.as_str(), got.mail_params.as_str()),
        ("sender@contoso.test", "BODY=8BITMIME")
    );
    assert_eq!(got.rcpts, vec!["rcpt@example.test".to_string()]);
    assert_eq!(got.body, b"Subject: hi\r\n\r\nhello\r\n".to_vec());
    assert_eq!(
        (got.xoauth2_user.as_str(), got.token.as_str(), got.tls),
        (USER, token.as_str(), true)
    );
    let verbs = [
        "EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT",
    ];
    assert_eq!(
        stack.upstream.transcripts(),
        vec![verbs.map(String::from).to_vec()]
    );
    assert_eq!(
        (stack.upstream.connections(), stack.upstream.auth_attempts()),
        (1, 1)
    );
}

#[tokio::test]
async fn one_line_xoauth2_from_mail_send_credentials_works() {
    let stack = stack();
    let token = token_from(&stack).await;
    let client = builder(stack.pki.ca_der(), &stack.upstream)
        .say_ehlo(true)
        .credentials(Credentials::new_xoauth2(USER.to_string(), token.clone()))
        .connect()
        .await
        .expect("authenticated session");
    client.quit().await.expect("QUIT");
    assert_eq!(stack.upstream.auth_attempts(), 1);
}

#[tokio::test]
async fn revoked_expired_or_roleless_tokens_get_535_5_7_3() {
    let stack = stack();
    let registry = stack.upstream.token_registry();
    let revoked = token_from(&stack).await;
    let expired = token_from(&stack).await;
    assert!(registry.revoke(&revoked) && registry.expire(&expired));
    stack.endpoint.set_roles(Vec::new());
    let roleless = token_from(&stack).await;

    for token in [revoked, expired, roleless, "not-a-token".to_string()] {
        let mut client = connect_tls(&stack).await;
        let reply = auth_two_step(&mut client, USER, &token).await;
        assert_eq!((reply.code, reply.esc), (535, [5, 7, 3]), "{reply:?}");
        assert_eq!(
            reply.message,
            "Authentication unsuccessful [fake.outlook.test]"
        );
    }
}

#[tokio::test]
async fn allowed_users_limits_the_mailbox() {
    let stack = stack();
    stack
        .upstream
        .script(|s| s.allowed_users = Some(vec!["Relay@Contoso.test".into()]));
    let token = token_from(&stack).await;
    let mut client = connect_tls(&stack).await;
    assert_eq!(
        auth_two_step(&mut client, "other@contoso.test", &token)
            .await
            .code,
        535
    );
    assert_eq!(auth_two_step(&mut client, USER, &token).await.code, 235);
}

#[tokio::test]
async fn mail_before_auth_gets_530_5_7_57() {
    let stack = stack();
    let mut client = connect_tls(&stack).await;
    let reply = unexpected(client.mail_from("a@contoso.test", &params()).await);
    assert_eq!((reply.code, reply.esc), (530, [5, 7, 57]));
    assert!(stack.upstream.messages().is_empty());
}

#[tokio::test]
async fn before_starttls_there_is_no_auth_and_auth_or_mail_get_530_5_7_0() {
    let stack = stack();
    let mut client = builder(stack.pki.ca_der(), &stack.upstream)
        .connect_plain()
        .await
        .expect("plain session");
    let caps = client.ehlo("relay.test").await.expect("EHLO");
    assert!(caps.has_capability(EXT_START_TLS));
    assert_eq!(caps.auth_mechanisms, 0, "no AUTH before TLS");
    assert_eq!(caps.size, 157_286_400);

    let token = stack
        .upstream
        .token_registry()
        .issue_for_test(TENANT, CLIENT_ID);
    let auth = format!("AUTH XOAUTH2 {}\r\n", xoauth2_blob(USER, &token));
    let reply = client.cmd(auth.as_bytes()).await.expect("reply");
    assert_eq!((reply.code, reply.esc), (530, [5, 7, 0]), "{reply:?}");
    let reply = unexpected(client.mail_from("a@contoso.test", &params()).await);
    assert_eq!((reply.code, reply.esc), (530, [5, 7, 0]));
    assert_eq!(stack.upstream.auth_attempts(), 1);
}

#[tokio::test]
async fn bodies_arrive_byte_exact() {
    let stack = stack();
    let mut client = logged_in(&stack).await;
    let long_line = "x".repeat(998);
    let mut body = Vec::new();
    body.extend_from_slice("Subject: caf\u{e9} \u{1F600}\r\n\r\n".as_bytes());
    body.extend_from_slice(b"raw 8-bit: \xff\xfe\x80\r\n");
    body.extend_from_slice(b".starts with a dot\r\n..two dots\r\n.\r\n\r\n");
    body.extend_from_slice(long_line.as_bytes());
    body.extend_from_slice(b"\r\nlast line");

    client
        .mail_from("a@contoso.test", &params())
        .await
        .expect("MAIL");
    client
        .rcpt_to("b@example.test", &params())
        .await
        .expect("RCPT");
    client.data(&body).await.expect("DATA");

    let mut expected = body.clone();
    expected.extend_from_slice(b"\r\n"); // mail-send's terminator adds the final CRLF
    assert_eq!(stack.upstream.next_message().await.body, expected);
}

#[tokio::test]
async fn empty_body_and_a_stuffed_first_line_are_unstuffed_correctly() {
    let stack = stack();
    let mut client = logged_in(&stack).await;
    for (wire, expected) in [
        (&b".\r\n"[..], &b""[..]),
        (b"..dot first\r\n.\r\n", b".dot first\r\n"),
    ] {
        client
            .mail_from("a@contoso.test", &params())
            .await
            .expect("MAIL");
        client
            .rcpt_to("b@example.test", &params())
            .await
            .expect("RCPT");
        assert_eq!(client.cmd(b"DATA\r\n").await.expect("354").code, 354);
        assert_eq!(client.cmd(wire).await.expect("final").code, 250);
        assert_eq!(stack.upstream.next_message().await.body, expected.to_vec());
    }
}

/// Pins a mail-send 0.7.0 quirk the relay must work around: `write_message` dot-stuffs only
/// after CR or LF, so a leading `.` on the *first* body line goes out unstuffed and a correct
/// server strips it. The relay should prepend one extra `.` when a body starts with `.`.
#[tokio::test]
async fn mail_send_does_not_stuff_a_leading_dot_on_the_first_line() {
    let stack = stack();
    let mut client = logged_in(&stack).await;
    for (body, expected) in [
        (&b".hidden"[..], &b"hidden\r\n"[..]),
        (b"..hidden", b".hidden\r\n"),
    ] {
        client
            .mail_from("a@contoso.test", &params())
            .await
            .expect("MAIL");
        client
            .rcpt_to("b@example.test", &params())
            .await
            .expect("RCPT");
        client.data(body).await.expect("DATA");
        assert_eq!(stack.upstream.next_message().await.body, expected.to_vec());
    }
}

#[tokio::test]
async fn per_recipient_and_phase_overrides() {
    let stack = stack();
    stack.upstream.script(|s| {
        s.rcpt_replies.insert(
            "nobody@example.test".into(),
            "550 5.1.1 User unknown".into(),
        );
    });
    let mut client = logged_in(&stack).await;
    client
        .mail_from("a@contoso.test", &params())
        .await
        .expect("MAIL");
    let refused = unexpected(client.rcpt_to("NoBody@example.test", &params()).await);
    assert_eq!(
        (refused.code, refused.esc, refused.message.as_str()),
        (550, [5, 1, 1], "User unknown")
    );
    client
        .rcpt_to("ok@example.test", &params())
        .await
        .expect("RCPT");
    client.data(b"x").await.expect("DATA");
    assert_eq!(
        stack.upstream.next_message().await.rcpts,
        vec!["ok@example.test".to_string()]
    );

    stack
        .upstream
        .script(|s| s.final_reply = Some("554 5.2.0 STOREDRV.Submission.Exception".into()));
    client
        .mail_from("a@contoso.test", &params())
        .await
        .expect("MAIL");
    client
        .rcpt_to("ok@example.test", &params())
        .await
        .expect("RCPT");
    let failed = unexpected(client.data(b"x").await);
    assert_eq!((failed.code, failed.esc), (554, [5, 2, 0]));

    stack
        .upstream
        .script(|s| s.mail_reply = Some("451 4.3.0 Multi\nline".into()));
    let busy = unexpected(client.mail_from("a@contoso.test", &params()).await);
    assert_eq!((busy.code, busy.message.as_str()), (451, "Multi\nline"));
    client.rset().await.expect("RSET");
    assert_eq!(stack.upstream.transactions_reset(), 1);
    assert_eq!(stack.upstream.messages().len(), 1);
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let stack = stack();
    stack.upstream.script(|s| {
        s.rcpt_replies
            .insert("bad@example.test".into(), "550 5.1.1 User unknown".into());
    });
    let mut client = logged_in(&stack).await;
    let replies = client
        .cmds([
            "MAIL FROM:<a@contoso.test>\r\n",
            "RCPT TO:<one@example.test>\r\n",
            "RCPT TO:<bad@example.test>\r\n",
            "RCPT TO:<two@example.test>\r\n",
            "DATA\r\n",
        ])
        .await
        .expect("replies");
    let codes: Vec<u16> = replies.iter().map(|r| r.code).collect();
    assert_eq!(codes, vec![250, 250, 550, 250, 354]);
    client.write_message(b"pipelined").await.expect("body");
    assert_eq!(client.read().await.expect("final").code, 250);
    let got = stack.upstream.next_message().await;
    assert_eq!(got.rcpts.len(), 2);
    assert_eq!(got.body, b"pipelined\r\n".to_vec());
}

#[tokio::test]
async fn scripted_auth_replies_and_the_json_challenge() {
    let stack = stack();
    let token = token_from(&stack).await;
    let disabled = "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is \
                    disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more \
                    information.";
    stack
        .upstream
        .script(|s| s.auth_reply = Some(disabled.into()));
    let mut client = connect_tls(&stack).await;
    let reply = auth_two_step(&mut client, USER, &token).await;
    assert_eq!((reply.code, reply.esc), (535, [5, 7, 139]));

    let json = r#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
    stack.upstream.script(|s| {
        s.auth_reply = None;
        s.auth_json_challenge = Some(json.into());
    });
    let mut client = connect_tls(&stack).await;
    let auth = format!("AUTH XOAUTH2 {}\r\n", xoauth2_blob(USER, &token));
    let challenge = client.cmd(auth.as_bytes()).await.expect("334");
    assert_eq!(challenge.code, 334);
    assert_eq!(
        STANDARD.decode(challenge.message.trim()).expect("base64"),
        json.as_bytes()
    );
    let reply = client.cmd(b"\r\n").await.expect("535");
    assert_eq!((reply.code, reply.esc), (535, [5, 7, 8]));
}

#[tokio::test]
async fn malformed_xoauth2_data_gets_501() {
    let stack = stack();
    let mut client = connect_tls(&stack).await;
    assert_eq!(
        client
            .cmd(b"AUTH XOAUTH2 !!notbase64!!\r\n")
            .await
            .expect("reply")
            .code,
        501
    );
    let not_xoauth2 = format!("AUTH XOAUTH2 {}\r\n", STANDARD.encode("user=a\x01\x01"));
    let reply = client.cmd(not_xoauth2.as_bytes()).await.expect("reply");
    assert_eq!((reply.code, reply.esc), (501, [5, 5, 124]));
    assert_eq!(
        client
            .cmd(b"AUTH PLAIN AGFAYg==\r\n")
            .await
            .expect("reply")
            .code,
        504
    );
    assert_eq!(
        client.cmd(b"AUTH XOAUTH2\r\n").await.expect("334").code,
        334
    );
    assert_eq!(client.cmd(b"*\r\n").await.expect("cancel").code, 501);
}

#[tokio::test]
async fn concurrent_authenticated_sessions_are_limited() {
    let stack = stack();
    stack
        .upstream
        .script(|s| s.max_concurrent_sessions = Some(1));
    let _first = logged_in(&stack).await;
    let token = token_from(&stack).await;
    let mut second = connect_tls(&stack).await;
    let reply = auth_two_step(&mut second, USER, &token).await;
    assert_eq!((reply.code, reply.esc), (432, [4, 3, 2]), "{reply:?}");
    assert_eq!(stack.upstream.max_concurrent(), 2);
    assert_eq!(stack.upstream.open_connections(), 2);
}

#[tokio::test]
async fn starttls_not_offered_means_mail_send_refuses() {
    let stack = stack();
    stack.upstream.script(|s| s.offer_starttls = false);
    let result = builder(stack.pki.ca_der(), &stack.upstream).connect().await;
    assert!(
        matches!(result, Err(mail_send::Error::MissingStartTls)),
        "{:?}",
        result.err()
    );
}

#[tokio::test]
async fn a_client_trusting_another_ca_fails_the_handshake() {
    let stack = stack();
    let stranger = TestPki::new().expect("other PKI").ca_der();
    let result = builder(stranger, &stack.upstream).connect().await;
    assert!(
        matches!(result, Err(mail_send::Error::Tls(_))),
        "{:?}",
        result.err()
    );
}

#[tokio::test]
async fn hang_phases_never_answer() {
    let stack = stack();
    stack.upstream.script(|s| s.hang_at = Some(Phase::Mail));
    let mut client = logged_in(&stack).await;
    client.timeout = NO_ANSWER_WINDOW;
    let result = client.mail_from("a@contoso.test", &params()).await;
    assert!(
        matches!(result, Err(mail_send::Error::Timeout)),
        "{result:?}"
    );

    stack.upstream.script(|s| s.hang_at = Some(Phase::Greeting));
    let mut b = builder(stack.pki.ca_der(), &stack.upstream);
    b.timeout = NO_ANSWER_WINDOW;
    assert!(matches!(b.connect().await, Err(mail_send::Error::Timeout)));
    assert_eq!(stack.upstream.connections(), 2);
}

#[tokio::test]
async fn drop_phases_close_the_connection() {
    let stack = stack();
    stack.upstream.script(|s| s.drop_at = Some(Phase::DataEnd));
    let mut client = logged_in(&stack).await;
    client
        .mail_from("a@contoso.test", &params())
        .await
        .expect("MAIL");
    client
        .rcpt_to("b@example.test", &params())
        .await
        .expect("RCPT");
    assert!(client.data(b"lost").await.is_err());
    assert!(stack.upstream.messages().is_empty());

    stack.upstream.script(|s| s.drop_at = Some(Phase::StartTls));
    assert!(
        builder(stack.pki.ca_der(), &stack.upstream)
            .connect()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn long_lines_oversized_bodies_and_bdat_are_refused_cleanly() {
    let stack = stack();
    stack.upstream.script(|s| s.max_message_size = 16);
    let mut client = logged_in(&stack).await;
    let long = format!("NOOP {}\r\n", "A".repeat(10_000));
    let reply = client.cmd(long.as_bytes()).await.expect("500");
    assert_eq!((reply.code, reply.esc), (500, [5, 5, 2]));
    client.noop().await.expect("session still usable");

    client
        .mail_from("a@contoso.test", &params())
        .await
        .expect("MAIL");
    client
        .rcpt_to("b@example.test", &params())
        .await
        .expect("RCPT");
    let big = unexpected(client.data(b"this body is longer than sixteen bytes").await);
    assert_eq!((big.code, big.esc), (552, [5, 3, 4]));

    let reply = client.cmd(b"BDAT 5 LAST\r\nhello").await.expect("502");
    assert_eq!(reply.code, 502);
    client.noop().await.expect("chunk drained");
    assert!(stack.upstream.messages().is_empty());
}

#[tokio::test]
async fn dropping_the_fake_closes_its_connections() {
    let stack = stack();
    let mut client = logged_in(&stack).await;
    let Stack { upstream, .. } = stack;
    drop(upstream);
    // The fake never speaks unprompted, so this read ends only when the socket closes; the
    // timeout only turns a regression into a failure instead of a hung test.
    let read = tokio::time::timeout(Duration::from_secs(10), client.read()).await;
    assert!(
        matches!(read, Ok(Err(_))),
        "connection survived the fake: {read:?}"
    );
}

#[tokio::test]
async fn plaintext_pipelined_after_starttls_is_discarded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = stack();
    let mut plain = SmtpClient {
        stream: TcpStream::connect(stack.upstream.addr())
            .await
            .expect("connect"),
        timeout: Duration::from_secs(10),
    };
    assert_eq!(plain.read().await.expect("greeting").code, 220);
    plain.ehlo("relay.test").await.expect("EHLO");
    // One write, so the injected NOOP lands in the same read as STARTTLS (CVE-2011-0411 shape).
    let reply = plain.cmd(b"STARTTLS\r\nNOOP\r\n").await.expect("220");
    assert_eq!(reply.code, 220);

    let connector = tokio_rustls::TlsConnector::from(Arc::new(rustls_client_config_trusting(
        stack.pki.ca_der(),
    )));
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector
        .connect(name, plain.stream)
        .await
        .expect("handshake");
    tls.write_all(b"QUIT\r\n").await.expect("QUIT");
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).await.expect("read to close");

    // Only the QUIT reply: a NOOP reply here would mean the injected plaintext was executed.
    assert!(
        rest.starts_with(b"221 "),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    let verbs = vec!["EHLO".to_string(), "STARTTLS".into(), "QUIT".into()];
    assert_eq!(stack.upstream.transcripts(), vec![verbs]);
}

#[tokio::test]
async fn garbage_commands_get_replies_and_the_session_survives() {
    let stack = stack();
    let mut client = builder(stack.pki.ca_der(), &stack.upstream)
        .connect_plain()
        .await
        .expect("plain session");
    let garbage: [&[u8]; 8] = [
        b"\x00\xff\xfe garbage\r\n",
        b"\r\n",
        b"bare lf only\n",
        b"MAIL FROM:<unterminated\r\n",
        b"RCPT TO:<a@b>\r\n",
        b"DATA\r\n",
        b"MAIL FROM:<a@b> X-UNKNOWN=\x01\r\n",
        b"VRFY someone\r\n",
    ];
    for line in garbage {
        let reply = client.cmd(line).await.expect("a reply, not a hang-up");
        assert!(reply.code >= 500, "{line:?} -> {reply:?}");
    }
    client.noop().await.expect("still serving");
}

#[tokio::test]
async fn malformed_http_gets_400_not_a_crash() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = pki();
    let endpoint = FakeTokenEndpoint::start(&pki).expect("endpoint");
    for request in [
        &b"GARBAGE\r\n\r\n"[..],
        b"POST / HTTP/9.9\r\n\r\n",
        b"POST / HTTP/1.1\r\nbad header\r\n\r\n",
    ] {
        let tcp = TcpStream::connect(endpoint.addr()).await.expect("connect");
        let connector =
            tokio_rustls::TlsConnector::from(Arc::new(rustls_client_config_trusting(pki.ca_der())));
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        tls.write_all(request).await.expect("write");
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer).await.expect("read to close");
        let status = String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        assert!(
            status == "HTTP/1.1 400 Bad Request" || status.starts_with("HTTP/1.1 505"),
            "{status}"
        );
    }
    assert_eq!(
        endpoint.calls(),
        0,
        "malformed requests are not token calls"
    );
}

#[tokio::test]
async fn auth_login_takes_the_scripted_username_and_password() {
    let s = stack();
    // Unscripted, AUTH LOGIN is Exchange's retired basic authentication.
    let mut client = connect_tls(&s).await;
    let refused = client.cmd(b"AUTH LOGIN\r\n").await.expect("reply");
    assert_eq!((refused.code, refused.esc), (535, [5, 7, 139]));
    s.upstream
        .script(|x| x.login = Some(("acs-user".into(), "pw".into())));
    let line = |text: &str| format!("{}\r\n", STANDARD.encode(text));
    let login = async |user: &str, password: &str, initial: bool| {
        let mut client = connect_tls(&s).await;
        let first = if initial {
            format!("AUTH LOGIN {}", line(user))
        } else {
            let asked = client.cmd(b"AUTH LOGIN\r\n").await.expect("334");
            assert_eq!((asked.code, asked.message.as_str()), (334, "VXNlcm5hbWU6"));
            line(user)
        };
        let asked = client.cmd(first.as_bytes()).await.expect("334");
        assert_eq!((asked.code, asked.message.as_str()), (334, "UGFzc3dvcmQ6"));
        client
            .cmd(line(password).as_bytes())
            .await
            .expect("reply")
            .code
    };
    assert_eq!(login("acs-user", "pw", false).await, 235);
    assert_eq!(login("acs-user", "pw", true).await, 235);
    assert_eq!(login("acs-user", "wrong", false).await, 535);
    assert_eq!(login("someone", "pw", false).await, 535);
}
