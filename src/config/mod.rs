//! The validated, typed configuration the rest of the crate runs on.
//!
//! Loading (TOML file + `XOAUTH_RELAY__…` environment overrides, every problem reported at once)
//! lives in `load`; the raw file shape in `file`. Everything here is already checked: a `Config`
//! value can be used without further validation, and tests build one in code.

mod defaults;
mod file;
mod load;
mod units;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use crate::secret::Secret;

pub use defaults::*;
pub use load::{ConfigError, Problem, load, load_str, resolve_path, search_paths};

/// The whole relay configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Listen,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// Name used in our greeting and in EHLO towards the upstream.
    pub hostname: String,
    pub users: Vec<User>,
    /// Upstream accounts by name (the `[accounts.NAME]` table key).
    pub accounts: BTreeMap<String, Arc<Account>>,
    /// Things that work but deserve a word at start-up (for example a plain `password`).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub smtp: SocketAddr,
    /// The HTTP health/status/metrics listener; `None` when disabled.
    pub health: Option<SocketAddr>,
}

/// Bounds on what one client may make the relay hold or do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted, in octets (advertised as SIZE).
    pub max_message_size: usize,
    /// Recipients per message; the next RCPT gets `452 4.5.3`.
    pub max_recipients: usize,
    /// Longest command line, CRLF included.
    pub max_line_length: usize,
    /// Concurrent client connections; the next one gets `421 4.7.0`.
    pub max_connections: usize,
    /// Failed AUTH attempts before the connection is closed.
    pub max_auth_failures: u32,
    /// Delay before answering the first failed AUTH; it doubles with each further failure.
    pub auth_failure_delay: Duration,
}

/// Every network wait has one of these deadlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// Waiting for the client's next command (`421 4.4.2` after it).
    pub idle: Duration,
    pub upstream_connect: Duration,
    /// Upstream 220 greeting, and the TLS handshake.
    pub upstream_greeting: Duration,
    /// EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET, QUIT.
    pub upstream_command: Duration,
    /// DATA until `354`.
    pub upstream_data_start: Duration,
    /// Writing the message body.
    pub upstream_data_block: Duration,
    /// After the final dot, until the upstream's verdict.
    pub upstream_data_end: Duration,
    /// How long a message waits for a free upstream connection slot of its account.
    pub upstream_slot_wait: Duration,
    pub token_connect: Duration,
    /// The whole token request, connect included.
    pub token_total: Duration,
    /// On SIGTERM: how long transactions in flight may take to finish.
    pub shutdown_grace: Duration,
}

/// A local SMTP AUTH identity.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub password: PasswordCheck,
    /// Name of the account (key of `Config::accounts`) this user sends through.
    pub account: String,
    /// MAIL FROM addresses this user may use; never empty (defaults to the account's mailbox).
    pub allowed_senders: Vec<SenderRule>,
}

/// How a local password is checked.
#[derive(Debug, Clone)]
pub enum PasswordCheck {
    /// A PHC string (`$argon2id$v=19$…`), already parsed once at load time.
    Argon2(String),
    /// A plain password (from `password`, `password_file` or `password_env`).
    Plain(Secret<String>),
}

/// One entry of `allowed_senders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderRule {
    /// One address, compared case-insensitively (stored lower-case).
    Address(String),
    /// `@example.com`: any address at that domain (stored lower-case, without the `@`).
    Domain(String),
}

impl SenderRule {
    /// True when `address` (a MAIL FROM path without angle brackets) is allowed by this rule.
    pub fn allows(&self, address: &str) -> bool {
        match self {
            SenderRule::Address(a) => a.eq_ignore_ascii_case(address),
            SenderRule::Domain(d) => address
                .rsplit_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.eq_ignore_ascii_case(d)),
        }
    }
}

impl std::fmt::Display for SenderRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SenderRule::Address(a) => f.write_str(a),
            SenderRule::Domain(d) => write!(f, "@{d}"),
        }
    }
}

/// An upstream Microsoft 365 mailbox and the app registration that sends as it.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub name: String,
    /// The Exchange mailbox; XOAUTH2 `user=`.
    pub mailbox: String,
    pub tenant: String,
    pub client_id: String,
    pub client_secret: Secret<String>,
    pub authority: String,
    pub token_url: String,
    pub scope: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    /// Where `extra_roots` came from, for messages.
    pub ca_file: Option<PathBuf>,
    /// Trust anchors added to the built-in roots for both the token endpoint and SMTP.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Concurrent upstream SMTP sessions for this account.
    pub max_connections: usize,
    /// When the client secret expires (`client_secret_expires`), if the operator said.
    pub client_secret_expires: Option<crate::dates::Day>,
    /// Days before that expiry from which a warning is logged daily and shown in `/status`.
    pub client_secret_warn_days: u32,
}
