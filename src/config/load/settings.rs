//! The plain settings: `hostname`, `[limits]` and `[timeouts]`, each with its
//! default from `defaults.rs`.

use super::check::Problems;
use super::syntax::is_domain;
use crate::config::defaults::*;
use crate::config::file::{RawLimits, RawTimeouts, Scalar};
use crate::config::{BareLineEndings, Limits, Timeouts};

/// RFC 5321 §4.5.3.1.4: a server must accept command lines of 512 octets.
const MIN_LINE_LENGTH: usize = 512;

/// The name for our greeting and upstream EHLO: the setting, else the machine's host name if it
/// is a valid domain (EHLO needs one), else `localhost`.
pub fn hostname(p: &mut Problems, value: Option<&Scalar>) -> String {
    match p.text("hostname", value) {
        Some(name) if is_domain(&name) => name,
        Some(name) => {
            p.push(
                "hostname",
                format!("{name:?} is not a host name such as relay.example.com"),
            );
            name
        }
        None => machine_hostname(),
    }
}

fn machine_hostname() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    if is_domain(&name) {
        name
    } else {
        "localhost".to_owned()
    }
}

pub fn limits(p: &mut Problems, raw: &RawLimits) -> Limits {
    let max_auth_failures = p.number(
        "limits.max_auth_failures",
        raw.max_auth_failures.as_ref(),
        DEFAULT_MAX_AUTH_FAILURES.into(),
        1,
        u32::MAX.into(),
    );
    Limits {
        max_message_size: p.size(
            "limits.max_message_size",
            raw.max_message_size.as_ref(),
            DEFAULT_MAX_MESSAGE_SIZE,
        ),
        max_recipients: count(
            p,
            "limits.max_recipients",
            &raw.max_recipients,
            DEFAULT_MAX_RECIPIENTS,
        ),
        max_line_length: line_length(p, &raw.max_line_length),
        bare_line_endings: bare_line_endings(p, raw.bare_line_endings.as_ref()),
        max_connections: count(
            p,
            "limits.max_connections",
            &raw.max_connections,
            DEFAULT_MAX_CONNECTIONS,
        ),
        max_auth_failures: u32::try_from(max_auth_failures).unwrap_or(DEFAULT_MAX_AUTH_FAILURES),
        auth_failure_delay: p.duration(
            "limits.auth_failure_delay",
            raw.auth_failure_delay.as_ref(),
            DEFAULT_AUTH_FAILURE_DELAY,
        ),
        max_connections_per_ip: count(
            p,
            "limits.max_connections_per_ip",
            &raw.max_connections_per_ip,
            DEFAULT_MAX_CONNECTIONS_PER_IP,
        ),
        auth_failures_per_ip: small_count(
            p,
            "limits.auth_failures_per_ip",
            &raw.auth_failures_per_ip,
            DEFAULT_AUTH_FAILURES_PER_IP,
        ),
        auth_lockout: p.duration(
            "limits.auth_lockout",
            raw.auth_lockout.as_ref(),
            DEFAULT_AUTH_LOCKOUT,
        ),
        session_lifetime: p.duration(
            "limits.session_lifetime",
            raw.session_lifetime.as_ref(),
            DEFAULT_SESSION_LIFETIME,
        ),
        login_timeout: p.duration(
            "limits.login_timeout",
            raw.login_timeout.as_ref(),
            DEFAULT_LOGIN_TIMEOUT,
        ),
        min_data_rate: p.size(
            "limits.min_data_rate",
            raw.min_data_rate.as_ref(),
            DEFAULT_MIN_DATA_RATE,
        ),
        max_errors: small_count(p, "limits.max_errors", &raw.max_errors, DEFAULT_MAX_ERRORS),
    }
}

/// A `u32` count of at least 1.
fn small_count(p: &mut Problems, key: &str, value: &Option<Scalar>, default: u32) -> u32 {
    let n = p.number(key, value.as_ref(), default.into(), 1, u32::MAX.into());
    u32::try_from(n).unwrap_or(default)
}

/// A count of at least 1: zero would refuse everything.
pub fn count(p: &mut Problems, key: &str, value: &Option<Scalar>, default: usize) -> usize {
    let n = p.number(key, value.as_ref(), default as u64, 1, usize::MAX as u64);
    usize::try_from(n).unwrap_or(default)
}

fn line_length(p: &mut Problems, value: &Option<Scalar>) -> usize {
    let key = "limits.max_line_length";
    let length = count(p, key, value, DEFAULT_MAX_LINE_LENGTH);
    if length < MIN_LINE_LENGTH {
        let message = format!(
            "must be at least {MIN_LINE_LENGTH}, found {length}: RFC 5321 requires servers to \
             accept command lines of {MIN_LINE_LENGTH} octets"
        );
        p.push(key, message);
    }
    length
}

fn bare_line_endings(p: &mut Problems, value: Option<&Scalar>) -> BareLineEndings {
    let key = "limits.bare_line_endings";
    let Some(text) = p.text(key, value) else {
        return BareLineEndings::Reject;
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "reject" => BareLineEndings::Reject,
        "normalize" | "normalise" => BareLineEndings::Normalize,
        _ => {
            p.push(key, format!("{text:?} is not \"reject\" or \"normalize\""));
            BareLineEndings::Reject
        }
    }
}

pub fn timeouts(p: &mut Problems, raw: &RawTimeouts) -> Timeouts {
    let mut d = |key: &str, value: &Option<Scalar>, default| {
        p.duration(&format!("timeouts.{key}"), value.as_ref(), default)
    };
    Timeouts {
        idle: d("idle", &raw.idle, DEFAULT_IDLE_TIMEOUT),
        upstream_connect: d(
            "upstream_connect",
            &raw.upstream_connect,
            DEFAULT_UPSTREAM_CONNECT,
        ),
        upstream_greeting: d(
            "upstream_greeting",
            &raw.upstream_greeting,
            DEFAULT_UPSTREAM_GREETING,
        ),
        upstream_command: d(
            "upstream_command",
            &raw.upstream_command,
            DEFAULT_UPSTREAM_COMMAND,
        ),
        upstream_data_start: d(
            "upstream_data_start",
            &raw.upstream_data_start,
            DEFAULT_UPSTREAM_DATA_START,
        ),
        upstream_data_block: d(
            "upstream_data_block",
            &raw.upstream_data_block,
            DEFAULT_UPSTREAM_DATA_BLOCK,
        ),
        upstream_data_end: d(
            "upstream_data_end",
            &raw.upstream_data_end,
            DEFAULT_UPSTREAM_DATA_END,
        ),
        upstream_slot_wait: d(
            "upstream_slot_wait",
            &raw.upstream_slot_wait,
            DEFAULT_UPSTREAM_SLOT_WAIT,
        ),
        token_connect: d("token_connect", &raw.token_connect, DEFAULT_TOKEN_CONNECT),
        token_total: d("token_total", &raw.token_total, DEFAULT_TOKEN_TOTAL),
        shutdown_grace: d(
            "shutdown_grace",
            &raw.shutdown_grace,
            DEFAULT_SHUTDOWN_GRACE,
        ),
    }
}
