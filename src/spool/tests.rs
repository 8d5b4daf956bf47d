use std::path::PathBuf;

use super::*;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xoauth-spool-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn meta(id: &str, size: u64) -> Meta {
    Meta {
        id: id.into(),
        account: "contoso".into(),
        user: "app".into(),
        mail_from: Some("sender@contoso.com".into()),
        rcpts: vec!["a@example.net".into()],
        body_8bitmime: false,
        smtputf8: false,
        size,
        message_id: None,
        arrived: 1,
        attempts: 0,
        next_attempt: 1,
        reason: "test".into(),
        last_error: None,
        ambiguous: false,
        hold: None,
        in_flight: false,
        warned: false,
        failure: None,
    }
}

/// A received file in `tmp/`, as the listener leaves it.
fn received(spool: &Spool, id: &str, content: &[u8]) -> PathBuf {
    let path = spool.tmp_dir().join(format!("{id}.msg"));
    fs::write(&path, content).unwrap();
    path
}

#[test]
fn a_commit_survives_a_reopen_and_updates_and_removal_keep_the_files_consistent() {
    let root = scratch("commit");
    let (spool, found) = Spool::open(&root, 1 << 20).unwrap();
    assert!(found.queued.is_empty());
    let id = new_id();
    let data = received(&spool, &id, b"Subject: x\r\n\r\nbody\r\n");
    let mut m = meta(&id, 21);
    spool.commit(&data, &m).unwrap();
    assert!(!data.exists());
    assert_eq!(spool.used(), 21);
    m.attempts = 3;
    m.hold = Some(Hold::Operator);
    spool.update(&m).unwrap();
    drop(spool);
    let (spool, found) = Spool::open(&root, 1 << 20).unwrap();
    assert_eq!(found.queued, [m.clone()]);
    assert_eq!(spool.used(), 21);
    assert_eq!(
        fs::read(spool.data_path(&id)).unwrap(),
        b"Subject: x\r\n\r\nbody\r\n"
    );
    spool.remove(&m).unwrap();
    assert_eq!(spool.used(), 0);
    let (_, found) = Spool::open(&root, 1 << 20).unwrap();
    assert!(found.queued.is_empty());
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn start_up_removes_what_never_got_a_250_and_sets_aside_what_it_cannot_read() {
    let root = scratch("recover");
    let (spool, _) = Spool::open(&root, 1 << 20).unwrap();
    received(&spool, &new_id(), b"half a message");
    let orphan = new_id();
    fs::write(spool.data_path(&orphan), b"data without metadata").unwrap();
    let corrupt = new_id();
    fs::write(spool.data_path(&corrupt), b"x").unwrap();
    fs::write(
        root.join("queue").join(format!("{corrupt}.meta")),
        b"{not json",
    )
    .unwrap();
    let missing = new_id();
    fs::write(
        root.join("queue").join(format!("{missing}.meta")),
        meta(&missing, 1).to_json(),
    )
    .unwrap();
    fs::write(root.join("queue").join("README"), b"not ours").unwrap();
    drop(spool);
    let (spool, found) = Spool::open(&root, 1 << 20).unwrap();
    assert_eq!(found.discarded, 2, "{found:?}");
    let mut corrupt_ids = found.corrupt.clone();
    corrupt_ids.sort();
    let mut want = vec![corrupt.clone(), missing.clone()];
    want.sort();
    assert_eq!(corrupt_ids, want);
    assert!(found.queued.is_empty());
    assert!(fs::read_dir(spool.tmp_dir()).unwrap().next().is_none());
    assert!(root.join("failed").join(format!("{corrupt}.meta")).exists());
    assert!(
        root.join("queue").join("README").exists(),
        "a file that is not ours is left alone"
    );
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn failing_a_message_keeps_its_data_and_reason_in_failed() {
    let root = scratch("fail");
    let (spool, _) = Spool::open(&root, 1 << 20).unwrap();
    let id = new_id();
    let data = received(&spool, &id, b"hello\r\n");
    let mut m = meta(&id, 7);
    spool.commit(&data, &m).unwrap();
    m.failure = Some("550 5.1.1 User unknown".into());
    spool.fail(&m).unwrap();
    assert_eq!(spool.used(), 0);
    assert_eq!(fs::read(spool.failed_data(&id)).unwrap(), b"hello\r\n");
    assert_eq!(spool.failed(), [m]);
    assert!(read_queue(&root).is_empty());
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn reservations_stop_at_max_size() {
    let root = scratch("size");
    let (spool, _) = Spool::open(&root, 100).unwrap();
    assert!(spool.reserve(60));
    assert!(!spool.reserve(41));
    spool.release(60);
    assert!(spool.reserve(100));
    fs::remove_dir_all(&root).unwrap();
}

#[cfg(unix)]
#[test]
fn the_spool_and_its_files_are_the_relay_users_only() {
    use std::os::unix::fs::PermissionsExt;
    let root = scratch("modes");
    let (spool, _) = Spool::open(&root, 1 << 20).unwrap();
    let id = new_id();
    let data = received(&spool, &id, b"x");
    spool.commit(&data, &meta(&id, 1)).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root.join("queue")), 0o700);
    assert_eq!(mode(&root.join("queue").join(format!("{id}.meta"))), 0o600);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn two_writers_of_one_record_never_trip_over_each_other() {
    let root = scratch("writers");
    let (spool, _) = Spool::open(&root, 1 << 20).unwrap();
    let id = new_id();
    let data = received(&spool, &id, b"x");
    spool.commit(&data, &meta(&id, 1)).unwrap();
    let spool = std::sync::Arc::new(spool);
    let writers: Vec<_> = (0..2)
        .map(|n| {
            let (spool, id) = (spool.clone(), id.clone());
            std::thread::spawn(move || {
                let mut m = meta(&id, 1);
                for attempt in 0..200 {
                    m.attempts = attempt * 2 + n;
                    spool.update(&m).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    fs::remove_dir_all(&root).unwrap();
}
