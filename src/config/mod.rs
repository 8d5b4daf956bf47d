//! The validated, typed configuration the rest of the crate runs on.
//!
//! Loading (TOML file + `XOAUTH_RELAY__…` environment overrides, every problem reported at once)
//! lives in `load`. `[limits]` and `[timeouts]` are read straight into the types here, each leaf
//! through its reader in `values`; the sections that need more than one key to make a value are
//! read into `file` first. Everything here is already checked: a `Config` value can be used
//! without further validation, and tests build one in code.

mod defaults;
mod file;
mod load;
mod values;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use serde::Deserialize;

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
    /// Where the relay keeps what it generates (the self-signed listener certificate).
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub smtp: SocketAddr,
    /// TLS on the `smtp` listener.
    pub smtp_tls: TlsMode,
    /// A second listener with implicit TLS (SMTPS, usually port 465).
    pub submissions: Option<SocketAddr>,
    /// The listener certificate; `None` means a self-signed one kept in `state_dir`.
    pub tls_files: Option<TlsFiles>,
    /// The HTTP health/status/metrics listener; `None` when disabled.
    pub health: Option<SocketAddr>,
}

impl Listen {
    /// True when some listener speaks TLS, so a certificate is needed.
    pub fn uses_tls(&self) -> bool {
        self.smtp_tls != TlsMode::None || self.submissions.is_some()
    }
}

/// `listen.smtp_tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain text; only allowed on loopback addresses.
    #[default]
    None,
    /// STARTTLS offered, and required before AUTH.
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

/// `limits.bare_line_endings`: what to do with a message containing a CR or LF that is not
/// part of a CRLF (RFC 5321 §2.3.8 forbids them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BareLineEndings {
    /// Refuse the message: an upstream that reads them as line ends would see another
    /// message, or an end of data, than the relay did.
    #[default]
    Reject,
    /// Replace each by CRLF and deliver; a dot after one is kept as sent (it was not at a
    /// line start).
    Normalize,
}

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// An address range in CIDR form (`192.168.1.0/24`), for `networks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl Network {
    /// True when `ip` is inside this range (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_match(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let (whole, rest) = (usize::from(prefix / 8), prefix % 8);
    if net[..whole] != ip[..whole] {
        return false;
    }
    rest == 0 || (net[whole] ^ ip[whole]) >> (8 - rest) == 0
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `[limits]`: bounds on what one client may make the relay hold or do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest message accepted, in octets (advertised as SIZE).
    #[serde(deserialize_with = "values::size")]
    pub max_message_size: usize,
    /// Recipients per message; the next RCPT gets `452 4.5.3`.
    #[serde(deserialize_with = "values::count")]
    pub max_recipients: usize,
    /// Longest command line, CRLF included.
    #[serde(deserialize_with = "values::line_length")]
    pub max_line_length: usize,
    /// What a bare CR or LF in a message means.
    pub bare_line_endings: BareLineEndings,
    /// Concurrent client connections; the next one gets `421 4.7.0`.
    #[serde(deserialize_with = "values::count")]
    pub max_connections: usize,
    /// Failed AUTH attempts before the connection is closed.
    #[serde(deserialize_with = "values::count")]
    pub max_auth_failures: u32,
    /// Delay before answering the first failed AUTH; it doubles with each further failure.
    #[serde(deserialize_with = "values::duration")]
    pub auth_failure_delay: Duration,
    /// Concurrent connections from one client address.
    #[serde(deserialize_with = "values::count")]
    pub max_connections_per_ip: usize,
    /// Failed AUTH attempts from one address (within `auth_lockout`) before it is locked out.
    #[serde(deserialize_with = "values::count")]
    pub auth_failures_per_ip: u32,
    /// How long a locked-out address is refused (`421 4.7.0`), and the window failures count in.
    #[serde(deserialize_with = "values::duration")]
    pub auth_lockout: Duration,
    /// Longest a connection may last, whatever it does.
    #[serde(deserialize_with = "values::duration")]
    pub session_lifetime: Duration,
    /// How long after connecting a client has to log in (`421 4.7.0` after it); not extended
    /// by commands. Clients trusted by network address count as logged in.
    #[serde(deserialize_with = "values::duration")]
    pub login_timeout: Duration,
    /// Slowest a client may send message data, in octets per second (measured per minute).
    #[serde(deserialize_with = "values::size")]
    pub min_data_rate: usize,
    /// Bad commands (unknown, syntax errors, out of sequence) before the connection is closed.
    #[serde(deserialize_with = "values::count")]
    pub max_errors: u32,
}

/// `[timeouts]`: every network wait has one of these deadlines.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// Waiting for the client's next command (`421 4.4.2` after it).
    #[serde(deserialize_with = "values::duration")]
    pub idle: Duration,
    #[serde(deserialize_with = "values::duration")]
    pub upstream_connect: Duration,
    /// Upstream 220 greeting, and the TLS handshake.
    #[serde(deserialize_with = "values::duration")]
    pub upstream_greeting: Duration,
    /// EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET, QUIT.
    #[serde(deserialize_with = "values::duration")]
    pub upstream_command: Duration,
    /// DATA until `354`.
    #[serde(deserialize_with = "values::duration")]
    pub upstream_data_start: Duration,
    /// Writing the message body.
    #[serde(deserialize_with = "values::duration")]
    pub upstream_data_block: Duration,
    /// After the final dot, until the upstream's verdict.
    #[serde(deserialize_with = "values::duration")]
    pub upstream_data_end: Duration,
    /// How long a message waits for a free upstream connection slot of its account.
    #[serde(deserialize_with = "values::duration")]
    pub upstream_slot_wait: Duration,
    #[serde(deserialize_with = "values::duration")]
    pub token_connect: Duration,
    /// The whole token request, connect included.
    #[serde(deserialize_with = "values::duration")]
    pub token_total: Duration,
    /// On SIGTERM: how long transactions in flight may take to finish.
    #[serde(deserialize_with = "values::duration")]
    pub shutdown_grace: Duration,
}

/// A local SMTP AUTH identity, or a device trusted by its network address.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    /// `None` for a user known only by `networks`.
    pub password: Option<PasswordCheck>,
    /// Client addresses that may send as this user without AUTH (printers, scanners).
    pub networks: Vec<Network>,
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
    /// True when this rule lets a user send as `address`, compared as parsed (local part and
    /// domain), never as the text the client wrote.
    pub fn allows(&self, address: &crate::address::Address) -> bool {
        match self {
            SenderRule::Address(a) => address.is(a),
            SenderRule::Domain(d) => address.in_domain(d),
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
