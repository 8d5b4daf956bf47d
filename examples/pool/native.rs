//! A program that speaks XOAUTH2 itself, straight to the upstream: for every message a new
//! connection, EHLO, STARTTLS, EHLO, `AUTH XOAUTH2` (two steps, as Exchange documents it),
//! MAIL + RCPT + DATA pipelined, the body, and QUIT without waiting for its reply. That is what
//! scripts (Python smtplib), devices and most libraries do per message (mail-send, PHPMailer
//! without keep-alive); lettre's pool would reuse a connection, but it is the exception, and a
//! native client with a pool is what the relay's own pool will be measured against separately.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use xoauth_relay::testkit::smtp_client::{SmtpClient, dot_stuff};

/// What the native client needs: where Exchange is, how to trust it, and its token (fetched
/// once and cached, as MSAL would).
#[derive(Clone)]
pub struct Native {
    pub upstream: SocketAddr,
    pub tls: TlsConnector,
    pub mailbox: String,
    pub token: String,
}

impl Native {
    pub fn new(
        upstream: SocketAddr,
        tls: rustls::ClientConfig,
        mailbox: &str,
        token: String,
    ) -> Self {
        Native {
            upstream,
            tls: TlsConnector::from(Arc::new(tls)),
            mailbox: mailbox.to_string(),
            token,
        }
    }

    /// One message on its own session; the final-dot latency in milliseconds.
    pub async fn send(&self, body: &[u8]) -> f64 {
        let mut plain = SmtpClient::connect(self.upstream).await;
        plain.greeting.expect_code(220);
        plain.cmd("EHLO native.test").await.expect_code(250);
        plain.cmd("STARTTLS").await.expect_code(220);
        let name = ServerName::try_from("127.0.0.1").expect("server name");
        let tls = self
            .tls
            .connect(name, plain.into_inner())
            .await
            .expect("TLS handshake");
        let mut c = SmtpClient::new(tls);
        c.cmd("EHLO native.test").await.expect_code(250);
        c.cmd("AUTH XOAUTH2").await.expect_code(334);
        let blob = format!(
            "user={}\x01auth=Bearer {}\x01\x01",
            self.mailbox, self.token
        );
        let blob = base64::engine::general_purpose::STANDARD.encode(blob);
        c.cmd(&blob).await.expect_code(235);
        let envelope = format!(
            "MAIL FROM:<{}>\r\nRCPT TO:<someone@example.net>\r\nDATA\r\n",
            self.mailbox
        );
        c.send_raw(envelope.as_bytes()).await;
        for code in [250, 250, 354] {
            c.read_reply().await.expect_code(code);
        }
        let started = Instant::now();
        c.send_raw(&dot_stuff(body)).await;
        c.read_reply().await.expect_code(250);
        let latency = started.elapsed().as_secs_f64() * 1000.0;
        let _ = c.write(b"QUIT\r\n").await;
        latency
    }
}
