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
