//! Where the configuration file is: `--config`, then `$XOAUTH_RELAY_CONFIG`, then the usual
//! per-user and system places. The environment is passed in, so tests need not touch the
//! process environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// Environment variable naming the configuration file (when `--config` is not given).
pub const CONFIG_ENV: &str = "XOAUTH_RELAY_CONFIG";

const FILE_NAME: &str = "xoauth-relay/config.toml";

/// The places searched, most specific first: `$XDG_CONFIG_HOME` (or `~/.config`), on macOS
/// `~/Library/Application Support`, then `/etc`.
pub fn search_paths(env: &HashMap<String, String>) -> Vec<PathBuf> {
    let home = non_empty(env, "HOME").map(PathBuf::from);
    // The XDG spec says to ignore a relative XDG_CONFIG_HOME.
    let xdg = non_empty(env, "XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| home.as_ref().map(|home| home.join(".config")));
    let mut paths: Vec<PathBuf> = xdg.into_iter().map(|dir| dir.join(FILE_NAME)).collect();
    if cfg!(target_os = "macos")
        && let Some(home) = &home
    {
        paths.push(home.join("Library/Application Support").join(FILE_NAME));
    }
    paths.push(Path::new("/etc").join(FILE_NAME));
    paths
}

/// The file to load: `cli` if given, else `$XOAUTH_RELAY_CONFIG`, else the first existing
/// file of [`search_paths`]. An explicit path is returned even if it does not exist, so that
/// reading it reports the real error.
pub fn resolve_path(
    cli: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<PathBuf, ConfigError> {
    if let Some(path) = cli {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = non_empty(env, CONFIG_ENV) {
        return Ok(PathBuf::from(path));
    }
    let searched = search_paths(env);
    match searched.iter().find(|path| path.is_file()) {
        Some(path) => Ok(path.clone()),
        None => Err(ConfigError::NotFound { searched }),
    }
}

fn non_empty<'a>(env: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::env;

    #[test]
    fn xdg_config_home_comes_first_then_etc() {
        let paths = search_paths(&env(&[("HOME", "/home/u"), ("XDG_CONFIG_HOME", "/xdg")]));
        assert_eq!(
            paths.first(),
            Some(&PathBuf::from("/xdg/xoauth-relay/config.toml"))
        );
        assert_eq!(
            paths.last(),
            Some(&PathBuf::from("/etc/xoauth-relay/config.toml"))
        );
    }

    #[test]
    fn home_dot_config_when_xdg_is_unset_empty_or_relative() {
        for xdg in [None, Some(""), Some("relative/dir")] {
            let mut vars = env(&[("HOME", "/home/u")]);
            if let Some(xdg) = xdg {
                vars.insert("XDG_CONFIG_HOME".into(), xdg.into());
            }
            let paths = search_paths(&vars);
            assert_eq!(
                paths[0],
                PathBuf::from("/home/u/.config/xoauth-relay/config.toml")
            );
        }
    }

    #[test]
    fn without_home_only_etc_is_searched() {
        assert_eq!(
            search_paths(&std::collections::HashMap::new()),
            vec![PathBuf::from("/etc/xoauth-relay/config.toml")]
        );
    }

    #[cfg(target_os = "macos")]
    #[test]
    fn macos_adds_application_support() {
        let paths = search_paths(&env(&[("HOME", "/Users/u")]));
        assert!(paths.contains(&PathBuf::from(
            "/Users/u/Library/Application Support/xoauth-relay/config.toml"
        )));
    }
}
