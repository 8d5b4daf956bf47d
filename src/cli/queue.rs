//! `xoauth-relay queue …`: the operator's commands, sent to the running daemon over its control
//! socket; `list` and `show` read the spool directly when the daemon is not running.

mod print;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::exit::{EX_CONFIG, EX_OSERR, EX_UNAVAILABLE, EX_USAGE, FAILURE};
use crate::spool::{self, Meta, control::Request};

#[derive(Debug, clap::Args)]
pub(crate) struct QueueArgs {
    /// Configuration file (else $XOAUTH_RELAY_CONFIG, else the usual locations).
    #[arg(long, short, global = true)]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) action: Action,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub(crate) enum Action {
    /// The queued messages, one a line (from the spool directly when the relay is not running).
    List {
        /// The messages' metadata as a JSON array instead.
        #[arg(long)]
        json: bool,
    },
    /// One message: envelope, account, attempts, last error.
    Show {
        /// The message's queue ID (16 hex digits, as `list` shows it).
        id: String,
        /// Its metadata as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Attempt delivery now: one message, or every queued one with --all.
    Retry {
        /// The message's queue ID.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every queued message.
        #[arg(long)]
        all: bool,
    },
    /// Keep a message in the queue without attempting it until `release`.
    Hold {
        /// The message's queue ID.
        id: String,
    },
    /// Let a held message be attempted again.
    Release {
        /// The message's queue ID.
        id: String,
    },
    /// Remove a message from the queue without a bounce (a copy stays in the spool's failed/).
    Delete {
        /// The message's queue ID.
        id: String,
    },
    /// Give up on a message now and send its sender a bounce.
    Bounce {
        /// The message's queue ID.
        id: String,
    },
}

impl Action {
    fn request(&self) -> Request {
        match self.clone() {
            Action::List { .. } => Request::List,
            Action::Show { id, .. } => Request::Show { id },
            Action::Retry { id, .. } => Request::Retry { id },
            Action::Hold { id } => Request::Hold { id },
            Action::Release { id } => Request::Release { id },
            Action::Delete { id } => Request::Delete { id },
            Action::Bounce { id } => Request::Bounce { id },
        }
    }
}

/// Runs one `queue` command against the daemon whose state directory (and spool) is
/// `location` (or against the spool itself); `None`: there is no state directory.
pub(crate) fn run(location: Option<(PathBuf, PathBuf)>, action: &Action) -> ExitCode {
    run_with(location, action, &mut io::stdout().lock())
}

/// [`run`], printing the results to `out` (problems go to stderr).
fn run_with(
    location: Option<(PathBuf, PathBuf)>,
    action: &Action,
    out: &mut impl Write,
) -> ExitCode {
    let Some((state_dir, spool_dir)) = location else {
        eprintln!("xoauth-relay queue: the configuration has no state_dir, so there is no queue");
        return ExitCode::from(EX_CONFIG);
    };
    let (state_dir, spool_dir) = (&state_dir, &spool_dir);
    let request = action.request();
    if let Err(refusal) = request.check() {
        eprintln!("xoauth-relay queue: {}", print::shown(&refusal.message));
        return ExitCode::from(EX_USAGE);
    }
    let socket = spool::control::socket_path(state_dir);
    let answer = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(spool::control::request(&socket, request)),
        Err(e) => {
            eprintln!("xoauth-relay queue: cannot start the async runtime: {e}");
            return ExitCode::from(EX_OSERR);
        }
    };
    match answer {
        Ok(response) if response.ok => report(action, &response.message, &response.messages, out),
        Ok(response) => {
            eprintln!("xoauth-relay queue: {}", print::shown(&response.message));
            ExitCode::from(FAILURE)
        }
        Err(e) if not_running(&e) => offline(action, &socket, spool_dir, out),
        Err(e) => {
            eprintln!(
                "xoauth-relay queue: cannot talk to the relay at {}: {e}",
                socket.display()
            );
            ExitCode::from(EX_OSERR)
        }
    }
}

/// No socket, a socket nobody answers on, or no Unix sockets at all.
fn not_running(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused | io::ErrorKind::Unsupported
    )
}

/// Prints the daemon's answer to a command that worked.
fn report(action: &Action, message: &str, messages: &[Meta], out: &mut impl Write) -> ExitCode {
    let now = crate::dates::now_unix();
    let written = match action {
        Action::List { json: true } => print::json(messages, out),
        Action::List { json: false } => print::table(messages, now, out),
        Action::Show { json, .. } => match messages.first() {
            Some(meta) if *json => print::json(meta, out),
            Some(meta) => print::details(meta, now, out),
            None => writeln!(out, "{}", print::shown(message)),
        },
        _ => writeln!(out, "{}", print::shown(message)),
    };
    finish(written)
}

/// `list` and `show` from the spool's files; the other commands need the daemon.
fn offline(action: &Action, socket: &Path, spool_dir: &Path, out: &mut impl Write) -> ExitCode {
    if !matches!(action, Action::List { .. } | Action::Show { .. }) {
        eprintln!(
            "xoauth-relay queue: the relay is not running (nothing answers at {}); start it \
             to change the queue",
            socket.display()
        );
        return ExitCode::from(EX_UNAVAILABLE);
    }
    eprintln!(
        "xoauth-relay queue: the relay is not running (nothing answers at {}); reading the \
         spool at {} directly",
        socket.display(),
        spool_dir.display()
    );
    let mut messages = spool::read_queue(spool_dir);
    if let Action::Show { id, .. } = action {
        messages.retain(|m| m.id == *id);
        if messages.is_empty() {
            eprintln!("xoauth-relay queue: no message {id} in the queue");
            return ExitCode::from(FAILURE);
        }
    }
    report(action, "", &messages, out)
}

fn finish(written: io::Result<()>) -> ExitCode {
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`queue list | head`) is not worth a message.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xoauth-relay queue: cannot write the output: {e}");
            ExitCode::from(EX_OSERR)
        }
    }
}

#[cfg(all(test, unix))]
mod tests;
