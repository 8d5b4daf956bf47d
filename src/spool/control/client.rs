//! The command's side of the control socket: one request, one response, each with a deadline.

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::{Request, Response};

/// How long connecting may take: the daemon accepts at once unless it is stuck.
pub(crate) const CONNECT_DEADLINE: Duration = Duration::from_secs(5);
/// How long the daemon may take to carry out a command and answer.
pub(crate) const RESPONSE_DEADLINE: Duration = Duration::from_secs(60);
/// Longest response read: a list of every queued message's metadata.
pub(crate) const MAX_RESPONSE: u64 = 64 << 20;

/// Sends `request` to the daemon at `path` and reads its answer. A daemon that is not running
/// shows as `NotFound` (no socket) or `ConnectionRefused` (a stale one).
pub(crate) async fn request(path: &Path, request: Request) -> io::Result<Response> {
    let stream = tokio::time::timeout(CONNECT_DEADLINE, UnixStream::connect(path))
        .await
        .map_err(|_| {
            timed_out(
                format!("connecting to {}", path.display()),
                CONNECT_DEADLINE,
            )
        })??;
    tokio::time::timeout(RESPONSE_DEADLINE, exchange(stream, &request))
        .await
        .map_err(|_| timed_out("waiting for the daemon's answer".into(), RESPONSE_DEADLINE))?
}

async fn exchange(stream: UnixStream, request: &Request) -> io::Result<Response> {
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut answer = Vec::new();
    BufReader::new(read)
        .take(MAX_RESPONSE)
        .read_until(b'\n', &mut answer)
        .await?;
    if answer.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the daemon closed the connection without answering",
        ));
    }
    if answer.last() != Some(&b'\n') && answer.len() as u64 >= MAX_RESPONSE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the answer is longer than {} MiB", MAX_RESPONSE >> 20),
        ));
    }
    serde_json::from_slice(&answer).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the daemon's answer does not parse: {e}"),
        )
    })
}

fn timed_out(what: String, deadline: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{what}: gave up after {} s", deadline.as_secs()),
    )
}
