//! The upstream side: delivering one message to Microsoft 365 over SMTP with STARTTLS and
//! SASL XOAUTH2 (AUTH LOGIN for Azure Communication Services), over a per-account pool of authenticated sessions. The [`Upstream`] trait is
//! the seam where another transport (Graph) or a fake can be put in.

mod body;
pub(crate) mod client;
mod error;
mod pool;
pub mod xoauth2;

use std::fmt;

use crate::BoxFuture;
use crate::message::{Body, Envelope};
use crate::oauth::AccessToken;
use crate::reply::{Enhanced, sanitize};

pub(crate) use client::SmtpUpstream;
pub(crate) use error::{Mechanism, Phase, TlsFailure, UpstreamError};

/// A reply from the upstream server, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpstreamReply {
    pub(crate) code: u16,
    pub(crate) enhanced: Option<Enhanced>,
    pub(crate) text: String,
}

impl UpstreamReply {
    pub(crate) fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// True when the enhanced code is `class.subject.detail` or the text mentions `needle`.
    pub(crate) fn matches(&self, enhanced: (u8, u16, u16), needle: &str) -> bool {
        let (c, s, d) = enhanced;
        self.enhanced == Some(Enhanced(c, s, d))
            || (!needle.is_empty()
                && self
                    .text
                    .to_ascii_lowercase()
                    .contains(&needle.to_ascii_lowercase()))
    }
}

impl From<smtp_proto::Response<String>> for UpstreamReply {
    fn from(r: smtp_proto::Response<String>) -> Self {
        let [c, s, d] = r.esc;
        let enhanced = (c != 0).then(|| Enhanced(c, u16::from(s), u16::from(d)));
        Self {
            code: r.code,
            enhanced,
            text: r.message,
        }
    }
}

impl fmt::Display for UpstreamReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.enhanced {
            Some(e) => write!(f, "{} {} {}", self.code, e, sanitize(&self.text)),
            None => write!(f, "{} {}", self.code, sanitize(&self.text)),
        }
    }
}

/// The upstream accepted the message.
#[derive(Debug, Clone)]
pub(crate) struct Delivered {
    /// The reply to the final dot (carries Exchange's message id).
    pub(crate) reply: UpstreamReply,
    /// It went on a session that had carried a message before (no new login).
    pub(crate) reused: bool,
}

/// How far an attempt got, for a caller that may give up on it: once the final dot has
/// started to go out, abandoning the attempt would leave the message's fate unknown.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    final_dot: std::sync::atomic::AtomicBool,
}

impl Progress {
    pub(crate) fn final_dot_sent(&self) {
        self.final_dot
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn final_dot_was_sent(&self) -> bool {
        self.final_dot.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// What `check` learns from a connection without sending mail.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub(crate) tls_version: String,
}

/// Delivers messages for one account.
pub(crate) trait Upstream: Send + Sync {
    /// Sends one message with all its recipients, or none of them.
    fn deliver<'a>(
        &'a self,
        token: &'a AccessToken,
        envelope: &'a Envelope,
        body: &'a Body,
        progress: &'a Progress,
    ) -> BoxFuture<'a, Result<Delivered, UpstreamError>>;

    /// Sends `NOOP` on an idle session, if there is one; else connects, negotiates TLS and
    /// authenticates, then quits (no mail). Takes one of the account's connection slots like
    /// a delivery, waiting only briefly: `Busy` when all are in use.
    fn probe<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, Result<Probe, UpstreamError>>;

    /// Upstream sessions open right now (being opened, in use or idle).
    fn active_sessions(&self) -> usize {
        0
    }

    /// Of those, the ones waiting idle for the next message.
    fn idle_sessions(&self) -> usize {
        0
    }

    /// Says QUIT on the idle sessions and keeps none from now on (shutdown, or the account
    /// was reloaded and this upstream replaced).
    fn close_idle(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_replies_keep_long_enhanced_codes() {
        let parse = |wire: &[u8]| {
            let mut rx = smtp_proto::response::parser::ResponseReceiver::default();
            UpstreamReply::from(rx.parse(&mut wire.iter()).unwrap())
        };
        let u = parse(
            b"535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled\r\n",
        );
        assert_eq!(u.enhanced, Some(Enhanced(5, 7, 139)));
        assert!(u.matches((5, 7, 139), ""));
        assert!(u.text.starts_with("Authentication unsuccessful"));
        assert_eq!(
            parse(b"250 2.0.0 123 queued\r\n").to_string(),
            "250 2.0.0 123 queued"
        );
        assert_eq!(parse(b"220 hi\r\n").enhanced, None);
        assert!(parse(b"432 4.3.2 Concurrent connections limit exceeded\r\n").is_transient());
    }
}
