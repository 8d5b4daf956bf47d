//! Log output on stderr: plain lines (with timestamps, except under journald or launchd,
//! which add their own) or JSON lines for log shippers; the level from `--log-level`, else
//! `RUST_LOG`, else `info`. Nothing logged anywhere in the crate carries a secret, token, AUTH
//! payload or message body.

mod json;

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Format {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// True when a service manager already stamps each line: journald sets `JOURNAL_STREAM` for a
/// unit's stdout/stderr, launchd sets `XPC_SERVICE_NAME` to the job's label (a terminal may
/// carry `XPC_SERVICE_NAME=0`, which is not a job).
pub(crate) fn manager_adds_timestamps(env: &HashMap<String, String>) -> bool {
    env.contains_key("JOURNAL_STREAM")
        || env
            .get("XPC_SERVICE_NAME")
            .is_some_and(|v| !v.is_empty() && v != "0")
}

/// The level filter: `--log-level`, else `RUST_LOG`, else `info`.
pub(crate) fn filter(
    level: Option<&str>,
    env: &HashMap<String, String>,
) -> Result<EnvFilter, String> {
    let spec = level
        .or(env.get("RUST_LOG").map(String::as_str))
        .unwrap_or("info");
    EnvFilter::try_new(spec).map_err(|e| format!("invalid log level {spec:?}: {e}"))
}

/// Installs the global subscriber; calling it twice is harmless.
pub(crate) fn init(
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
        (Format::Json, _) => builder.event_format(json::JsonLines).try_init(),
        (Format::Text, true) => builder.with_ansi(false).without_time().try_init(),
        (Format::Text, false) => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    Ok(())
}

/// Longest value from a client written into a log line, in characters; the rest is cut.
pub(crate) const MAX_LOGGED: usize = 128;

/// A value that came from a client (a user name, an address, a host name), for a log line:
/// control and other non-printing characters are escaped the way Rust writes them (`\n`,
/// `\u{1b}`, and `\\` for a backslash), and at most [`MAX_LOGGED`] characters are shown. No
/// client can then end a log line early, forge one, or send escape sequences to a terminal, in
/// the text format as in JSON.
pub(crate) struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX_LOGGED {
                return f.write_str("...");
            }
            match c {
                '"' | '\'' => f.write_char(c)?,
                _ => write!(f, "{}", c.escape_debug())?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Most items of a [`List`] written into a log line; the rest are counted.
pub(crate) const MAX_LISTED: usize = 100;

/// Starts the alternate Debug form of a [`List`]: a NUL, which [`Untrusted`] always escapes.
const LIST_MARKER: &str = "\0list:";

/// A list of values for one log field (recipients, account names): each item escaped like
/// [`Untrusted`], at most [`MAX_LISTED`] of them and then `"+N more"`. Log it with `?`: the text
/// format shows `["a", "b"]`, the JSON format a real array.
pub(crate) struct List(Vec<String>);

impl List {
    pub(crate) fn new<I, T>(items: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut shown = Vec::new();
        let mut more = 0usize;
        for item in items {
            if shown.len() < MAX_LISTED {
                shown.push(Untrusted(item.as_ref()).to_string());
            } else {
                more += 1;
            }
        }
        if more > 0 {
            shown.push(format!("+{more} more"));
        }
        Self(shown)
    }
}

impl fmt::Debug for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string(&self.0).map_err(|_| fmt::Error)?;
        if f.alternate() {
            f.write_str(LIST_MARKER)?;
        }
        f.write_str(&json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::env;

    #[test]
    fn untrusted_values_cannot_break_a_log_line() {
        let shown = |s: &str| Untrusted(s).to_string();
        assert_eq!(shown("relay@contoso.example"), "relay@contoso.example");
        assert_eq!(
            shown("x\n2026-12-01T00:00:00Z  INFO forged"),
            "x\\n2026-12-01T00:00:00Z  INFO forged"
        );
        assert_eq!(shown("a\x1b[31mred\r\0"), "a\\u{1b}[31mred\\r\\0");
        assert_eq!(
            shown("back\\slash \"q\" j\u{f6}rg"),
            "back\\\\slash \"q\" j\u{f6}rg"
        );
        assert_eq!(
            shown("\u{202e}evil"),
            "\\u{202e}evil",
            "bidi override is escaped"
        );
        let long = shown(&"a".repeat(1000));
        assert_eq!(long.len(), MAX_LOGGED + 3);
        assert!(!shown(&"\n".repeat(1000)).contains('\n'));
    }

    /// One event through the JSON format, parsed back.
    fn json_line(emit: impl FnOnce()) -> serde_json::Value {
        use std::sync::{Arc, Mutex};
        #[derive(Clone)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink(Arc::new(Mutex::new(Vec::new())));
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .event_format(json::JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    #[test]
    fn json_lines_write_lists_as_arrays_and_everything_else_as_before() {
        let v = json_line(|| {
            let accounts = List::new(["contoso", "fabrikam"]);
            let looks_like_a_list = "[\"forged\"]";
            tracing::info!(accounts = ?accounts, user = %Untrusted(looks_like_a_list), n = 3_u64, ok = true, other = ?vec!["a"], "listening");
        });
        assert_eq!(v["accounts"], serde_json::json!(["contoso", "fabrikam"]));
        assert_eq!(v["user"], "[\"forged\"]", "client text stays a string");
        assert_eq!(v["other"], "[\"a\"]", "a plain Debug value stays a string");
        assert_eq!(v["n"], 3);
        assert_eq!(v["ok"], true);
        assert_eq!(v["message"], "listening");
        assert_eq!(v["level"], "INFO");
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{v}"
        );
    }

    #[test]
    fn lists_escape_items_and_are_bounded() {
        let items: Vec<String> = (0..MAX_LISTED + 5).map(|i| format!("r{i}@x")).collect();
        let v = json_line(|| tracing::info!(to = ?List::new(&items), "m"));
        let to = v["to"].as_array().unwrap();
        assert_eq!(to.len(), MAX_LISTED + 1);
        assert_eq!(to[MAX_LISTED], "+5 more");
        let v = json_line(|| tracing::info!(to = ?List::new(["a\n\u{1b}b", "q\"x"]), "m"));
        assert_eq!(v["to"], serde_json::json!(["a\\n\\u{1b}b", "q\"x"]));
        assert_eq!(
            format!("{:?}", List::new(["a@x", "b@y"])),
            r#"["a@x","b@y"]"#,
            "the text format"
        );
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
