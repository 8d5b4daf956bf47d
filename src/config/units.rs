//! Parsing of durations ("500ms", "30s", "5m", "1h") and sizes ("35MB", "512KiB") in the
//! config file. Pure functions of a string; the caller adds the key to any error.

use std::time::Duration;

/// Parses a duration: a whole number followed by `ms`, `s`, `m` or `h`; a bare number is seconds.
///
/// The error says what is wrong and what is accepted, ready to follow a key in a message.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(text, "\"30s\" or \"5m\"")?;
    let seconds = |factor: u64| {
        number
            .checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too long a duration"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "" | "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(60 * 60),
        _ => Err(format!(
            "{text:?} has an unknown unit {unit:?}; use ms, s, m or h (for example \"30s\" or \"5m\")"
        )),
    }
}

/// Parses a size in octets: a whole number, optionally followed by `B`, `KB`, `MB` or `GB`
/// (also `KiB`, `MiB`, `GiB`; any case). All units are 1024-based, as Exchange counts them.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let (number, unit) = split_number(text, "\"35MB\"")?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "kib" => 1 << 10,
        "mb" | "mib" => 1 << 20,
        "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit {unit:?}; use B, KB, MB or GB (for example \"35MB\")"
            ));
        }
    };
    number
        .checked_mul(factor)
        .and_then(|octets| usize::try_from(octets).ok())
        .ok_or_else(|| format!("{text:?} is too large a size"))
}

/// Splits `" 30 s "` into `(30, "s")`. Only whole, non-negative numbers are accepted because
/// fractions ("1.5s") and signs would need rules nobody asked for.
fn split_number<'a>(text: &'a str, example: &str) -> Result<(u64, &'a str), String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "{text:?} does not start with a whole number (for example {example})"
        ));
    }
    let number = digits
        .parse::<u64>()
        .map_err(|_| format!("{text:?} is too large a number"))?;
    Ok((number, unit.trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("500ms", Some(Duration::from_millis(500))),
            ("0ms", Some(Duration::ZERO)),
            ("30s", Some(Duration::from_secs(30))),
            ("30", Some(Duration::from_secs(30))),
            (" 30 s ", Some(Duration::from_secs(30))),
            ("5m", Some(Duration::from_secs(300))),
            ("1h", Some(Duration::from_secs(3600))),
            ("60s", Some(Duration::from_secs(60))),
            ("", None),
            ("s", None),
            ("-5s", None),
            ("1.5s", None),
            ("5 fortnights", None),
            ("5S", None),
            ("1m30s", None),
            ("99999999999999999999s", None),
            ("18446744073709551615h", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text).ok(), *want, "input {text:?}");
        }
    }

    #[test]
    fn sizes() {
        let cases: &[(&str, Option<usize>)] = &[
            ("0", Some(0)),
            ("1024", Some(1024)),
            ("100B", Some(100)),
            ("1KB", Some(1024)),
            ("1kb", Some(1024)),
            ("1KiB", Some(1024)),
            ("35MB", Some(35 * 1024 * 1024)),
            ("35 MiB", Some(35 * 1024 * 1024)),
            ("2GB", Some(2 << 30)),
            ("1GiB", Some(1 << 30)),
            ("", None),
            ("MB", None),
            ("35XB", None),
            ("1.5MB", None),
            ("-1", None),
            ("18446744073709551615GB", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text).ok(), *want, "input {text:?}");
        }
    }

    #[test]
    fn errors_name_the_input_and_the_choices() {
        let err = parse_duration("5x").unwrap_err();
        assert!(
            err.contains("\"5x\"") && err.contains("ms, s, m or h"),
            "{err}"
        );
        let err = parse_size("35XB").unwrap_err();
        assert!(
            err.contains("\"35XB\"") && err.contains("KB, MB or GB"),
            "{err}"
        );
    }
}
