//! A deliberately small HTTP/1.1 server side for the fake token endpoint: one request at a time
//! per connection, `Content-Length` bodies only, bounded head and body, keep-alive.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest request head (request line plus headers) accepted.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Largest request body accepted.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// A parsed request.
#[derive(Debug)]
pub(crate) struct HttpRequest {
    pub method: String,
    pub target: String,
    /// True for HTTP/1.0, whose default is to close after the response.
    pub http10: bool,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// First header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client wants the connection kept open after this exchange.
    pub fn keep_alive(&self) -> bool {
        let connection = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.http10 {
            connection.contains("keep-alive")
        } else {
            !connection.contains("close")
        }
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed (or went idle past the deadline) between requests: close quietly.
    Closed,
    /// The request was malformed or too large: answer with this status, then close.
    Bad(u16),
    /// The socket failed.
    Io(io::Error),
}

/// Reads requests from one connection, keeping bytes that arrived early for the next one.
#[derive(Default)]
pub(crate) struct HttpReader {
    buf: Vec<u8>,
}

impl HttpReader {
    /// Reads one full request; the whole read must finish within `deadline`.
    pub async fn read_request<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        deadline: Duration,
    ) -> Result<HttpRequest, ReadError> {
        match tokio::time::timeout(deadline, self.read_inner(stream)).await {
            Ok(result) => result,
            // A slow or idle client: nothing sensible to answer, so just close.
            Err(_) => Err(ReadError::Closed),
        }
    }

    async fn read_inner<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<HttpRequest, ReadError> {
        let head_len = self.fill_head(stream).await?;
        let head = String::from_utf8_lossy(&self.buf[..head_len - 4]).into_owned();
        let mut request = parse_head(&head)?;
        let body_len = content_length(&request)?;
        self.buf.drain(..head_len);
        while self.buf.len() < body_len {
            self.read_more(stream).await?;
        }
        request.body = self.buf.drain(..body_len).collect();
        Ok(request)
    }

    /// Reads until the buffer holds a complete head; returns its length including CRLFCRLF.
    async fn fill_head<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<usize, ReadError> {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                return Ok(pos + 4);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ReadError::Bad(431));
            }
            let before = self.buf.len();
            match self.read_more(stream).await {
                Err(ReadError::Bad(_)) if before == 0 => return Err(ReadError::Closed),
                other => other?,
            }
        }
    }

    /// Appends one read's worth of bytes; EOF mid-request is a bad request.
    async fn read_more<S: AsyncRead + Unpin>(&mut self, stream: &mut S) -> Result<(), ReadError> {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.map_err(ReadError::Io)?;
        if n == 0 {
            return Err(ReadError::Bad(400));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn parse_head(head: &str) -> Result<HttpRequest, ReadError> {
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad(400));
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(ReadError::Bad(505)),
    };
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(ReadError::Bad(400))?;
        if name.is_empty() || name.contains(|c: char| c.is_ascii_whitespace()) {
            return Err(ReadError::Bad(400));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(HttpRequest {
        method: method.to_string(),
        target: target.to_string(),
        http10,
        headers,
        body: Vec::new(),
    })
}

fn content_length(request: &HttpRequest) -> Result<usize, ReadError> {
    // Chunked bodies are not needed by any OAuth client we talk to; refuse them clearly.
    if request.header("transfer-encoding").is_some() {
        return Err(ReadError::Bad(501));
    }
    let Some(value) = request.header("content-length") else {
        return Ok(0);
    };
    let len: usize = value.parse().map_err(|_| ReadError::Bad(400))?;
    if len > MAX_BODY {
        return Err(ReadError::Bad(413));
    }
    Ok(len)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A complete response with `Content-Length`, and `Connection: close` unless `keep_alive`.
pub(crate) fn response(status: u16, content_type: &str, body: &str, keep_alive: bool) -> Vec<u8> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store, no-cache\r\nPragma: no-cache\r\nConnection: {connection}\r\n\r\n{body}",
        reason(status),
        body.len()
    )
    .into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Decodes an `application/x-www-form-urlencoded` body. Bad `%` escapes are kept literally and
/// invalid UTF-8 is replaced, the way lenient servers do.
pub(crate) fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut kv = pair.splitn(2, |&b| b == b'=');
            let key = percent_decode(kv.next().unwrap_or(b""));
            let value = percent_decode(kv.next().unwrap_or(b""));
            (key, value)
        })
        .collect()
}

/// Percent-decoding with `+` as space (form encoding).
pub(crate) fn percent_decode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => match input.get(i + 1..i + 3).and_then(hex_pair) {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_pair(pair: &[u8]) -> Option<u8> {
    let hi = (pair[0] as char).to_digit(16)?;
    let lo = (pair[1] as char).to_digit(16)?;
    Some((hi * 16 + lo) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let form = parse_form(b"a=b+c&scope=https%3A%2F%2Fx%2F.default&bad=%zz%4&empty=&flag");
        assert_eq!(form[0], ("a".into(), "b c".into()));
        assert_eq!(form[1], ("scope".into(), "https://x/.default".into()));
        assert_eq!(form[2], ("bad".into(), "%zz%4".into()));
        assert_eq!(form[3], ("empty".into(), String::new()));
        assert_eq!(form[4], ("flag".into(), String::new()));
    }

    #[tokio::test]
    async fn reads_pipelined_requests_and_rejects_big_bodies() {
        let raw = b"POST /t HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /u HTTP/1.0\r\n\r\n";
        let mut reader = HttpReader::default();
        let mut stream = &raw[..];
        let deadline = Duration::from_secs(5);
        let first = reader
            .read_request(&mut stream, deadline)
            .await
            .expect("first");
        assert_eq!(
            (first.method.as_str(), first.body.as_slice()),
            ("POST", &b"abc"[..])
        );
        assert!(first.keep_alive());
        let second = reader
            .read_request(&mut stream, deadline)
            .await
            .expect("second");
        assert_eq!(second.target, "/u");
        assert!(!second.keep_alive());
        assert!(matches!(
            reader.read_request(&mut stream, deadline).await,
            Err(ReadError::Closed)
        ));

        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let mut stream = big.as_bytes();
        let result = HttpReader::default()
            .read_request(&mut stream, deadline)
            .await;
        assert!(matches!(result, Err(ReadError::Bad(413))));
    }
}
