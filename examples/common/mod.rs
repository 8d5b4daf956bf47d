//! What the benchmark examples share: the stand-ins for Microsoft 365 and the identity they
//! expect, the release binary started as a child process, its listening address read from the
//! log, and its resident memory read from /proc (Linux).
// Each example uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const USER: &str = "bench";
pub const PASSWORD: &str = "bench-password";
pub const MAILBOX: &str = "sender@contoso.example";
pub const TENANT: &str = "contoso.example";
pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const SECRET: &str = "bench-secret";

/// The release binary, the stand-ins for Microsoft 365 in this process, and a fresh directory
/// for the relay's configuration and state.
pub struct StandIns {
    pub binary: PathBuf,
    pub pki: xoauth_relay::testkit::TestPki,
    pub tokens: xoauth_relay::testkit::FakeTokenEndpoint,
    pub upstream: xoauth_relay::testkit::FakeUpstream,
    pub dir: PathBuf,
}

impl StandIns {
    /// Exits with a hint when the release binary is not built yet.
    pub fn start(name: &str) -> StandIns {
        use xoauth_relay::testkit::{FakeTokenEndpoint, FakeUpstream, TestPki, init_crypto};
        let Some(binary) = relay_binary() else {
            eprintln!("target/release/xoauth-relay not found: run `cargo build --release` first");
            std::process::exit(2);
        };
        init_crypto();
        let pki = TestPki::new().expect("pki");
        let tokens = FakeTokenEndpoint::start(&pki).expect("token endpoint");
        tokens.set_expected(CLIENT_ID, SECRET);
        let upstream = FakeUpstream::start(&pki, tokens.token_registry()).expect("upstream");
        let dir = std::env::temp_dir().join(format!("xoauth-relay-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        StandIns {
            binary,
            pki,
            tokens,
            upstream,
            dir,
        }
    }
}

/// The relay process; killed when dropped.
pub struct Relay(pub Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `target/release/xoauth-relay`, next to `target/release/examples/`.
pub fn relay_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("xoauth-relay");
    bin.exists().then_some(bin)
}

/// Starts `xoauth-relay run --config <config>` and waits for its "listening" line.
pub fn start(binary: &Path, config: &Path) -> (Relay, SocketAddr) {
    // What the relay keeps (the queue, pacing counts) goes next to the config, never into the
    // state directory of the user running the benchmark.
    let state = config.parent().unwrap_or(Path::new(".")).join("state");
    let mut child = Command::new(binary)
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env("XDG_STATE_HOME", &state)
        .env_remove("STATE_DIRECTORY")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start relay");
    let stderr = child.stderr.take().expect("stderr");
    let relay = Relay(child);
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("relay exited").expect("read log");
        if let Some(rest) = line.split("smtp=").nth(1) {
            let addr = rest.split_whitespace().next().expect("addr");
            break addr.parse().expect("socket addr");
        }
    };
    // Keep draining the log so the relay never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (relay, addr)
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}
