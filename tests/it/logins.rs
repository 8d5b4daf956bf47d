//! Local logins against the running relay: the failed-login budget of an address is counted when
//! a check starts (parallel connections cannot run more checks than the budget), a lockout
//! reaches connections that were already open, and user names match ignoring case.

use std::time::Duration;

use crate::common::*;

fn auth_plain_line(user: &str, password: &str) -> String {
    use base64::Engine;
    let blob = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    format!("AUTH PLAIN {blob}\r\n")
}

#[tokio::test(start_paused = true)]
async fn parallel_guesses_from_one_address_stop_at_its_budget() {
    const BUDGET: u32 = 3;
    let w = World::start_with(|c| {
        c.limits.auth_failures_per_ip = BUDGET;
        c.limits.max_connections_per_ip = 50;
        c.limits.auth_failure_delay = Duration::from_secs(1);
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        let mut c = w.client().await;
        c.ehlo().await;
        clients.push(c);
    }
    // Every guess is on the wire before the first answer, as an attacker would pipeline them.
    for c in &mut clients {
        c.send_raw(auth_plain_line(USER, "wrong").as_bytes()).await;
    }
    let mut checked = 0;
    for c in &mut clients {
        let r = c.read_reply().await;
        match r.code {
            535 => checked += 1,
            421 => {
                r.expect_start("421 4.7.0 Too many failed logins from your address");
                assert!(c.is_closed().await, "a locked-out connection is closed");
            }
            _ => panic!("unexpected reply: {}", r.text),
        }
    }
    assert_eq!(
        checked, BUDGET,
        "only the budget's worth of guesses was checked"
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_connection_of_a_locked_out_address_cannot_log_in() {
    let w = World::start_with(|c| {
        c.limits.auth_failures_per_ip = 2;
        c.limits.max_auth_failures = 5;
    })
    .await;
    let mut early = w.client().await;
    early.ehlo().await;
    let mut c = w.client().await;
    c.ehlo().await;
    c.auth_plain(USER, "wrong").await.expect_code(535);
    c.auth_plain(USER, "wrong").await.expect_code(535);
    // Even the right password: the address is out of guesses until the lockout ends.
    early
        .auth_plain(USER, PASSWORD)
        .await
        .expect_start("421 4.7.0 Too many failed logins from your address");
    assert!(early.is_closed().await);
}

#[tokio::test]
async fn user_names_match_ignoring_case() {
    let w = World::start().await;
    let mut c = w.client().await;
    c.ehlo().await;
    c.auth_plain(&USER.to_uppercase(), PASSWORD)
        .await
        .expect_code(235);
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "case"))
        .await
        .expect_code(250);
    let mut c = w.client().await;
    c.ehlo().await;
    c.auth_plain(&USER.to_uppercase(), "wrong")
        .await
        .expect_code(535);
}

/// One program on 127.0.0.1 with a stale password locks out only its own user name there: the
/// other programs go on logging in. The lockout shows in `/status` and `/metrics`, and the
/// operator's SIGHUP (here its handler) ends it.
#[tokio::test(start_paused = true)]
async fn a_stale_password_on_loopback_locks_out_only_its_own_user() {
    let w = World::start_with(|c| {
        with_health(c);
        c.limits.auth_failures_per_ip = 2;
        c.limits.max_auth_failures = 5;
        let mut printer = c.users[0].clone();
        printer.name = "printer".into();
        printer.password = Some(xoauth_relay::config::PasswordCheck::Plain(
            xoauth_relay::secret::Secret::new("scan".into()),
        ));
        c.users.push(printer);
    })
    .await;
    let mut stale = w.client().await;
    stale.ehlo().await;
    stale.auth_plain("printer", "old").await.expect_code(535);
    stale.auth_plain("printer", "old").await.expect_code(535);
    let mut again = w.client().await;
    again.ehlo().await;
    again
        .auth_plain("printer", "scan")
        .await
        .expect_start("421 4.7.0 Too many failed logins from your address for this user name");
    // Another program on the same address is not affected.
    w.logged_in().await;

    let (_, status) = http_json(w.health(), "/status").await;
    let lockouts = status["lockouts"].as_array().unwrap();
    assert_eq!(lockouts.len(), 1, "{status}");
    assert_eq!(lockouts[0]["address"], "127.0.0.1");
    assert_eq!(lockouts[0]["user"], "printer");
    assert_eq!(lockouts[0]["failures"], 2);
    assert!(lockouts[0]["until"].is_string());
    assert!(
        !status.to_string().contains("old"),
        "no password in /status"
    );
    let (_, metrics) = http_get(w.health(), "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "xoauth_relay_lockout_refusals_total 1"),
        "{metrics}"
    );

    let relay = w.relay.as_ref().unwrap();
    assert_eq!(relay.daemon.clear_lockouts(), 1);
    let mut c = w.client().await;
    c.ehlo().await;
    c.auth_plain("printer", "scan").await.expect_code(235);
    let (_, status) = http_json(w.health(), "/status").await;
    assert_eq!(status["lockouts"].as_array().unwrap().len(), 0);
}
