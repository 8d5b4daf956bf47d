//! The validated, typed configuration the rest of the crate runs on.
//!
//! Loading (TOML file + `XOAUTH_RELAY__…` environment overrides, every problem reported at once)
//! lives in `load`. `[limits]` and `[timeouts]` are read straight into the types here, declared
//! with `settings!` (each key once: doc, default, reader in `values`); the sections that need
//! more than one key to make a value are read into `file` first. Everything here is already checked: a `Config` value can be used
//! without further validation, and tests build one in code.

#[macro_use]
mod settings;
mod certificate;
mod delivery;
mod file;
mod load;
mod provider;
mod syntax;
mod values;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use crate::secret::Secret;

pub use certificate::ClientCertificate;
pub use delivery::{Delivery, DeliveryMode, OnAmbiguous, Spool};
pub use file::{
    AccountSettings, DEFAULT_ACCOUNT_MAX_CONNECTIONS, DEFAULT_HEALTH_LISTEN,
    DEFAULT_MESSAGES_PER_MINUTE, DEFAULT_RECIPIENTS_PER_DAY, DEFAULT_SECRET_WARN_DAYS,
    DEFAULT_SMTP_LISTEN,
};
pub use load::{
    ConfigError, Problem, load, load_for_account, load_str, queue_location, resolve_path,
    search_paths,
};
pub use provider::{
    Auth, DEFAULT_AUTHORITY, DEFAULT_SCOPE, DEFAULT_SMTP_HOST, DEFAULT_SMTP_PORT, DELEGATED_SCOPE,
    Preset, Provider,
};

/// The whole relay configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Listen,
    pub limits: Limits,
    pub log: Log,
    pub timeouts: Timeouts,
    /// When a warm upstream session is closed.
    pub pool: Pool,
    /// When a `250` waits for Microsoft, and how queued messages are retried.
    pub delivery: Delivery,
    /// Where the queue lives and how big it may grow.
    pub spool: Spool,
    /// Name used in our greeting and in EHLO towards the upstream.
    pub hostname: String,
    pub users: Vec<User>,
    /// Upstream accounts by name (the `[accounts.NAME]` table key).
    pub accounts: BTreeMap<String, Arc<Account>>,
    /// Things that work but deserve a word at start-up (for example a plain `password`).
    pub warnings: Vec<String>,
    /// Where the relay keeps what it generates (the self-signed listener certificate, the
    /// recipient counts of pacing).
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
    /// `/healthz`, `/readyz` and `/metrics` answer other machines (and `health` may be a
    /// non-loopback address).
    pub health_public: bool,
    /// `/status`, which names the mailboxes, answers other machines too.
    pub status_public: bool,
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

settings! {
    /// `[log]`: what the log shows.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Log {
        /// How the per-message line shows recipients.
        recipients: LogRecipients = LogRecipients::Full;
    }
}

/// `log.recipients`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogRecipients {
    /// Every address, like Postfix's `to=<…>`.
    #[default]
    Full,
    /// Only their domains, each once, so the log does not say who got mail.
    Domain,
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

settings! {
    /// `[limits]`: bounds on what one client may make the relay hold or do.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Limits {
        /// Largest message accepted, in octets (advertised as SIZE).
        // Exchange Online's default mailbox send limit (35 MB, counted in MiB as Exchange does).
        max_message_size: usize = 35 * 1024 * 1024 => "values::size",
            const DEFAULT_MAX_MESSAGE_SIZE;
        /// Recipients per message; the next RCPT gets `452 4.5.3`.
        // Exchange Online's default recipient limit per message.
        max_recipients: usize = 500 => "values::count", const DEFAULT_MAX_RECIPIENTS;
        /// Longest command line, CRLF included.
        // smtp-proto's own cap; RFC 5321 asks for at least 512 and clients with many MAIL
        // parameters exceed that.
        max_line_length: usize = 4096 => "values::line_length", const DEFAULT_MAX_LINE_LENGTH;
        /// What a bare CR or LF in a message means.
        bare_line_endings: BareLineEndings = BareLineEndings::Reject;
        /// Concurrent client connections; the next one gets `421 4.7.0`.
        // A small host rarely has more than a few clients; this bounds memory and file descriptors.
        max_connections: usize = 100 => "values::count", const DEFAULT_MAX_CONNECTIONS;
        /// Failed AUTH attempts before the connection is closed.
        // Three tries cover a typo; more only helps someone guessing.
        max_auth_failures: u32 = 3 => "values::count", const DEFAULT_MAX_AUTH_FAILURES;
        /// Delay before answering the first failed AUTH; it doubles with each further failure.
        auth_failure_delay: Duration = seconds(1) => "values::duration",
            const DEFAULT_AUTH_FAILURE_DELAY;
        /// Concurrent connections from one client address.
        // A busy office printer opens a few connections; twenty from one address is an attack
        // or a bug.
        max_connections_per_ip: usize = 20 => "values::count";
        /// Failed AUTH attempts from one address (within `auth_lockout`) before it is locked out.
        // Ten wrong passwords from one address in the lockout window is guessing, not typing.
        auth_failures_per_ip: u32 = 10 => "values::count";
        /// How long a locked-out address is refused (`421 4.7.0`), and the window failures
        /// count in.
        auth_lockout: Duration = minutes(15) => "values::duration";
        /// Longest a connection may last, whatever it does.
        // Long enough for a 35 MB message on a slow line, short enough that a slot is not held
        // forever.
        session_lifetime: Duration = minutes(60) => "values::duration";
        /// How long after connecting a client has to log in (`421 4.7.0` after it); not extended
        /// by commands. Clients trusted by network address count as logged in.
        // A program logs in within a second; a person typing into telnet within a minute.
        // Longer only lets idle connections hold slots.
        login_timeout: Duration = minutes(1) => "values::duration", const DEFAULT_LOGIN_TIMEOUT;
        /// Slowest a client may send message data, in octets per second (measured per minute).
        // 1 KiB/s: a 35 MB message at this rate takes 10 hours, so any real client is far
        // faster; a slowloris client that trickles bytes is not.
        min_data_rate: usize = 1024 => "values::size";
        /// Bad commands (unknown, syntax errors, out of sequence) before the connection is closed.
        // Clients make the odd mistake; twenty in one session is a scanner or a broken program.
        max_errors: u32 = 20 => "values::count";
    }
}

settings! {
    /// `[timeouts]`: every network wait has one of these deadlines.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Timeouts {
        /// Waiting for the client's next command (`421 4.4.2` after it).
        // RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for the next command.
        idle: Duration = minutes(5) => "values::duration", const DEFAULT_IDLE_TIMEOUT;
        upstream_connect: Duration = seconds(30) => "values::duration",
            const DEFAULT_UPSTREAM_CONNECT;
        /// Upstream 220 greeting, and the TLS handshake.
        // RFC 5321 §4.5.3.2.1: initial 220 message, 5 minutes.
        upstream_greeting: Duration = minutes(5) => "values::duration",
            const DEFAULT_UPSTREAM_GREETING;
        /// EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET, QUIT.
        // RFC 5321 §4.5.3.2.2–3: MAIL and RCPT, 5 minutes.
        upstream_command: Duration = minutes(5) => "values::duration",
            const DEFAULT_UPSTREAM_COMMAND;
        /// DATA until `354`.
        // RFC 5321 §4.5.3.2.4: DATA initiation, 2 minutes.
        upstream_data_start: Duration = minutes(2) => "values::duration",
            const DEFAULT_UPSTREAM_DATA_START;
        /// Writing the message body.
        // RFC 5321 §4.5.3.2.5: data block, 3 minutes.
        upstream_data_block: Duration = minutes(3) => "values::duration",
            const DEFAULT_UPSTREAM_DATA_BLOCK;
        /// After the final dot, until the upstream's verdict.
        // RFC 5321 §4.5.3.2.6: DATA termination, 10 minutes (shorter risks duplicates).
        upstream_data_end: Duration = minutes(10) => "values::duration",
            const DEFAULT_UPSTREAM_DATA_END;
        /// How long a message waits for a free upstream connection slot of its account.
        // Long enough to ride out a burst through 3 connections, short enough for a client to
        // retry.
        upstream_slot_wait: Duration = minutes(1) => "values::duration",
            const DEFAULT_UPSTREAM_SLOT_WAIT;
        token_connect: Duration = seconds(10) => "values::duration", const DEFAULT_TOKEN_CONNECT;
        /// The whole token request, connect included.
        token_total: Duration = seconds(30) => "values::duration", const DEFAULT_TOKEN_TOTAL;
        /// On SIGTERM: how long transactions in flight may take to finish.
        shutdown_grace: Duration = seconds(30) => "values::duration", const DEFAULT_SHUTDOWN_GRACE;
    }
}

settings! {
    /// `[pool]`: when an authenticated upstream session kept for the next message is closed.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Pool {
        /// Unused this long.
        // Exchange's idle timeout is not documented; RFC 5321 §4.5.3.2.7 asks servers to wait
        // 5 minutes, and half a minute covers the gaps in a burst without holding a slot long.
        idle: Duration = seconds(30) => "values::duration", const DEFAULT_POOL_IDLE;
        /// This long after it was opened, whatever it did.
        // Well inside a token's lifetime (60–90 minutes), so a session never outlives its token.
        max_age: Duration = minutes(5) => "values::duration", const DEFAULT_POOL_MAX_AGE;
        /// And after this many messages (1 turns reuse off).
        max_messages: u32 = 100 => "values::count", const DEFAULT_POOL_MAX_MESSAGES;
    }
}

impl Config {
    /// The spool's directory: `spool.dir` under `state_dir` (an absolute `dir` stands alone).
    pub fn spool_dir(&self) -> Option<PathBuf> {
        let state = self.state_dir.as_ref()?;
        Some(state.join(&self.spool.dir))
    }
}

const fn seconds(n: u64) -> Duration {
    Duration::from_secs(n)
}

const fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 24 * 60 * 60)
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

/// An upstream mailbox and the app registration that sends as it.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub name: String,
    /// The service; its defaults are already applied to the fields below.
    pub provider: Provider,
    pub auth: Auth,
    /// The Exchange mailbox; XOAUTH2 `user=`.
    pub mailbox: String,
    pub tenant: String,
    pub client_id: String,
    /// Empty when `client_certificate` is set: the two are exclusive at load.
    pub client_secret: Secret<String>,
    /// The certificate credential; when set, the token request sends a signed client
    /// assertion instead of the secret.
    pub client_certificate: Option<ClientCertificate>,
    /// Azure Communication Services: the SMTP Username sent with `AUTH LOGIN`, the client
    /// secret being the password. Set exactly for `provider = "acs"`, which uses no token.
    pub smtp_username: Option<String>,
    pub authority: String,
    pub token_url: String,
    pub scope: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    /// Recipient domains this account may send to (lower-case, without `@`); empty: any.
    pub allowed_recipient_domains: Vec<String>,
    /// Where `extra_roots` came from, for messages.
    pub ca_file: Option<PathBuf>,
    /// Trust anchors added to the built-in roots for both the token endpoint and SMTP.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// The keys read as they are; `account.smtp_port` reaches them through `Deref`.
    pub settings: AccountSettings,
}

/// An account is used as its settings wherever one of them is needed; they are kept apart only
/// so that a new one is declared once (in `file`).
impl std::ops::Deref for Account {
    type Target = AccountSettings;
    fn deref(&self) -> &AccountSettings {
        &self.settings
    }
}

impl std::ops::DerefMut for Account {
    fn deref_mut(&mut self) -> &mut AccountSettings {
        &mut self.settings
    }
}
