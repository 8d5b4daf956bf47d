//! Delegated sign-in through the stand-ins: the relay sending with a user's refresh token,
//! rotation, revocation and the words that name `xoauth-relay login`, a refresh at least
//! hourly while idle, and `login --device` against the fake `/devicecode`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::binary::Scratch;
use crate::common::*;
use xoauth_relay::config::{Auth, Config, DELEGATED_SCOPE};
use xoauth_relay::login::{self, Method};
use xoauth_relay::secret::Secret;

/// The test account as a delegated one, with its state in `state`.
fn delegated_in(state: &Path) -> impl FnOnce(&mut Config) {
    let state = state.to_path_buf();
    move |config: &mut Config| {
        config.state_dir = Some(state);
        let account = account_mut(config);
        account.auth = Auth::Delegated;
        account.scope = DELEGATED_SCOPE.into();
        account.client_secret = Secret::new(String::new());
    }
}

fn token_file(state: &Path) -> PathBuf {
    state.join("tokens").join("contoso.refresh")
}

/// A sign-in as if `login` had run: a refresh token the fake knows, in the token file.
fn signed_in(w: &World, state: &Path) -> String {
    let token = w.tokens.issue_refresh_token(CLIENT_ID, DELEGATED_SCOPE);
    std::fs::create_dir_all(state.join("tokens")).unwrap();
    std::fs::write(token_file(state), format!("{token}\n")).unwrap();
    token
}

fn stored(state: &Path) -> String {
    std::fs::read_to_string(token_file(state))
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test]
async fn the_relay_sends_with_the_users_sign_in_and_keeps_the_rotated_token() {
    let dir = Scratch::new("delegated-send");
    let mut w = World::stand_ins(delegated_in(&dir.0));
    let first = signed_in(&w, &dir.0);
    w.restart().await;
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "1"))
        .await
        .expect_code(250);
    let request = w.tokens.last_request().unwrap();
    assert_eq!(request.grant_type, "refresh_token");
    assert_eq!(request.scope, DELEGATED_SCOPE);
    assert!(!request.has_secret(), "a public client sends no secret");
    assert_eq!(w.upstream.messages().len(), 1);
    let now = stored(&dir.0);
    assert_ne!(now, first, "the rotated token replaced the used one");
    assert_eq!(w.tokens.refresh_tokens(), vec![now.clone()]);
    let mode = std::fs::metadata(token_file(&dir.0)).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_relay_uses_its_refresh_token_at_least_hourly() {
    let dir = Scratch::new("delegated-idle");
    let mut w = World::stand_ins(delegated_in(&dir.0));
    signed_in(&w, &dir.0);
    w.tokens.set_expires_in(3600);
    w.restart().await;
    w.tokens.wait_for_calls(1).await;
    assert_eq!(w.tokens.refresh_grants(), 1);
    // Three idle hours: no message, yet each access token is renewed before it expires, so
    // the refresh token is used (and rotated) every 55 minutes, far inside its 90 days.
    for hour in 1..=3 {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(w.tokens.refresh_grants(), hour + 1, "hour {hour}");
    }
    assert_eq!(w.tokens.refresh_tokens(), vec![stored(&dir.0)]);
}

#[tokio::test(start_paused = true)]
async fn a_revoked_sign_in_says_in_plain_words_which_command_fixes_it() {
    let dir = Scratch::new("delegated-revoked");
    let mut w = World::stand_ins(|c| {
        delegated_in(&dir.0)(c);
        with_health(c);
    });
    signed_in(&w, &dir.0);
    w.tokens.revoke_refresh_tokens();
    w.restart().await;
    w.tokens.wait_for_calls(1).await;
    let (code, body) = http_json(w.health(), "/readyz").await;
    assert_eq!(code, 503, "{body}");
    let reason = body["reasons"][0].as_str().unwrap();
    assert!(reason.contains("needs a sign-in"), "{reason}");
    assert!(reason.contains("AADSTS50173"), "{reason}");
    assert!(
        reason.contains("run `xoauth-relay login contoso`"),
        "{reason}"
    );
    let (_, status) = http_json(w.health(), "/status").await;
    let last = status["accounts"]["contoso"]["token"]["last_fetch"].to_string();
    assert!(last.contains("xoauth-relay login contoso"), "{last}");
    let mut c = w.logged_in().await;
    let reply = c
        .send_mail(MAILBOX, &["a@example.net"], &message("a", "1"))
        .await;
    assert_eq!(reply.code, 451, "{reply:?}");
    assert!(reply.text.contains("needs a new sign-in"), "{reply:?}");

    // A new sign-in reaches the running relay without a restart.
    signed_in(&w, &dir.0);
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "2"))
        .await
        .expect_code(250);
}

#[tokio::test]
async fn without_a_sign_in_the_relay_and_check_name_the_login_command() {
    let dir = Scratch::new("delegated-none");
    let w = World::start_with(delegated_in(&dir.0)).await;
    let mut out = Vec::new();
    let ok = xoauth_relay::check::run(&w.config, None, &mut out).await;
    let out = String::from_utf8(out).unwrap();
    assert!(!ok, "{out}");
    assert!(
        out.contains("this account needs a sign-in (nobody has signed in yet"),
        "{out}"
    );
    assert!(
        out.contains("fix:  Run `xoauth-relay login contoso`"),
        "{out}"
    );
    assert_eq!(
        w.tokens.calls(),
        0,
        "nothing to ask Microsoft without a refresh token"
    );
}

#[tokio::test(start_paused = true)]
async fn login_with_a_device_code_polls_until_approved() {
    let dir = Scratch::new("delegated-device");
    let w = World::stand_ins(delegated_in(&dir.0));
    w.tokens.set_device_answers(&[
        "authorization_pending",
        "slow_down",
        "authorization_pending",
    ]);
    let started = tokio::time::Instant::now();
    let mut out = Vec::new();
    let path = login::run(&w.config, "contoso", Method::Device, &mut out)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("https://microsoft.com/devicelogin"), "{out}");
    assert_eq!(path, token_file(&dir.0));
    assert_eq!(w.tokens.refresh_tokens(), vec![stored(&dir.0)]);
    // Four polls: 5 s, 5 s, then 10 s after slow_down, twice.
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert_eq!(w.tokens.calls(), 5, "devicecode and four polls");
}

#[tokio::test(start_paused = true)]
async fn a_declined_or_expired_device_sign_in_stores_nothing() {
    for (answer, words) in [
        ("authorization_declined", "declined"),
        ("expired_token", "the code expired"),
    ] {
        let dir = Scratch::new(&format!("delegated-{answer}"));
        let w = World::stand_ins(delegated_in(&dir.0));
        w.tokens
            .set_device_answers(&["authorization_pending", answer]);
        let mut out = Vec::new();
        let e = login::run(&w.config, "contoso", Method::Device, &mut out)
            .await
            .unwrap_err();
        assert!(e.contains(words), "{answer}: {e}");
        assert!(!token_file(&dir.0).exists());
    }
}

#[tokio::test]
async fn login_refuses_an_account_that_sends_as_an_app() {
    let w = World::stand_ins(|_| {});
    let mut out = Vec::new();
    let e = login::run(&w.config, "contoso", Method::Device, &mut out)
        .await
        .unwrap_err();
    assert!(
        e.contains("sends as an app (auth = \"client_credentials\")"),
        "{e}"
    );
    let e = login::run(&w.config, "nope", Method::Device, &mut out)
        .await
        .unwrap_err();
    assert!(e.contains("no account \"nope\""), "{e}");
}

#[tokio::test]
async fn check_reads_the_users_permission_and_explains_a_refusal_for_a_user() {
    let dir = Scratch::new("delegated-check");
    let w = World::stand_ins(delegated_in(&dir.0));
    signed_in(&w, &dir.0);
    let mut out = Vec::new();
    let ok = xoauth_relay::check::run(&w.config, None, &mut out).await;
    let out = String::from_utf8(out).unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("[ok]   the signed-in user's token carries the SMTP.Send permission"),
        "{out}"
    );
    assert!(
        out.contains("Exchange accepted the signed-in user's token"),
        "{out}"
    );
    assert!(
        !out.contains("SendAsApp"),
        "no app-only advice for a user: {out}"
    );

    w.upstream.script(|s| {
        s.auth_reply = Some("535 5.7.3 Authentication unsuccessful".into());
    });
    let mut out = Vec::new();
    assert!(!xoauth_relay::check::run(&w.config, None, &mut out).await);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("Exchange refused the signed-in user's token"),
        "{out}"
    );
    assert!(out.contains("xoauth-relay login contoso"), "{out}");
    assert!(!out.contains("New-ServicePrincipal"), "{out}");
}

#[tokio::test]
async fn the_log_explains_a_missing_sign_in_and_never_shows_the_refresh_token() {
    let (log, _guard) = LogCapture::this_thread();
    let dir = Scratch::new("delegated-log");
    let mut w = World::stand_ins(delegated_in(&dir.0));
    w.restart().await;
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "1"))
        .await
        .expect_code(451);
    let text = log.text();
    assert!(
        text.contains("this account needs a sign-in (nobody has signed in yet"),
        "{text}"
    );
    assert!(text.contains("Run `xoauth-relay login contoso`"), "{text}");

    let token = signed_in(&w, &dir.0);
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "2"))
        .await
        .expect_code(250);
    let text = log.text();
    let rotated = stored(&dir.0);
    assert!(
        !text.contains(&token) && !text.contains(&rotated),
        "a refresh token in the log"
    );
}

/// What `login` prints, forwarded to the test as it is written.
struct Forward(tokio::sync::mpsc::UnboundedSender<String>);

impl std::io::Write for Forward {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Follows the sign-in URL `login` prints to the fake `/authorize` and back to the loopback
/// redirect, as a browser would; returns the page the relay showed.
async fn follow(w: &World, mut printed: tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    let url = loop {
        let text = printed.recv().await.expect("login printed the URL");
        if let Some(line) = text.lines().find(|l| l.trim().starts_with("https://")) {
            break line.trim().to_owned();
        }
    };
    xoauth_relay::testkit::init_crypto();
    let browser = reqwest::Client::builder()
        .tls_backend_preconfigured(w.pki.client_config().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser.get(&url).send().await.unwrap();
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    let loopback = location.replacen("http://localhost:", "http://127.0.0.1:", 1);
    let page = browser.get(&loopback).send().await.unwrap();
    page.text().await.unwrap()
}

#[tokio::test]
async fn a_refused_browser_sign_in_says_why_and_stores_nothing() {
    let dir = Scratch::new("delegated-denied");
    let w = World::stand_ins(delegated_in(&dir.0));
    w.tokens.set_authorize_error(Some((
        "access_denied",
        "AADSTS65004: User declined to consent to access the app.",
    )));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut out = Forward(tx);
    let method = Method::Browser { open: false };
    let (result, page) = tokio::join!(
        login::run(&w.config, "contoso", method, &mut out),
        follow(&w, rx)
    );
    let e = result.unwrap_err();
    assert!(
        e.contains("the sign-in failed: access_denied: AADSTS65004"),
        "{e}"
    );
    assert!(page.contains("did not succeed"), "{page}");
    assert!(!token_file(&dir.0).exists());
}

#[tokio::test]
async fn a_browser_sign_in_in_process_stores_the_token_of_its_code() {
    let dir = Scratch::new("delegated-browser");
    let w = World::stand_ins(delegated_in(&dir.0));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut out = Forward(tx);
    let method = Method::Browser { open: false };
    let (result, page) = tokio::join!(
        login::run(&w.config, "contoso", method, &mut out),
        follow(&w, rx)
    );
    assert_eq!(result.unwrap(), token_file(&dir.0));
    assert!(page.contains("Signed in"), "{page}");
    let request = w.tokens.last_request().unwrap();
    assert_eq!(request.grant_type, "authorization_code");
    assert_eq!(request.code_verifier.as_ref().unwrap().expose().len(), 43);
    assert_eq!(w.tokens.refresh_tokens(), vec![stored(&dir.0)]);
}
