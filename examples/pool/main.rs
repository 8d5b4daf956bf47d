//! The relay against a program that speaks XOAUTH2 itself, in the same run and against the
//! same stand-in for Exchange, on loopback and with a 40 ms round trip added between them and
//! Exchange (a delaying proxy both go through), at 1 and 16 concurrent clients, pacing off.
//!
//! `cargo build --release && cargo run --release --example pool`
//!
//! Optional arguments: `loopback_messages delayed_messages` per measurement (default 400 48).
//! Each client, ours or native, sends one message per connection. The relay keeps Exchange's
//! 3 sessions per mailbox (`max_connections`); the stand-in does not enforce them, so the
//! native client's 16 sessions at once would get `432 4.3.2` from real Exchange.

#[path = "../common/mod.rs"]
mod common;
mod native;
mod proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{CLIENT_ID, MAILBOX, PASSWORD, SECRET, StandIns, TENANT, USER, rss_kib, start};
use native::Native;
use proxy::DelayProxy;
use xoauth_relay::testkit::smtp_client::{SmtpClient, auth_plain_line, dot_stuff};
use xoauth_relay::testkit::{FakeTokenEndpoint, TestPki};

const BODY: &[u8] = b"Subject: pool bench\r\n\r\nA short message body.\r\n";

/// One measurement: messages per second and final-dot latencies (ms).
struct Run {
    rate: f64,
    latencies: Vec<f64>,
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let counts = [
        args.first().copied().unwrap_or(400),
        args.get(1).copied().unwrap_or(48),
    ];
    let StandIns {
        binary,
        pki,
        tokens,
        upstream,
        dir,
    } = StandIns::start("pool");
    let proxy = DelayProxy::start(upstream.addr()).await;
    let config = write_config(&dir, &pki, &tokens, proxy.addr);
    let (relay, relay_addr) = start(&binary, &config);
    let token = upstream.token_registry().issue_for_test(TENANT, CLIENT_ID);
    let tls = pki.client_config().expect("client TLS");
    let native = Native::new(proxy.addr, tls, MAILBOX, token);

    println!(
        "relay vs native XOAUTH2 client, same stand-in upstream, pacing off, one message per connection"
    );
    println!(
        "round trip  clients  messages   ours msg/s  native msg/s  ours/native   ours p50 / p99 ms   native p50 / p99 ms"
    );
    for (one_way, count) in [(0, counts[0]), (20, counts[1])] {
        proxy.set_one_way(Duration::from_millis(one_way));
        for clients in [1, 16] {
            let ours = measure(count, clients, move || relay_message(relay_addr)).await;
            let n = native.clone();
            let theirs = measure(count, clients, move || {
                let n = n.clone();
                async move { n.send(BODY).await }
            })
            .await;
            println!(
                "{:>7} ms  {clients:>7}  {count:>8}  {:>11.1}  {:>12.1}  {:>10.2}×  {:>8.2} / {:<8.2}  {:>8.2} / {:.2}",
                one_way * 2,
                ours.rate,
                theirs.rate,
                ours.rate / theirs.rate,
                percentile(&ours.latencies, 50),
                percentile(&ours.latencies, 99),
                percentile(&theirs.latencies, 50),
                percentile(&theirs.latencies, 99),
            );
        }
    }
    assert_eq!(
        upstream.messages().len(),
        8 * counts.iter().sum::<usize>() / 2,
        "every message must arrive"
    );
    println!(
        "relay resident memory after the run: {:.1} MiB",
        rss_kib(relay.0.id()) as f64 / 1024.0
    );
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `total` messages from `clients` concurrent senders.
async fn measure<F, Fut>(total: usize, clients: usize, send: F) -> Run
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = f64> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (next, send) = (next.clone(), send.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    latencies.push(send().await);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.extend(t.await.expect("client task"));
    }
    Run {
        rate: total as f64 / started.elapsed().as_secs_f64(),
        latencies,
    }
}

/// A program with only a password: a connection to the relay, AUTH PLAIN, one message, QUIT
/// (not waiting for its reply, like the native client). The final-dot latency in ms.
async fn relay_message(addr: SocketAddr) -> f64 {
    let mut c = SmtpClient::connect(addr).await;
    c.greeting.expect_code(220);
    let auth = auth_plain_line(USER, PASSWORD);
    c.send_raw(format!("EHLO bench\r\n{auth}\r\n").as_bytes())
        .await;
    c.read_reply().await.expect_code(250);
    c.read_reply().await.expect_code(235);
    let cmds = format!("MAIL FROM:<{MAILBOX}>\r\nRCPT TO:<someone@example.net>\r\nDATA\r\n");
    c.send_raw(cmds.as_bytes()).await;
    for code in [250, 250, 354] {
        c.read_reply().await.expect_code(code);
    }
    let started = Instant::now();
    c.send_raw(&dot_stuff(BODY)).await;
    c.read_reply().await.expect_code(250);
    let latency = started.elapsed().as_secs_f64() * 1000.0;
    let _ = c.write(b"QUIT\r\n").await;
    latency
}

fn write_config(
    dir: &Path,
    pki: &TestPki,
    tokens: &FakeTokenEndpoint,
    smtp: SocketAddr,
) -> PathBuf {
    std::fs::write(dir.join("ca.pem"), pki.ca_pem()).expect("write ca");
    let hash = xoauth_relay::auth::hash_password(PASSWORD).expect("hash");
    let text = format!(
        "[listen]\nsmtp = \"127.0.0.1:0\"\nhealth = \"off\"\n\n\
         [[users]]\nname = \"{USER}\"\npassword_hash = \"{hash}\"\naccount = \"bench\"\n\n\
         [accounts.bench]\nmailbox = \"{MAILBOX}\"\ntenant = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret = \"{SECRET}\"\ntoken_url = \"{}\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
         ca_file = \"ca.pem\"\nmax_messages_per_minute = 0\nmax_recipients_per_day = 0\n",
        tokens.url(TENANT),
        smtp.port()
    );
    let path = dir.join("pool.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn percentile(values: &[f64], p: usize) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get((v.len() * p / 100).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}
