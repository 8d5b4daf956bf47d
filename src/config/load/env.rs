//! `XOAUTH_RELAY__SECTION__KEY` environment variables → key paths, and writing them into the
//! parsed file before it is deserialized.
//!
//! `USERS__0__PASSWORD` becomes `users[0].password`, a key inside the file's first `[[users]]`
//! entry (a generic mapping would make a table `users.0` and replace the whole array). Every
//! part is lower-cased, so account names addressed from the environment are lower-case;
//! `accounts` requires lower-case names for that reason.

use std::collections::{BTreeMap, HashMap};

use toml::{Table, Value};

use super::Problem;
use crate::config::file::SECTIONS;

/// Every override variable starts with this (compared ignoring case).
pub const ENV_PREFIX: &str = "XOAUTH_RELAY__";
const SEPARATOR: &str = "__";

/// One part of a key path: a table key, or a position in `[[users]]`.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// One environment variable: the key it sets (`users[0].password`), as a path and as text, and
/// its value (empty means "remove the key").
pub struct Override {
    pub key: String,
    pub path: Vec<Step>,
    pub value: String,
    pub var: String,
}

/// The overrides found in `env`, sorted by key, and a problem for each variable that cannot
/// name a key. `user_count` is the number of `[[users]]` entries in the file: the environment
/// can change an entry but not add one, since a half-filled entry could never be valid.
pub fn overrides(
    env: &HashMap<String, String>,
    user_count: usize,
) -> (Vec<Override>, Vec<Problem>) {
    let mut found: BTreeMap<String, Override> = BTreeMap::new();
    let mut problems = Vec::new();
    let sorted: BTreeMap<&String, &String> = env.iter().collect();
    for (var, value) in sorted {
        let Some(rest) = strip_prefix(var) else {
            continue;
        };
        let path = match path_for(rest, user_count) {
            Ok(path) => path,
            Err(message) => {
                problems.push(Problem::new(var.as_str(), message));
                continue;
            }
        };
        let key = dotted(&path);
        if let Some(earlier) = found.get(&key) {
            let message = format!("sets {key} like {}; keep one of them", earlier.var);
            problems.push(Problem::new(var.as_str(), message));
            continue;
        }
        let value = value.clone();
        let var = var.clone();
        found.insert(
            key.clone(),
            Override {
                key,
                path,
                value,
                var,
            },
        );
    }
    (found.into_values().collect(), problems)
}

/// Writes `value` at `path`, creating tables on the way (so the environment can add an
/// account); an empty value removes the key instead, putting it back to its default.
pub fn apply(root: &mut Value, path: &[Step], value: &str) -> Result<(), String> {
    let Some((Step::Key(leaf), parents)) = path.split_last() else {
        return Ok(());
    };
    let mut at = root;
    for (depth, step) in parents.iter().enumerate() {
        at = match (step, at) {
            // Removing from a table that is not there is already done.
            (Step::Key(key), Value::Table(table))
                if value.is_empty() && !table.contains_key(key) =>
            {
                return Ok(());
            }
            (Step::Key(key), Value::Table(table)) => table
                .entry(key.clone())
                .or_insert_with(|| Value::Table(Table::new())),
            (Step::Index(index), Value::Array(items)) if *index < items.len() => &mut items[*index],
            _ => return Err(not_a_table(&parents[..depth])),
        };
    }
    let Value::Table(table) = at else {
        return Err(not_a_table(parents));
    };
    if value.is_empty() {
        table.remove(leaf);
    } else {
        table.insert(leaf.clone(), Value::String(value.to_owned()));
    }
    Ok(())
}

fn not_a_table(path: &[Step]) -> String {
    format!(
        "cannot be applied: {} in the file is not a table",
        dotted(path)
    )
}

/// `users[0].password`, the form used in every problem.
pub fn dotted(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(key) if text.is_empty() => text.push_str(key),
            Step::Key(key) => text.push_str(&format!(".{key}")),
            Step::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

fn strip_prefix(var: &str) -> Option<&str> {
    let head = var.get(..ENV_PREFIX.len())?;
    head.eq_ignore_ascii_case(ENV_PREFIX)
        .then(|| &var[ENV_PREFIX.len()..])
}

/// `USERS__0__PASSWORD` → `users[0].password`, checked against the shape of the file.
fn path_for(rest: &str, user_count: usize) -> Result<Vec<Step>, String> {
    let lower = rest.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split(SEPARATOR).collect();
    if parts.iter().any(|part| !is_key_part(part)) {
        return Err(format!(
            "cannot name a setting: after {ENV_PREFIX} come key names (letters, digits, _ or -) \
             joined by __, for example {ENV_PREFIX}LISTEN__SMTP"
        ));
    }
    let key = |name: &str| Step::Key(name.to_owned());
    match parts.as_slice() {
        [top @ ("hostname" | "state_dir")] => Ok(vec![key(top)]),
        [
            section @ ("listen" | "limits" | "timeouts" | "pool" | "log" | "delivery" | "spool"),
            name,
        ] => Ok(vec![key(section), key(name)]),
        ["accounts", account, name] => Ok(vec![key("accounts"), key(account), key(name)]),
        ["users", index, name] => Ok(vec![
            key("users"),
            user_index(index, user_count)?,
            key(name),
        ]),
        [top, ..] if SECTIONS.contains(top) => Err(shape_hint(top)),
        _ => Err(format!(
            "unknown setting {}; the top-level keys are {}",
            parts.join("."),
            SECTIONS.join(", ")
        )),
    }
}

fn is_key_part(part: &str) -> bool {
    !part.is_empty()
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn user_index(index: &str, user_count: usize) -> Result<Step, String> {
    let Ok(index) = index.parse::<usize>() else {
        return Err(format!(
            "after USERS comes the position of the [[users]] entry, counted from 0 \
             (for example {ENV_PREFIX}USERS__0__PASSWORD), not {index:?}"
        ));
    };
    if index >= user_count {
        return Err(format!(
            "there is no [[users]] entry number {index} (the file has {user_count}, counted \
             from 0); the environment can change an entry of the file but not add one"
        ));
    }
    Ok(Step::Index(index))
}

fn shape_hint(top: &str) -> String {
    let example = match top {
        "hostname" => "HOSTNAME",
        "state_dir" => "STATE_DIR",
        "users" => "USERS__0__PASSWORD",
        "accounts" => "ACCOUNTS__CONTOSO__CLIENT_SECRET",
        _ => "LISTEN__SMTP",
    };
    format!("does not name a single setting; use for example {ENV_PREFIX}{example}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(var: &str, users: usize) -> Result<String, String> {
        let env = HashMap::from([(var.to_owned(), "v".to_owned())]);
        match overrides(&env, users) {
            (found, problems) if problems.is_empty() => Ok(found
                .into_iter()
                .map(|o| o.key)
                .collect::<Vec<_>>()
                .join(" ")),
            (_, problems) => Err(problems[0].message.clone()),
        }
    }

    #[test]
    fn names_map_to_keys() {
        let cases = [
            ("XOAUTH_RELAY__HOSTNAME", "hostname"),
            ("XOAUTH_RELAY__LISTEN__SMTP", "listen.smtp"),
            (
                "XOAUTH_RELAY__LIMITS__MAX_RECIPIENTS",
                "limits.max_recipients",
            ),
            ("XOAUTH_RELAY__TIMEOUTS__IDLE", "timeouts.idle"),
            (
                "XOAUTH_RELAY__ACCOUNTS__CONTOSO__CLIENT_SECRET",
                "accounts.contoso.client_secret",
            ),
            (
                "XOAUTH_RELAY__ACCOUNTS__MY_ACCT__SCOPE",
                "accounts.my_acct.scope",
            ),
            ("XOAUTH_RELAY__USERS__1__PASSWORD", "users[1].password"),
            ("xoauth_relay__listen__smtp", "listen.smtp"),
            // Unknown keys inside a known section pass through; deserialization reports them.
            ("XOAUTH_RELAY__LISTEN__SMPT", "listen.smpt"),
        ];
        for (var, key) in cases {
            assert_eq!(map(var, 2), Ok(key.to_owned()), "{var}");
        }
    }

    #[test]
    fn other_variables_are_ignored() {
        for var in [
            "XOAUTH_RELAY_CONFIG",
            "HOME",
            "XOAUTH_RELAY",
            "XOAUTH_RELAYX__A",
        ] {
            assert_eq!(map(var, 1), Ok(String::new()), "{var}");
        }
    }

    #[test]
    fn bad_names_are_problems() {
        let cases = [
            (
                "XOAUTH_RELAY__USERS__2__PASSWORD",
                "no [[users]] entry number 2",
            ),
            ("XOAUTH_RELAY__USERS__ALICE__PASSWORD", "counted from 0"),
            ("XOAUTH_RELAY__USERS__0", "USERS__0__PASSWORD"),
            ("XOAUTH_RELAY__LISTEN", "LISTEN__SMTP"),
            ("XOAUTH_RELAY__LISTEN__SMTP__PORT", "LISTEN__SMTP"),
            (
                "XOAUTH_RELAY__ACCOUNTS__CONTOSO",
                "ACCOUNTS__CONTOSO__CLIENT_SECRET",
            ),
            (
                "XOAUTH_RELAY__LIMIT__MAX_RECIPIENTS",
                "unknown setting limit.max_recipients",
            ),
            ("XOAUTH_RELAY__LISTEN____SMTP", "cannot name a setting"),
            ("XOAUTH_RELAY__LISTEN__SM.TP", "cannot name a setting"),
            ("XOAUTH_RELAY__", "cannot name a setting"),
        ];
        for (var, want) in cases {
            let err = map(var, 2).unwrap_err();
            assert!(err.contains(want), "{var}: {err}");
        }
    }

    #[test]
    fn overrides_land_inside_the_file_or_make_tables() {
        let mut root = Value::Table(
            "[[users]]\nname = \"a\"\npassword = \"p\"\n"
                .parse()
                .unwrap_or_default(),
        );
        let users = |index| vec![Step::Key("users".into()), Step::Index(index)];
        let at = |mut path: Vec<Step>, key: &str| {
            path.push(Step::Key(key.into()));
            path
        };
        assert_eq!(apply(&mut root, &at(users(0), "password"), ""), Ok(()));
        assert_eq!(apply(&mut root, &at(users(0), "account"), "c"), Ok(()));
        let account = ["accounts", "c", "tenant"].map(|k| Step::Key(k.into()));
        assert_eq!(apply(&mut root, &account, "t"), Ok(()));
        let want = "[[users]]\nname = \"a\"\naccount = \"c\"\n\n[accounts.c]\ntenant = \"t\"\n";
        assert_eq!(root, Value::Table(want.parse().unwrap_or_default()));
        let through_a_string = at(
            vec![
                Step::Key("users".into()),
                Step::Index(0),
                Step::Key("name".into()),
            ],
            "x",
        );
        assert!(apply(&mut root, &through_a_string, "v").is_err());
    }

    #[test]
    fn two_variables_for_one_key_are_a_problem() {
        let env = HashMap::from([
            ("XOAUTH_RELAY__LISTEN__SMTP".to_owned(), "a".to_owned()),
            ("xoauth_relay__listen__smtp".to_owned(), "b".to_owned()),
        ]);
        let (found, problems) = overrides(&env, 0);
        assert_eq!(found.len(), 1);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("keep one of them"));
    }
}
