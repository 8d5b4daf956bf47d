//! The message as every layer sees it: who submits it (`Submitter`), its envelope, the
//! complete submission, and the `Submit` seam the listener hands it to. Shared value types at
//! the bottom of the crate: the client side, the relay and the upstream all point down here.

mod header;

pub use header::MAX_HEADER_SCAN;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::BoxFuture;
use crate::address::Address;
use crate::config::SenderRule;
use crate::reply::Reply;

/// An authenticated local user, as the session and the relay see it.
#[derive(Debug, Clone)]
pub struct Submitter {
    pub user: String,
    /// Name of the upstream account.
    pub account: String,
    pub allowed_senders: Vec<SenderRule>,
    /// The account's `allowed_recipient_domains` (lower-case); empty: any recipient.
    pub allowed_recipient_domains: Vec<String>,
}

impl Submitter {
    /// True when this user may use `from` as MAIL FROM (`None`, the null sender, never).
    pub fn may_send_as(&self, from: Option<&Address>) -> bool {
        from.is_some_and(|a| self.allowed_senders.iter().any(|rule| rule.allows(a)))
    }

    /// True when the account may send to `to`: its domain is one of the allowed ones, compared
    /// as parsed and exactly (a subdomain is another domain).
    pub fn may_send_to(&self, to: &Address) -> bool {
        let domains = &self.allowed_recipient_domains;
        domains.is_empty() || domains.iter().any(|d| to.in_domain(d))
    }

    /// The allow-list as people write it, for replies and logs.
    pub fn allowed_list(&self) -> String {
        let rules: Vec<String> = self.allowed_senders.iter().map(|r| r.to_string()).collect();
        rules.join(", ")
    }
}

/// The envelope of one message, as the client declared it (addresses as parsed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// `None` for the null sender `<>`.
    pub mail_from: Option<Address>,
    pub rcpts: Vec<Address>,
    /// `BODY=8BITMIME` was declared.
    pub body_8bitmime: bool,
    /// `SMTPUTF8` was declared.
    pub smtputf8: bool,
}

/// A complete message ready to relay.
#[derive(Debug)]
pub struct Submission {
    pub submitter: Arc<Submitter>,
    pub envelope: Envelope,
    body: Body,
}

impl Submission {
    pub fn new(submitter: Arc<Submitter>, envelope: Envelope, body: impl Into<Body>) -> Self {
        Self {
            submitter,
            envelope,
            body: body.into(),
        }
    }

    /// The message exactly as the client sent it (dot-stuffing undone, final CRLF kept; with
    /// `bare_line_endings = "normalize"`, bare CR and LF replaced by CRLF).
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// Takes the body out, leaving an empty one (the listener moves it to a file).
    pub fn take_body(&mut self) -> Body {
        std::mem::replace(&mut self.body, Body::Memory(Vec::new()))
    }

    pub fn set_body(&mut self, body: Body) {
        self.body = body;
    }

    /// The message's `Message-ID` header field, if it has one near the top (see
    /// [`header::MAX_HEADER_SCAN`]); client text.
    pub fn message_id(&self) -> Option<String> {
        header::field(self.body.head(), "Message-ID")
    }
}

/// A message's content: in memory, or in a file of the spool (how a large one stays off the
/// heap).
#[derive(Debug)]
pub enum Body {
    Memory(Vec<u8>),
    File(BodyFile),
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body::Memory(bytes)
    }
}

impl Body {
    /// Octets of content.
    pub fn len(&self) -> u64 {
        match self {
            Body::Memory(bytes) => bytes.len() as u64,
            Body::File(file) => file.size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The start of the message, enough for its header fields (see [`header::MAX_HEADER_SCAN`]).
    pub fn head(&self) -> &[u8] {
        match self {
            Body::Memory(bytes) => &bytes[..bytes.len().min(header::MAX_HEADER_SCAN)],
            Body::File(file) => &file.head,
        }
    }

    /// The whole content, when it is held in memory.
    pub fn in_memory(&self) -> Option<&[u8]> {
        match self {
            Body::Memory(bytes) => Some(bytes),
            Body::File(_) => None,
        }
    }
}

/// A message's content in a file. A received file that nobody took over is removed when this
/// is dropped; a file of the queue is not.
#[derive(Debug)]
pub struct BodyFile {
    path: PathBuf,
    size: u64,
    head: Vec<u8>,
    temporary: bool,
    /// Held for as long as the file counts against the spool's size (dropped with it).
    _reserved: Option<Box<dyn std::fmt::Debug + Send + Sync>>,
}

impl BodyFile {
    /// A file of the queue, which outlives this value.
    pub fn queued(path: PathBuf, size: u64, head: Vec<u8>) -> Self {
        Self {
            path,
            size,
            head,
            temporary: false,
            _reserved: None,
        }
    }

    /// A file just received, removed on drop unless [`BodyFile::keep`] is called.
    pub fn received(
        path: PathBuf,
        size: u64,
        head: Vec<u8>,
        reserved: Box<dyn std::fmt::Debug + Send + Sync>,
    ) -> Self {
        Self {
            path,
            size,
            head,
            temporary: true,
            _reserved: Some(reserved),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file now belongs to the queue (it was committed): dropping this leaves it.
    pub fn keep(&mut self) {
        self.temporary = false;
    }
}

impl Drop for BodyFile {
    // A blocking unlink, on purpose: one short system call (no fsync), and `Drop` cannot
    // await; done here, the file is gone before the client reads its reply.
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What the listener hands a finished message to. The relay implements it today; a durable
/// spool can implement it later without the session code changing.
pub trait Submit: Send + Sync {
    /// Takes responsibility for the message, or refuses it; the reply is for the final dot.
    fn submit<'a>(&'a self, message: &'a Submission) -> BoxFuture<'a, Reply>;
}
