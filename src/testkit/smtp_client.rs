//! `SmtpClient`: the line-level SMTP client of the tests, the demo and the benchmarks.
//!
//! It speaks raw lines so callers see replies byte for byte, and it shares no code with the
//! relay's session or with `upstream::client`: its dot-stuffing and reply parsing are a second,
//! independent reading of RFC 5321, which is what makes it a check of the relay's.

use std::io;
use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One SMTP reply: the code and all its lines joined with `\n`. Code 0 means the connection
/// closed (or failed) before a complete reply.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    /// Panics unless the reply has `code`; for tests.
    #[track_caller]
    pub fn expect_code(&self, code: u16) -> &Self {
        assert_eq!(self.code, code, "unexpected reply: {}", self.text);
        self
    }

    /// Panics unless the reply text starts with `prefix`; for tests.
    #[track_caller]
    pub fn expect_start(&self, prefix: &str) -> &Self {
        assert!(
            self.text.starts_with(prefix),
            "expected {prefix:?}, got {:?}",
            self.text
        );
        self
    }
}

/// A client over any stream: plain TCP, or TLS after the caller's handshake.
pub struct SmtpClient<S = TcpStream> {
    io: BufReader<S>,
    /// The server's greeting (code 0 when made with [`SmtpClient::new`]).
    pub greeting: Reply,
}

impl SmtpClient<TcpStream> {
    /// Connects and reads the greeting; `None` when nothing accepts connections at `addr` or
    /// the server closes before greeting.
    pub async fn try_connect(addr: SocketAddr) -> Option<Self> {
        let stream = TcpStream::connect(addr).await.ok()?;
        // Commands are small and a benchmark measures latency, not packet count.
        let _ = stream.set_nodelay(true);
        let mut client = Self::new(stream);
        client.greeting = client.read_reply().await;
        (client.greeting.code != 0).then_some(client)
    }

    /// [`try_connect`](Self::try_connect) that panics on failure; for tests.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::try_connect(addr).await.expect("connect to relay")
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> SmtpClient<S> {
    /// A client on an open stream, without reading a greeting (after STARTTLS there is none).
    pub fn new(stream: S) -> Self {
        Self {
            io: BufReader::new(stream),
            greeting: Reply::default(),
        }
    }

    /// The stream, for a TLS handshake after STARTTLS. Bytes read ahead are dropped, as a
    /// client must drop them (RFC 3207 §4.2, the STARTTLS injection case).
    pub fn into_inner(self) -> S {
        self.io.into_inner()
    }

    /// Writes `bytes` and flushes them (TLS streams buffer records).
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.io.get_mut();
        stream.write_all(bytes).await?;
        stream.flush().await
    }

    /// [`write`](Self::write) that panics on failure; for tests.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.write(bytes).await.expect("write to relay");
    }

    /// Sends one command line and reads its reply.
    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
        self.read_reply().await
    }

    /// Reads one (possibly multi-line) reply; code 0 when the connection closed.
    pub async fn read_reply(&mut self) -> Reply {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self.io.read_line(&mut line).await.unwrap_or(0);
            if n == 0 {
                return Reply { code: 0, text };
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(line);
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return Reply { code, text };
            }
        }
    }

    /// `EHLO client.test`, which must be accepted; for tests.
    pub async fn ehlo(&mut self) -> Reply {
        let r = self.cmd("EHLO client.test").await;
        r.expect_code(250);
        r
    }

    pub async fn auth_plain(&mut self, user: &str, password: &str) -> Reply {
        self.cmd(&auth_plain_line(user, password)).await
    }

    /// MAIL, RCPTs, DATA and the body (dot-stuffed here); returns the reply to the final dot,
    /// or the first refusal before it.
    pub async fn send_mail(&mut self, from: &str, rcpts: &[&str], body: &[u8]) -> Reply {
        let r = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        if r.code != 250 {
            return r;
        }
        for rcpt in rcpts {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>")).await;
            if r.code != 250 {
                return r;
            }
        }
        let r = self.cmd("DATA").await;
        if r.code != 354 {
            return r;
        }
        self.send_raw(&dot_stuff(body)).await;
        self.read_reply().await
    }

    /// MAIL FROM `from`, RCPT TO `rcpt`, DATA, expecting
    /// `250`, `250` and `354`: the client is then inside the message.
    pub async fn open_data(&mut self, from: &str, rcpt: &str) {
        self.cmd(&format!("MAIL FROM:<{from}>"))
            .await
            .expect_code(250);
        self.cmd(&format!("RCPT TO:<{rcpt}>"))
            .await
            .expect_code(250);
        self.cmd("DATA").await.expect_code(354);
    }

    /// True when the server closed the connection.
    pub async fn is_closed(&mut self) -> bool {
        let mut line = String::new();
        matches!(self.io.read_line(&mut line).await, Ok(0) | Err(_))
    }
}

/// `AUTH PLAIN <base64(\0user\0password)>` (RFC 4616), without the line end.
pub fn auth_plain_line(user: &str, password: &str) -> String {
    let blob = STANDARD.encode(format!("\0{user}\0{password}"));
    format!("AUTH PLAIN {blob}")
}

/// The body as a client puts it on the wire (RFC 5321 §4.5.2): a dot at the start of a line
/// doubled, a final CRLF added when missing, then `.` CRLF.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut line_start = true;
    for (i, &b) in body.iter().enumerate() {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n' && i > 0 && body[i - 1] == b'\r';
    }
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_dots_at_line_starts_only() {
        assert_eq!(dot_stuff(b""), b".\r\n");
        assert_eq!(
            dot_stuff(b".a\r\n..b\r\nc.\r\n"),
            b"..a\r\n...b\r\nc.\r\n.\r\n"
        );
        // A bare LF does not end a line, so the dot after it stays single.
        assert_eq!(dot_stuff(b"a\n.b"), b"a\n.b\r\n.\r\n");
    }
}
