//! The relay refuses an upstream whose TLS it cannot trust, before any credential leaves: a
//! certificate for another host name, or a server that only speaks TLS older than 1.2. And the
//! TLS client configuration offers nothing below TLS 1.2.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use xoauth_relay::testkit::{FakeUpstream, TestPki};

/// What the client is told when the upstream's TLS cannot be trusted.
const TLS_REFUSED: &str = "451 4.3.5 Relay misconfigured: ";

/// A guard against a hung relay in the raw fake, not a wait for anything to get ready.
const GUARD: Duration = Duration::from_secs(30);

async fn one_message(w: &World) -> Reply {
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
        .await
}

/// A relay sending to a `FakeUpstream` whose certificate is for `names`, signed by a CA the
/// relay trusts; so only the name can make it fail.
async fn relay_to_upstream_named(names: &[&str]) -> (World, FakeUpstream) {
    let other = TestPki::for_names(names).expect("test PKI");
    let mut w = World::stand_ins(|_| {});
    let fake = FakeUpstream::start(&other, w.tokens.token_registry()).expect("fake upstream");
    let account = account_mut(&mut w.config);
    account.smtp_port = fake.port();
    account.extra_roots.push(other.ca_der());
    w.restart().await;
    (w, fake)
}

#[tokio::test]
async fn certificate_for_another_host_name_is_refused_before_auth() {
    // The relay dials 127.0.0.1: a certificate for another name, for "localhost" (a name,
    // not the address dialled) or for another address must all fail.
    for names in [&["mail.other.example"][..], &["localhost"], &["127.0.0.2"]] {
        let (w, fake) = relay_to_upstream_named(names).await;
        one_message(&w).await.expect_start(&format!(
            "{TLS_REFUSED}the SMTP server's certificate could not be verified"
        ));
        assert_eq!(fake.auth_attempts(), 0, "{names:?}");
        assert!(fake.messages().is_empty(), "{names:?}");
        let transcript = &fake.transcripts()[0];
        assert!(!transcript.iter().any(|v| v == "AUTH"), "{transcript:?}");
        assert_eq!(transcript.last().map(String::as_str), Some("STARTTLS"));
    }
}

#[tokio::test]
async fn certificate_for_the_dialled_address_is_accepted() {
    // The control for the test above: the same set-up with the right name delivers.
    let (w, fake) = relay_to_upstream_named(&["127.0.0.1"]).await;
    one_message(&w).await.expect_code(250);
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn server_speaking_only_tls_1_1_is_refused_before_auth() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(tokio::time::timeout(GUARD, async move {
        // The start-up probe, then the message's connection.
        old_tls_server(&listener).await;
        old_tls_server(&listener).await
    }));
    let mut w = World::stand_ins(|_| {});
    account_mut(&mut w.config).smtp_port = port;
    w.restart().await;
    w.probed(1).await;
    // Not a certificate problem: the explanation must not send the operator to ca_file.
    one_message(&w).await.expect_start(&format!(
        "{TLS_REFUSED}the TLS handshake with the SMTP server failed"
    ));
    let seen = server.await.expect("server task").expect("relay hung up");
    assert_eq!(
        seen.commands,
        ["EHLO", "STARTTLS"],
        "no AUTH, no second EHLO"
    );
    assert_eq!(
        offered_versions(&seen.client_hello),
        [TLS13, TLS12],
        "the relay's ClientHello"
    );
    // rustls answers the TLS 1.1 ServerHello with a fatal protocol_version alert.
    assert_eq!(
        seen.after_hello.first(),
        Some(&ALERT),
        "{:?}",
        seen.after_hello
    );
    assert_eq!(
        seen.after_hello.get(5..7),
        Some(&[2, 70][..]),
        "fatal, protocol_version"
    );
}

#[test]
fn client_config_offers_only_tls_1_2_and_1_3() {
    xoauth_relay::tls::install_crypto_provider();
    let config = xoauth_relay::tls::client_config(&[]).expect("client config");
    let name = "smtp.office365.com".try_into().expect("server name");
    let mut conn = rustls::ClientConnection::new(Arc::clone(&config), name).expect("connection");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("ClientHello");
    assert_eq!(offered_versions(&hello), [TLS13, TLS12]);
    // Every cipher suite the configuration can use belongs to TLS 1.2 or 1.3.
    for suite in &config.crypto_provider().cipher_suites {
        let version = suite.version().version;
        assert!(
            version == rustls::ProtocolVersion::TLSv1_2
                || version == rustls::ProtocolVersion::TLSv1_3,
            "{suite:?}"
        );
    }
}

const HANDSHAKE: u8 = 0x16;
const ALERT: u8 = 0x15;
const TLS12: u16 = 0x0303;
const TLS13: u16 = 0x0304;

/// What the pre-TLS-1.2 server saw.
struct Seen {
    /// Command verbs before the TLS handshake.
    commands: Vec<String>,
    /// The relay's ClientHello record.
    client_hello: Vec<u8>,
    /// Everything the relay sent after the ServerHello, until it closed the connection.
    after_hello: Vec<u8>,
}

/// An SMTP server from before TLS 1.2, for one connection: plain text up to STARTTLS (offering
/// AUTH XOAUTH2 right away, as a bait), then a TLS 1.1 ServerHello. rustls cannot serve TLS
/// 1.1, so the ServerHello is built by hand.
async fn old_tls_server(listener: &TcpListener) -> Seen {
    let (tcp, _) = listener.accept().await.expect("accept");
    let mut tcp = BufReader::new(tcp);
    write(&mut tcp, b"220 old.mail.test ESMTP\r\n").await;
    let commands = smtp_until_starttls(&mut tcp).await;
    let client_hello = read_record(&mut tcp).await;
    write(&mut tcp, &tls11_server_hello()).await;
    let mut after_hello = Vec::new();
    // The relay hangs up after its alert; an error (reset) ends the reading just the same.
    let _ = tcp.read_to_end(&mut after_hello).await;
    Seen {
        commands,
        client_hello,
        after_hello,
    }
}

/// Answers commands until STARTTLS (answered `220 2.0.0 Ready`); returns the verbs.
async fn smtp_until_starttls(tcp: &mut BufReader<TcpStream>) -> Vec<String> {
    let mut verbs = Vec::new();
    loop {
        let mut line = String::new();
        if tcp.read_line(&mut line).await.expect("read command") == 0 {
            return verbs;
        }
        let verb = line.split_whitespace().next().unwrap_or("").to_uppercase();
        verbs.push(verb.clone());
        let answer: &[u8] = match verb.as_str() {
            "EHLO" => b"250-old.mail.test\r\n250-STARTTLS\r\n250 AUTH XOAUTH2 LOGIN\r\n",
            "STARTTLS" => b"220 2.0.0 Ready\r\n",
            _ => b"503 5.5.1 Not now\r\n",
        };
        write(tcp, answer).await;
        if verb == "STARTTLS" {
            return verbs;
        }
    }
}

async fn write(tcp: &mut BufReader<TcpStream>, bytes: &[u8]) {
    tcp.get_mut().write_all(bytes).await.expect("write");
}

/// One TLS record, header included.
async fn read_record(tcp: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut record = vec![0u8; 5];
    tcp.read_exact(&mut record).await.expect("record header");
    let len = usize::from(u16::from_be_bytes([record[3], record[4]]));
    record.resize(5 + len, 0);
    tcp.read_exact(&mut record[5..]).await.expect("record body");
    record
}

/// A ServerHello record as a TLS 1.1 server sends it: record and server version 0x0302, 32
/// random bytes, no session id, TLS_RSA_WITH_AES_128_CBC_SHA, null compression, no extensions.
fn tls11_server_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[0x42; 32]);
    body.push(0); // session id length
    body.extend_from_slice(&[0x00, 0x2f]);
    body.push(0); // compression: null
    let mut handshake = vec![0x02, 0, 0, body.len() as u8]; // ServerHello, 24-bit length
    handshake.extend_from_slice(&body);
    let mut record = vec![HANDSHAKE, 0x03, 0x02];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// The versions a ClientHello record offers: its supported_versions extension, or only its
/// legacy version when it has none (a TLS 1.2-only client).
fn offered_versions(record: &[u8]) -> Vec<u16> {
    assert_eq!(record.first(), Some(&HANDSHAKE), "not a handshake record");
    let hello = &record[5..];
    assert_eq!(hello[0], 1, "not a ClientHello");
    let mut r = Reader(&hello[4..]);
    let legacy = r.u16();
    r.take(32); // random
    r.vec8(); // session id
    r.vec16(); // cipher suites
    r.vec8(); // compression methods
    let mut extensions = Reader(r.vec16());
    while !extensions.0.is_empty() {
        let kind = extensions.u16();
        let mut data = Reader(extensions.vec16());
        if kind == 0x002b {
            let mut list = Reader(data.vec8());
            return std::iter::from_fn(|| (!list.0.is_empty()).then(|| list.u16())).collect();
        }
    }
    vec![legacy]
}

/// Big-endian fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }

    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }

    fn u16(&mut self) -> u16 {
        let b = self.take(2);
        u16::from_be_bytes([b[0], b[1]])
    }

    /// A field with a one-octet length prefix.
    fn vec8(&mut self) -> &'a [u8] {
        let n = self.u8();
        self.take(n.into())
    }

    /// A field with a two-octet length prefix.
    fn vec16(&mut self) -> &'a [u8] {
        let n = self.u16();
        self.take(n.into())
    }
}
