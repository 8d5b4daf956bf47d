//! Delivery modes and the queue, in process: hybrid passes Microsoft's verdict on when it comes
//! in time and is final, queues otherwise (a hanging token endpoint, a wrong secret, a lost
//! verdict), and the worker delivers, bounces or waits for the account. Paused clock: every
//! timeout and retry wait passes in virtual time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use xoauth_relay::config::{Config, DeliveryMode, OnAmbiguous};
use xoauth_relay::secret::Secret;
use xoauth_relay::testkit::{Phase, TokenMode};

use crate::common::binary::Scratch;
use crate::common::*;

/// A relay with a spool in `dir`, waits of one second between attempts.
fn spooled(dir: &Path, mode: DeliveryMode) -> impl FnOnce(&mut Config) + use<> {
    let dir = dir.to_path_buf();
    move |c: &mut Config| {
        c.state_dir = Some(dir);
        c.delivery.mode = mode;
        c.delivery.retry = vec![Duration::from_secs(1)];
        c.delivery.sync_timeout = Duration::from_secs(5);
    }
}

fn files(dir: &Path, sub: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("spool").join(sub))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Message files in `tmp/` (a record being replaced is staged there for a moment too).
fn received_files(dir: &Path) -> Vec<String> {
    let mut names = files(dir, "tmp");
    names.retain(|n| n.ends_with(".msg"));
    names
}

fn meta(dir: &Path, sub: &str) -> Vec<serde_json::Value> {
    files(dir, sub)
        .iter()
        .filter(|f| f.ends_with(".meta"))
        .map(|f| {
            let path: PathBuf = dir.join("spool").join(sub).join(f);
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
        })
        .collect()
}

/// Waits (in virtual time, bounded) until the fake upstream holds `n` messages.
async fn received(w: &World, n: usize) {
    let waited = tokio::time::timeout(Duration::from_secs(600), async {
        while w.upstream.messages().len() < n {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    waited.await.unwrap_or_else(|_| {
        panic!(
            "{n} messages did not arrive upstream: {}",
            w.upstream.messages().len()
        )
    });
}

async fn send(w: &World, to: &str) -> Reply {
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &[to], &message(to, "queued?")).await
}

fn queued_id(reply: &Reply) -> String {
    assert_eq!(reply.code, 250, "{reply:?}");
    let text = &reply.text;
    let start = text
        .find("Queued as ")
        .unwrap_or_else(|| panic!("not queued: {text}"))
        + 10;
    text[start..start + 16].to_string()
}

#[tokio::test(start_paused = true)]
async fn hybrid_gives_microsofts_verdict_when_it_comes_and_keeps_nothing() {
    let dir = Scratch::new("queue-verdict");
    let w = World::start_with(spooled(&dir.0, DeliveryMode::Hybrid)).await;
    w.upstream.script(|s| {
        s.rcpt_replies
            .insert("gone@example.net".into(), "550 5.1.1 User unknown".into());
    });
    let ok = send(&w, "a@example.net").await;
    assert_eq!(ok.code, 250);
    assert!(!ok.text.contains("Queued"), "{ok:?}");
    let refused = send(&w, "gone@example.net").await;
    assert_eq!(refused.code, 550, "{refused:?}");
    assert_eq!(w.upstream.messages().len(), 1);
    assert!(files(&dir.0, "queue").is_empty());
    assert!(
        received_files(&dir.0).is_empty(),
        "{:?}",
        files(&dir.0, "tmp")
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_token_endpoint_queues_the_message_at_sync_timeout_then_it_goes_out() {
    let dir = Scratch::new("queue-hang");
    let mut w = World::stand_ins(spooled(&dir.0, DeliveryMode::Hybrid));
    w.tokens.set_mode(TokenMode::Hang);
    w.restart().await;
    let started = tokio::time::Instant::now();
    let reply = send(&w, "a@example.net").await;
    let waited = started.elapsed();
    let id = queued_id(&reply);
    assert!(waited <= Duration::from_secs(6), "client waited {waited:?}");
    assert_eq!(
        files(&dir.0, "queue"),
        [format!("{id}.meta"), format!("{id}.msg")]
    );
    w.tokens.set_mode(TokenMode::Ok);
    received(&w, 1).await;
    assert_eq!(w.upstream.messages()[0].rcpts, ["a@example.net"]);
    let emptied = tokio::time::timeout(Duration::from_secs(60), async {
        while !files(&dir.0, "queue").is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    emptied.await.expect("the queue empties after delivery");
}

#[tokio::test(start_paused = true)]
async fn messages_queued_under_a_wrong_secret_go_out_after_a_reload_with_the_right_one() {
    let dir = Scratch::new("queue-secret");
    let mut w = World::stand_ins(spooled(&dir.0, DeliveryMode::Hybrid));
    w.tokens.set_expected(CLIENT_ID, "the-new-secret");
    w.restart().await;
    let first = queued_id(&send(&w, "a@example.net").await);
    let second = queued_id(&send(&w, "b@example.net").await);
    // A minute later the secret is still wrong: nothing went out, nothing was given up.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(w.upstream.messages().is_empty());
    let ids: Vec<_> = meta(&dir.0, "queue")
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, [first, second]);
    let mut fixed = w.config.clone();
    account_mut(&mut fixed).client_secret = Secret::new("the-new-secret".into());
    w.relay
        .as_ref()
        .unwrap()
        .daemon
        .reload(fixed)
        .expect("reload");
    received(&w, 2).await;
}

#[tokio::test(start_paused = true)]
async fn queue_mode_answers_at_once_and_the_worker_delivers() {
    let dir = Scratch::new("queue-mode");
    let w = World::start_with(spooled(&dir.0, DeliveryMode::Queue)).await;
    let id = queued_id(&send(&w, "a@example.net").await);
    assert_eq!(id.len(), 16);
    received(&w, 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_queued_message_survives_a_restart() {
    let dir = Scratch::new("queue-restart");
    let mut w = World::start_with(spooled(&dir.0, DeliveryMode::Hybrid)).await;
    w.upstream
        .script(|s| s.final_reply = Some("451 4.3.0 Try again later".into()));
    let id = queued_id(&send(&w, "a@example.net").await);
    w.relay.take().unwrap().stop().await;
    assert_eq!(meta(&dir.0, "queue")[0]["id"], id);
    w.upstream.script(|s| s.final_reply = None);
    w.restart().await;
    received(&w, 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_permanent_refusal_on_retry_bounces_to_the_sender_and_keeps_a_copy() {
    let dir = Scratch::new("queue-bounce");
    let w = World::start_with(spooled(&dir.0, DeliveryMode::Hybrid)).await;
    w.upstream
        .script(|s| s.final_reply = Some("451 4.3.0 Try again later".into()));
    let id = queued_id(&send(&w, "gone@example.net").await);
    w.upstream.script(|s| {
        s.final_reply = None;
        s.rcpt_replies
            .insert("gone@example.net".into(), "550 5.1.1 User unknown".into());
    });
    received(&w, 1).await;
    let dsn = &w.upstream.messages()[0];
    assert_eq!(dsn.rcpts, [MAILBOX]);
    let text = String::from_utf8_lossy(&dsn.body);
    assert!(text.contains("report-type=delivery-status"), "{text}");
    assert!(text.contains("Status: 5.1.1"), "{text}");
    assert!(
        text.contains("Final-Recipient: rfc822; gone@example.net"),
        "{text}"
    );
    assert!(text.contains(&id), "{text}");
    assert!(text.contains("Auto-Submitted: auto-replied"), "{text}");
    let failed = meta(&dir.0, "failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], id);
    assert!(
        failed[0]["failure"].as_str().unwrap().contains("550"),
        "{failed:?}"
    );
    assert!(files(&dir.0, "failed").contains(&format!("{id}.msg")));
    assert!(files(&dir.0, "queue").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_bounce_is_never_bounced() {
    let dir = Scratch::new("queue-no-loop");
    let w = World::start_with(spooled(&dir.0, DeliveryMode::Hybrid)).await;
    w.upstream
        .script(|s| s.final_reply = Some("451 4.3.0 Try again later".into()));
    let mut c = w.logged_in().await;
    let auto = format!(
        "From: <{MAILBOX}>\r\nTo: <gone@example.net>\r\nAuto-Submitted: auto-replied\r\nSubject: out of office\r\n\r\nAway.\r\n"
    );
    let id = queued_id(
        &c.send_mail(MAILBOX, &["gone@example.net"], auto.as_bytes())
            .await,
    );
    w.upstream
        .script(|s| s.final_reply = Some("550 5.7.1 No".into()));
    let given_up = tokio::time::timeout(Duration::from_secs(60), async {
        while meta(&dir.0, "failed").is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    given_up.await.expect("the message is given up");
    w.upstream.script(|s| s.final_reply = None);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        w.upstream.messages().is_empty(),
        "a notice was sent for an automatic message"
    );
    assert_eq!(meta(&dir.0, "failed")[0]["id"], id);
}

#[tokio::test(start_paused = true)]
async fn a_lost_verdict_is_queued_as_ambiguous_and_held_when_asked() {
    let dir = Scratch::new("queue-ambiguous");
    let w = World::start_with(|c| {
        spooled(&dir.0, DeliveryMode::Hybrid)(c);
        c.delivery.on_ambiguous = OnAmbiguous::Hold;
    })
    .await;
    w.upstream.script(|s| s.drop_at = Some(Phase::DataEnd));
    let id = queued_id(&send(&w, "a@example.net").await);
    w.upstream.script(|s| s.drop_at = None);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let m = &meta(&dir.0, "queue")[0];
    assert_eq!(m["id"], id);
    assert_eq!(m["ambiguous"], true);
    assert_eq!(m["hold"], "ambiguous");
    assert!(w.upstream.messages().is_empty(), "a held message was sent");
}

#[tokio::test(start_paused = true)]
async fn a_full_spool_refuses_with_452_and_keeps_nothing() {
    let dir = Scratch::new("queue-full");
    let w = World::start_with(|c| {
        spooled(&dir.0, DeliveryMode::Hybrid)(c);
        c.spool.max_size = 64;
    })
    .await;
    // Delivered at once, a small message needs no room in the spool.
    send(&w, "a@example.net").await.expect_code(250);
    w.upstream
        .script(|s| s.final_reply = Some("451 4.3.0 Try again later".into()));
    let reply = send(&w, "a@example.net").await;
    assert_eq!(reply.code, 452, "{reply:?}");
    assert!(reply.text.contains("4.3.1"), "{reply:?}");
    assert_eq!(w.upstream.messages().len(), 1);
    assert!(received_files(&dir.0).is_empty());
    assert!(files(&dir.0, "queue").is_empty());
}

#[tokio::test(start_paused = true)]
async fn sync_mode_hands_a_temporary_failure_back_to_the_client() {
    let dir = Scratch::new("queue-sync");
    let w = World::start_with(spooled(&dir.0, DeliveryMode::Sync)).await;
    w.upstream
        .script(|s| s.final_reply = Some("451 4.3.0 Try again later".into()));
    let reply = send(&w, "a@example.net").await;
    assert_eq!(reply.code, 451, "{reply:?}");
    assert!(files(&dir.0, "queue").is_empty());
    assert!(received_files(&dir.0).is_empty());
}

#[tokio::test(start_paused = true)]
async fn status_metrics_and_readyz_show_the_queue() {
    let dir = Scratch::new("queue-status");
    let mut w = World::stand_ins(|c| {
        spooled(&dir.0, DeliveryMode::Hybrid)(c);
        with_health(c);
        c.delivery.warn_queue_age = Duration::from_secs(60);
    });
    w.tokens.set_expected(CLIENT_ID, "the-new-secret");
    w.restart().await;
    queued_id(&send(&w, "a@example.net").await);
    tokio::time::sleep(Duration::from_secs(120)).await;
    let (_, status) = http_json(w.health(), "/status").await;
    let q = &status["queue"];
    assert_eq!(q["mode"], "hybrid");
    assert_eq!(q["accounts"]["contoso"]["queued"], 1, "{q}");
    assert!(
        q["accounts"]["contoso"]["oldest_age_seconds"]
            .as_u64()
            .unwrap()
            >= 120,
        "{q}"
    );
    assert!(q["spool"]["bytes"].as_u64().unwrap() > 0, "{q}");
    let (_, metrics) = http_get(w.health(), "/metrics").await;
    assert!(
        metrics.contains("xoauth_relay_queue_messages{account=\"contoso\",state=\"queued\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("xoauth_relay_queue_queued_total 1"),
        "{metrics}"
    );
    let (_, ready) = http_json(w.health(), "/readyz").await;
    let warnings = ready["warnings"].to_string();
    assert!(
        warnings.contains("a queued message has waited 2 min"),
        "{ready}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_sender_is_told_once_when_a_message_is_delayed() {
    let dir = Scratch::new("queue-delay");
    let w = World::start_with(|c| {
        spooled(&dir.0, DeliveryMode::Hybrid)(c);
        c.delivery.warn_after = Some(Duration::from_secs(30));
        c.delivery.retry = vec![Duration::from_secs(20)];
    })
    .await;
    w.upstream.script(|s| {
        s.rcpt_replies
            .insert("slow@example.net".into(), "451 4.4.1 Try later".into());
    });
    let id = queued_id(&send(&w, "slow@example.net").await);
    received(&w, 1).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    let notices = w.upstream.messages();
    assert_eq!(notices.len(), 1, "one delay notice, not one per attempt");
    assert_eq!(notices[0].rcpts, [MAILBOX]);
    let text = String::from_utf8_lossy(&notices[0].body);
    assert!(text.contains("Action: delayed"), "{text}");
    assert!(text.contains(&id), "{text}");
    assert_eq!(meta(&dir.0, "queue")[0]["warned"], true);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_short_of_its_final_dot_is_abandoned_at_sync_timeout_and_sent_once_later() {
    let dir = Scratch::new("queue-abandon");
    let w = World::start_with(spooled(&dir.0, DeliveryMode::Hybrid)).await;
    w.upstream.script(|s| s.hang_at = Some(Phase::DataStart));
    let started = tokio::time::Instant::now();
    let id = queued_id(&send(&w, "a@example.net").await);
    assert!(
        started.elapsed() <= Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    w.upstream.script(|s| s.hang_at = None);
    received(&w, 1).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(w.upstream.messages().len(), 1, "sent once");
    assert!(meta(&dir.0, "queue").is_empty(), "{id} still queued");
}

#[tokio::test(start_paused = true)]
async fn once_the_final_dot_is_out_the_verdict_is_waited_for() {
    let dir = Scratch::new("queue-verdict-wait");
    let w = World::start_with(spooled(&dir.0, DeliveryMode::Hybrid)).await;
    w.upstream
        .script(|s| s.delay_at = Some((Phase::DataEnd, Duration::from_secs(20))));
    let reply = send(&w, "a@example.net").await;
    assert_eq!(reply.code, 250, "{reply:?}");
    assert!(!reply.text.contains("Queued"), "{reply:?}");
    assert_eq!(w.upstream.messages().len(), 1);
    assert!(files(&dir.0, "queue").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_problem_that_starts_during_retries_is_explained_and_holds_the_account() {
    let (logs, _guard) = LogCapture::this_thread();
    let dir = Scratch::new("queue-explained");
    let w = World::start_with(spooled(&dir.0, DeliveryMode::Hybrid)).await;
    w.upstream
        .script(|s| s.final_reply = Some("451 4.3.0 Try again later".into()));
    queued_id(&send(&w, "a@example.net").await);
    w.upstream.script(|s| {
        s.final_reply = None;
        s.auth_reply = Some(
            "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox"
                .into(),
        );
    });
    tokio::time::sleep(Duration::from_secs(30)).await;
    let log = logs.text();
    assert!(log.contains("what went wrong and how to fix it"), "{log}");
    assert!(log.contains("SMTP AUTH"), "{log}");
    assert!(log.contains("wait until it can send again"), "{log}");
    assert!(w.upstream.messages().is_empty());
    assert_eq!(meta(&dir.0, "queue").len(), 1, "still queued, not bounced");
}

#[tokio::test(start_paused = true)]
async fn a_queue_at_max_messages_refuses_with_452() {
    let dir = Scratch::new("queue-count");
    let w = World::start_with(|c| {
        spooled(&dir.0, DeliveryMode::Queue)(c);
        c.spool.max_messages = 1;
        c.delivery.retry = vec![Duration::from_secs(3600)];
    })
    .await;
    w.upstream
        .script(|s| s.final_reply = Some("451 4.3.0 Try again later".into()));
    queued_id(&send(&w, "a@example.net").await);
    let refused = send(&w, "b@example.net").await;
    assert_eq!(refused.code, 452, "{refused:?}");
    assert!(refused.text.contains("4.3.1"), "{refused:?}");
    assert_eq!(meta(&dir.0, "queue").len(), 1);
    assert!(received_files(&dir.0).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_large_message_is_received_into_the_spool_and_sent_from_it_byte_for_byte() {
    let dir = Scratch::new("queue-large");
    let w = World::start_with(spooled(&dir.0, DeliveryMode::Hybrid)).await;
    w.upstream
        .script(|s| s.final_reply = Some("451 4.3.0 Try again later".into()));
    let mut body =
        format!("From: <{MAILBOX}>\r\nTo: <a@example.net>\r\nSubject: big\r\n\r\n").into_bytes();
    for i in 0..6000 {
        body.extend_from_slice(if i % 5 == 0 {
            b".a line that starts with a dot\r\n"
        } else {
            b"some text of the message body\r\n"
        });
    }
    let mut c = w.logged_in().await;
    let id = queued_id(&c.send_mail(MAILBOX, &["a@example.net"], &body).await);
    let size = std::fs::metadata(dir.0.join(format!("spool/queue/{id}.msg")))
        .unwrap()
        .len();
    assert_eq!(size, body.len() as u64);
    w.upstream.script(|s| s.final_reply = None);
    received(&w, 1).await;
    assert!(
        w.upstream.messages()[0].body == body,
        "the body arrived changed"
    );
}
