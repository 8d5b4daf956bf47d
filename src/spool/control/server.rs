//! The daemon's side of the control socket: binds it mode 0600 with no moment where it is
//! wider, answers one bounded request per connection, and removes the socket on shutdown.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{QueueOps, Request, Response};
use crate::logging::Untrusted;

/// Longest request line, not counting its line end: a request is a command and an ID.
pub(crate) const MAX_REQUEST: usize = 64 * 1024;
/// How long a connection may take to send its request line.
pub(crate) const READ_DEADLINE: Duration = Duration::from_secs(10);
/// How long a client may take to read the response.
pub(crate) const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the listen backlog.
pub(crate) const MAX_CONNECTIONS: usize = 8;
/// Pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The socket's name in its staging directory (short: a socket path has ~100 octets at most).
const STAGED: &str = "s";

/// A bound control socket, not yet answering.
#[derive(Debug)]
pub(crate) struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file, so shutdown removes ours and not a successor's.
    identity: (u64, u64),
}

impl ControlSocket {
    /// Binds a socket, mode 0600, at `path`, replacing a stale one there (never a file of
    /// another kind, nor a socket a live daemon answers on).
    ///
    /// The socket is bound inside a fresh directory of mode 0700, made 0600 there, and only
    /// then renamed to `path`: nobody else can reach it while its mode is what the umask gave
    /// it. Setting the umask around `bind` instead would change it for the whole process, and
    /// a directory another thread creates meanwhile (the spool's, 0700) would lose its `x` bit.
    pub(crate) async fn bind(path: &Path) -> io::Result<ControlSocket> {
        refuse_unless_stale(path).await?;
        let parent = path.parent().unwrap_or(Path::new("."));
        let staging = parent.join(format!(".{}.{}", super::SOCKET_NAME, std::process::id()));
        let result = bind_in(&staging, path);
        let _ = fs::remove_file(staging.join(STAGED));
        let _ = fs::remove_dir(&staging);
        let listener = result.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create the queue socket {}: {e}", path.display()),
            )
        })?;
        let meta = fs::symlink_metadata(path)?;
        listener.set_nonblocking(true)?;
        Ok(ControlSocket {
            listener: UnixListener::from_std(listener)?,
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
        })
    }

    /// Answers connections until `shutdown`, then removes the socket and waits for the
    /// connections still open (their reads end at once; a command already running finishes).
    pub(crate) async fn run(
        self,
        ops: Arc<dyn QueueOps>,
        shutdown: CancellationToken,
    ) -> io::Result<()> {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let connections = TaskTracker::new();
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => permit,
            };
            let Ok(permit) = permit else { break };
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    let (ops, shutdown) = (ops.clone(), shutdown.clone());
                    connections.spawn(async move {
                        answer_connection(stream, &*ops, &shutdown).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "queue socket: cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
        self.remove();
        connections.close();
        connections.wait().await;
        Ok(())
    }

    fn remove(&self) {
        let ours =
            fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Refuses to replace anything at `path` but a socket left by a relay that is gone (the
/// rename in [`bind_in`] replaces that one atomically).
async fn refuse_unless_stale(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; move it away",
                path.display()
            ),
        ));
    }
    match UnixStream::connect(path).await {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "another relay answers on {}; is it already running?",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(e),
    }
}

/// Binds the socket in a new 0700 directory, makes it 0600 and renames it to `path`, over a
/// stale socket if there is one.
fn bind_in(staging: &Path, path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    let mut dir = fs::DirBuilder::new();
    dir.mode(0o700);
    if let Err(e) = dir.create(staging) {
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(e);
        }
        // Left by a process of the same PID that died while binding.
        let _ = fs::remove_file(staging.join(STAGED));
        fs::remove_dir(staging)?;
        dir.create(staging)?;
    }
    let inner = staging.join(STAGED);
    let listener = std::os::unix::net::UnixListener::bind(&inner)?;
    fs::set_permissions(&inner, fs::Permissions::from_mode(0o600))?;
    fs::rename(&inner, path)?;
    Ok(listener)
}

/// Reads one request line, answers it, and closes.
async fn answer_connection(stream: UnixStream, ops: &dyn QueueOps, shutdown: &CancellationToken) {
    let (read, mut write) = stream.into_split();
    let line = tokio::select! {
        _ = shutdown.cancelled() => return,
        line = tokio::time::timeout(READ_DEADLINE, read_line(read)) => line,
    };
    let response = match line {
        Err(_) => Response::error(format!(
            "no request line within {} s",
            READ_DEADLINE.as_secs()
        )),
        Ok(Err(e)) => Response::error(format!("cannot read the request: {e}")),
        Ok(Ok(None)) => return,
        Ok(Ok(Some(line))) => answer(&line, ops).await,
    };
    let mut bytes = serde_json::to_vec(&response).unwrap_or_default();
    bytes.push(b'\n');
    let sent = tokio::time::timeout(WRITE_DEADLINE, async {
        write.write_all(&bytes).await?;
        write.shutdown().await
    })
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        tracing::debug!("queue socket: the client did not take its response");
    }
}

/// The request line without its line end; `None` when the client closed without a byte.
async fn read_line(read: impl tokio::io::AsyncRead + Unpin) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    BufReader::new(read)
        .take(MAX_REQUEST as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if line.is_empty() {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > MAX_REQUEST {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the line is longer than {} KiB", MAX_REQUEST / 1024),
        ));
    }
    Ok(Some(line))
}

/// Parses and checks a request, then has the daemon carry it out.
async fn answer(line: &[u8], ops: &dyn QueueOps) -> Response {
    let request: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => {
            // serde's message can quote the client's text.
            let reason = e.to_string();
            tracing::warn!(error = %Untrusted(&reason), "queue socket: bad request");
            return Response::error(format!("bad request: {reason}"));
        }
    };
    if let Err(refusal) = request.check() {
        let id = request.id().unwrap_or_default();
        tracing::warn!(command = request.name(), id = %Untrusted(id), "queue socket: not a queue ID");
        return refusal;
    }
    tracing::info!(
        command = request.name(),
        id = request.id().map(Untrusted).map(tracing::field::display),
        "queue command"
    );
    ops.call(request).await
}
