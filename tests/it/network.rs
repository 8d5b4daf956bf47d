//! The listener when it is reachable from a network: STARTTLS and implicit TLS with a real TLS
//! client, the STARTTLS injection case, AUTH refused before TLS, trusted networks, and the
//! abuse limits (per-address cap and lockout, slow clients, session lifetime).

use std::sync::Arc;
use std::time::Duration;

use crate::common::binary::Scratch;
use crate::common::*;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use xoauth_relay::config::{Config, Network, TlsMode};

/// A TLS client trusting only `cert` (the relay's self-signed certificate).
fn connector(cert: CertificateDer<'static>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

fn listener_cert(state: &Scratch) -> CertificateDer<'static> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_file(state.0.join("listener-cert.pem")).expect("generated certificate")
}

fn with_tls(mode: TlsMode, state: &Scratch) -> impl FnOnce(&mut Config) + '_ {
    move |c| {
        c.listen.smtp_tls = mode;
        c.state_dir = Some(state.0.clone());
        c.hostname = "localhost".into();
    }
}

fn auth_plain_line() -> String {
    use base64::Engine;
    let blob = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
    format!("AUTH PLAIN {blob}")
}

#[tokio::test]
async fn starttls_upgrade_then_auth_and_mail() {
    let state = Scratch::new("starttls");
    let w = World::start_with(with_tls(TlsMode::StartTls, &state)).await;
    let mut c = Client::new(TcpStream::connect(w.addr()).await.unwrap());
    c.read_reply().await.expect_code(220);
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(
        ehlo.text.contains("STARTTLS") && !ehlo.text.contains("AUTH"),
        "{}",
        ehlo.text
    );
    c.cmd(&auth_plain_line()).await.expect_start("538 5.7.11");
    c.cmd(&format!("MAIL FROM:<{MAILBOX}>"))
        .await
        .expect_start("530 5.7.0 Must issue a STARTTLS");
    c.cmd("STARTTLS").await.expect_start("220 2.0.0");
    let tcp = c.into_inner();
    let tls = connector(listener_cert(&state))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the relay");
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let mut c = Client::new(tls);
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(
        ehlo.text.contains("AUTH PLAIN LOGIN") && !ehlo.text.contains("STARTTLS"),
        "{}",
        ehlo.text
    );
    c.cmd(&auth_plain_line()).await.expect_code(235);
    c.open_data(MAILBOX, "a@example.net").await;
    c.send_raw(b"Subject: over TLS\r\n\r\nhello\r\n.\r\n").await;
    c.read_reply().await.expect_code(250);
    assert_eq!(
        w.upstream.messages()[0].body,
        b"Subject: over TLS\r\n\r\nhello\r\n"
    );
}

#[tokio::test]
async fn commands_pipelined_after_starttls_are_not_executed() {
    let state = Scratch::new("injection");
    let w = World::start_with(with_tls(TlsMode::StartTls, &state)).await;
    let mut c = Client::new(TcpStream::connect(w.addr()).await.unwrap());
    c.read_reply().await.expect_code(220);
    c.cmd("EHLO client.test").await.expect_code(250);
    // The classic injection: clear-text commands sent together with STARTTLS.
    c.send_raw(b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@attacker.test>\r\nNOOP\r\n")
        .await;
    c.read_reply().await.expect_start("220 2.0.0");
    let tls = connector(listener_cert(&state))
        .connect(ServerName::try_from("localhost").unwrap(), c.into_inner())
        .await
        .unwrap();
    let mut c = Client::new(tls);
    // The first reply inside TLS answers our EHLO, not the injected commands.
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(
        ehlo.text.starts_with("250-localhost Hello client.test"),
        "{}",
        ehlo.text
    );
    c.cmd("NOOP").await.expect_start("250 2.0.0 OK");
    c.cmd(&format!("MAIL FROM:<{MAILBOX}>"))
        .await
        .expect_code(530);
}

#[tokio::test]
async fn implicit_tls_listener() {
    let state = Scratch::new("implicit");
    let w = World::start_with(|c| {
        c.listen.submissions = Some("127.0.0.1:0".parse().unwrap());
        c.state_dir = Some(state.0.clone());
        c.hostname = "localhost".into();
    })
    .await;
    let addr = w
        .relay
        .as_ref()
        .unwrap()
        .submissions_addr
        .expect("submissions listener");
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector(listener_cert(&state))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut c = Client::new(tls);
    c.read_reply().await.expect_code(220);
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(
        ehlo.text.contains("AUTH PLAIN LOGIN") && !ehlo.text.contains("STARTTLS"),
        "{}",
        ehlo.text
    );
    c.cmd(&auth_plain_line()).await.expect_code(235);
    // The clear-text listener keeps working beside it.
    let mut plain = w.logged_in().await;
    plain
        .send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
        .await
        .expect_code(250);
}

#[tokio::test]
async fn a_tls_client_on_the_implicit_port_that_sends_clear_text_is_dropped() {
    let state = Scratch::new("implicit-plain");
    let w = World::start_with(|c| {
        c.listen.submissions = Some("127.0.0.1:0".parse().unwrap());
        c.state_dir = Some(state.0.clone());
    })
    .await;
    let addr = w.relay.as_ref().unwrap().submissions_addr.unwrap();
    let mut c = Client::new(TcpStream::connect(addr).await.unwrap());
    c.send_raw(b"EHLO plain\r\n").await;
    assert_eq!(
        c.read_reply().await.code,
        0,
        "no clear-text answer on the TLS port"
    );
}

#[tokio::test]
async fn the_generated_certificate_is_kept_across_restarts() {
    let state = Scratch::new("keep-cert");
    let mut w = World::start_with(with_tls(TlsMode::StartTls, &state)).await;
    let first = listener_cert(&state);
    w.restart().await;
    assert_eq!(listener_cert(&state), first);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.0.join("listener-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the private key is readable by its owner only"
        );
    }
}

#[tokio::test]
async fn trusted_network_sends_without_a_password() {
    let w = World::start_with(|c| {
        let mut printer = c.users[0].clone();
        printer.name = "printer".into();
        printer.password = None;
        printer.networks = vec![Network {
            addr: "127.0.0.0".parse().unwrap(),
            prefix: 8,
        }];
        c.users.push(printer);
    })
    .await;
    let mut c = w.client().await;
    c.cmd("HELO printer.lan").await.expect_code(250);
    c.cmd("MAIL FROM:<scanner@evil.test>")
        .await
        .expect_start("550 5.7.1");
    c.send_mail(MAILBOX, &["office@example.net"], &message("office", "scan"))
        .await
        .expect_code(250);
    assert_eq!(w.upstream.messages()[0].rcpts, ["office@example.net"]);
    // A user known only by its network cannot log in with a password.
    let mut c = w.client().await;
    c.ehlo().await;
    c.auth_plain("printer", "").await.expect_start("535");
}

#[tokio::test]
async fn untrusted_address_still_needs_auth() {
    let w = World::start_with(|c| {
        let mut printer = c.users[0].clone();
        printer.name = "printer".into();
        printer.password = None;
        printer.networks = vec![Network {
            addr: "192.168.7.0".parse().unwrap(),
            prefix: 24,
        }];
        c.users.push(printer);
    })
    .await;
    let mut c = w.client().await;
    c.ehlo().await;
    c.cmd(&format!("MAIL FROM:<{MAILBOX}>"))
        .await
        .expect_start("530 5.7.0 Authentication required");
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let w = World::start_with(|c| c.limits.max_connections_per_ip = 2).await;
    let _a = w.client().await;
    let _b = w.client().await;
    let third = Client::connect(w.addr()).await;
    third
        .greeting
        .expect_start("421 4.7.0 Too many connections from your address");
    drop(_a);
    // The slot comes back once the first connection is gone.
    let mut again = None;
    for _ in 0..50 {
        let c = Client::connect(w.addr()).await;
        if c.greeting.code == 220 {
            again = Some(c);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(again.is_some());
}

#[tokio::test(start_paused = true)]
async fn an_address_that_keeps_failing_is_locked_out_then_let_back() {
    let w = World::start_with(|c| {
        c.limits.auth_failures_per_ip = 4;
        c.limits.auth_lockout = Duration::from_secs(900);
        c.limits.max_auth_failures = 3;
    })
    .await;
    let mut c = w.client().await;
    c.ehlo().await;
    c.auth_plain(USER, "wrong").await.expect_code(535);
    c.auth_plain(USER, "wrong").await.expect_code(535);
    c.auth_plain(USER, "wrong").await.expect_code(421);
    let mut c = w.client().await;
    c.ehlo().await;
    c.auth_plain(USER, "wrong").await;
    // On loopback the budget is the user name's at this address (other programs here still
    // connect and log in); an address-wide lockout at the greeting is for names no user has,
    // from remote addresses (see the unit tests in `smtp::guard`).
    let mut locked = Client::connect(w.addr()).await;
    locked.greeting.expect_code(220);
    locked.ehlo().await;
    locked
        .auth_plain(USER, PASSWORD)
        .await
        .expect_start("421 4.7.0 Too many failed logins from your address for this user name");
    tokio::time::advance(Duration::from_secs(901)).await;
    let mut c = w.client().await;
    c.ehlo().await;
    c.auth_plain(USER, PASSWORD).await.expect_code(235);
}

#[tokio::test(start_paused = true)]
async fn a_client_trickling_data_is_cut_off() {
    let w = World::start_with(|c| c.limits.min_data_rate = 100).await;
    let mut c = w.logged_in().await;
    c.open_data(MAILBOX, "a@example.net").await;
    let started = tokio::time::Instant::now();
    // A few bytes every 50 seconds: never idle for 5 minutes, but far below 100 octets/s.
    let mut closed_with = None;
    for _ in 0..10 {
        c.send_raw(b"x").await;
        tokio::time::sleep(Duration::from_secs(50)).await;
        let pending = tokio::time::timeout(Duration::from_millis(1), c.read_reply()).await;
        if let Ok(r) = pending {
            closed_with = Some(r);
            break;
        }
    }
    let r = closed_with.expect("the relay closes a slow client");
    r.expect_start("421 4.4.2 Data arriving too slowly");
    assert!(
        started.elapsed() <= Duration::from_secs(120),
        "{:?}",
        started.elapsed()
    );
    assert!(w.upstream.messages().is_empty());
}

#[tokio::test(start_paused = true)]
async fn sessions_have_a_lifetime() {
    let w = World::start_with(|c| c.limits.session_lifetime = Duration::from_secs(600)).await;
    let mut c = w.logged_in().await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(240)).await;
        c.cmd("NOOP").await.expect_code(250);
    }
    let r = c.read_reply().await;
    r.expect_start("421 4.4.2 Connection time limit reached");
}

/// What starting the TLS listener with `state` as `state_dir` says.
async fn listener_tls_error(state: &Scratch) -> String {
    let w = World::stand_ins(with_tls(TlsMode::StartTls, state));
    match xoauth_relay::daemon::tls_acceptor(&w.config).await {
        Ok(_) => panic!("the listener started"),
        Err(e) => e.to_string(),
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_link_at_the_generated_key_path_is_not_followed() {
    let state = Scratch::new("key-link");
    let elsewhere = Scratch::new("key-link-target");
    let precious = elsewhere.0.join("precious");
    std::fs::write(&precious, "someone else's file").unwrap();
    let key = state.0.join("listener-key.pem");
    std::os::unix::fs::symlink(&precious, &key).unwrap();
    let message = listener_tls_error(&state).await;
    assert!(message.contains("is a symbolic link"), "{message}");
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        "someone else's file"
    );
    // A dangling link would otherwise have the key created wherever it points.
    let planted = elsewhere.0.join("planted");
    std::fs::remove_file(&key).unwrap();
    std::os::unix::fs::symlink(&planted, &key).unwrap();
    let message = listener_tls_error(&state).await;
    assert!(message.contains("is a symbolic link"), "{message}");
    assert!(!planted.exists(), "nothing was written through the link");
}

#[tokio::test(start_paused = true)]
async fn clients_that_do_not_log_in_are_closed_at_the_login_deadline() {
    let w = World::start_with(|c| c.limits.login_timeout = Duration::from_secs(60)).await;
    let started = tokio::time::Instant::now();
    let mut silent = w.client().await;
    let mut chatty = w.client().await;
    chatty.ehlo().await;
    let mut user = w.logged_in().await;
    // Commands keep a connection from being idle, but do not extend the time to log in.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(25)).await;
        chatty.cmd("NOOP").await.expect_code(250);
    }
    chatty
        .read_reply()
        .await
        .expect_start("421 4.7.0 Login time limit reached");
    assert_eq!(started.elapsed().as_secs(), 60);
    assert!(chatty.is_closed().await);
    silent
        .read_reply()
        .await
        .expect_start("421 4.7.0 Login time limit reached");
    tokio::time::sleep(Duration::from_secs(60)).await;
    user.cmd("NOOP").await.expect_code(250);
}

#[tokio::test(start_paused = true)]
async fn a_device_trusted_by_its_address_counts_as_logged_in() {
    let w = World::start_with(|c| {
        c.limits.login_timeout = Duration::from_secs(60);
        // Half of two: one slot for clients not logged in; trusted ones need none.
        c.limits.max_connections = 2;
        let mut printer = c.users[0].clone();
        printer.name = "printer".into();
        printer.password = None;
        printer.networks = vec![Network {
            addr: "127.0.0.1".parse().unwrap(),
            prefix: 32,
        }];
        c.users.push(printer);
    })
    .await;
    let mut a = w.client().await;
    let mut b = w.client().await;
    a.greeting.expect_code(220);
    b.greeting.expect_code(220);
    tokio::time::sleep(Duration::from_secs(90)).await;
    a.cmd("NOOP").await.expect_code(250);
    b.send_mail(MAILBOX, &["office@example.net"], &message("office", "scan"))
        .await
        .expect_code(250);
}

#[tokio::test]
async fn clients_not_logged_in_hold_at_most_half_the_slots() {
    let w = World::start_with(|c| c.limits.max_connections = 4).await;
    // Logging in gives its place among those not logged in back.
    let mut user = w.logged_in().await;
    let first = w.client().await;
    let _second = w.client().await;
    first.greeting.expect_code(220);
    _second.greeting.expect_code(220);
    let refused = Client::connect(w.addr()).await;
    refused
        .greeting
        .expect_start("421 4.7.0 Too many connections");
    user.send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
        .await
        .expect_code(250);
    drop(first);
    let mut again = None;
    for _ in 0..50 {
        let c = Client::connect(w.addr()).await;
        if c.greeting.code == 220 {
            again = Some(c);
            break;
        }
        tokio::task::yield_now().await;
    }
    let mut again = again.expect("a place is free once a client not logged in is gone");
    again.ehlo().await;
    again.auth_plain(USER, PASSWORD).await.expect_code(235);
}

/// The listen backlog: a burst of connections to a listener that is not accepting yet must all
/// complete the TCP handshake at once, instead of some waiting out SYN retries.
/// More than tokio's default backlog of 128.
const BURST: usize = 300;
/// A handshake on loopback takes microseconds; a dropped SYN is retried after one second.
const PROMPT: Duration = Duration::from_millis(700);

/// The kernel caps every backlog at `somaxconn`; below the burst this test cannot tell.
fn somaxconn() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok()?;
    text.trim().parse().ok()
}

#[tokio::test]
async fn a_burst_of_connections_fits_in_the_backlog() {
    if somaxconn().is_some_and(|n| n < BURST) {
        eprintln!("skipped: net.core.somaxconn is below {BURST}");
        return;
    }
    let listener = xoauth_relay::daemon::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::with_capacity(BURST);
    for i in 0..BURST {
        // Nothing accepts: each connection waits in the kernel's queue.
        let connect = tokio::time::timeout(PROMPT, TcpStream::connect(addr)).await;
        match connect {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(e)) => panic!("connection {i}: {e}"),
            Err(_) => panic!("connection {i} waited for SYN retries: the backlog is full"),
        }
    }
    drop(listener);
}
