//! sd_notify through the built binary: `xoauth-relay run` with `NOTIFY_SOCKET` pointing at a
//! datagram socket this test binds, as systemd's `Type=notify` does. The relay must say
//! `READY=1`, ping `WATCHDOG=1` (at half of `WATCHDOG_USEC`), and on SIGTERM say `STOPPING=1`
//! and exit 0. Waits are blocking receives with a generous timeout, never sleeps.
#![cfg(unix)]

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_xoauth-relay");
const WAIT: Duration = Duration::from_secs(30);

struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A valid configuration that needs no network: the relay contacts nothing at start, and the
/// upstream addresses are loopback ports nothing listens on anyway.
fn write_config(dir: &Path) -> PathBuf {
    let hash = xoauth_relay::auth::hash_password("local-pass").expect("hash");
    let config = format!(
        r#"[listen]
smtp = "127.0.0.1:0"
health = "127.0.0.1:0"

[[users]]
name = "xenocept"
password_hash = "{hash}"
account = "contoso"

[accounts.contoso]
mailbox = "sender@contoso.com"
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_env = "NOTIFY_TEST_SECRET"
token_url = "https://127.0.0.1:9/token"
smtp_host = "127.0.0.1"
smtp_port = 9
"#
    );
    let path = dir.join("relay.toml");
    std::fs::write(&path, config).expect("write config");
    path
}

/// Receives datagrams until one equals `expected`; panics with what came instead on timeout.
fn wait_for(socket: &UnixDatagram, expected: &str, log: &Path) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                if message.lines().any(|line| line == expected) {
                    return;
                }
                seen.push(message);
            }
            Err(e) => panic!(
                "no {expected} within {WAIT:?} ({e}); got {seen:?}\nrelay log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    }
}

#[test]
fn ready_watchdog_and_stopping_reach_the_notify_socket() {
    let dir = std::env::temp_dir().join(format!("xoauth-relay-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket.set_read_timeout(Some(WAIT)).expect("read timeout");
    let config = write_config(&dir);
    let log = dir.join("relay.log");

    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .env("NOTIFY_TEST_SECRET", "not-a-real-secret")
        .env("RUST_LOG", "debug")
        // Not the state directory of the user running the tests.
        .env("XDG_STATE_HOME", dir.join("state"))
        .env_remove("STATE_DIRECTORY")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start xoauth-relay");
    let mut relay = Relay(child);

    wait_for(&socket, "READY=1", &log);
    wait_for(&socket, "WATCHDOG=1", &log);
    let pid = relay.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success(), "kill -TERM {pid}");
    wait_for(&socket, "STOPPING=1", &log);

    let status = relay.0.wait().expect("wait for the relay");
    assert!(
        status.success(),
        "exit status {status}\nrelay log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
