//! How an upstream SMTP conversation can fail, with the phase it failed in.

use std::fmt;
use std::time::Duration;

use super::UpstreamReply;

/// Steps of the upstream conversation, each with its own deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Phase {
    Connect,
    Greeting,
    Ehlo,
    StartTls,
    Auth,
    Rset,
    Mail,
    Rcpt,
    DataStart,
    DataBlock,
    DataEnd,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Greeting => "greeting",
            Phase::Ehlo => "EHLO",
            Phase::StartTls => "STARTTLS",
            Phase::Auth => "AUTH",
            Phase::Rset => "RSET",
            Phase::Mail => "MAIL FROM",
            Phase::Rcpt => "RCPT TO",
            Phase::DataStart => "DATA",
            Phase::DataBlock => "message transfer",
            Phase::DataEnd => "end of data",
        })
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("cannot connect to {host}: {detail}")]
    Connect { host: String, detail: String },
    #[error("no answer during {phase} within {after:?}")]
    Timeout { phase: Phase, after: Duration },
    #[error("connection failed during {phase}: {detail}")]
    Io { phase: Phase, detail: String },
    #[error("TLS with the upstream failed: {detail}")]
    Tls { failure: TlsFailure, detail: String },
    #[error("the upstream did not offer STARTTLS; refusing to send credentials in clear text")]
    NoStartTls,
    #[error("the upstream does not offer AUTH XOAUTH2 (it offers: {offered})")]
    NoXoauth2 { offered: String },
    #[error("the upstream does not offer AUTH LOGIN (it offers: {offered})")]
    NoLogin { offered: String },
    #[error("the upstream refused AUTH {mechanism}: {reply}{}", challenge_note(.challenge))]
    AuthRejected {
        mechanism: Mechanism,
        reply: UpstreamReply,
        challenge: Option<String>,
    },
    #[error("the upstream refused {phase}{}: {reply}", recipient_note(.recipient))]
    Rejected {
        phase: Phase,
        reply: UpstreamReply,
        recipient: Option<String>,
    },
    #[error("the message needs {0}, which the upstream does not offer")]
    Unsupported(&'static str),
    #[error("all {slots} upstream connections of this account stayed busy for {waited:?}")]
    Busy { slots: usize, waited: Duration },
    #[error("unexpected answer during {phase}: {detail}")]
    Protocol { phase: Phase, detail: String },
}

/// The SASL mechanism the relay authenticated with: the fix for a refusal depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    /// A bearer token (Microsoft 365, Outlook.com, HVE).
    Xoauth2,
    /// A user name and password (Azure Communication Services).
    Login,
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mechanism::Xoauth2 => "XOAUTH2",
            Mechanism::Login => "LOGIN",
        })
    }
}

/// Which part of the TLS set-up failed: the operator's fix differs (trust a CA, or find out
/// what is answering on the SMTP port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsFailure {
    /// The server's certificate did not verify: unknown issuer, wrong name, expired, ...
    Certificate,
    /// Anything else: no TLS version or cipher suite in common (a server older than TLS 1.2),
    /// a malformed handshake, a host name that cannot be used for TLS.
    Handshake,
}

impl TlsFailure {
    /// Classifies the error rustls returned from the handshake.
    pub(crate) fn of(error: &rustls::Error) -> Self {
        use rustls::Error as E;
        match error {
            E::InvalidCertificate(_)
            | E::NoCertificatesPresented
            | E::InvalidCertRevocationList(_) => TlsFailure::Certificate,
            _ => TlsFailure::Handshake,
        }
    }
}

fn challenge_note(challenge: &Option<String>) -> String {
    challenge
        .as_ref()
        .map(|c| format!(" (challenge: {c})"))
        .unwrap_or_default()
}

fn recipient_note(recipient: &Option<String>) -> String {
    recipient
        .as_ref()
        .map(|r| format!(" for <{r}>"))
        .unwrap_or_default()
}

impl UpstreamError {
    /// Turns a mail-send error into ours, naming the phase it happened in.
    pub(crate) fn from_mail_send(phase: Phase, after: Duration, e: mail_send::Error) -> Self {
        use mail_send::Error as E;
        match e {
            E::Io(io) => UpstreamError::Io {
                phase,
                detail: io.to_string(),
            },
            E::Tls(tls) => UpstreamError::Tls {
                failure: TlsFailure::of(&tls),
                detail: crate::tls::describe(&tls),
            },
            E::InvalidTLSName => UpstreamError::Tls {
                failure: TlsFailure::Handshake,
                detail: "the host name is not valid for TLS".into(),
            },
            E::Timeout => UpstreamError::Timeout { phase, after },
            E::MissingStartTls => UpstreamError::NoStartTls,
            E::UnexpectedReply(reply) => UpstreamError::Rejected {
                phase,
                reply: reply.into(),
                recipient: None,
            },
            E::AuthenticationFailed(reply) => UpstreamError::AuthRejected {
                mechanism: Mechanism::Xoauth2,
                reply: reply.into(),
                challenge: None,
            },
            // mail-send reports a closed connection as an unparseable reply.
            E::UnparseableReply => UpstreamError::Protocol {
                phase,
                detail: "connection closed or reply not understood".into(),
            },
            e @ (E::Base64(_)
            | E::Auth(_)
            | E::MissingCredentials
            | E::MissingMailFrom
            | E::MissingRcptTo
            | E::UnsupportedAuthMechanism) => UpstreamError::Protocol {
                phase,
                detail: e.to_string(),
            },
        }
    }
}
