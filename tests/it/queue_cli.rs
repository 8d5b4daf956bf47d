//! `xoauth-relay queue …` through the built binary with no relay running: `list` and `show`
//! read the spool's files and say so, the commands that change the queue refuse, and the
//! exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_xoauth-relay");

const HELD: &str = "0190A1B2C3D40001";
const QUEUED: &str = "0190A1B2C3D40000";

/// A fresh directory for one test, under the system temp dir.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xoauth-relay-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A valid configuration whose state_dir is `state` (`None`: none set, sync delivery).
fn write_config(dir: &Path, state: Option<&Path>) -> PathBuf {
    let head = match state {
        Some(state) => format!("state_dir = {:?}\n\n", state.display().to_string()),
        None => "[delivery]\nmode = \"sync\"\n\n".to_string(),
    };
    let text = format!(
        "{head}[[users]]\nname = \"app\"\npassword = \"pw\"\naccount = \"contoso\"\n\n\
         [accounts.contoso]\nmailbox = \"sender@contoso.com\"\ntenant = \"contoso.example\"\n\
         client_id = \"11111111-2222-3333-4444-555555555555\"\nclient_secret = \"s\"\n"
    );
    let path = dir.join("relay.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes a committed message into `<spool>/queue/` as the relay does: data and metadata.
fn queue_message(spool: &Path, id: &str, meta: serde_json::Value) {
    let queue = spool.join("queue");
    std::fs::create_dir_all(&queue).unwrap();
    std::fs::write(
        queue.join(format!("{id}.msg")),
        "Subject: hi\r\n\r\nhello\r\n",
    )
    .unwrap();
    std::fs::write(queue.join(format!("{id}.meta")), meta.to_string()).unwrap();
}

/// A state_dir with a spool holding one queued message (from a sender with an escape
/// sequence in it), one held one, and a file that is not a message.
fn spool_with_messages(test: &str) -> (PathBuf, PathBuf) {
    let dir = scratch_dir(test);
    let state = dir.join("state");
    let spool = state.join("spool");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    queue_message(
        &spool,
        QUEUED,
        serde_json::json!({
            "id": QUEUED, "account": "contoso", "user": "app",
            "mail_from": "printer\u{1b}[2J@contoso.com",
            "rcpts": ["a@example.net", "b@example.net", "c@example.net"],
            "size": 2048, "arrived": now - 3 * 3600 - 5 * 60, "attempts": 4,
            "next_attempt": now + 60, "reason": "upstream did not answer",
            "last_error": "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded",
        }),
    );
    queue_message(
        &spool,
        HELD,
        serde_json::json!({
            "id": HELD, "account": "contoso", "user": "app", "mail_from": null,
            "rcpts": ["d@example.net"], "size": 300, "arrived": now - 30,
            "next_attempt": now, "reason": "token endpoint timed out", "hold": "operator",
        }),
    );
    std::fs::write(spool.join("queue/notes.meta"), "not ours").unwrap();
    let config = write_config(&dir, Some(&state));
    (config, state)
}

fn queue(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("queue")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run queue")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn list_reads_the_spool_when_the_relay_is_not_running() {
    let (config, state) = spool_with_messages("queue-list");
    let out = queue(&config, &["list"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("the relay is not running"), "{stderr}");
    assert!(
        stderr.contains(&state.join("spool").display().to_string()),
        "{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "header, two messages, total: {stdout}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("LAST ERROR"),
        "{stdout}"
    );
    let queued = lines[1];
    assert!(queued.starts_with(QUEUED), "{stdout}");
    for part in [
        "3h05m",
        "2K",
        "queued",
        "contoso",
        "  3  ",
        "432 4.3.2 STOREDRV",
    ] {
        assert!(queued.contains(part), "{part:?} in {queued}");
    }
    assert!(
        !stdout.contains('\u{1b}'),
        "no raw escape reaches the terminal: {stdout}"
    );
    assert!(queued.contains("printer\\u{1b}[2J@contoso.com"), "{queued}");
    let held = lines[2];
    assert!(held.starts_with(HELD), "{stdout}");
    for part in ["held", "<>", "token endpoint timed out"] {
        assert!(held.contains(part), "{part:?} in {held}");
    }
    assert_eq!(lines[3], "-- 2 message(s), 1 held, 3K in all");
}

#[test]
fn list_json_is_the_metadata_and_show_finds_one() {
    let (config, _) = spool_with_messages("queue-json");
    let out = queue(&config, &["list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [QUEUED, HELD]);
    assert_eq!(list[0]["mail_from"], "printer\u{1b}[2J@contoso.com");
    assert_eq!(list[1]["hold"], "operator");

    let out = queue(&config, &["show", HELD]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("id:             {HELD}")),
        "{stdout}"
    );
    assert!(stdout.contains("held:           operator"), "{stdout}");
    assert!(stdout.contains("to:             d@example.net"), "{stdout}");

    let out = queue(&config, &["show", "0190A1B2C3D4FFFF"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no message 0190A1B2C3D4FFFF in the queue"));
}

#[test]
fn commands_that_change_the_queue_need_the_relay() {
    let (config, state) = spool_with_messages("queue-offline");
    for args in [
        &["hold", QUEUED][..],
        &["release", HELD],
        &["delete", QUEUED],
        &["bounce", QUEUED],
        &["retry", QUEUED],
        &["retry", "--all"],
    ] {
        let out = queue(&config, args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(69), "{args:?}: {stderr}");
        assert!(stderr.contains("the relay is not running"), "{stderr}");
        assert!(
            stderr.contains(&state.join("queue.sock").display().to_string()),
            "{stderr}"
        );
    }
    let files = std::fs::read_dir(state.join("spool/queue"))
        .unwrap()
        .count();
    assert_eq!(files, 5, "nothing was touched");
}

#[test]
fn bad_ids_usage_and_a_config_without_state_dir() {
    let (config, _) = spool_with_messages("queue-usage");
    let out = queue(&config, &["delete", "../../etc/passwd"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("not a queue ID"),
        "{}",
        text(&out.stderr)
    );
    let out = queue(&config, &["retry"]);
    assert_eq!(out.status.code(), Some(64), "an ID or --all");
    let out = queue(&config, &["retry", QUEUED, "--all"]);
    assert_eq!(out.status.code(), Some(64), "not both");

    // Without state_dir in the file, the relay's default one (here under XDG_STATE_HOME).
    let dir = scratch_dir("queue-default-state");
    let config = write_config(&dir, None);
    let out = Command::new(BIN)
        .args(["queue", "list", "--config"])
        .arg(&config)
        .env_remove("STATE_DIRECTORY")
        .env("XDG_STATE_HOME", &dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "the queue is empty\n");
    let socket = dir.join("xoauth-relay/queue.sock");
    assert!(text(&out.stderr).contains(&socket.display().to_string()));
    // And with no default either (no HOME), there is no queue to read.
    let out = Command::new(BIN)
        .args(["queue", "list", "--config"])
        .arg(&config)
        .env_remove("STATE_DIRECTORY")
        .env_remove("XDG_STATE_HOME")
        .env_remove("HOME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no state_dir"),
        "{}",
        text(&out.stderr)
    );
}
