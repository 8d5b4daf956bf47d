//! `XOAUTH_RELAY__SECTION__KEY` environment variables → config-rs override keys.
//!
//! We map names ourselves instead of using `config::Environment`, because its mapping turns
//! `USERS__0__PASSWORD` into a table `users.0`, which replaces the whole `[[users]]` array;
//! here it becomes `users[0].password`, which config-rs applies inside the existing entry.
//! Doing it here also lets a bad name be reported with the variable that caused it. Like
//! config-rs, every part is lower-cased (account names addressed from the environment are
//! therefore lower-case; `accounts` requires lower-case names for that reason).

use std::collections::{BTreeMap, HashMap};

use super::Problem;
use crate::config::file::TOP_KEYS;

/// Every override variable starts with this (compared ignoring case, as config-rs does).
pub const ENV_PREFIX: &str = "XOAUTH_RELAY__";
const SEPARATOR: &str = "__";

/// One environment variable, as a config-rs path (`users[0].password`) and its value (empty
/// means "remove the key", see `source`).
pub struct Override {
    pub key: String,
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
        match key_for(rest, user_count) {
            Err(message) => problems.push(Problem::new(var.as_str(), message)),
            Ok(key) => {
                if let Some(earlier) = found.get(&key) {
                    let message = format!("sets {key} like {}; keep one of them", earlier.var);
                    problems.push(Problem::new(var.as_str(), message));
                    continue;
                }
                let value = value.clone();
                found.insert(
                    key.clone(),
                    Override {
                        key,
                        value,
                        var: var.clone(),
                    },
                );
            }
        }
    }
    (found.into_values().collect(), problems)
}

fn strip_prefix(var: &str) -> Option<&str> {
    let head = var.get(..ENV_PREFIX.len())?;
    head.eq_ignore_ascii_case(ENV_PREFIX)
        .then(|| &var[ENV_PREFIX.len()..])
}

/// `USERS__0__PASSWORD` → `users[0].password`, checked against the shape of the file.
fn key_for(rest: &str, user_count: usize) -> Result<String, String> {
    let lower = rest.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split(SEPARATOR).collect();
    if parts.iter().any(|part| !is_key_part(part)) {
        return Err(format!(
            "cannot name a setting: after {ENV_PREFIX} come key names (letters, digits, _ or -) \
             joined by __, for example {ENV_PREFIX}LISTEN__SMTP"
        ));
    }
    match parts.as_slice() {
        [top @ ("hostname" | "state_dir")] => Ok((*top).to_owned()),
        [section @ ("listen" | "limits" | "timeouts"), key] => Ok(format!("{section}.{key}")),
        ["accounts", name, key] => Ok(format!("accounts.{name}.{key}")),
        ["users", index, key] => user_key(index, key, user_count),
        [top, ..] if TOP_KEYS.contains(top) => Err(shape_hint(top)),
        _ => Err(format!(
            "unknown setting {}; the top-level keys are {}",
            parts.join("."),
            TOP_KEYS.join(", ")
        )),
    }
}

fn is_key_part(part: &str) -> bool {
    !part.is_empty()
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn user_key(index: &str, key: &str, user_count: usize) -> Result<String, String> {
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
    Ok(format!("users[{index}].{key}"))
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
