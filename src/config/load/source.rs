//! TOML text + environment → [`RawFile`], with config-rs doing the layering and `serde_ignored`
//! collecting every unknown key (serde's `deny_unknown_fields` would stop at the first).

use std::collections::HashMap;

use config::{Config as Layers, File, FileFormat, Value, ValueKind};

use super::Problem;
use super::env::{Override, overrides};
use crate::config::file::{
    ACCOUNT_KEYS, LIMITS_KEYS, LISTEN_KEYS, RawFile, TIMEOUTS_KEYS, TOP_KEYS, USER_KEYS,
};

/// Key used for problems that belong to the file as a whole (a TOML syntax error).
pub const FILE_KEY: &str = "(file)";

/// The raw file, and the problems found on the way (unknown keys, bad variable names) that do
/// not stop the checks from running.
pub struct Parsed {
    pub raw: RawFile,
    pub problems: Vec<Problem>,
    /// `(key, variable)` for every key the environment set, to name the variable in problems.
    pub from_env: Vec<(String, String)>,
}

/// Parses `toml`, applies the `XOAUTH_RELAY__…` overrides from `env` and deserializes. Fails
/// only when the file cannot be read as a whole (syntax, or a section of the wrong type).
pub fn parse(toml: &str, env: &HashMap<String, String>) -> Result<Parsed, Vec<Problem>> {
    let file = Layers::builder()
        .add_source(File::from_str(toml, FileFormat::Toml))
        .build()
        .map_err(|e| vec![from_config_error(e, None)])?;
    // Only entries the file has can be overridden: see `env::overrides`.
    let user_count = file.get_array("users").map_or(0, |users| users.len());
    let (overrides, mut problems) = overrides(env, user_count);
    let mut builder = Layers::builder().add_source(file);
    for o in &overrides {
        builder = match builder
            .clone()
            .set_override(&o.key, override_value(&o.value))
        {
            Ok(next) => next,
            Err(e) => {
                problems.push(from_config_error(e, Some(&o.var)));
                builder
            }
        };
    }
    let layers = builder
        .build()
        .map_err(|e| vec![from_config_error(e, None)])?;
    let mut unknown = Vec::new();
    let raw = serde_ignored::deserialize(layers, |path| unknown.push(dotted(&path)))
        .map_err(|e| [problems.clone(), vec![from_config_error(e, None)]].concat())?;
    unknown.sort();
    problems.extend(unknown.iter().map(|key| unknown_key(key, &overrides)));
    let from_env = overrides.into_iter().map(|o| (o.key, o.var)).collect();
    Ok(Parsed {
        raw,
        problems,
        from_env,
    })
}

/// An empty variable removes the key (a nil value reads as absent), so the environment can
/// switch a secret from one alternative to another, or put a setting back to its default.
fn override_value(value: &str) -> Value {
    match value {
        "" => Value::new(None, ValueKind::Nil),
        value => Value::from(value),
    }
}

/// `users[0].password`, the form used in every problem (serde_ignored's own `Display` gives
/// `users.0.password` and adds `?` for each `Option`).
fn dotted(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", dotted(parent)),
        Path::Map { parent, key } => match dotted(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => dotted(parent),
    }
}

fn unknown_key(key: &str, overrides: &[Override]) -> Problem {
    let origin = match overrides.iter().find(|o| o.key == key) {
        Some(o) => format!("unknown key (set by the environment variable {})", o.var),
        None => "unknown key".to_owned(),
    };
    let (section, name) = key.rsplit_once('.').unwrap_or(("", key));
    let known = known_keys(section);
    let hint = match known.iter().find(|k| is_close(name, k)) {
        Some(k) => format!("; did you mean {k}?"),
        None if known.is_empty() => String::new(),
        None => format!("; the keys allowed here are: {}", known.join(", ")),
    };
    Problem::new(key, format!("{origin}{hint}"))
}

/// The keys allowed in the table at `section` (`""`, `limits`, `users[0]`, `accounts.x`).
fn known_keys(section: &str) -> &'static [&'static str] {
    match section {
        "" => TOP_KEYS,
        "listen" => LISTEN_KEYS,
        "limits" => LIMITS_KEYS,
        "timeouts" => TIMEOUTS_KEYS,
        s if s.starts_with("users[") => USER_KEYS,
        s if s.starts_with("accounts.") => ACCOUNT_KEYS,
        _ => &[],
    }
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

/// A config-rs error as a problem. Its messages can quote values (`string "…"`), and TOML
/// syntax errors show the offending line, which may hold a secret: both are cut out.
fn from_config_error(error: config::ConfigError, var: Option<&str>) -> Problem {
    use config::ConfigError as E;
    match error {
        E::FileParse { cause, .. } => Problem::new(
            FILE_KEY,
            format!("not valid TOML: {}", without_snippet(&cause.to_string())),
        ),
        E::Type {
            unexpected,
            expected,
            key,
            ..
        } => Problem::new(
            key.unwrap_or_else(|| FILE_KEY.to_owned()),
            format!(
                "expected {}, found {}",
                humane(expected),
                without_quotes(&unexpected.to_string())
            ),
        ),
        E::At {
            error,
            key: Some(key),
            ..
        } => Problem::new(key, from_config_error(*error, var).message),
        other => Problem::new(
            var.unwrap_or(FILE_KEY),
            format!("cannot be used: {}", without_quotes(&other.to_string())),
        ),
    }
}

/// Drops the source excerpt from a TOML error (`3 | client_secret = "…`, `  |  ^`) and joins
/// the rest on one line.
fn without_snippet(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('|'))
        .filter(|line| {
            !line
                .split_once(" |")
                .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
        })
        .collect::<Vec<_>>()
        .join(": ")
}

/// `string "hunter2"` → `string`: the value might be a secret.
fn without_quotes(message: &str) -> String {
    match message.find(['"', '`']) {
        Some(at) => message[..at].trim_end().to_owned(),
        None => message.to_owned(),
    }
}

/// Our raw structs have internal names; to the operator they are tables.
fn humane(expected: &str) -> &str {
    if expected.starts_with("struct") || expected == "a map" {
        "a table"
    } else {
        expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::Scalar;

    fn unknown_keys(toml: &str) -> Vec<String> {
        let parsed = parse(toml, &HashMap::new()).unwrap_or_else(|p| panic!("{p:?}"));
        parsed.problems.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn every_unknown_key_is_reported_with_its_path() {
        let toml = "typo = 1\n[limits]\nmax_recipents = 5\nmax_line = 1\n\
                    [[users]]\nname = \"a\"\npasword = \"x\"\n\
                    [accounts.c]\nclient_secrt = \"x\"\n[accounts.c.nested]\nx = 1\n";
        assert_eq!(
            unknown_keys(toml),
            [
                "accounts.c.client_secrt",
                "accounts.c.nested",
                "limits.max_line",
                "limits.max_recipents",
                "typo",
                "users[0].pasword",
            ]
        );
    }

    #[test]
    fn unknown_keys_get_a_suggestion_or_the_list() {
        let close = unknown_key("limits.max_recipents", &[]);
        assert!(
            close.message.ends_with("did you mean max_recipients?"),
            "{}",
            close.message
        );
        let far = unknown_key("listen.address", &[]);
        assert!(
            far.message
                .contains("the keys allowed here are: smtp, smtp_tls"),
            "{}",
            far.message
        );
    }

    #[test]
    fn the_key_lists_match_the_structs() {
        let sections = [
            ("", TOP_KEYS),
            ("[listen]\n", LISTEN_KEYS),
            ("[limits]\n", LIMITS_KEYS),
            ("[timeouts]\n", TIMEOUTS_KEYS),
            ("[[users]]\n", USER_KEYS),
            ("[accounts.a]\n", ACCOUNT_KEYS),
        ];
        for (header, keys) in sections {
            let body: String = keys.iter().map(|k| format!("{k} = \"x\"\n")).collect();
            let body = if header.is_empty() {
                "hostname = \"x\"".to_owned()
            } else {
                body
            };
            assert_eq!(
                unknown_keys(&format!("{header}{body}")),
                Vec::<String>::new(),
                "{header}"
            );
        }
    }

    #[test]
    fn leaves_keep_their_kind() {
        let parsed = parse(
            "[limits]\nmax_recipients = 5\nmax_line_length = \"7\"\nmax_connections = 1.5\n",
            &HashMap::new(),
        );
        let limits = parsed.unwrap_or_else(|p| panic!("{p:?}")).raw.limits;
        assert!(matches!(limits.max_recipients, Some(Scalar::Int(5))));
        assert!(matches!(limits.max_line_length, Some(Scalar::Text(ref t)) if t == "7"));
        assert!(matches!(
            limits.max_connections,
            Some(Scalar::Other("a decimal number"))
        ));
    }

    #[test]
    fn toml_syntax_errors_do_not_echo_the_line() {
        let problems = parse("[accounts.a]\nclient_secret = \"hunter2\n", &HashMap::new())
            .err()
            .unwrap_or_default();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, FILE_KEY);
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
        let problems = parse("[accounts]\ncontoso = \"hunter2\"\n", &HashMap::new())
            .err()
            .unwrap_or_default();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            !problems[0].message.contains("hunter2"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("smpt", "smtp"), 2);
        assert_eq!(edit_distance("max_recipents", "max_recipients"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
