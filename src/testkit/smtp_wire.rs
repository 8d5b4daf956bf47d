//! Byte-level helpers of the fake upstream: the plain-or-TLS transport (the relay's own
//! stream type, which carries bytes and parses nothing), reply formatting
//! (including multi-line replies) and XOAUTH2 decoding. No session state lives here.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::smtp::stream::Stream;

/// The connection, before or after STARTTLS; `None` after a failed upgrade, when every
/// operation fails.
pub(crate) struct Transport(Option<Stream>);

impl Transport {
    pub fn plain(tcp: TcpStream) -> Self {
        Self(Some(Stream::Plain(tcp)))
    }

    fn stream(&mut self) -> io::Result<&mut Stream> {
        self.0
            .as_mut()
            .ok_or_else(|| io::ErrorKind::NotConnected.into())
    }

    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream()?.read(buf).await
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.stream()?;
        stream.write_all(bytes).await?;
        // rustls buffers records; flush so the reply actually leaves.
        stream.flush().await
    }

    /// Ends the connection politely: TLS `close_notify`, then FIN.
    pub async fn shutdown(&mut self) {
        if let Ok(stream) = self.stream() {
            let _ = stream.shutdown().await;
        }
    }

    pub fn is_tls(&self) -> bool {
        self.0.as_ref().is_some_and(Stream::is_tls)
    }

    /// Runs the server side of the TLS handshake on the plain socket.
    pub async fn upgrade(
        &mut self,
        config: Arc<rustls::ServerConfig>,
        deadline: Duration,
    ) -> io::Result<()> {
        let Some(Stream::Plain(tcp)) = self.0.take() else {
            return Err(io::Error::other(
                "STARTTLS on a connection that is not plain",
            ));
        };
        let accept = TlsAcceptor::from(config).accept(tcp);
        let tls = tokio::time::timeout(deadline, accept)
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        self.0 = Some(Stream::Tls(Box::new(tls)));
        Ok(())
    }
}

/// Appends `reply` to `out` with CRLF line ends. A reply containing `\n` becomes a multi-line
/// reply: `250-first`, `250-second`, `250 last`. Continuation lines may repeat the code or not.
pub(crate) fn push_reply(out: &mut Vec<u8>, reply: &str) {
    let reply = reply.trim_end_matches(['\r', '\n']);
    let lines: Vec<&str> = reply
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .collect();
    let code = reply_code_text(lines[0]);
    let Some(code) = code.filter(|_| lines.len() > 1) else {
        // One line (or no code to repeat): send as given.
        out.extend_from_slice(reply.replace('\n', "\r\n").as_bytes());
        out.extend_from_slice(b"\r\n");
        return;
    };
    let last = lines.len() - 1;
    for (i, line) in lines.iter().enumerate() {
        let text = strip_code(line, code);
        let sep = if i == last { ' ' } else { '-' };
        out.extend_from_slice(format!("{code}{sep}{text}\r\n").as_bytes());
    }
}

/// The three-digit code at the start of a reply line, as text.
fn reply_code_text(line: &str) -> Option<&str> {
    let code = line.get(..3)?;
    code.bytes().all(|b| b.is_ascii_digit()).then_some(code)
}

/// `line` without a leading `code` plus separator.
fn strip_code<'a>(line: &'a str, code: &str) -> &'a str {
    match line.strip_prefix(code) {
        Some(rest) if rest.is_empty() => rest,
        Some(rest) if rest.starts_with([' ', '-']) => &rest[1..],
        _ => line,
    }
}

/// The numeric code of a scripted reply (0 if it has none), to decide whether it accepts.
pub(crate) fn reply_code(reply: &str) -> u16 {
    reply_code_text(reply)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A decoded XOAUTH2 initial response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Xoauth2 {
    pub user: String,
    pub token: String,
}

/// Why an XOAUTH2 response was refused before looking at the token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Xoauth2Error {
    /// Not base64 at all (RFC 4954: 501 5.5.2).
    Base64,
    /// Base64, but not `user=..^Aauth=Bearer ..^A^A`.
    Format,
}

/// Decodes `base64("user=" user ^A "auth=Bearer " token ^A ^A)`.
pub(crate) fn decode_xoauth2(blob: &str) -> Result<Xoauth2, Xoauth2Error> {
    let bytes = STANDARD
        .decode(blob.trim())
        .map_err(|_| Xoauth2Error::Base64)?;
    let text = String::from_utf8(bytes).map_err(|_| Xoauth2Error::Format)?;
    let body = text.strip_suffix("\x01\x01").ok_or(Xoauth2Error::Format)?;
    let mut user = None;
    let mut token = None;
    for field in body.split('\x01') {
        if let Some(u) = field.strip_prefix("user=") {
            user = Some(u);
        } else if let Some(auth) = field.strip_prefix("auth=") {
            let (scheme, value) = auth.split_once(' ').ok_or(Xoauth2Error::Format)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(Xoauth2Error::Format);
            }
            token = Some(value);
        }
    }
    match (user, token) {
        (Some(user), Some(token)) if !user.is_empty() && !token.is_empty() => Ok(Xoauth2 {
            user: user.to_string(),
            token: token.to_string(),
        }),
        _ => Err(Xoauth2Error::Format),
    }
}

/// The address and the raw parameters of a `MAIL FROM:<path> params` line.
pub(crate) fn mail_params(line: &str) -> String {
    let line = line.trim_end_matches(['\r', '\n']);
    let after_colon = line
        .split_once(':')
        .map(|(_, rest)| rest.trim_start())
        .unwrap_or("");
    let rest = match after_colon.strip_prefix('<') {
        Some(inner) => inner.split_once('>').map(|(_, rest)| rest).unwrap_or(""),
        None => after_colon
            .split_once(' ')
            .map(|(_, rest)| rest)
            .unwrap_or(""),
    };
    rest.trim().to_string()
}

/// The command word of a line, upper-cased and bounded, for the transcript.
pub(crate) fn verb(line: &[u8]) -> String {
    let word: Vec<u8> = line
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .take(16)
        .map(u8::to_ascii_uppercase)
        .collect();
    if word.is_empty() {
        "?".to_string()
    } else {
        String::from_utf8_lossy(&word).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str) -> String {
        let mut out = Vec::new();
        push_reply(&mut out, text);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn single_and_multi_line_replies() {
        assert_eq!(reply("250 2.0.0 OK"), "250 2.0.0 OK\r\n");
        assert_eq!(reply("334 "), "334 \r\n");
        assert_eq!(
            reply("550 5.1.1 a\nb\n550 c"),
            "550-5.1.1 a\r\n550-b\r\n550 c\r\n"
        );
        assert_eq!(reply("250-x\r\n250 y\r\n"), "250-x\r\n250 y\r\n");
        assert_eq!(reply_code("432 4.3.2 x"), 432);
        assert_eq!(reply_code("oops"), 0);
    }

    #[test]
    fn xoauth2_decoding() {
        let blob = STANDARD.encode("user=a@b.c\x01auth=Bearer tok\x01\x01");
        let ok = decode_xoauth2(&blob).expect("valid");
        assert_eq!((ok.user.as_str(), ok.token.as_str()), ("a@b.c", "tok"));
        assert_eq!(decode_xoauth2("!!!"), Err(Xoauth2Error::Base64));
        let no_bearer = STANDARD.encode("user=a\x01auth=Basic x\x01\x01");
        assert_eq!(decode_xoauth2(&no_bearer), Err(Xoauth2Error::Format));
        let no_end = STANDARD.encode("user=a\x01auth=Bearer x");
        assert_eq!(decode_xoauth2(&no_end), Err(Xoauth2Error::Format));
        assert_eq!(decode_xoauth2("="), Err(Xoauth2Error::Base64));
    }

    #[test]
    fn mail_parameters_and_verbs() {
        assert_eq!(
            mail_params("MAIL FROM:<a@b> BODY=8BITMIME SIZE=10\r\n"),
            "BODY=8BITMIME SIZE=10"
        );
        assert_eq!(mail_params("MAIL FROM:<>\r\n"), "");
        assert_eq!(mail_params("MAIL FROM: a@b SMTPUTF8"), "SMTPUTF8");
        assert_eq!(verb(b"ehlo x\r\n"), "EHLO");
        assert_eq!(verb(b"\x00\r\n"), "?");
    }
}
