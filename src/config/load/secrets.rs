//! Secrets given one of several ways: inline, `*_file` (for example a systemd credential) or
//! `*_env` (the name of an environment variable). Exactly one way per secret; the value goes
//! straight into a [`Secret`] and never into a message.

use std::path::PathBuf;

use super::check::{Context, Problems};
use crate::secret::Secret;

/// The one alternative that is set, as `(its key name, its value)`. `table` is the key of the
/// enclosing table (`users[0]`), `main` the key a "missing" problem is filed under (`password`).
/// An alternative dropped for a wrong value counts as set: it was already reported.
pub fn pick_one<'a>(
    p: &mut Problems,
    ctx: &Context,
    table: &str,
    main: &str,
    options: &[(&'static str, Option<&'a String>)],
) -> Option<(&'static str, &'a str)> {
    let dropped = |name: &str| ctx.dropped.contains(&format!("{table}.{name}"));
    let set: Vec<(&'static str, Option<&'a String>)> = options
        .iter()
        .filter(|(name, value)| value.is_some() || dropped(name))
        .copied()
        .collect();
    let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
    match set.as_slice() {
        [(name, value)] => Some((*name, value.map(String::as_str)?)),
        [] => {
            let choices = or_list(&names);
            p.push(
                format!("{table}.{main}"),
                format!("is missing; set one of {choices}"),
            );
            None
        }
        several => {
            let given: Vec<&str> = several.iter().map(|(name, _)| *name).collect();
            let message = format!(
                "{} are set at the same time; keep exactly one of them",
                and_list(&given)
            );
            p.push(format!("{table}.{main}"), message);
            None
        }
    }
}

/// Reads the secret behind `name = value`: the value itself, the file it names (relative to
/// the config file's directory) or the environment variable it names.
pub fn read(
    p: &mut Problems,
    ctx: &Context,
    key: &str,
    name: &str,
    text: &str,
) -> Option<Secret<String>> {
    let secret = if name.ends_with("_file") {
        from_file(ctx, text)
    } else if name.ends_with("_env") {
        from_env(ctx, text)
    } else if text.is_empty() {
        Err("is empty".to_owned())
    } else {
        Ok(text.to_owned())
    };
    secret
        .map(Secret::new)
        .map_err(|message| p.push(key, message))
        .ok()
}

fn from_file(ctx: &Context, name: &str) -> Result<String, String> {
    let path = resolve(ctx, name);
    match std::fs::read_to_string(&path) {
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        Ok(content) => match trim_one_newline(content) {
            empty if empty.is_empty() => Err(format!("the file {} is empty", path.display())),
            secret => Ok(secret),
        },
    }
}

fn from_env(ctx: &Context, name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("is empty; give the name of an environment variable".to_owned());
    }
    match ctx.env.get(name) {
        None => Err(format!("the environment variable {name} is not set")),
        Some(value) if value.is_empty() => Err(format!("the environment variable {name} is empty")),
        Some(value) => Ok(value.clone()),
    }
}

/// A path from the config file: relative paths start at the config file's directory, so the
/// file means the same thing whatever the working directory. Under systemd, a relative name
/// that exists in `$CREDENTIALS_DIRECTORY` (`LoadCredential=`) is taken from there first.
pub fn resolve(ctx: &Context, name: &str) -> PathBuf {
    let credential = ctx
        .env
        .get("CREDENTIALS_DIRECTORY")
        .map(|dir| std::path::Path::new(dir).join(name))
        .filter(|path| path.is_absolute() && path.is_file());
    credential.unwrap_or_else(|| ctx.base_dir.join(name))
}

/// Editors and `echo` add one newline; anything else (spaces, a second newline) is kept as
/// part of the secret rather than guessed away.
fn trim_one_newline(mut text: String) -> String {
    if text.ends_with("\r\n") {
        text.truncate(text.len() - 2);
    } else if text.ends_with('\n') {
        text.truncate(text.len() - 1);
    }
    text
}

/// `a`, `a or b`, `a, b or c`.
pub fn or_list(items: &[&str]) -> String {
    join_last(items, " or ")
}

fn and_list(items: &[&str]) -> String {
    join_last(items, " and ")
}

fn join_last(items: &[&str], last: &str) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., end] => format!("{}{last}{end}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn one_trailing_newline_is_trimmed() {
        let cases = [
            ("s\n", "s"),
            ("s\r\n", "s"),
            ("s\n\n", "s\n"),
            ("s ", "s "),
            ("s", "s"),
            ("\n", ""),
        ];
        for (input, want) in cases {
            assert_eq!(trim_one_newline(input.to_owned()), want, "{input:?}");
        }
    }

    #[test]
    fn exactly_one_alternative() {
        let a = "x".to_owned();
        let env = HashMap::new();
        let dropped = ["t.pw_file".to_owned()].into();
        let ctx = Context {
            base_dir: std::path::Path::new("/"),
            env: &env,
            dropped: &dropped,
        };
        let mut p = Problems::default();
        let picked = pick_one(
            &mut p,
            &ctx,
            "t",
            "pw",
            &[("pw", None), ("pw_env", Some(&a))],
        );
        assert_eq!(picked.map(|(name, _)| name), Some("pw_env"));
        let none = [("pw", None), ("pw_env", None)];
        assert!(pick_one(&mut p, &ctx, "t", "pw", &none).is_none());
        let only_dropped = [("pw", None), ("pw_file", None)];
        assert!(pick_one(&mut p, &ctx, "t", "pw", &only_dropped).is_none());
        let two = [("pw", Some(&a)), ("pw_env", Some(&a))];
        assert!(pick_one(&mut p, &ctx, "t", "pw", &two).is_none());
        let messages: Vec<_> = p.0.iter().map(|p| format!("{p}")).collect();
        assert_eq!(
            messages,
            [
                "t.pw: is missing; set one of pw or pw_env",
                "t.pw: pw and pw_env are set at the same time; keep exactly one of them"
            ]
        );
    }

    #[test]
    fn env_secrets_must_be_set_and_non_empty() {
        let env = [
            ("SET".to_owned(), "v".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ]
        .into();
        let dropped = Default::default();
        let ctx = Context {
            base_dir: std::path::Path::new("/"),
            env: &env,
            dropped: &dropped,
        };
        assert_eq!(from_env(&ctx, "SET"), Ok("v".to_owned()));
        assert_eq!(
            from_env(&ctx, "UNSET"),
            Err("the environment variable UNSET is not set".to_owned())
        );
        assert_eq!(
            from_env(&ctx, "EMPTY"),
            Err("the environment variable EMPTY is empty".to_owned())
        );
    }
}
