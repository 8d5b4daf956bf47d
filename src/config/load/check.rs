//! The problem list the checks write into, and the conversions from a raw leaf ([`Scalar`]) to
//! a real type. Each conversion records a problem and returns a stand-in (the default), so the
//! checks go on and every problem is found in one run; a list with any problem in it discards
//! the config that was built.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::Problem;
use crate::config::file::Scalar;
use crate::config::units::{parse_duration, parse_size};

/// What the checks need besides the raw file: where relative paths start, and the environment
/// for `*_env` settings.
pub struct Context<'a> {
    pub base_dir: &'a Path,
    pub env: &'a HashMap<String, String>,
}

/// Problems found so far.
#[derive(Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(key, message));
    }

    /// A string setting, if present. Never echoes the value: this is also how secrets are read.
    pub fn text(&mut self, key: &str, value: Option<&Scalar>) -> Option<String> {
        match value? {
            Scalar::Text(text) => Some(text.clone()),
            other => {
                let found = other.kind();
                self.push(key, format!("expected a string (in quotes), found {found}"));
                None
            }
        }
    }

    /// A string setting that must be present and not blank; `missing` says what to put there.
    pub fn required(&mut self, key: &str, value: Option<&Scalar>, missing: &str) -> Option<String> {
        let text = self.text(key, value);
        match text {
            Some(text) if !text.trim().is_empty() => Some(text),
            Some(_) => {
                self.push(key, format!("is empty; {missing}"));
                None
            }
            None if value.is_none() => {
                self.push(key, format!("is missing; {missing}"));
                None
            }
            None => None,
        }
    }

    /// A whole number in `min..=max`; a string of digits counts (environment values are strings).
    pub fn number(
        &mut self,
        key: &str,
        value: Option<&Scalar>,
        default: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        let number = match value {
            None => return default,
            Some(Scalar::Int(n)) => u64::try_from(*n).ok(),
            Some(Scalar::Text(text)) => text.trim().parse::<u64>().ok(),
            Some(other) => {
                let found = other.kind();
                self.push(key, format!("expected a whole number, found {found}"));
                return default;
            }
        };
        match number {
            Some(n) if (min..=max).contains(&n) => n,
            _ => {
                self.push(
                    key,
                    format!(
                        "must be a whole number {}, found {}",
                        range(min, max),
                        shown(value)
                    ),
                );
                default
            }
        }
    }

    /// A duration above zero: `"500ms"`, `"30s"`, `"5m"`, `"1h"`, or a number of seconds.
    pub fn duration(&mut self, key: &str, value: Option<&Scalar>, default: Duration) -> Duration {
        let parsed = match value {
            None => return default,
            Some(Scalar::Int(n)) => u64::try_from(*n)
                .map(Duration::from_secs)
                .map_err(|_| format!("{n} is negative; durations are like \"30s\" or \"5m\"")),
            Some(Scalar::Text(text)) => parse_duration(text),
            Some(other) => Err(format!(
                "expected a duration such as \"30s\", found {}",
                other.kind()
            )),
        };
        self.positive(key, parsed, Duration::ZERO, default)
    }

    /// A size above zero: a number of octets or a string like `"35MB"`.
    pub fn size(&mut self, key: &str, value: Option<&Scalar>, default: usize) -> usize {
        let parsed = match value {
            None => return default,
            Some(Scalar::Int(n)) => usize::try_from(*n)
                .map_err(|_| format!("{n} is not a size; sizes are like 1048576 or \"35MB\"")),
            Some(Scalar::Text(text)) => parse_size(text),
            Some(other) => Err(format!(
                "expected a size such as \"35MB\", found {}",
                other.kind()
            )),
        };
        self.positive(key, parsed, 0, default)
    }

    fn positive<T: PartialEq>(
        &mut self,
        key: &str,
        parsed: Result<T, String>,
        zero: T,
        default: T,
    ) -> T {
        match parsed {
            Ok(value) if value != zero => value,
            Ok(_) => {
                self.push(key, "must be more than zero");
                default
            }
            Err(message) => {
                self.push(key, message);
                default
            }
        }
    }
}

fn range(min: u64, max: u64) -> String {
    // Nobody needs to read "to 4294967295".
    if max >= u64::from(u32::MAX) {
        format!("of at least {min}")
    } else {
        format!("from {min} to {max}")
    }
}

/// A non-secret value for an error message.
fn shown(value: Option<&Scalar>) -> String {
    match value {
        Some(Scalar::Text(text)) => format!("{text:?}"),
        Some(Scalar::Int(n)) => n.to_string(),
        Some(other) => other.kind().to_owned(),
        None => "nothing".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Scalar {
        Scalar::Text(s.to_owned())
    }

    #[test]
    fn numbers_accept_integers_and_digit_strings() {
        let mut p = Problems::default();
        assert_eq!(p.number("k", Some(&Scalar::Int(20)), 1, 1, 100), 20);
        assert_eq!(p.number("k", Some(&text(" 20 ")), 1, 1, 100), 20);
        assert_eq!(p.number("k", None, 7, 1, 100), 7);
        assert!(p.0.is_empty());
        let cases = [
            Scalar::Int(0),
            Scalar::Int(-3),
            Scalar::Int(101),
            text("x"),
            text("1e3"),
        ];
        for case in &cases {
            assert_eq!(p.number("k", Some(case), 7, 1, 100), 7);
        }
        assert_eq!(p.0.len(), cases.len());
        assert_eq!(
            p.0[0].message,
            "must be a whole number from 1 to 100, found 0"
        );
    }

    #[test]
    fn durations_and_sizes_refuse_zero() {
        let mut p = Problems::default();
        let d = Duration::from_secs(9);
        assert_eq!(
            p.duration("d", Some(&Scalar::Int(5)), d),
            Duration::from_secs(5)
        );
        assert_eq!(
            p.duration("d", Some(&text("250ms")), d),
            Duration::from_millis(250)
        );
        assert_eq!(p.size("s", Some(&text("2KB")), 9), 2048);
        assert!(p.0.is_empty());
        assert_eq!(p.duration("d", Some(&text("0s")), d), d);
        assert_eq!(p.size("s", Some(&Scalar::Int(0)), 9), 9);
        assert_eq!(p.duration("d", Some(&Scalar::Int(-1)), d), d);
        assert_eq!(p.0.len(), 3);
        assert_eq!(p.0[0].message, "must be more than zero");
    }

    #[test]
    fn text_never_echoes_the_value() {
        let mut p = Problems::default();
        assert_eq!(p.required("k", Some(&text("  ")), "put X here"), None);
        assert_eq!(p.required("k", None, "put X here"), None);
        assert_eq!(p.text("k", Some(&Scalar::Int(1234))), None);
        let messages: Vec<_> = p.0.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "is empty; put X here",
                "is missing; put X here",
                "expected a string (in quotes), found a number"
            ]
        );
    }
}
