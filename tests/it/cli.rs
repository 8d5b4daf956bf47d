//! The built binary: `demo --once`, `hash-password`, and exit codes.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_xoauth-relay");

#[test]
fn demo_once_relays_a_message_end_to_end() {
    let out = Command::new(BIN)
        .args(["demo", "--once"])
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("message byte-identical to what the client sent: yes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("token issued by the stand-in token endpoint: yes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("over TLS: yes   XOAUTH2 user: relay@contoso.example"),
        "{stdout}"
    );
    assert!(stdout.contains("250 2.0.0 OK <"), "{stdout}");
    assert!(
        !stdout.contains("Point a mail client at it"),
        "--once exits, so no invitation to use it: {stdout}"
    );
    assert!(stdout.contains("security: none (loopback)"), "{stdout}");
    assert!(
        !stdout.contains("demo-client-secret"),
        "the client secret must not be shown"
    );
}

#[test]
fn hash_password_reads_stdin_and_prints_an_argon2id_hash() {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run hash-password");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    let hash = hash.trim();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    use argon2::PasswordVerifier;
    let parsed = argon2::PasswordHash::new(hash).unwrap();
    assert!(
        argon2::Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok()
    );
    assert!(!hash.contains("correct horse"));
}

#[test]
fn empty_password_is_refused() {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    let out = Command::new(BIN).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("demo"));
}

#[test]
fn missing_config_exits_78_and_says_where_it_looked() {
    let out = Command::new(BIN)
        .args(["run", "--config", "/nonexistent/xoauth-relay.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/xoauth-relay.toml"),
        "{stderr}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let out = Command::new(BIN)
        .args(["demo", "--once", "--log-format", "json"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    assert!(
        stderr.contains("\"message\":\"message delivered\""),
        "{stderr}"
    );
    let delivered: serde_json::Value = stderr
        .lines()
        .find(|l| l.contains("\"message delivered\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("delivery line");
    assert_eq!(
        delivered["to"],
        serde_json::json!(["someone@example.net"]),
        "a list is a JSON array, not a string: {delivered}"
    );
}

#[test]
fn journald_lines_have_no_timestamp_and_bad_levels_are_usage_errors() {
    let out = Command::new(BIN)
        .args(["demo", "--once"])
        .env("JOURNAL_STREAM", "8:12345")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("message delivered"))
        .expect("delivery line");
    assert!(line.trim_start().starts_with("INFO"), "{line}");
    let out = Command::new(BIN)
        .args(["--log-level", "=[", "demo", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

/// Runs the binary with `args` and `stdin`: (exit code, stdout, stderr).
fn run_with_stdin(args: &[&str], stdin: &[u8]) -> (Option<i32>, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the binary");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn hash_password_refuses_more_than_one_line() {
    let (code, stdout, stderr) = run_with_stdin(&["hash-password"], b"first\nsecond\n");
    assert_eq!(code, Some(64), "{stdout}");
    assert!(stdout.is_empty(), "no hash of the first line: {stdout}");
    assert!(stderr.contains("more than one line"), "{stderr}");
}

#[test]
fn hash_password_verify_tests_a_password_against_a_hash() {
    let (code, hash, _) = run_with_stdin(&["hash-password"], b"correct horse\n");
    assert_eq!(code, Some(0));
    let hash = hash.trim();
    let (code, stdout, _) =
        run_with_stdin(&["hash-password", "--verify", hash], b"correct horse\n");
    assert_eq!(code, Some(0));
    assert!(stdout.contains("matches"), "{stdout}");
    let (code, _, stderr) = run_with_stdin(&["hash-password", "--verify", hash], b"wrong horse\n");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("does NOT match"), "{stderr}");
    let (code, _, stderr) = run_with_stdin(&["hash-password", "--verify", "plain"], b"pw\n");
    assert_eq!(code, Some(64));
    assert!(stderr.contains("not a password_hash value"), "{stderr}");
}

#[test]
fn help_describes_config_and_keeps_log_flags_under_their_own_heading() {
    for command in ["run", "check", "demo", "hash-password", "service"] {
        let out = Command::new(BIN)
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        let (own, logs) = help
            .split_once("Log options:")
            .unwrap_or_else(|| panic!("{command}: no log heading in\n{help}"));
        assert!(!own.contains("--log-level"), "{command}:\n{help}");
        assert!(
            logs.contains("--log-level") && logs.contains("--log-format"),
            "{help}"
        );
    }
    let out = Command::new(BIN)
        .args(["check", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let (_, after) = help
        .split_once("--config <CONFIG>")
        .expect("--config listed");
    let description = after.lines().take(2).collect::<String>();
    assert!(description.contains("Configuration file"), "{help}");
}
