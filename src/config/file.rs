//! The file's shape where it differs from [`Config`](super::Config): a secret given one of
//! three ways, a certificate given as two paths, defaults that depend on other keys. Leaves are
//! already typed (see `values`); what needs more than one key is checked in `load`. Nothing
//! here derives `Debug`, because secrets pass through these types.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Deserialize;

use super::defaults::*;
use super::{Limits, Timeouts, TlsMode, values};
use crate::dates::Day;

/// The top-level keys, in the order their problems are reported.
pub(crate) const SECTIONS: &[&str] = &[
    "hostname",
    "listen",
    "state_dir",
    "limits",
    "timeouts",
    "accounts",
    "users",
];

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct File {
    /// Name used in our greeting and in EHLO towards the upstream.
    pub hostname: Option<String>,
    /// Where the relay keeps what it generates (the self-signed listener certificate).
    pub state_dir: Option<String>,
    pub listen: ListenFile,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub users: Vec<UserFile>,
    pub accounts: BTreeMap<String, AccountFile>,
}

/// `[listen]`.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ListenFile {
    #[serde(deserialize_with = "values::socket_address")]
    pub smtp: SocketAddr,
    pub smtp_tls: TlsMode,
    #[serde(deserialize_with = "values::optional_socket_address")]
    pub submissions: Option<SocketAddr>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    #[serde(deserialize_with = "values::optional_socket_address")]
    pub health: Option<SocketAddr>,
}

impl Default for ListenFile {
    fn default() -> Self {
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        Self {
            smtp: DEFAULT_SMTP_LISTEN.parse().unwrap_or(loopback(2525)),
            smtp_tls: TlsMode::None,
            submissions: None,
            tls_cert: None,
            tls_key: None,
            health: DEFAULT_HEALTH_LISTEN.parse().ok(),
        }
    }
}

/// One `[[users]]` entry.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct UserFile {
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

/// One `[accounts.NAME]` table.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct AccountFile {
    pub mailbox: Option<String>,
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub client_secret_env: Option<String>,
    pub authority: String,
    /// Without it, made from `authority` and `tenant`.
    pub token_url: Option<String>,
    pub scope: String,
    pub smtp_host: String,
    #[serde(deserialize_with = "values::port")]
    pub smtp_port: u16,
    pub ca_file: Option<String>,
    #[serde(deserialize_with = "values::count")]
    pub max_connections: usize,
    #[serde(deserialize_with = "values::day")]
    pub client_secret_expires: Option<Day>,
    #[serde(deserialize_with = "values::warn_days")]
    pub client_secret_warn_days: u32,
}

impl Default for AccountFile {
    fn default() -> Self {
        Self {
            mailbox: None,
            tenant: None,
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            client_secret_env: None,
            authority: DEFAULT_AUTHORITY.to_owned(),
            token_url: None,
            scope: DEFAULT_SCOPE.to_owned(),
            smtp_host: DEFAULT_SMTP_HOST.to_owned(),
            smtp_port: DEFAULT_SMTP_PORT,
            ca_file: None,
            max_connections: DEFAULT_ACCOUNT_MAX_CONNECTIONS,
            client_secret_expires: None,
            client_secret_warn_days: DEFAULT_SECRET_WARN_DAYS,
        }
    }
}
