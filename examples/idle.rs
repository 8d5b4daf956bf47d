//! Memory held by many idle client connections, measured on the release binary.
//!
//! `cargo build --release && cargo run --release --example idle -- 10000`
//!
//! Starts `target/release/xoauth-relay run` (limits raised so one address may hold them all),
//! opens N connections that each read the greeting and then stay silent, and prints the
//! relay's resident memory (from /proc, Linux) before, with all N open, and after they close.
//! Both processes need N file descriptors (`ulimit -n`).

mod common;

use common::{relay_binary, rss_kib, start};
use xoauth_relay::testkit::SmtpClient;

#[tokio::main]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let Some(binary) = relay_binary() else {
        eprintln!("target/release/xoauth-relay not found: run `cargo build --release` first");
        std::process::exit(2);
    };
    let dir = std::env::temp_dir().join(format!("xoauth-relay-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("idle.toml");
    std::fs::write(&config, config_text(count)).expect("write config");
    let (relay, addr) = start(&binary, &config);
    let pid = relay.0.id();
    println!("xoauth-relay idle-connection benchmark, {count} connections, release binary");
    let before = rss_kib(pid);
    println!(
        "relay RSS before:              {:>8.1} MiB",
        before as f64 / 1024.0
    );
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let client = SmtpClient::connect(addr).await;
        client.greeting.expect_code(220);
        held.push(client);
    }
    let with = rss_kib(pid);
    println!(
        "relay RSS with {count} idle:  {:>8.1} MiB",
        with as f64 / 1024.0
    );
    println!(
        "per idle connection:           {:>8.1} KiB",
        with.saturating_sub(before) as f64 / count as f64
    );
    drop(held);
    // Let the relay notice the closed connections and free their tasks.
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if open_sockets(pid) < 50 {
            break;
        }
    }
    println!(
        "relay RSS after closing:       {:>8.1} MiB",
        rss_kib(pid) as f64 / 1024.0
    );
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}

fn config_text(count: usize) -> String {
    let max = count + 100;
    format!(
        "[listen]\nsmtp = \"127.0.0.1:0\"\nhealth = \"off\"\n\
         [limits]\nmax_connections = {max}\nmax_connections_per_ip = {max}\n\n\
         [[users]]\nname = \"u\"\npassword = \"p\"\naccount = \"a\"\n\n\
         [accounts.a]\nmailbox = \"a@example.com\"\ntenant = \"example.com\"\n\
         client_id = \"11111111-2222-3333-4444-555555555555\"\nclient_secret = \"x\"\n\
         token_url = \"https://127.0.0.1:9/token\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = 9\n"
    )
}

fn open_sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}
