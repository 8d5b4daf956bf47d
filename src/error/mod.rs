//! Relay failures, their class, and the one function that turns a delivery result into the
//! reply the client gets for its final dot.
//!
//! The rule: a problem the operator must fix, or one that time will fix, gets a `4xx` so the
//! client keeps the message and retries; only the upstream's own `5xx` about this message is
//! passed through (sanitised). Every `match` here is exhaustive, so a new failure cannot be
//! added without deciding its class.

use crate::oauth::TokenError;
use crate::reply::{Enhanced, Reply, sanitize};
use crate::upstream::{Delivered, Phase, UpstreamError, UpstreamReply};

pub(crate) mod explain;

/// What kind of failure it is, which decides the reply and the log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Network, a busy or briefly unavailable service, an upstream `4xx`: retry later.
    Transient,
    /// The upstream refused this message for good (`5xx`).
    Permanent,
    /// The operator must change something (secret, consent, Exchange settings, TLS trust).
    Misconfigured,
}

#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum RelayError {
    #[error("token: {0}")]
    Token(#[from] TokenError),
    #[error("upstream: {0}")]
    Upstream(#[from] UpstreamError),
    #[error("account {0:?} is not configured")]
    NoRoute(String),
    /// A pacing limit of the account refused it before any upstream work; the reply says which.
    #[error("pacing: {0}")]
    Paced(Reply),
}

/// AADSTS codes that mean "try again later" ("Microsoft Entra authentication and authorization error codes").
const TRANSIENT_AADSTS: &[u32] = &[50033, 90024, 90033, 90090, 50000, 90055, 50196];

impl TokenError {
    pub(crate) fn class(&self) -> Class {
        match self {
            TokenError::Timeout(_)
            | TokenError::Unreachable(_)
            | TokenError::Malformed(_)
            | TokenError::Signing(_) => Class::Transient,
            TokenError::Certificate(_) | TokenError::SignIn { .. } | TokenError::Store { .. } => {
                Class::Misconfigured
            }
            TokenError::Refused { status, oauth } => {
                let transient_code = oauth.as_ref().is_some_and(|o| {
                    o.error == "temporarily_unavailable"
                        || o.codes.iter().any(|c| TRANSIENT_AADSTS.contains(c))
                });
                if *status >= 500 || *status == 429 || transient_code {
                    Class::Transient
                } else {
                    Class::Misconfigured
                }
            }
        }
    }
}

impl UpstreamError {
    pub(crate) fn class(&self) -> Class {
        match self {
            UpstreamError::Connect { .. }
            | UpstreamError::Timeout { .. }
            | UpstreamError::Io { .. }
            | UpstreamError::Protocol { .. }
            | UpstreamError::Busy { .. } => Class::Transient,
            UpstreamError::Tls { .. }
            | UpstreamError::NoStartTls
            | UpstreamError::NoXoauth2 { .. }
            | UpstreamError::NoLogin { .. } => Class::Misconfigured,
            UpstreamError::AuthRejected { reply, .. } if reply.is_transient() => Class::Transient,
            UpstreamError::AuthRejected { .. } => Class::Misconfigured,
            UpstreamError::Rejected { reply, .. } if reply.is_transient() => Class::Transient,
            UpstreamError::Rejected { reply, .. } if is_quota(reply) => Class::Transient,
            UpstreamError::Rejected { .. } | UpstreamError::Unsupported(_) => Class::Permanent,
        }
    }
}

impl RelayError {
    pub(crate) fn class(&self) -> Class {
        match self {
            RelayError::Token(e) => e.class(),
            RelayError::Upstream(e) => e.class(),
            RelayError::NoRoute(_) => Class::Misconfigured,
            RelayError::Paced(r) if r.is_transient() => Class::Transient,
            RelayError::Paced(_) => Class::Permanent,
        }
    }
}

/// Exchange's daily submission quota (`554 5.2.0 …SubmissionQuotaExceeded`) clears as the
/// 24-hour window rolls, so the client should keep the message and retry.
pub(crate) fn is_quota(reply: &UpstreamReply) -> bool {
    reply.text.contains("SubmissionQuotaExceeded") || reply.text.contains("Submission quota")
}

/// The reply to the client's final dot.
pub(crate) fn reply_for(result: &Result<Delivered, RelayError>) -> Reply {
    match result {
        Ok(delivered) => accepted(&delivered.reply),
        Err(RelayError::Paced(refusal)) => refusal.clone(),
        Err(e) => match e.class() {
            Class::Misconfigured => misconfigured(e),
            Class::Transient => transient(e),
            Class::Permanent => permanent(e),
        },
    }
}

/// Exchange's own words (`2.0.0 OK <id> [Hostname=…]`, `2.6.0 <id> Queued mail for
/// delivery`): they carry its message id, and the client's log then matches Exchange's.
fn accepted(reply: &UpstreamReply) -> Reply {
    let enhanced = reply.enhanced.unwrap_or(Enhanced(2, 0, 0));
    let text = sanitize(reply.text.trim());
    let text = if text.is_empty() { "OK".into() } else { text };
    Reply::with_text(250, enhanced, text.into_owned())
}

fn misconfigured(e: &RelayError) -> Reply {
    let what = explain::explain(e).map_or("upstream rejected the relay's credentials", |x| x.what);
    Reply::with_text(
        451,
        Enhanced(4, 3, 5),
        format!("Relay misconfigured: {what}; message not sent, see the relay log"),
    )
}

fn transient(e: &RelayError) -> Reply {
    let (enhanced, text) = match e {
        RelayError::Token(_) => (
            Enhanced(4, 7, 0),
            "upstream authorization temporarily unavailable".to_string(),
        ),
        RelayError::Upstream(u) => transient_upstream(u),
        RelayError::NoRoute(_) => (Enhanced(4, 3, 5), "relay misconfigured".to_string()),
        RelayError::Paced(r) => (Enhanced(4, 7, 0), r.to_string()),
    };
    Reply::with_text(451, enhanced, format!("{text}; try again later"))
}

fn transient_upstream(e: &UpstreamError) -> (Enhanced, String) {
    match e {
        UpstreamError::Connect { .. }
        | UpstreamError::Timeout {
            phase: Phase::Connect,
            ..
        } => (Enhanced(4, 4, 1), "cannot reach the upstream server".into()),
        UpstreamError::Timeout { phase, .. } => (
            Enhanced(4, 4, 2),
            format!("upstream timed out during {phase}"),
        ),
        UpstreamError::Io { .. } => (Enhanced(4, 4, 2), "upstream connection lost".into()),
        UpstreamError::Protocol { .. } => {
            (Enhanced(4, 5, 0), "upstream reply not understood".into())
        }
        UpstreamError::Busy { .. } => (
            Enhanced(4, 4, 5),
            "all upstream connections are busy".into(),
        ),
        UpstreamError::AuthRejected { reply, .. } | UpstreamError::Rejected { reply, .. } => {
            let what = if is_quota(reply) {
                "sending quota of the mailbox exceeded"
            } else {
                "upstream"
            };
            (
                reply_enhanced_as_transient(reply),
                format!("{what}: {}", short(reply)),
            )
        }
        UpstreamError::Tls { .. }
        | UpstreamError::NoStartTls
        | UpstreamError::NoXoauth2 { .. }
        | UpstreamError::NoLogin { .. }
        | UpstreamError::Unsupported(_) => (Enhanced(4, 3, 0), "upstream problem".into()),
    }
}

fn permanent(e: &RelayError) -> Reply {
    match e {
        RelayError::Upstream(UpstreamError::Rejected {
            phase,
            reply,
            recipient,
        }) => {
            let code = if (500..600).contains(&reply.code) {
                reply.code
            } else {
                554
            };
            let enhanced = reply
                .enhanced
                .filter(|e| e.0 == 5)
                .unwrap_or(Enhanced(5, 0, 0));
            let whom = recipient
                .as_ref()
                .map(|r| format!("<{r}> "))
                .unwrap_or_default();
            let text = format!("{whom}refused upstream at {phase}: {}", short(reply));
            Reply::with_text(code, enhanced, text)
        }
        RelayError::Upstream(UpstreamError::Unsupported(what)) => Reply::with_text(
            554,
            Enhanced(5, 6, 7),
            format!("the message needs {what}, which the upstream does not offer"),
        ),
        other => Reply::with_text(554, Enhanced(5, 0, 0), format!("not delivered: {other}")),
    }
}

fn reply_enhanced_as_transient(reply: &UpstreamReply) -> Enhanced {
    match reply.enhanced {
        Some(Enhanced(_, s, d)) => Enhanced(4, s, d),
        None => Enhanced(4, 0, 0),
    }
}

/// The upstream reply without its code, bounded, for embedding in our text.
fn short(reply: &UpstreamReply) -> String {
    let code = reply
        .enhanced
        .map(|e| format!("{} {} ", reply.code, e))
        .unwrap_or_else(|| format!("{} ", reply.code));
    let text: String = sanitize(&reply.text).chars().take(200).collect();
    format!("{code}{text}")
}

#[cfg(test)]
mod tests;
