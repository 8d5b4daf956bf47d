//! The file's shape where it differs from [`Config`](super::Config): a secret given one of
//! three ways, a certificate given as two paths, defaults that depend on other keys. Leaves are
//! already typed (see `values`); what needs more than one key is checked in `load`. Only
//! `AccountSettings`, which holds no secret, derives `Debug`: secrets pass through the others.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Deserialize;

use super::{Auth, Delivery, Limits, Log, Pool, Provider, Spool, Timeouts, TlsMode, values};
use crate::dates::Day;

/// The top-level keys, in the order their problems are reported.
pub(crate) const SECTIONS: &[&str] = &[
    "hostname",
    "listen",
    "state_dir",
    "limits",
    "timeouts",
    "pool",
    "delivery",
    "spool",
    "log",
    "accounts",
    "users",
];

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct File {
    /// Name used in our greeting and in EHLO towards the upstream.
    #[serde(deserialize_with = "values::hostname")]
    pub hostname: Option<String>,
    /// Where the relay keeps what it generates (the self-signed listener certificate, the
    /// recipient counts of pacing).
    pub state_dir: Option<String>,
    pub listen: ListenFile,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub pool: Pool,
    pub delivery: Delivery,
    pub spool: Spool,
    pub log: Log,
    pub users: Vec<UserFile>,
    pub accounts: BTreeMap<String, AccountFile>,
}

/// Loopback by default: a network address needs TLS and a decision by the operator.
pub const DEFAULT_SMTP_LISTEN: &str = "127.0.0.1:2525";
/// Loopback only: `/status` tells anyone who can reach it which mailboxes exist.
pub const DEFAULT_HEALTH_LISTEN: &str = "127.0.0.1:8025";

settings! {
    /// `[listen]`.
    pub(crate) struct ListenFile {
        smtp: SocketAddr = DEFAULT_SMTP_LISTEN.parse().unwrap_or(([127, 0, 0, 1], 2525).into())
            => "values::socket_address";
        smtp_tls: TlsMode = TlsMode::None;
        submissions: Option<SocketAddr> = None => "values::optional_socket_address";
        tls_cert: Option<String> = None;
        tls_key: Option<String> = None;
        health: Option<SocketAddr> = DEFAULT_HEALTH_LISTEN.parse().ok()
            => "values::optional_socket_address";
        /// `/healthz`, `/readyz` and `/metrics` answer other machines.
        health_public: bool = false;
        /// `/status` (which names the mailboxes) answers other machines too.
        status_public: bool = false;
    }
}

/// One `[[users]]` entry.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct UserFile {
    #[serde(deserialize_with = "values::user_name")]
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
    pub account: Option<String>,
    #[serde(deserialize_with = "values::list")]
    pub allowed_senders: Option<Vec<String>>,
    #[serde(deserialize_with = "values::list")]
    pub networks: Option<Vec<String>>,
}

settings! {
    /// One `[accounts.NAME]` table: the keys checked together with others (in `load/accounts`),
    /// then those of [`AccountSettings`].
    pub(crate) struct AccountFile {
        mailbox: Option<String> = None => "values::mailbox";
        tenant: Option<String> = None => "values::tenant";
        client_id: Option<String> = None => "values::client_id";
        client_secret: Option<String> = None;
        client_secret_file: Option<String> = None;
        client_secret_env: Option<String> = None;
        /// Instead of a secret: the PEM certificate uploaded to the app and its private key.
        client_certificate: Option<String> = None;
        client_key: Option<String> = None;
        /// `provider = "acs"`: the SMTP Username resource's name, sent with AUTH LOGIN.
        smtp_username: Option<String> = None => "values::user_name";
        /// Which service: sets the defaults of the four keys below and of `auth`.
        provider: Provider = Provider::Microsoft365;
        auth: Option<Auth> = None;
        authority: Option<String> = None => "values::optional_authority";
        scope: Option<String> = None => "values::optional_scope";
        smtp_host: Option<String> = None => "values::optional_smtp_host";
        smtp_port: Option<u16> = None => "values::optional_port";
        /// Recipients outside these domains are refused at RCPT.
        allowed_recipient_domains: Option<Vec<String>> = None => "values::list";
        /// Without it, made from `authority` and `tenant`.
        token_url: Option<String> = None => "values::optional_https_url";
        ca_file: Option<String> = None;
    }
    /// The keys of an account that need nothing but their reader: a new one is a line here.
    #[derive(Debug, Clone, PartialEq, Eq)]
    with pub struct AccountSettings {
        /// Concurrent upstream SMTP sessions for this account.
        // Exchange Online allows 3 concurrent submissions per mailbox; a 4th gets `432 4.3.2`.
        max_connections: usize = 3 => "values::count", const DEFAULT_ACCOUNT_MAX_CONNECTIONS;
        /// When the client secret expires (`client_secret_expires`), if the operator said.
        client_secret_expires: Option<Day> = None => "values::day";
        /// Days before that expiry from which a warning is logged daily and shown in `/status`.
        // A month is enough to get a new secret through most change processes.
        client_secret_warn_days: u32 = 30 => "values::warn_days", const DEFAULT_SECRET_WARN_DAYS;
        /// Messages sent per rolling minute; the next waits for a slot. `0`: no limit.
        // Exchange Online's submission limit per mailbox (30 a minute); above it Exchange
        // delays the message itself.
        max_messages_per_minute: u32 = 30 => "values::per_minute",
            const DEFAULT_MESSAGES_PER_MINUTE;
        /// Recipients per rolling 24 hours; a message that would pass it gets `452 4.5.3`.
        /// `0`: no limit.
        // Exchange Online's 10,000 recipients a day per mailbox; past it, Exchange refuses
        // every message with `554 5.2.0` after its data.
        max_recipients_per_day: u32 = 10_000 => "values::count_or_off",
            const DEFAULT_RECIPIENTS_PER_DAY;
    }
}
