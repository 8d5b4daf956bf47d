//! Writing a message's content after `354`: dot-stuffed (RFC 5321 §4.5.2), in large pieces,
//! from memory or streamed from its spool file so a 35 MB message never sits on the heap.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};

use super::{Phase, Progress, UpstreamError};
use crate::message::Body;

/// Size of the pieces the body is read and written in; each write gets the data-block deadline.
const CHUNK: usize = 64 * 1024;

/// Writes the body dot-stuffed and the terminating `.`. A dot is doubled at every line start
/// an upstream could see: after CRLF, and also after a bare LF or CR. The session lets no bare
/// ones through, but if one ever came, an upstream that ends lines there would otherwise strip
/// a dot or see an end of data. `progress` learns when the final dot starts to go out: from
/// then on the message may be delivered, and a failure is reported in [`Phase::DataEnd`].
pub(super) async fn write_body<W: AsyncWrite + Unpin>(
    stream: &mut W,
    body: &Body,
    deadline: Duration,
    progress: &Progress,
) -> Result<(), UpstreamError> {
    let mut out = BufWriter::with_capacity(CHUNK, stream);
    let mut stuffer = Stuffer::default();
    match body {
        Body::Memory(bytes) => stuffer.write(&mut out, bytes, deadline).await?,
        Body::File(file) => {
            let mut source = tokio::fs::File::open(file.path())
                .await
                .map_err(spool_error)?;
            let mut chunk = vec![0u8; CHUNK];
            loop {
                let n = source.read(&mut chunk).await.map_err(spool_error)?;
                if n == 0 {
                    break;
                }
                stuffer.write(&mut out, &chunk[..n], deadline).await?;
            }
        }
    }
    progress.final_dot_sent();
    let end: &[u8] = if stuffer.ends_with_crlf() {
        b".\r\n"
    } else {
        b"\r\n.\r\n"
    };
    timed(Phase::DataEnd, deadline, async {
        out.write_all(end).await?;
        out.flush().await
    })
    .await
}

/// The spool file could not be read: nothing of the end went out, so it is safe to retry.
fn spool_error(e: std::io::Error) -> UpstreamError {
    UpstreamError::Io {
        phase: Phase::DataBlock,
        detail: format!("reading the queued message: {e}"),
    }
}

async fn timed(
    phase: Phase,
    deadline: Duration,
    write: impl Future<Output = std::io::Result<()>>,
) -> Result<(), UpstreamError> {
    tokio::time::timeout(deadline, write)
        .await
        .map_err(|_| UpstreamError::Timeout {
            phase,
            after: deadline,
        })?
        .map_err(|e| UpstreamError::Io {
            phase,
            detail: e.to_string(),
        })
}

/// Dot-stuffing state carried from one chunk to the next.
struct Stuffer {
    at_line_start: bool,
    /// The last two octets written (of the content), to know whether it ended with CRLF.
    tail: [u8; 2],
    empty: bool,
}

impl Default for Stuffer {
    fn default() -> Self {
        Self {
            at_line_start: true,
            tail: [0; 2],
            empty: true,
        }
    }
}

impl Stuffer {
    async fn write<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
        chunk: &[u8],
        deadline: Duration,
    ) -> Result<(), UpstreamError> {
        let mut rest = chunk;
        while !rest.is_empty() {
            let piece: &[u8] = if self.at_line_start && rest[0] == b'.' {
                self.at_line_start = false;
                b"."
            } else {
                let (piece, tail) = rest.split_at(line_end(rest));
                rest = tail;
                self.at_line_start = piece.ends_with(b"\n") || piece.ends_with(b"\r");
                piece
            };
            timed(Phase::DataBlock, deadline, out.write_all(piece)).await?;
        }
        self.remember_tail(chunk);
        Ok(())
    }

    fn remember_tail(&mut self, chunk: &[u8]) {
        match chunk {
            [] => {}
            [b] => self.tail = [self.tail[1], *b],
            [.., a, b] => self.tail = [*a, *b],
        }
        self.empty &= chunk.is_empty();
    }

    fn ends_with_crlf(&self) -> bool {
        self.empty || self.tail == *b"\r\n"
    }
}

/// The length of the first line of `text` with its ending: CRLF, a bare LF or a bare CR; all
/// of `text` if it has none.
fn line_end(text: &[u8]) -> usize {
    match memchr::memchr2(b'\r', b'\n', text) {
        None => text.len(),
        Some(p) if text[p] == b'\r' && text.get(p + 1) == Some(&b'\n') => p + 2,
        Some(p) => p + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn stuffed(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let body = Body::Memory(body.to_vec());
        write_body(
            &mut out,
            &body,
            Duration::from_secs(1),
            &Progress::default(),
        )
        .await
        .unwrap();
        out
    }

    /// The same content split into chunks at every offset gives the same wire bytes.
    async fn stuffed_in_chunks(body: &[u8], at: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = Stuffer::default();
        let (a, b) = body.split_at(at);
        for part in [a, b] {
            s.write(&mut out, part, Duration::from_secs(1))
                .await
                .unwrap();
        }
        let end: &[u8] = if s.ends_with_crlf() {
            b".\r\n"
        } else {
            b"\r\n.\r\n"
        };
        out.extend_from_slice(end);
        out
    }

    const CASES: &[(&[u8], &[u8])] = &[
        (b"", b".\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b".a\r\n", b"..a\r\n.\r\n"),
        (b"a\r\n.\r\n..b\r\n", b"a\r\n..\r\n...b\r\n.\r\n"),
        (b"a\n.b\r\n", b"a\n..b\r\n.\r\n"),
        (b"a\r.b\r\n", b"a\r..b\r\n.\r\n"),
        (b"a\r\r\n.\r\n", b"a\r\r\n..\r\n.\r\n"),
        (b"a\r", b"a\r\r\n.\r\n"),
        (b"no final crlf", b"no final crlf\r\n.\r\n"),
    ];

    #[tokio::test]
    async fn dot_stuffing_at_every_line_start_an_upstream_could_see() {
        for (body, wire) in CASES {
            let shown = String::from_utf8_lossy(body);
            assert_eq!(stuffed(body).await, *wire, "{shown:?}");
            for at in 0..=body.len() {
                assert_eq!(
                    stuffed_in_chunks(body, at).await,
                    *wire,
                    "{shown:?} at {at}"
                );
            }
        }
    }

    #[tokio::test]
    async fn stuffing_round_trips_through_the_receiver() {
        let mut body = Vec::new();
        for i in 0..5000u32 {
            body.extend_from_slice(if i % 7 == 0 { b".." } else { b"x" });
            body.extend(std::iter::repeat_n(
                b'a' + (i % 26) as u8,
                (i % 997) as usize,
            ));
            body.extend_from_slice(b"\r\n");
        }
        let wire = stuffed(&body).await;
        let mut rx = smtp_proto::request::receiver::DataReceiver::new();
        let mut got = Vec::new();
        rx.ingest(&mut b"\r\n".iter(), &mut got);
        assert!(rx.ingest(&mut wire.iter(), &mut got));
        assert_eq!(&got[2..], &body[..]);
    }

    #[tokio::test]
    async fn a_spooled_body_streams_the_same_bytes_and_marks_the_final_dot() {
        let dir = std::env::temp_dir().join(format!("xoauth-body-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.msg");
        let mut content = Vec::new();
        for i in 0..40_000u32 {
            content.extend_from_slice(if i % 3 == 0 {
                b".dot line\r\n"
            } else {
                b"text\r\n"
            });
        }
        std::fs::write(&path, &content).unwrap();
        let file = Body::File(crate::message::BodyFile::queued(
            path,
            content.len() as u64,
            Vec::new(),
        ));
        let progress = Progress::default();
        let mut out = Vec::new();
        write_body(&mut out, &file, Duration::from_secs(5), &progress)
            .await
            .unwrap();
        assert!(progress.final_dot_was_sent());
        assert_eq!(out, stuffed(&content).await);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
