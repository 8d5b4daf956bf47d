//! The relay's memory while big messages pass: the release binary in hybrid mode (message data
//! streamed into the spool, the attempt streaming from that file), the stand-ins for Microsoft
//! 365 in this process, so only the relay's own process is measured. Prints its resident memory
//! (VmRSS) before, and its peak (VmHWM, from /proc/PID/status; Linux) while one 35 MiB message
//! passes and while ten pass at once.
//!
//! `cargo build --release && cargo run --release --example spool_memory`

#[path = "common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{CLIENT_ID, MAILBOX, PASSWORD, SECRET, StandIns, TENANT, USER, rss_kib, start};
use xoauth_relay::testkit::smtp_client::{SmtpClient, dot_stuff};
use xoauth_relay::testkit::{FakeTokenEndpoint, TestPki};

/// Exchange Online's default largest message.
const BIG: usize = 35 * 1024 * 1024;

#[tokio::main]
async fn main() {
    let StandIns {
        binary,
        pki,
        tokens,
        upstream,
        dir,
    } = StandIns::start("spool-mem");
    let config = write_config(&dir, &pki, &tokens, upstream.addr());
    let (relay, addr) = start(&binary, &config);
    let pid = relay.0.id();
    let big = dot_stuff(&big_message());
    let small = dot_stuff(b"Subject: warm-up\r\n\r\nA short message.\r\n");

    println!("relay memory, hybrid mode, message data through the spool (KiB = 1024 octets)");
    println!("idle after start:            VmRSS {:>7} KiB", rss_kib(pid));
    send(addr, &small).await;
    let before = rss_kib(pid);
    let hwm_before = status_kib(pid, "VmHWM:");
    println!("after one small message:     VmRSS {before:>7} KiB  VmHWM {hwm_before:>7} KiB");

    let started = Instant::now();
    let reply = send(addr, &big).await;
    let one = status_kib(pid, "VmHWM:");
    println!(
        "one {} MiB message ({:.2} s, {}): peak VmHWM {one:>7} KiB ({:.1} MiB), VmRSS after {} KiB",
        BIG >> 20,
        started.elapsed().as_secs_f64(),
        reply
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        one as f64 / 1024.0,
        rss_kib(pid),
    );

    // The peak so far would hide a lower one: reset it where the kernel allows (Linux 4.0+).
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let started = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let big = big.clone();
            tokio::spawn(async move { send(addr, &big).await })
        })
        .collect();
    let mut queued = 0;
    for t in tasks {
        queued += usize::from(t.await.expect("client").contains("Queued as"));
    }
    let ten = status_kib(pid, "VmHWM:");
    println!(
        "ten {} MiB messages at once ({:.2} s, {queued} of them queued): peak VmHWM {ten:>7} KiB ({:.1} MiB){}",
        BIG >> 20,
        started.elapsed().as_secs_f64(),
        ten as f64 / 1024.0,
        if reset {
            ""
        } else {
            " (peak not reset: includes the single message)"
        },
    );
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    while upstream.messages().len() < 12 && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let got = upstream.messages();
    assert_eq!(got.len(), 12, "every message must arrive");
    assert!(
        got.iter()
            .skip(1)
            .all(|m| m.body.len() == big_message().len()),
        "byte counts"
    );
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A 35 MiB message of 78-character lines.
fn big_message() -> Vec<u8> {
    let mut body = b"Subject: big\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    let line = [b'x'; 76];
    while body.len() + 78 <= BIG {
        body.extend_from_slice(&line);
        body.extend_from_slice(b"\r\n");
    }
    body
}

/// One message through the relay; its final reply (the whole line).
async fn send(addr: SocketAddr, stuffed: &[u8]) -> String {
    let mut c = SmtpClient::connect(addr).await;
    c.greeting.expect_code(220);
    c.ehlo().await;
    c.auth_plain(USER, PASSWORD).await.expect_code(235);
    let cmds = format!("MAIL FROM:<{MAILBOX}>\r\nRCPT TO:<someone@example.net>\r\nDATA\r\n");
    c.send_raw(cmds.as_bytes()).await;
    for code in [250, 250, 354] {
        c.read_reply().await.expect_code(code);
    }
    c.send_raw(stuffed).await;
    let reply = c.read_reply().await;
    reply.expect_code(250);
    let _ = c.write(b"QUIT\r\n").await;
    reply.text
}

/// A `/proc/PID/status` field in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn write_config(
    dir: &Path,
    pki: &TestPki,
    tokens: &FakeTokenEndpoint,
    smtp: SocketAddr,
) -> PathBuf {
    std::fs::write(dir.join("ca.pem"), pki.ca_pem()).expect("write ca");
    let text = format!(
        "state_dir = \"{state}\"\n\n[listen]\nsmtp = \"127.0.0.1:0\"\nhealth = \"off\"\n\n\
         [limits]\nmax_message_size = \"40MB\"\n\n[delivery]\nmode = \"hybrid\"\n\n\
         [[users]]\nname = \"{USER}\"\npassword = \"{PASSWORD}\"\naccount = \"bench\"\n\n\
         [accounts.bench]\nmailbox = \"{MAILBOX}\"\ntenant = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret = \"{SECRET}\"\ntoken_url = \"{}\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
         ca_file = \"ca.pem\"\nmax_messages_per_minute = 0\nmax_recipients_per_day = 0\n",
        tokens.url(TENANT),
        smtp.port(),
        state = dir.join("state").display(),
    );
    let path = dir.join("spool-memory.toml");
    std::fs::write(&path, text).expect("write config");
    path
}
