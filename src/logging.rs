//! Log output on stderr: plain lines (with timestamps, except under journald or launchd,
//! which add their own) or JSON lines for log shippers; the level from `--log-level`, else
//! `RUST_LOG`, else `info`. Nothing logged anywhere in the crate carries a secret, token, AUTH
//! payload or message body.

use std::collections::HashMap;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// True when a service manager already stamps each line: journald sets `JOURNAL_STREAM` for a
/// unit's stdout/stderr, launchd sets `XPC_SERVICE_NAME` to the job's label (a terminal may
/// carry `XPC_SERVICE_NAME=0`, which is not a job).
pub fn manager_adds_timestamps(env: &HashMap<String, String>) -> bool {
    env.contains_key("JOURNAL_STREAM")
        || env
            .get("XPC_SERVICE_NAME")
            .is_some_and(|v| !v.is_empty() && v != "0")
}

/// The level filter: `--log-level`, else `RUST_LOG`, else `info`.
pub fn filter(level: Option<&str>, env: &HashMap<String, String>) -> Result<EnvFilter, String> {
    let spec = level
        .or(env.get("RUST_LOG").map(String::as_str))
        .unwrap_or("info");
    EnvFilter::try_new(spec).map_err(|e| format!("invalid log level {spec:?}: {e}"))
}

/// Installs the global subscriber; calling it twice is harmless.
pub fn init(
    format: Format,
    level: Option<&str>,
    env: &HashMap<String, String>,
) -> Result<(), String> {
    let filter = filter(level, env)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match (format, manager_adds_timestamps(env)) {
        (Format::Json, _) => builder.json().flatten_event(true).try_init(),
        (Format::Text, true) => builder.with_ansi(false).without_time().try_init(),
        (Format::Text, false) => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn timestamps_only_outside_service_managers() {
        assert!(manager_adds_timestamps(&env(&[(
            "JOURNAL_STREAM",
            "8:1234"
        )])));
        assert!(manager_adds_timestamps(&env(&[(
            "XPC_SERVICE_NAME",
            "com.xoauth-relay.agent"
        )])));
        assert!(!manager_adds_timestamps(&env(&[("XPC_SERVICE_NAME", "0")])));
        assert!(!manager_adds_timestamps(&env(&[("TERM", "xterm")])));
    }

    #[test]
    fn level_precedence() {
        assert!(filter(Some("debug"), &env(&[("RUST_LOG", "nonsense=[")])).is_ok());
        assert!(filter(None, &env(&[("RUST_LOG", "warn")])).is_ok());
        assert!(filter(Some("=[bad"), &env(&[])).is_err());
        assert!(filter(None, &env(&[])).is_ok());
    }
}
