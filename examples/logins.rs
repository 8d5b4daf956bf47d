//! Memory of the release binary under failed logins: many attackers guessing passwords at once.
//!
//! `cargo build --release && cargo run --release --example logins`
//!
//! Starts `target/release/xoauth-relay run` with an argon2id user, then `attackers` clients
//! (each from its own connection, as if from many addresses: the per-address limits are raised
//! so they do not cut the attack short) send wrong passwords for `seconds`, half against the
//! argon2 user and half as unknown users. Samples the relay's resident memory from /proc
//! (Linux) and prints the idle, peak and after figures and the replies counted.
//! Optional arguments: `attackers seconds` (default 100 20).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{relay_binary, rss_kib, start};
use xoauth_relay::testkit::smtp_client::{SmtpClient, auth_plain_line};
use xoauth_relay::testkit::{FakeTokenEndpoint, FakeUpstream, TestPki, init_crypto};

const USER: &str = "bench";
const PASSWORD: &str = "bench-password";
const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const SECRET: &str = "bench-secret";

/// Replies seen by the attackers, by kind.
#[derive(Default)]
struct Counts {
    rejected: AtomicU64,
    busy: AtomicU64,
    other: AtomicU64,
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let attackers = args.first().copied().unwrap_or(100) as usize;
    let seconds = args.get(1).copied().unwrap_or(20);
    let Some(binary) = relay_binary() else {
        eprintln!("target/release/xoauth-relay not found: run `cargo build --release` first");
        std::process::exit(2);
    };
    let dir = std::env::temp_dir().join(format!("xoauth-relay-logins-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // The relay needs an account to start; the stand-ins give it one without the network.
    init_crypto();
    let pki = TestPki::new().expect("pki");
    let tokens = FakeTokenEndpoint::start(&pki).expect("token endpoint");
    tokens.set_expected(CLIENT_ID, SECRET);
    let upstream = FakeUpstream::start(&pki, tokens.token_registry()).expect("upstream");
    std::fs::write(dir.join("ca.pem"), pki.ca_pem()).expect("write ca");
    let config = write_config(&dir, attackers, &tokens, &upstream);
    let (relay, addr) = start(&binary, &config);
    let pid = relay.0.id();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "idle RSS after start:        {:>7.1} MiB",
        mib(rss_kib(pid))
    );

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..attackers)
        .map(|i| tokio::spawn(attack(addr, i, stop.clone(), counts.clone())))
        .collect();
    let peak = sample_peak(pid, Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    println!(
        "{attackers} attackers for {seconds} s (half wrong password for the argon2 user, half unknown users)"
    );
    println!("  peak RSS during the attack: {:>7.1} MiB", mib(peak));
    println!(
        "  RSS right after:            {:>7.1} MiB",
        mib(rss_kib(pid))
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!(
        "  RSS 5 s after:              {:>7.1} MiB",
        mib(rss_kib(pid))
    );
    println!(
        "  replies: {} x 535, {} x 454, {} other",
        counts.rejected.load(Ordering::Relaxed),
        counts.busy.load(Ordering::Relaxed),
        counts.other.load(Ordering::Relaxed)
    );
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The per-address limits are raised so that every attacker (all on 127.0.0.1 here) stands for
/// one of many addresses; the failure delay is short so the attack is as heavy as it can be.
fn write_config(
    dir: &Path,
    attackers: usize,
    tokens: &FakeTokenEndpoint,
    upstream: &FakeUpstream,
) -> PathBuf {
    let hash = xoauth_relay::auth::hash_password(PASSWORD).expect("hash");
    let text = format!(
        "[listen]\nsmtp = \"127.0.0.1:0\"\nhealth = \"off\"\n\
         [limits]\nmax_connections = {conns}\nmax_connections_per_ip = {conns}\n\
         auth_failures_per_ip = 1000000000\nmax_auth_failures = 1000000\nauth_failure_delay = \"10ms\"\n\n\
         [[users]]\nname = \"{USER}\"\npassword_hash = \"{hash}\"\naccount = \"bench\"\n\n\
         [accounts.bench]\nmailbox = \"sender@contoso.example\"\ntenant = \"contoso.example\"\n\
         client_id = \"{CLIENT_ID}\"\nclient_secret = \"{SECRET}\"\ntoken_url = \"{}\"\n\
         smtp_host = \"127.0.0.1\"\nsmtp_port = {}\nca_file = \"ca.pem\"\n",
        tokens.url("contoso.example"),
        upstream.port(),
        conns = attackers + 10,
    );
    let path = dir.join("logins.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Samples RSS every 50 ms for `length`; returns the highest figure in KiB.
async fn sample_peak(pid: u32, length: Duration) -> u64 {
    let end = Instant::now() + length;
    let mut peak = 0;
    while Instant::now() < end {
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peak
}

/// One attacker: one connection, wrong passwords until told to stop (reconnecting if closed).
async fn attack(addr: SocketAddr, i: usize, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let user = if i.is_multiple_of(2) {
        USER.to_string()
    } else {
        format!("nobody{i}")
    };
    let line = format!("{}\r\n", auth_plain_line(&user, &format!("wrong{i}")));
    while !stop.load(Ordering::Relaxed) {
        let Some(mut c) = SmtpClient::try_connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if c.write(b"EHLO attacker\r\n").await.is_err() || c.read_reply().await.code == 0 {
            continue;
        }
        while !stop.load(Ordering::Relaxed) {
            if c.write(line.as_bytes()).await.is_err() {
                break;
            }
            match c.read_reply().await.code {
                535 => counts.rejected.fetch_add(1, Ordering::Relaxed),
                454 => counts.busy.fetch_add(1, Ordering::Relaxed),
                _ => {
                    counts.other.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            };
        }
    }
}
