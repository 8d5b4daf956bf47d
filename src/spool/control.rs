//! The daemon's control socket for `xoauth-relay queue …`: one JSON request line in, one JSON
//! response line out, over a Unix socket in `state_dir` that only the relay's user may open
//! (mail in the queue is private). The daemon answers through [`QueueOps`]; this module only
//! carries the requests, bounds them and checks their IDs.

#[cfg(unix)]
mod client;
#[cfg(unix)]
mod server;
#[cfg(all(test, unix))]
mod tests;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Meta;

#[cfg(unix)]
pub(crate) use client::request;
#[cfg(unix)]
pub(crate) use server::ControlSocket;

/// The socket's file name in `state_dir`.
pub(crate) const SOCKET_NAME: &str = "queue.sock";

/// What an operator asks the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub(crate) enum Request {
    List,
    Show {
        id: String,
    },
    /// `None`: every queued message (`queue retry --all`).
    Retry {
        id: Option<String>,
    },
    Hold {
        id: String,
    },
    Release {
        id: String,
    },
    Delete {
        id: String,
    },
    Bounce {
        id: String,
    },
}

impl Request {
    /// The command's name, as it appears on the wire and in the log.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Request::List => "list",
            Request::Show { .. } => "show",
            Request::Retry { .. } => "retry",
            Request::Hold { .. } => "hold",
            Request::Release { .. } => "release",
            Request::Delete { .. } => "delete",
            Request::Bounce { .. } => "bounce",
        }
    }

    /// The message it names, if any.
    pub(crate) fn id(&self) -> Option<&str> {
        match self {
            Request::List | Request::Retry { id: None } => None,
            Request::Retry { id: Some(id) }
            | Request::Show { id }
            | Request::Hold { id }
            | Request::Release { id }
            | Request::Delete { id }
            | Request::Bounce { id } => Some(id),
        }
    }

    /// Refuses an ID that is not one the spool makes, before it is used to name a file or
    /// written into a log line.
    pub(crate) fn check(&self) -> Result<(), Response> {
        match self.id() {
            Some(id) if !super::is_id(id) => Err(Response::error(format!(
                "not a queue ID: {:?} (IDs are 16 hex digits, as `queue list` shows them)",
                crate::logging::Untrusted(id)
            ))),
            _ => Ok(()),
        }
    }
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Response {
    pub ok: bool,
    /// For the operator: what was done, or why not.
    pub message: String,
    /// `list` and `show`: the messages.
    #[serde(default)]
    pub messages: Vec<Meta>,
}

impl Response {
    pub(crate) fn done(message: impl Into<String>) -> Response {
        Response {
            ok: true,
            message: message.into(),
            messages: Vec::new(),
        }
    }

    pub(crate) fn error(message: impl Into<String>) -> Response {
        Response {
            ok: false,
            message: message.into(),
            messages: Vec::new(),
        }
    }
}

/// What the daemon does for each request; the spool's owner implements it.
pub(crate) trait QueueOps: Send + Sync {
    fn call<'a>(&'a self, request: Request) -> crate::BoxFuture<'a, Response>;
}

/// Where the daemon listens: `state_dir/queue.sock`.
pub(crate) fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// Without Unix sockets there is no control socket; the commands say so.
#[cfg(not(unix))]
pub(crate) async fn request(_path: &Path, _request: Request) -> std::io::Result<Response> {
    Err(unsupported())
}

#[cfg(not(unix))]
pub(crate) async fn serve(
    _path: PathBuf,
    _ops: std::sync::Arc<dyn QueueOps>,
    _shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    Err(unsupported())
}

#[cfg(not(unix))]
fn unsupported() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "the queue's control socket is a Unix socket, not available on this platform",
    )
}
