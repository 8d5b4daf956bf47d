//! The raw shape of the TOML file, as deserialized before any checking.
//!
//! Every leaf is a lenient [`Scalar`] (or [`Texts`] for lists), so one badly typed value does
//! not stop deserialization: the checks in `load` turn each leaf into its real type and report
//! every problem at once. Nothing here derives `Debug`, because secrets pass through these types.
//! The `*_KEYS` lists feed "did you mean" hints for unknown keys; a test keeps them in step with
//! the structs.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// The whole file. Sections are tables with defaults, so a missing `[limits]` means "all defaults".
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RawFile {
    pub hostname: Option<Scalar>,
    pub state_dir: Option<Scalar>,
    pub listen: RawListen,
    pub limits: RawLimits,
    pub timeouts: RawTimeouts,
    pub users: Vec<RawUser>,
    pub accounts: BTreeMap<String, RawAccount>,
}

pub(crate) const TOP_KEYS: &[&str] = &[
    "hostname",
    "state_dir",
    "listen",
    "limits",
    "timeouts",
    "users",
    "accounts",
];

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RawListen {
    pub smtp: Option<Scalar>,
    pub smtp_tls: Option<Scalar>,
    pub submissions: Option<Scalar>,
    pub tls_cert: Option<Scalar>,
    pub tls_key: Option<Scalar>,
    pub health: Option<Scalar>,
}

pub(crate) const LISTEN_KEYS: &[&str] = &[
    "smtp",
    "smtp_tls",
    "submissions",
    "tls_cert",
    "tls_key",
    "health",
];

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RawLimits {
    pub max_message_size: Option<Scalar>,
    pub max_recipients: Option<Scalar>,
    pub max_line_length: Option<Scalar>,
    pub bare_line_endings: Option<Scalar>,
    pub max_connections: Option<Scalar>,
    pub max_auth_failures: Option<Scalar>,
    pub auth_failure_delay: Option<Scalar>,
    pub max_connections_per_ip: Option<Scalar>,
    pub auth_failures_per_ip: Option<Scalar>,
    pub auth_lockout: Option<Scalar>,
    pub session_lifetime: Option<Scalar>,
    pub login_timeout: Option<Scalar>,
    pub min_data_rate: Option<Scalar>,
    pub max_errors: Option<Scalar>,
}

pub(crate) const LIMITS_KEYS: &[&str] = &[
    "max_message_size",
    "max_recipients",
    "max_line_length",
    "bare_line_endings",
    "max_connections",
    "max_auth_failures",
    "auth_failure_delay",
    "max_connections_per_ip",
    "auth_failures_per_ip",
    "auth_lockout",
    "session_lifetime",
    "login_timeout",
    "min_data_rate",
    "max_errors",
];

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RawTimeouts {
    pub idle: Option<Scalar>,
    pub upstream_connect: Option<Scalar>,
    pub upstream_greeting: Option<Scalar>,
    pub upstream_command: Option<Scalar>,
    pub upstream_data_start: Option<Scalar>,
    pub upstream_data_block: Option<Scalar>,
    pub upstream_data_end: Option<Scalar>,
    pub upstream_slot_wait: Option<Scalar>,
    pub token_connect: Option<Scalar>,
    pub token_total: Option<Scalar>,
    pub shutdown_grace: Option<Scalar>,
}

pub(crate) const TIMEOUTS_KEYS: &[&str] = &[
    "idle",
    "upstream_connect",
    "upstream_greeting",
    "upstream_command",
    "upstream_data_start",
    "upstream_data_block",
    "upstream_data_end",
    "upstream_slot_wait",
    "token_connect",
    "token_total",
    "shutdown_grace",
];

/// One `[[users]]` entry.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RawUser {
    pub name: Option<Scalar>,
    pub password_hash: Option<Scalar>,
    pub password: Option<Scalar>,
    pub password_file: Option<Scalar>,
    pub password_env: Option<Scalar>,
    pub account: Option<Scalar>,
    pub allowed_senders: Option<Texts>,
    pub networks: Option<Texts>,
}

pub(crate) const USER_KEYS: &[&str] = &[
    "name",
    "password_hash",
    "password",
    "password_file",
    "password_env",
    "account",
    "allowed_senders",
    "networks",
];

/// One `[accounts.NAME]` table.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RawAccount {
    pub mailbox: Option<Scalar>,
    pub tenant: Option<Scalar>,
    pub client_id: Option<Scalar>,
    pub client_secret: Option<Scalar>,
    pub client_secret_file: Option<Scalar>,
    pub client_secret_env: Option<Scalar>,
    pub authority: Option<Scalar>,
    pub token_url: Option<Scalar>,
    pub scope: Option<Scalar>,
    pub smtp_host: Option<Scalar>,
    pub smtp_port: Option<Scalar>,
    pub ca_file: Option<Scalar>,
    pub max_connections: Option<Scalar>,
    pub client_secret_expires: Option<Scalar>,
    pub client_secret_warn_days: Option<Scalar>,
}

pub(crate) const ACCOUNT_KEYS: &[&str] = &[
    "mailbox",
    "tenant",
    "client_id",
    "client_secret",
    "client_secret_file",
    "client_secret_env",
    "authority",
    "token_url",
    "scope",
    "smtp_host",
    "smtp_port",
    "ca_file",
    "max_connections",
    "client_secret_expires",
    "client_secret_warn_days",
];

/// A leaf value as it came: TOML gives strings and integers, the environment always strings.
/// Anything else is kept only as a description for the error message.
pub(crate) enum Scalar {
    Text(String),
    Int(i128),
    Other(&'static str),
}

impl Scalar {
    /// "a string", "a number", "a table", … for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Scalar::Text(_) => "a string",
            Scalar::Int(_) => "a number",
            Scalar::Other(kind) => kind,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a number")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Text(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Scalar, E> {
        Ok(Scalar::Int(i128::try_from(v).unwrap_or(i128::MAX)))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
        Ok(Scalar::Other("a decimal number"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar, E> {
        Ok(Scalar::Other("true/false"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other("an empty value"))
    }
    // A table or list where a single value belongs: not consumed, so its keys are not
    // reported as unknown on top of the one "expected a string" problem.
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Scalar, A::Error> {
        Ok(Scalar::Other("a table"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Scalar, A::Error> {
        Ok(Scalar::Other("a list"))
    }
}

/// A list of strings: a TOML array, or one string of comma-separated items (the only way to
/// give a list through an environment variable).
pub(crate) enum Texts {
    List(Vec<Scalar>),
    Wrong(&'static str),
}

impl<'de> Deserialize<'de> for Texts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextsVisitor)
    }
}

struct TextsVisitor;

impl<'de> Visitor<'de> for TextsVisitor {
    type Value = Texts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of strings")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Texts, E> {
        Ok(Texts::List(split_commas(v)))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Texts, E> {
        Ok(Texts::Wrong("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Texts, E> {
        Ok(Texts::Wrong("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Texts, E> {
        Ok(Texts::Wrong("a decimal number"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Texts, E> {
        Ok(Texts::Wrong("true/false"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Texts, E> {
        Ok(Texts::Wrong("an empty value"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Texts, A::Error> {
        Ok(Texts::Wrong("a table"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Texts, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Scalar>()? {
            items.push(item);
        }
        Ok(Texts::List(items))
    }
}

/// `"a@x.com, @y.com"` → two items; empty items (a trailing comma) are dropped.
fn split_commas(text: &str) -> Vec<Scalar> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| Scalar::Text(item.to_owned()))
        .collect()
}
