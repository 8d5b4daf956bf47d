//! TOML text + environment → the typed [`File`], with every problem on the way.
//!
//! serde stops at the first error, so deserialization is retried: each failure becomes a
//! problem at its key path (from `serde_path_to_error`), that key is dropped from the table, and
//! the next attempt goes past it. A file with N wrong keys takes N + 1 attempts, and the checks
//! in `load` then run on everything that was right.

use std::collections::{BTreeSet, HashMap};

use serde_path_to_error::Segment;
use toml::{Table, Value};

use super::Problem;
use super::env::{Override, Step, apply, dotted, overrides};
use crate::config::file::File;

/// Key used for problems that belong to the file as a whole (a TOML syntax error).
pub const FILE_KEY: &str = "(file)";

pub struct Parsed {
    pub file: File,
    /// Environment variables that name no key, and unknown keys: reported first.
    pub first: Vec<Problem>,
    /// Values of the wrong type or out of range, at the key that holds them.
    pub wrong: Vec<Problem>,
    /// Keys dropped for `wrong`: the checks must not call them missing on top.
    pub dropped: BTreeSet<String>,
    /// `(key, variable)` for every key the environment set, to name the variable in problems.
    pub from_env: Vec<(String, String)>,
}

/// Parses `toml`, applies the `XOAUTH_RELAY__…` overrides from `env` and deserializes. Fails
/// only on a TOML syntax error.
pub fn parse(toml: &str, env: &HashMap<String, String>) -> Result<Parsed, Vec<Problem>> {
    let table: Table = toml.parse().map_err(|e| vec![syntax(toml, &e)])?;
    let mut root = Value::Table(table);
    // Only entries the file has can be overridden: see `env::overrides`.
    let user_count = root
        .get("users")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let (overrides, mut first) = overrides(env, user_count);
    for o in &overrides {
        if let Err(message) = apply(&mut root, &o.path, &o.value) {
            first.push(Problem::new(o.var.as_str(), message));
        }
    }
    let mut parsed = Parsed {
        file: File::default(),
        first,
        wrong: Vec::new(),
        dropped: BTreeSet::new(),
        from_env: Vec::new(),
    };
    parsed.file = deserialize(root, &overrides, &mut parsed);
    parsed.from_env = overrides.into_iter().map(|o| (o.key, o.var)).collect();
    Ok(parsed)
}

fn deserialize(mut root: Value, overrides: &[Override], out: &mut Parsed) -> File {
    loop {
        let error = match serde_path_to_error::deserialize(root.clone()) {
            Ok(file) => return file,
            Err(error) => error,
        };
        let path: Vec<Step> = error.path().iter().map(step).collect();
        let key = dotted(&path);
        let message = error.inner().message();
        let unknown = unknown_field(message);
        match &unknown {
            Some(known) => out.first.push(unknown_key(&key, known, overrides)),
            None => out.wrong.push(Problem::new(key, without_value(message))),
        }
        let Some(dropped) = drop_key(&mut root, &path) else {
            return File::default();
        };
        if unknown.is_none() {
            out.dropped.insert(dropped);
        }
    }
}

/// The same steps as the environment's key paths, so both are written by one `dotted`.
fn step(segment: &Segment) -> Step {
    match segment {
        Segment::Seq { index } => Step::Index(*index),
        other => Step::Key(other.to_string()),
    }
}

/// Removes the value at `path`, or for an item of a list the whole list, so the next attempt
/// gets past it (and indices of other items do not shift). Returns the key removed.
fn drop_key(root: &mut Value, path: &[Step]) -> Option<String> {
    let last = path.iter().rposition(|s| matches!(s, Step::Key(_)))?;
    let (Step::Key(key), parents) = path[..=last].split_last()? else {
        return None;
    };
    let mut at = root;
    for step in parents {
        at = match (step, at) {
            (Step::Key(key), Value::Table(table)) => table.get_mut(key)?,
            (Step::Index(index), Value::Array(items)) => items.get_mut(*index)?,
            _ => return None,
        };
    }
    at.as_table_mut()?.remove(key)?;
    Some(dotted(&path[..=last]))
}

/// The line and column of a syntax error, and what is wrong. toml's own `Display` quotes the
/// offending line, which may hold a secret.
fn syntax(toml: &str, error: &toml::de::Error) -> Problem {
    let start = error.span().map_or(0, |span| span.start);
    let before = toml.get(..start).unwrap_or(toml);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let message = format!(
        "not valid TOML: line {line}, column {column}: {}",
        error.message()
    );
    Problem::new(FILE_KEY, message)
}

/// The names serde lists after "unknown field `x`, expected one of `a`, `b`", or `None` when
/// the message is about something else.
fn unknown_field(message: &str) -> Option<Vec<&str>> {
    let rest = message.strip_prefix("unknown field `")?;
    let expected = rest.split_once("`, expected ").map_or("", |(_, e)| e);
    Some(expected.split('`').skip(1).step_by(2).collect())
}

fn unknown_key(key: &str, known: &[&str], overrides: &[Override]) -> Problem {
    let origin = match overrides.iter().find(|o| o.key == key) {
        Some(o) => format!("unknown key (set by the environment variable {})", o.var),
        None => "unknown key".to_owned(),
    };
    let name = key.rsplit_once('.').map_or(key, |(_, name)| name);
    let hint = match known.iter().find(|k| is_close(name, k)) {
        Some(k) => format!("; did you mean {k}?"),
        None if known.is_empty() => String::new(),
        None => format!("; the keys allowed here are: {}", known.join(", ")),
    };
    Problem::new(key, format!("{origin}{hint}"))
}

/// A typo: same letters ignoring case, or at most two edits apart.
fn is_close(typed: &str, known: &str) -> bool {
    let typed = typed.to_ascii_lowercase();
    edit_distance(&typed, known) <= 2
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// serde's "invalid type: string \"hunter2\", expected u16" quotes the value, which may be a
/// secret: only its kind is kept. The readers in `values` write their own messages, which pass.
fn without_value(message: &str) -> String {
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.to_owned();
    };
    let Some((found, expected)) = rest.rsplit_once(", expected ") else {
        return "has the wrong type".to_owned();
    };
    let found = match found.split(' ').next().unwrap_or_default() {
        "string" => "a string",
        "integer" => "a number",
        "floating" => "a decimal number",
        "boolean" => "true/false",
        "sequence" => "a list",
        "map" => "a table",
        _ => "another kind of value",
    };
    let expected = match expected {
        "a string" => "a string (in quotes)",
        "a sequence" => "a list",
        e if e.starts_with("struct ") || e == "a map" => "a table",
        e => e,
    };
    format!("expected {expected}, found {found}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(toml: &str) -> Parsed {
        parse(toml, &HashMap::new()).unwrap_or_else(|p| panic!("{p:?}"))
    }

    fn keys(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn every_unknown_key_is_reported_with_its_path() {
        let toml = "typo = 1\n[limits]\nmax_recipents = 5\nmax_line = 1\n\
                    [[users]]\nname = \"a\"\npasword = \"x\"\n\
                    [accounts.c]\nclient_secrt = \"x\"\n[accounts.c.nested]\nx = 1\n";
        let parsed = parse_ok(toml);
        let mut unknown = keys(&parsed.first);
        unknown.sort_unstable();
        assert_eq!(
            unknown,
            [
                "accounts.c.client_secrt",
                "accounts.c.nested",
                "limits.max_line",
                "limits.max_recipents",
                "typo",
                "users[0].pasword",
            ]
        );
        assert!(parsed.wrong.is_empty() && parsed.dropped.is_empty());
    }

    #[test]
    fn unknown_keys_get_a_suggestion_or_the_list() {
        let parsed = parse_ok("[limits]\nmax_recipents = 1\n[listen]\naddress = 1\n");
        let messages: Vec<&str> = parsed.first.iter().map(|p| p.message.as_str()).collect();
        assert!(
            messages[0].ends_with("did you mean max_recipients?"),
            "{messages:?}"
        );
        assert!(
            messages[1].contains("the keys allowed here are: smtp, smtp_tls"),
            "{messages:?}"
        );
    }

    #[test]
    fn every_wrong_value_is_reported_and_the_rest_still_read() {
        let parsed = parse_ok(
            "hostname = \"relay.example\"\n[limits]\nmax_recipients = \"7\"\n\
             max_connections = 1.5\nmax_errors = 0\n[[users]]\nname = 5\n\
             allowed_senders = [\"a@b.example\", 3]\n",
        );
        assert_eq!(
            keys(&parsed.wrong),
            [
                "limits.max_connections",
                "limits.max_errors",
                "users[0].allowed_senders[1]",
                "users[0].name"
            ]
        );
        assert_eq!(
            parsed
                .dropped
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            [
                "limits.max_connections",
                "limits.max_errors",
                "users[0].allowed_senders",
                "users[0].name"
            ]
        );
        assert_eq!(parsed.file.limits.max_recipients, 7);
        assert_eq!(parsed.file.hostname.as_deref(), Some("relay.example"));
        assert_eq!(
            parsed.wrong[0].message,
            "expected a whole number, found a decimal number"
        );
        assert_eq!(
            parsed.wrong[3].message,
            "expected a string (in quotes), found a number"
        );
    }

    #[test]
    fn toml_syntax_errors_do_not_echo_the_line() {
        let problems = parse("[accounts.a]\nclient_secret = \"hunter2\n", &HashMap::new())
            .err()
            .unwrap_or_default();
        assert_eq!(keys(&problems), [FILE_KEY]);
        assert!(
            problems[0].message.contains("line 2"),
            "{}",
            problems[0].message
        );
        assert!(
            !problems[0].message.contains("hunter2"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn wrong_section_types_name_the_key_not_the_value() {
        let parsed = parse_ok("[accounts]\ncontoso = \"hunter2\"\n");
        assert_eq!(keys(&parsed.wrong), ["accounts.contoso"]);
        assert_eq!(parsed.wrong[0].message, "expected a table, found a string");
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("smpt", "smtp"), 2);
        assert_eq!(edit_distance("max_recipents", "max_recipients"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
