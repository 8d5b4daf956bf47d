//! Shared harness for the integration tests: the stand-ins for Microsoft 365, a relay built
//! from a `Config` written in code and started on 127.0.0.1:0, and the test kit's SMTP client.
#![allow(dead_code)]

pub mod binary;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use xoauth_relay::config::{Account, Config};
use xoauth_relay::daemon::{self, Running};
// Not every test binary uses all three.
#[allow(unused_imports)]
pub use xoauth_relay::testkit::smtp_client::{Reply, SmtpClient as Client, dot_stuff};
use xoauth_relay::testkit::{
    FakeTokenEndpoint, FakeUpstream, Identity, TestPki, init_crypto, relay_config,
};

pub const TENANT: &str = "contoso.onmicrosoft.com";
pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_SECRET: &str = "s3cret-value~with.symbols";
pub const MAILBOX: &str = "sender@contoso.com";
pub const USER: &str = "xenocept";
pub const PASSWORD: &str = "local-pass";

/// The stand-ins and a relay in front of them.
pub struct World {
    pub pki: TestPki,
    pub tokens: FakeTokenEndpoint,
    pub upstream: FakeUpstream,
    pub config: Config,
    pub relay: Option<Running>,
}

impl World {
    pub async fn start() -> World {
        Self::start_with(|_| {}).await
    }

    /// Starts everything; `adjust` may change the relay configuration first.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> World {
        let mut world = Self::stand_ins(adjust);
        world.restart().await;
        world
    }

    /// The stand-ins and the configuration, without the relay: script the stand-ins, then
    /// call [`World::restart`]. The relay fetches a token as soon as it starts, so a test of
    /// token failures sets them up first.
    pub fn stand_ins(adjust: impl FnOnce(&mut Config)) -> World {
        init_crypto();
        let pki = TestPki::new().expect("test PKI");
        let tokens = FakeTokenEndpoint::start(&pki).expect("token endpoint");
        tokens.set_expected(CLIENT_ID, CLIENT_SECRET);
        let upstream = FakeUpstream::start(&pki, tokens.token_registry()).expect("fake upstream");
        upstream.script(|s| s.allowed_users = Some(vec![MAILBOX.to_string()]));
        let mut config = config_for(&pki, &tokens, &upstream);
        adjust(&mut config);
        World {
            pki,
            tokens,
            upstream,
            config,
            relay: None,
        }
    }

    /// (Re)starts the relay with `self.config`.
    pub async fn restart(&mut self) {
        if let Some(old) = self.relay.take() {
            old.stop().await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        self.relay = Some(
            daemon::start(&self.config, listener)
                .await
                .expect("relay starts"),
        );
    }

    pub fn addr(&self) -> SocketAddr {
        self.relay.as_ref().expect("relay running").smtp_addr
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr()).await
    }

    /// `n` clients at once, each logging in and sending one message; their final replies.
    pub async fn send_concurrently(&self, n: usize) -> Vec<u16> {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let addr = self.addr();
                tokio::spawn(async move {
                    let mut c = Client::connect(addr).await;
                    c.ehlo().await;
                    c.auth_plain(USER, PASSWORD).await.expect_code(235);
                    let rcpt = format!("r{i}@example.net");
                    c.send_mail(MAILBOX, &[&rcpt], &message("r", "s"))
                        .await
                        .code
                })
            })
            .collect();
        let mut codes = Vec::with_capacity(n);
        for t in tasks {
            codes.push(t.await.expect("client task"));
        }
        codes
    }

    /// Waits until `n` upstream probes of the test account have answered (the relay probes at
    /// start-up once it has a token, so a test counting upstream sessions waits for it).
    pub async fn probed(&self, n: u64) {
        let relay = self.relay.as_ref().expect("relay running");
        // Bounded, so a relay that never probes fails the test instead of hanging it (paused
        // tests get there in virtual time).
        let waited = tokio::time::timeout(
            Duration::from_secs(120),
            relay.probes_answered("contoso", n),
        );
        waited
            .await
            .unwrap_or_else(|_| panic!("probe {n} did not answer within 2 minutes"));
    }

    /// A connected client that said EHLO and logged in.
    pub async fn logged_in(&self) -> Client {
        let mut c = self.client().await;
        c.ehlo().await;
        c.auth_plain(USER, PASSWORD).await.expect_code(235);
        c
    }
}

/// The (only) account of a test configuration, for changing it before `restart`.
pub fn account_mut(config: &mut Config) -> &mut Account {
    Arc::make_mut(config.accounts.get_mut("contoso").expect("test account"))
}

/// A relay configuration pointing at the stand-ins, without login delays.
pub fn config_for(pki: &TestPki, tokens: &FakeTokenEndpoint, upstream: &FakeUpstream) -> Config {
    let who = Identity {
        account: "contoso",
        user: USER,
        password: PASSWORD,
        mailbox: MAILBOX,
        tenant: TENANT,
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
    };
    let listen = "127.0.0.1:0".parse().expect("addr");
    let mut config = relay_config(pki, tokens, upstream, &who, listen);
    config.hostname = "relay.test".into();
    config.limits.auth_failure_delay = Duration::ZERO;
    config
}

/// A simple message from the mailbox to `to`.
pub fn message(to: &str, subject: &str) -> Vec<u8> {
    format!("From: <{MAILBOX}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nHello.\r\n").into_bytes()
}

/// Captures every log line (trace level) of the whole process. Install it once per test
/// binary, and only in a binary with a single test, so that nothing else writes into it.
pub struct LogCapture {
    buffer: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl LogCapture {
    pub fn start() -> LogCapture {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || SharedWriter(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("only one LogCapture per test binary");
        LogCapture { buffer }
    }

    /// Captures what this thread logs until the guard is dropped: for a `#[tokio::test]` on
    /// its current-thread runtime, the relay's connection and relay tasks, and no other test's.
    pub fn this_thread() -> (LogCapture, tracing::subscriber::DefaultGuard) {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || SharedWriter(sink.clone()))
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (LogCapture { buffer }, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

struct SharedWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A plain HTTP/1.1 GET against the health endpoint: (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get_host(addr, path, "Host: localhost\r\n").await
}

/// `http_get` with `host_lines` (each ending in CRLF, or empty) as its Host header(s).
pub async fn http_get_host(addr: SocketAddr, path: &str, host_lines: &str) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to health endpoint");
    let request = format!("GET {path} HTTP/1.1\r\n{host_lines}Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read response");
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// `http_get` for a JSON document.
pub async fn http_json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (code, body) = http_get(addr, path).await;
    (
        code,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
    )
}

impl World {
    /// The health endpoint's address (the test config must enable it).
    pub fn health(&self) -> SocketAddr {
        self.relay
            .as_ref()
            .and_then(|r| r.health_addr)
            .expect("health endpoint enabled")
    }
}

/// A configuration change that turns the health endpoint on, on a free port.
pub fn with_health(config: &mut Config) {
    config.listen.health = Some("127.0.0.1:0".parse().expect("addr"));
}
