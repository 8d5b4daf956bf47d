//! Pacing on tokio's paused clock: the rate waits, then refuses; the daily budget refuses with
//! its limit and time, survives a restart, and a bad state file starts it empty.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::*;

/// 2027-01-15 08:00:00Z: a whole hour, so minutes line up with the refusal text.
const START: u64 = 1_800_000_000;

fn pacer(per_minute: u32, per_day: u32, slot_wait: u64, dir: Option<&Path>) -> Pacer {
    let limits = Limits {
        messages_per_minute: per_minute,
        recipients_per_day: per_day,
    };
    let wait = Duration::from_secs(slot_wait);
    let stats = Arc::new(AccountStats::default());
    Pacer::new(
        "contoso",
        limits,
        wait,
        dir,
        Clock::starting_at(START),
        stats,
    )
}

fn scratch(test: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("xoauth-relay-pacing-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn send(p: &Pacer, rcpts: usize) -> Result<(), Reply> {
    let ticket = p.admit(rcpts).await?;
    p.settle(ticket, true).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn beyond_the_rate_a_message_waits_for_its_slot_then_goes() {
    let p = pacer(2, 0, 60, None);
    let t0 = Instant::now();
    send(&p, 1).await.unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;
    send(&p, 1).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
    send(&p, 1).await.unwrap();
    // The first slot comes back a minute after it was used.
    assert_eq!(t0.elapsed(), Duration::from_secs(60));
    send(&p, 1).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(70));
    assert_eq!(p.stats.pacing_waits.load(Ordering::Relaxed), 2);
}

#[tokio::test(start_paused = true)]
async fn a_wait_longer_than_the_slot_wait_is_refused_at_once() {
    let p = pacer(1, 0, 10, None);
    send(&p, 1).await.unwrap();
    let t0 = Instant::now();
    let refusal = send(&p, 1).await.unwrap_err();
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!((refusal.code, refusal.enhanced), (451, Enhanced(4, 7, 0)));
    assert!(
        refusal
            .text
            .contains("at most 1 messages a minute (max_messages_per_minute)")
            && refusal.text.contains("next free slot in 60 s"),
        "{refusal}"
    );
    assert_eq!(p.stats.pacing_refusals.load(Ordering::Relaxed), 1);
    // The refused message took no slot.
    tokio::time::advance(Duration::from_secs(60)).await;
    send(&p, 1).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn the_daily_budget_refuses_with_its_limit_and_when_it_frees_up() {
    let p = pacer(0, 5, 60, None);
    send(&p, 3).await.unwrap();
    tokio::time::advance(Duration::from_secs(600)).await;
    // Refused upstream: its recipients are given back.
    let ticket = p.admit(2).await.unwrap();
    p.settle(ticket, false).await;
    send(&p, 2).await.unwrap();
    assert_eq!(p.recipients_last_24h(), 5);
    assert_eq!(p.stats.recipients_24h.load(Ordering::Relaxed), 5);
    let refusal = send(&p, 1).await.unwrap_err();
    assert_eq!((refusal.code, refusal.enhanced), (452, Enhanced(4, 5, 3)));
    let frees = crate::dates::utc_timestamp(START + 86_400);
    assert!(
        refusal
            .text
            .contains("at most 5 recipients in 24 hours (max_recipients_per_day)")
            && refusal
                .text
                .contains(&format!("from {frees} (in 1430 min)")),
        "{refusal}"
    );
    let never = send(&p, 6).await.unwrap_err();
    assert_eq!((never.code, never.enhanced), (552, Enhanced(5, 5, 3)));
    tokio::time::advance(Duration::from_secs(1430 * 60)).await;
    send(&p, 3).await.unwrap();
    assert_eq!(p.recipients_last_24h(), 5);
}

#[tokio::test(start_paused = true)]
async fn messages_in_flight_hold_their_recipients() {
    let p = pacer(0, 5, 60, None);
    let first = p.admit(4).await.unwrap();
    assert!(send(&p, 2).await.is_err());
    p.settle(first, true).await;
    assert_eq!(p.recipients_last_24h(), 4);
}

#[tokio::test(start_paused = true)]
async fn the_budget_survives_a_restart() {
    let dir = scratch("restart");
    let before = pacer(0, 5, 60, Some(&dir));
    send(&before, 4).await.unwrap();
    drop(before);
    let after = pacer(0, 5, 60, Some(&dir));
    assert_eq!(after.recipients_last_24h(), 4);
    assert_eq!(after.stats.recipients_24h.load(Ordering::Relaxed), 4);
    assert_eq!(send(&after, 2).await.unwrap_err().code, 452);
    send(&after, 1).await.unwrap();
    let text = std::fs::read_to_string(dir.join("pacing/contoso.recipients")).unwrap();
    assert_eq!(text, format!("{}\n{} 5\n", budget::HEADER, START / 60));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(start_paused = true)]
async fn zero_turns_both_limits_off() {
    let dir = scratch("off");
    let p = pacer(0, 0, 1, Some(&dir));
    let t0 = Instant::now();
    for _ in 0..1000 {
        send(&p, 100).await.unwrap();
    }
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert!(!dir.exists(), "nothing to keep");
}

/// Log lines written while `f` runs.
async fn logged<T>(f: impl std::future::Future<Output = T>) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let out = f.await;
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    (out, text)
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_or_unreadable_state_file_is_a_warning_and_an_empty_count() {
    let dir = scratch("corrupt");
    let file = dir.join("pacing/contoso.recipients");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    for bad in [
        "not a count\n".to_string(),
        format!("{}\n123 many\n", budget::HEADER),
        "\u{0}\u{ff}".to_string(),
    ] {
        std::fs::write(&file, bad).unwrap();
        let (p, log) = logged(async { pacer(0, 5, 60, Some(&dir)) }).await;
        assert!(
            log.contains("WARN") && log.contains("cannot read the saved recipient count"),
            "{log}"
        );
        assert_eq!(p.recipients_last_24h(), 0);
        send(&p, 5).await.unwrap();
        assert_eq!(pacer(0, 5, 60, Some(&dir)).recipients_last_24h(), 5);
    }
    // A directory where the file should be cannot be read (nor replaced).
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let (p, log) = logged(async {
        let p = pacer(0, 5, 60, Some(&dir));
        send(&p, 2).await.unwrap();
        p
    })
    .await;
    assert!(
        log.contains("cannot read the saved recipient count"),
        "{log}"
    );
    assert!(log.contains("cannot save the recipient count"), "{log}");
    assert_eq!(p.recipients_last_24h(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn old_and_future_buckets_from_the_file() {
    let now = START / 60;
    let text = format!(
        "{}\n{} 7\n{} 2\n{} 3\n",
        budget::HEADER,
        now - budget::DAY_MINUTES,
        now - 5,
        now + 90
    );
    let mut b = Budget::from_text(10, &text, now).unwrap();
    // The expired bucket is dropped; the one from the future counts as now.
    assert_eq!(b.used(now), 5);
    assert_eq!(
        b.to_text(),
        format!("{}\n{} 2\n{now} 3\n", budget::HEADER, now - 5)
    );
}
