//! Loading: the TOML file, then `XOAUTH_RELAY__…` environment overrides, then checks that
//! report every problem at once.
//!
//! The steps, one file each under `load/`: `paths` finds the file, `source` writes the
//! environment (`env` maps variable names) into the parsed TOML and deserializes it into the
//! shape of `file.rs`, collecting every wrong value; `listen`, `accounts` and `users` check what
//! needs more than one key and make the [`Config`], writing into one problem list (`check`).
//! The environment is always passed in, never read here, so tests control it.

mod accounts;
mod certificate;
mod check;
mod env;
mod error;
mod listen;
mod paths;
mod roots;
mod secrets;
mod source;
mod users;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::check::{Context, Problems};
use super::file::{File, SECTIONS};
use super::{Account, Config, DeliveryMode, User};

pub use self::error::{ConfigError, Problem};
pub use self::paths::{resolve_path, search_paths};

/// Reads and checks the file at `path` (see [`resolve_path`]); relative `*_file` and `ca_file`
/// settings are taken from the file's directory.
pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // Absolute, so that paths in messages and in `Account::ca_file` do not depend on the
    // working directory; `absolute` only fails on an empty path or a vanished cwd.
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base_dir = absolute
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    load_str(&text, &base_dir, env).map_err(|e| match e {
        ConfigError::Invalid { problems, .. } => ConfigError::Invalid {
            path: Some(path.to_path_buf()),
            problems,
        },
        other => other,
    })
}

/// Where the queue of the configuration at `path` lives, read without checking the rest of
/// the file: an operator running `xoauth-relay queue` from a shell has no client secret in
/// its environment, and needs none. `None` when there is no state directory.
pub fn queue_location(
    path: &Path,
    env: &HashMap<String, String>,
) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base_dir = absolute.parent().unwrap_or(Path::new("."));
    let parsed = source::parse(&text, env).map_err(|problems| ConfigError::Invalid {
        path: Some(path.to_path_buf()),
        problems,
    })?;
    let ctx = Context {
        base_dir,
        env,
        dropped: &parsed.dropped,
    };
    let state = listen::state_dir(&ctx, parsed.file.state_dir.as_ref());
    Ok(state.map(|state| {
        let spool = state.join(&parsed.file.spool.dir);
        (state, spool)
    }))
}

/// Like [`load`], for what one account needs (`xoauth-relay login NAME`): problems of other
/// accounts and of users (say, a secret only the service's environment holds) are not in the
/// way. The configuration returned is complete only for that account.
pub fn load_for_account(
    path: &Path,
    env: &HashMap<String, String>,
    account: &str,
) -> Result<Config, ConfigError> {
    let own = format!("accounts.{account}");
    let concerns = move |p: &Problem| {
        let other_account = p.key.starts_with("accounts.")
            && p.key != own
            && !p.key.starts_with(&format!("{own}."));
        !(other_account || p.key.starts_with("users"))
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base_dir = absolute.parent().unwrap_or(Path::new("."));
    checked(&text, base_dir, env, &concerns).map_err(|e| match e {
        ConfigError::Invalid { problems, .. } => ConfigError::Invalid {
            path: Some(path.to_path_buf()),
            problems,
        },
        other => other,
    })
}

/// Checks configuration text; `base_dir` is where relative paths in it start.
pub fn load_str(
    toml: &str,
    base_dir: &Path,
    env: &HashMap<String, String>,
) -> Result<Config, ConfigError> {
    checked(toml, base_dir, env, &|_| true)
}

/// The configuration, unless a problem that `counts` is found.
fn checked(
    toml: &str,
    base_dir: &Path,
    env: &HashMap<String, String>,
    counts: &dyn Fn(&Problem) -> bool,
) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        path: None,
        problems,
    };
    let parsed = source::parse(toml, env).map_err(invalid)?;
    let dropped = &parsed.dropped;
    let mut checks = Problems::default();
    let config = build(
        &mut checks,
        &Context {
            base_dir,
            env,
            dropped,
        },
        &parsed.file,
    );
    // A dropped key was reported with its wrong value; "missing" would only add noise.
    let checks = checks.0.into_iter().filter(|p| !within(dropped, &p.key));
    let mut by_section: Vec<Problem> = parsed.wrong.into_iter().chain(checks).collect();
    by_section.sort_by_key(|p| section_rank(&p.key));
    let mut problems = parsed.first;
    problems.extend(by_section);
    problems.retain(|p| counts(p));
    if problems.is_empty() {
        return Ok(config);
    }
    name_variables(&mut problems, &parsed.from_env);
    Err(invalid(problems))
}

/// True when `key` is a dropped key or inside one.
fn within(dropped: &std::collections::BTreeSet<String>, key: &str) -> bool {
    dropped.iter().any(|d| {
        key.strip_prefix(d.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    })
}

/// Problems come in the order of the sections in [`SECTIONS`], whichever step found them.
fn section_rank(key: &str) -> usize {
    let top = key.split(['.', '[']).next().unwrap_or_default();
    SECTIONS
        .iter()
        .position(|s| *s == top)
        .unwrap_or(SECTIONS.len())
}

/// The typed config, with stand-ins wherever a problem was recorded (then it is discarded).
fn build(p: &mut Problems, ctx: &Context, file: &File) -> Config {
    let mut warnings = Vec::new();
    let hostname = listen::hostname(file.hostname.as_ref());
    let listen = listen::listen(p, ctx, &file.listen, &mut warnings);
    let state_dir = listen::state_dir(ctx, file.state_dir.as_ref());
    if listen.uses_tls() && listen.tls_files.is_none() && state_dir.is_none() {
        p.push("state_dir", "is needed to keep the self-signed listener certificate: set state_dir, or tls_cert and tls_key in [listen]");
    }
    if file.spool.dir.trim().is_empty() {
        p.push("spool.dir", "must not be empty: it names the queue's directory (default \"spool\", under state_dir)");
    }
    let mut delivery = file.delivery.clone();
    if delivery.mode != DeliveryMode::Sync && state_dir.is_none() {
        warnings.push(format!("no state directory (set state_dir, or HOME or STATE_DIRECTORY in the environment): messages cannot be queued, so delivery.mode {:?} works as \"sync\"", delivery.mode.name()));
        delivery.mode = DeliveryMode::Sync;
    }
    let accounts = accounts::accounts(p, ctx, &file.accounts, state_dir.is_some(), &mut warnings);
    let users = users::users(p, ctx, &file.users, &accounts, &mut warnings);
    warnings.extend(unused_accounts(&accounts, &users));
    Config {
        listen,
        limits: file.limits.clone(),
        timeouts: file.timeouts.clone(),
        pool: file.pool.clone(),
        delivery,
        spool: file.spool.clone(),
        log: file.log.clone(),
        hostname,
        users,
        accounts,
        warnings,
        state_dir,
    }
}

/// A value from the environment is invisible in the file, so say where it came from. A key
/// also matches its alternatives: `users[0].password` covers `users[0].password_hash`.
fn name_variables(problems: &mut [Problem], from_env: &[(String, String)]) {
    for problem in problems {
        let alternative = format!("{}_", problem.key);
        let vars: Vec<&str> = from_env
            .iter()
            .filter(|(key, _)| *key == problem.key || key.starts_with(&alternative))
            .map(|(_, var)| var.as_str())
            .filter(|var| !problem.message.contains(var))
            .collect();
        if !vars.is_empty() {
            problem
                .message
                .push_str(&format!(" (set by the environment: {})", vars.join(", ")));
        }
    }
}

/// An account no user sends through is harmless but usually a forgotten `account = "…"`.
fn unused_accounts(accounts: &BTreeMap<String, Arc<Account>>, users: &[User]) -> Vec<String> {
    accounts
        .keys()
        .filter(|name| !users.iter().any(|user| &user.account == *name))
        .map(|name| format!("account {name:?} is not used by any [[users]] entry"))
        .collect()
}
