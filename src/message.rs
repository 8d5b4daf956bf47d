//! The message as every layer sees it: who submits it (`Submitter`), its envelope, the
//! complete submission, and the `Submit` seam the listener hands it to. Shared value types at
//! the bottom of the crate: the client side, the relay and the upstream all point down here.

mod header;

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
    data: Vec<u8>,
}

impl Submission {
    pub fn new(submitter: Arc<Submitter>, envelope: Envelope, data: Vec<u8>) -> Self {
        Self {
            submitter,
            envelope,
            data,
        }
    }

    /// The message exactly as the client sent it (dot-stuffing undone, final CRLF kept; with
    /// `bare_line_endings = "normalize"`, bare CR and LF replaced by CRLF).
    pub fn body(&self) -> &[u8] {
        &self.data
    }

    /// The message's `Message-ID` header field, if it has one near the top (see
    /// [`header::MAX_HEADER_SCAN`]); client text.
    pub fn message_id(&self) -> Option<String> {
        header::field(&self.data, "Message-ID")
    }
}

/// What the listener hands a finished message to. The relay implements it today; a durable
/// spool can implement it later without the session code changing.
pub trait Submit: Send + Sync {
    /// Takes responsibility for the message, or refuses it; the reply is for the final dot.
    fn submit<'a>(&'a self, message: &'a Submission) -> BoxFuture<'a, Reply>;
}
