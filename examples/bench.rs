//! Speed and memory figures for the release binary, against the in-process stand-ins.
//!
//! `cargo build --release && cargo run --release --example bench`
//!
//! Starts `target/release/xoauth-relay run` with a real config file, then measures, from
//! /proc (Linux), the relay process's resident memory when idle and after load, and its CPU time
//! per login and per relayed message (upstream sessions are kept and reused between messages, so
//! few messages pay for a STARTTLS handshake and XOAUTH2 login).
//! Optional arguments: `logins messages concurrency` (default 2000 1000 3).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{CLIENT_ID, MAILBOX, PASSWORD, SECRET, StandIns, USER, rss_kib, start};
use xoauth_relay::testkit::smtp_client::{SmtpClient, auth_plain_line, dot_stuff};
use xoauth_relay::testkit::{FakeTokenEndpoint, FakeUpstream, TestPki};

const BODY: &[u8] = b"Subject: bench\r\n\r\nA short message body.\r\n";

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (logins, messages, concurrency) = (
        args.first().copied().unwrap_or(2000),
        args.get(1).copied().unwrap_or(1000),
        args.get(2).copied().unwrap_or(3),
    );
    let StandIns {
        binary,
        pki,
        tokens,
        upstream,
        dir,
    } = StandIns::start("bench");
    let config = write_config(&dir, &pki, &tokens, &upstream);
    let (relay, addr) = start(&binary, &config);
    let pid = relay.0.id();

    println!(
        "xoauth-relay benchmark ({}), release binary {}",
        cpu_note(),
        binary.display()
    );
    println!(
        "idle RSS after start:            {:>8.1} MiB",
        rss_kib(pid) as f64 / 1024.0
    );

    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    run_clients(addr, logins, 8, false).await;
    let (cpu, wall) = (cpu_seconds(pid) - cpu0, t0.elapsed());
    println!(
        "logins (argon2id user, EHLO+AUTH PLAIN+QUIT, 8 at once): {logins} in {:.2} s = {:.0}/s, relay CPU {:.3} ms per login",
        wall.as_secs_f64(),
        logins as f64 / wall.as_secs_f64(),
        cpu * 1000.0 / logins as f64
    );

    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    let latencies = run_clients(addr, messages, concurrency, true).await;
    let (cpu, wall) = (cpu_seconds(pid) - cpu0, t0.elapsed());
    assert_eq!(
        upstream.messages().len(),
        messages,
        "every message must arrive"
    );
    println!(
        "messages (own client connection each, reused upstream sessions, {concurrency} at once): {messages} in {:.2} s = {:.0}/s",
        wall.as_secs_f64(),
        messages as f64 / wall.as_secs_f64()
    );
    println!(
        "  relay CPU per message:          {:>8.3} ms",
        cpu * 1000.0 / messages as f64
    );
    println!(
        "  final-dot latency p50 / p99:    {:>8.2} / {:.2} ms",
        percentile(&latencies, 50),
        percentile(&latencies, 99)
    );
    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    one_connection(addr, messages).await;
    let (cpu, wall) = (cpu_seconds(pid) - cpu0, t0.elapsed());
    println!(
        "messages on one client connection (one login): {messages} in {:.2} s, relay CPU {:.3} ms per message",
        wall.as_secs_f64(),
        cpu * 1000.0 / messages as f64
    );
    println!("  token requests for all of it:   {:>8}", tokens.calls());
    let (user, system) = cpu_split(pid);
    println!("relay CPU over the whole run:     user {user:.2} s, kernel {system:.2} s");
    println!(
        "RSS after load:                   {:>8.1} MiB",
        rss_kib(pid) as f64 / 1024.0
    );
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}

fn write_config(
    dir: &Path,
    pki: &TestPki,
    tokens: &FakeTokenEndpoint,
    upstream: &FakeUpstream,
) -> PathBuf {
    std::fs::write(dir.join("ca.pem"), pki.ca_pem()).expect("write ca");
    let hash = xoauth_relay::auth::hash_password(PASSWORD).expect("hash");
    let text = format!(
        "[listen]\nsmtp = \"127.0.0.1:0\"\nhealth = \"off\"\n[limits]\nmax_connections = 1000\n\n\
         [[users]]\nname = \"{USER}\"\npassword_hash = \"{hash}\"\naccount = \"bench\"\n\n\
         [accounts.bench]\nmailbox = \"{MAILBOX}\"\ntenant = \"contoso.example\"\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret = \"{SECRET}\"\ntoken_url = \"{}\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nca_file = \"ca.pem\"\n\
         max_messages_per_minute = 0\nmax_recipients_per_day = 0\n",
        tokens.url("contoso.example"),
        upstream.port()
    );
    let path = dir.join("bench.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// `total` client sessions, `parallel` at a time; with `send`, each sends one message.
/// Returns the final-dot latencies in milliseconds.
async fn run_clients(addr: SocketAddr, total: usize, parallel: usize, send: bool) -> Vec<f64> {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                latencies.extend(session(addr, send).await);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    all
}

/// One login, then `count` messages in a row on the same connection.
async fn one_connection(addr: SocketAddr, count: usize) {
    let mut c = logged_in(addr).await;
    let message = format!("MAIL FROM:<{MAILBOX}>\r\nRCPT TO:<someone@example.net>\r\nDATA\r\n");
    let body = dot_stuff(BODY);
    for _ in 0..count {
        c.send_raw(message.as_bytes()).await;
        for code in [250, 250, 354] {
            c.read_reply().await.expect_code(code);
        }
        c.send_raw(&body).await;
        c.read_reply().await.expect_code(250);
    }
}

async fn session(addr: SocketAddr, send: bool) -> Option<f64> {
    let mut c = logged_in(addr).await;
    let mut latency = None;
    if send {
        let cmds = format!("MAIL FROM:<{MAILBOX}>\r\nRCPT TO:<someone@example.net>\r\nDATA\r\n");
        c.send_raw(cmds.as_bytes()).await;
        for code in [250, 250, 354] {
            c.read_reply().await.expect_code(code);
        }
        let started = Instant::now();
        c.send_raw(&dot_stuff(BODY)).await;
        c.read_reply().await.expect_code(250);
        latency = Some(started.elapsed().as_secs_f64() * 1000.0);
    }
    c.cmd("QUIT").await.expect_code(221);
    latency
}

/// Connected, greeted and logged in, with EHLO and AUTH pipelined in one write the way a
/// busy client sends them.
async fn logged_in(addr: SocketAddr) -> SmtpClient {
    let mut c = SmtpClient::connect(addr).await;
    c.greeting.expect_code(220);
    let auth = auth_plain_line(USER, PASSWORD);
    c.send_raw(format!("EHLO bench\r\n{auth}\r\n").as_bytes())
        .await;
    c.read_reply().await.expect_code(250);
    c.read_reply().await.expect_code(235);
    c
}

fn percentile(values: &[f64], p: usize) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get((v.len() * p / 100).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let (user, system) = cpu_split(pid);
    user + system
}

/// (utime, stime) of `pid` in seconds; Linux reports clock ticks of 1/100 s.
fn cpu_split(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, r)| {
            r.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    match fields.as_slice() {
        [user, system] => (user / 100.0, system / 100.0),
        _ => (0.0, 0.0),
    }
}

fn cpu_note() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cores} cores, shared machine: compare figures from the same run only")
}
