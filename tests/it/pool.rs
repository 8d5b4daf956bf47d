//! Reused upstream sessions: at most `max_connections` per account with one login each, the
//! closes that keep a reused session known good, a session the server ended while idle, and
//! QUIT on shutdown and reload.

use std::time::Duration;

use xoauth_relay::testkit::Phase;

use crate::common::*;

/// The upstream sessions that carried mail (the probe's has no MAIL), in accept order.
fn mail_sessions(w: &World) -> Vec<Vec<String>> {
    w.upstream
        .transcripts()
        .into_iter()
        .filter(|t| t.iter().any(|v| v == "MAIL"))
        .collect()
}

fn count(transcript: &[String], verb: &str) -> usize {
    transcript.iter().filter(|v| *v == verb).count()
}

/// Waits (bounded, in the paused clock's time when paused) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..5000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{what}: not within 5 s");
}

async fn send(w: &World, subject: &str) -> u16 {
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", subject))
        .await
        .code
}

/// The QUIT of the message session `index` reached the fake.
fn quit_seen(w: &World, index: usize) -> bool {
    mail_sessions(w)
        .get(index)
        .is_some_and(|t| t.last().is_some_and(|v| v == "QUIT"))
}

#[tokio::test]
async fn many_clients_share_at_most_max_connections_sessions_with_one_login_each() {
    let w = World::start_with(with_health).await;
    w.probed(1).await;
    assert_eq!(w.send_concurrently(16).await, vec![250; 16]);
    assert_eq!(w.upstream.messages().len(), 16);
    let sessions = mail_sessions(&w);
    assert!(sessions.len() <= 3, "{} sessions", sessions.len());
    assert!(
        sessions.iter().all(|t| count(t, "AUTH") == 1),
        "{sessions:?}"
    );
    assert_eq!(sessions.iter().map(|t| count(t, "MAIL")).sum::<usize>(), 16);
    // Every message after a session's first starts with RSET.
    assert!(
        sessions
            .iter()
            .all(|t| count(t, "RSET") == count(t, "MAIL") - 1),
        "{sessions:?}"
    );
    let (_, status) = http_json(w.health(), "/status").await;
    let a = &status["accounts"]["contoso"];
    let new = a["delivered_on_session"]["new"].as_u64().unwrap();
    let reused = a["delivered_on_session"]["reused"].as_u64().unwrap();
    assert_eq!((new, new + reused), (sessions.len() as u64, 16), "{a}");
    let idle = a["upstream_sessions_idle"].as_u64().unwrap();
    assert!((1..=3).contains(&idle), "{a}");
    assert_eq!(a["upstream_sessions"].as_u64().unwrap(), idle, "{a}");
    let (_, metrics) = http_get(w.health(), "/metrics").await;
    let line = format!(
        "xoauth_relay_delivered_on_session_total{{account=\"contoso\",session=\"reused\"}} {reused}"
    );
    assert!(metrics.lines().any(|l| l == line), "{metrics}");
    let line = format!("xoauth_relay_upstream_sessions_idle{{account=\"contoso\"}} {idle}");
    assert!(metrics.lines().any(|l| l == line), "{metrics}");
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_is_closed_after_pool_idle() {
    let w = World::start().await;
    w.probed(1).await;
    assert_eq!(send(&w, "1").await, 250);
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(send(&w, "2").await, 250);
    assert_eq!(mail_sessions(&w).len(), 1, "reused within 30 s");
    // Nothing more comes: the sweeper closes it 30 s after its last message.
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert!(!quit_seen(&w, 0));
    eventually("QUIT after 30 s idle", || quit_seen(&w, 0)).await;
    assert_eq!(send(&w, "3").await, 250);
    assert_eq!(mail_sessions(&w).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_session_is_not_reused_past_max_age() {
    let w = World::start_with(|c| {
        c.pool.idle = Duration::from_secs(3600);
        c.pool.max_age = Duration::from_secs(60);
    })
    .await;
    w.probed(1).await;
    for i in 0..3 {
        assert_eq!(send(&w, &i.to_string()).await, 250);
        tokio::time::sleep(Duration::from_secs(35)).await;
    }
    let sessions = mail_sessions(&w);
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(count(&sessions[0], "MAIL"), 2, "{sessions:?}");
    assert_eq!(sessions[0].last().map(String::as_str), Some("QUIT"));
}

#[tokio::test]
async fn a_session_carries_at_most_max_messages() {
    let w = World::start_with(|c| c.pool.max_messages = 2).await;
    w.probed(1).await;
    let mut c = w.logged_in().await;
    for i in 0..5 {
        c.send_mail(MAILBOX, &["a@example.net"], &message("a", &i.to_string()))
            .await
            .expect_code(250);
    }
    eventually("the second session's QUIT", || quit_seen(&w, 1)).await;
    let sessions = mail_sessions(&w);
    let per: Vec<usize> = sessions.iter().map(|t| count(t, "MAIL")).collect();
    assert_eq!(per, [2, 2, 1], "{sessions:?}");
    assert!(quit_seen(&w, 0));
}

/// A session whose token is inside the refresh margin carries no new message, even while
/// `idle` and `max_age` would allow it, and is closed then.
#[tokio::test(start_paused = true)]
async fn a_session_is_not_reused_once_its_token_nears_expiry() {
    let w = World::start_with(|c| {
        c.pool.idle = Duration::from_secs(7200);
        c.pool.max_age = Duration::from_secs(7200);
    })
    .await;
    // The fake would end a silent session after a minute.
    w.upstream
        .script(|s| s.read_timeout = Duration::from_secs(7200));
    w.probed(1).await;
    assert_eq!(send(&w, "1").await, 250);
    // The token lives 3599 s; its refresh point is 5 minutes before that.
    tokio::time::sleep(Duration::from_secs(3599 - 301)).await;
    assert_eq!(send(&w, "2").await, 250);
    assert_eq!(mail_sessions(&w).len(), 1, "reused before the margin");
    tokio::time::sleep(Duration::from_secs(2)).await;
    eventually("QUIT at the token's refresh point", || quit_seen(&w, 0)).await;
    assert_eq!(send(&w, "3").await, 250);
    assert_eq!(mail_sessions(&w).len(), 2);
    let m = w.upstream.messages();
    assert_eq!(m[0].token, m[1].token);
    assert_ne!(
        m[1].token, m[2].token,
        "the new session logs in with the new token"
    );
}

#[tokio::test]
async fn a_session_the_server_closed_while_idle_costs_the_message_nothing() {
    let w = World::start_with(with_health).await;
    w.probed(1).await;
    assert_eq!(send(&w, "1").await, 250);
    w.upstream.close_all_connections();
    eventually("the fake closed it", || w.upstream.open_connections() == 0).await;
    assert_eq!(send(&w, "2").await, 250);
    let m = w.upstream.messages();
    assert_eq!(m.len(), 2, "one copy");
    assert_eq!(mail_sessions(&w).len(), 2);
    let total_data: usize = w
        .upstream
        .transcripts()
        .iter()
        .map(|t| count(t, "DATA"))
        .sum();
    assert_eq!(total_data, 2);
    let (_, status) = http_json(w.health(), "/status").await;
    let on = &status["accounts"]["contoso"]["delivered_on_session"];
    assert_eq!(
        (on["new"].as_u64(), on["reused"].as_u64()),
        (Some(2), Some(0))
    );
}

/// `421` to RSET (the server ending the session), or any other refusal of it, says nothing
/// about the message: it goes on a new session.
#[tokio::test]
async fn a_refused_rset_sends_the_message_on_a_new_session() {
    for refusal in [
        "421 4.4.2 Connection timed out",
        "500 5.3.3 Unrecognized command",
    ] {
        let w = World::start().await;
        w.probed(1).await;
        assert_eq!(send(&w, "1").await, 250);
        w.upstream.script(|s| s.rset_reply = Some(refusal.into()));
        assert_eq!(send(&w, "2").await, 250, "{refusal}");
        let sessions = mail_sessions(&w);
        assert_eq!(w.upstream.messages().len(), 2);
        assert_eq!(sessions.len(), 2, "{sessions:?}");
        assert_eq!(count(&sessions[0], "RSET"), 1);
        // Message 2's DATA went in the refused group (the server closed or answered 354, and
        // the relay dropped it): its data never went there.
        assert!(count(&sessions[0], "DATA") <= 2, "{sessions:?}");
        let received = w.upstream.messages();
        assert_eq!(
            received
                .iter()
                .filter(|m| String::from_utf8_lossy(&m.body).contains("Subject: 2\r\n"))
                .count(),
            1
        );
    }
}

/// Once any of the message was sent, a broken session is not retried: the upstream may have
/// it, and the client's retry is the only one.
#[tokio::test]
async fn a_reused_session_dropped_during_data_gets_a_4xx_and_no_second_copy() {
    let w = World::start().await;
    w.probed(1).await;
    assert_eq!(send(&w, "1").await, 250);
    w.upstream.script(|s| s.drop_at = Some(Phase::DataEnd));
    let code = send(&w, "2").await;
    assert!((400..500).contains(&code), "{code}");
    let sessions = mail_sessions(&w);
    assert_eq!(sessions.len(), 1, "no new session: {sessions:?}");
    assert_eq!(count(&sessions[0], "DATA"), 2);
    assert_eq!(w.upstream.messages().len(), 1);
}

#[tokio::test]
async fn idle_sessions_say_quit_on_shutdown() {
    let mut w = World::start().await;
    w.probed(1).await;
    assert_eq!(send(&w, "1").await, 250);
    assert!(!quit_seen(&w, 0));
    w.relay.take().unwrap().stop().await;
    assert!(quit_seen(&w, 0), "{:?}", mail_sessions(&w));
}

#[tokio::test]
async fn idle_sessions_of_a_reloaded_account_say_quit() {
    let w = World::start().await;
    w.probed(1).await;
    assert_eq!(send(&w, "1").await, 250);
    let mut changed = w.config.clone();
    account_mut(&mut changed).client_secret_warn_days += 1;
    let summary = w.relay.as_ref().unwrap().daemon.reload(changed).unwrap();
    assert_eq!(summary.changed, ["contoso"]);
    eventually("QUIT after the reload", || quit_seen(&w, 0)).await;
    assert_eq!(send(&w, "2").await, 250);
    assert_eq!(mail_sessions(&w).len(), 2, "the new route opens its own");
}
