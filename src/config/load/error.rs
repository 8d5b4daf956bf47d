//! What loading can report: no file, an unreadable file, or a list of problems. The `Display`
//! forms are what the operator reads at start-up, so they say what to do, not just what failed.

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with the configuration: where (`accounts.contoso.tenant`) and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the key (`users[0].password`), or the environment variable at fault.
    pub key: String,
    /// What is wrong and how to fix it. Never contains a secret.
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why no `Config` could be produced.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}", not_found(searched))]
    NotFound { searched: Vec<PathBuf> },
    #[error("cannot read the configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", invalid(path.as_deref(), problems))]
    Invalid {
        path: Option<PathBuf>,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The same text on one line (problems separated by `; `), for log lines that a journal
    /// or log shipper keeps together.
    pub fn one_line(&self) -> String {
        let text = self.to_string();
        let mut lines = text.lines().map(str::trim);
        let first = lines
            .next()
            .unwrap_or_default()
            .trim_end_matches(':')
            .to_string();
        let rest: Vec<&str> = lines.map(|l| l.trim_start_matches("- ")).collect();
        if rest.is_empty() {
            first
        } else {
            format!("{first}: {}", rest.join("; "))
        }
    }
}

fn not_found(searched: &[PathBuf]) -> String {
    let mut text = String::from("no configuration file found; looked for:");
    for path in searched {
        text.push_str(&format!("\n  - {}", path.display()));
    }
    text.push_str(
        "\nCreate one of these, or point at a file with --config PATH or XOAUTH_RELAY_CONFIG=PATH.",
    );
    text
}

fn invalid(path: Option<&Path>, problems: &[Problem]) -> String {
    let count = match problems.len() {
        1 => "1 problem".to_owned(),
        n => format!("{n} problems"),
    };
    let mut text = match path {
        Some(path) => format!("invalid configuration in {} ({count}):", path.display()),
        None => format!("invalid configuration ({count}):"),
    };
    for problem in problems {
        text.push_str(&format!("\n  - {problem}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_lists_every_problem_under_a_header() {
        let err = ConfigError::Invalid {
            path: Some(PathBuf::from("/etc/xoauth-relay/config.toml")),
            problems: vec![
                Problem::new("accounts.contoso.client_secret", "missing"),
                Problem::new("limits.max_recipients", "must be at least 1"),
            ],
        };
        assert_eq!(
            err.to_string(),
            "invalid configuration in /etc/xoauth-relay/config.toml (2 problems):\n  \
             - accounts.contoso.client_secret: missing\n  \
             - limits.max_recipients: must be at least 1"
        );
    }

    #[test]
    fn not_found_lists_the_paths_and_the_way_out() {
        let err = ConfigError::NotFound {
            searched: vec![
                PathBuf::from("/a/config.toml"),
                PathBuf::from("/b/config.toml"),
            ],
        };
        let text = err.to_string();
        assert!(
            text.contains("\n  - /a/config.toml\n  - /b/config.toml\n"),
            "{text}"
        );
        assert!(text.contains("--config PATH") && text.contains("XOAUTH_RELAY_CONFIG"));
    }
}
