//! Which configuration file the installed service runs with, and whether a system service
//! can read it (and its binary) at all.

use std::path::{Path, PathBuf};

use super::{Host, Platform, Scope, ServiceError};
use crate::config::{self, ConfigError};

/// The file name under a configuration directory, as `config::search_paths` uses it.
const FILE_NAME: &str = "xoauth-relay/config.toml";
/// The variable `config::resolve_path` honours after `--config`.
const CONFIG_ENV: &str = "XOAUTH_RELAY_CONFIG";

/// The configuration path the service file will name.
#[derive(Debug, Clone)]
pub struct ConfigChoice {
    /// Absolute.
    pub path: PathBuf,
    pub source: ConfigSource,
    /// Things to tell the operator (for example: it does not exist yet).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config`.
    Given,
    /// Found where `xoauth-relay run` would find it (or `$XOAUTH_RELAY_CONFIG`).
    Found,
    /// Nothing found: the usual place for the scope.
    Default,
}

impl ConfigChoice {
    pub fn describe(&self) -> &'static str {
        match self.source {
            ConfigSource::Given => "given with --config",
            ConfigSource::Found => "found where `xoauth-relay run` looks",
            ConfigSource::Default => "the usual place for this scope",
        }
    }
}

/// `--config` made absolute; else for a user service the file `run` would find; for a system
/// service `$XOAUTH_RELAY_CONFIG` or `/etc/xoauth-relay/config.toml` (a system service must
/// not depend on whoever ran the installer having a file in their home directory).
pub fn choose_config(
    platform: Platform,
    scope: Scope,
    host: &Host,
    given: Option<&Path>,
) -> Result<ConfigChoice, ServiceError> {
    let (path, source) = match given {
        Some(path) => (absolute(path)?, ConfigSource::Given),
        None => search(platform, scope, host)?,
    };
    let mut notes = Vec::new();
    if !path.is_file() {
        notes.push(format!(
            "{} does not exist yet: create it before starting the service \
             (an annotated example is config/xoauth-relay.toml in the source)",
            path.display()
        ));
    } else if platform == Platform::Systemd && scope == Scope::System && !world_readable(&path) {
        notes.push(format!(
            "the service runs as a dynamic user, which cannot read {}: make it readable \
             (chmod 644) and keep secrets in credential files (LoadCredential=, see the unit)",
            path.display()
        ));
    }
    Ok(ConfigChoice {
        path,
        source,
        notes,
    })
}

fn search(
    platform: Platform,
    scope: Scope,
    host: &Host,
) -> Result<(PathBuf, ConfigSource), ServiceError> {
    if scope == Scope::System {
        return Ok(match host.var(CONFIG_ENV) {
            Some(path) => (absolute(Path::new(path))?, ConfigSource::Found),
            None => (Path::new("/etc").join(FILE_NAME), ConfigSource::Default),
        });
    }
    match config::resolve_path(None, &host.env) {
        Ok(path) => Ok((absolute(&path)?, ConfigSource::Found)),
        Err(ConfigError::NotFound { .. }) => {
            Ok((user_default(platform, host)?, ConfigSource::Default))
        }
        Err(e) => Err(ServiceError::Config(e.to_string())),
    }
}

/// Linux: `~/.config/xoauth-relay/config.toml`; macOS: under `~/Library/Application Support`.
fn user_default(platform: Platform, host: &Host) -> Result<PathBuf, ServiceError> {
    Ok(match platform {
        Platform::Systemd => host.config_home()?.join(FILE_NAME),
        Platform::Launchd => host
            .home()?
            .join("Library/Application Support")
            .join(FILE_NAME),
    })
}

fn absolute(path: &Path) -> Result<PathBuf, ServiceError> {
    std::path::absolute(path).map_err(|e| ServiceError::Usage(format!("{}: {e}", path.display())))
}

#[cfg(unix)]
fn world_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

#[cfg(not(unix))]
fn world_readable(_path: &Path) -> bool {
    true
}

/// The system unit's sandbox hides these from the service (`ProtectHome=yes`,
/// `PrivateTmp=yes`); a binary or configuration there would make it fail at every start.
const HIDDEN_FROM_SYSTEM_UNIT: [(&str, &str); 5] = [
    ("/home", "ProtectHome=yes"),
    ("/root", "ProtectHome=yes"),
    ("/run/user", "ProtectHome=yes"),
    ("/tmp", "PrivateTmp=yes"),
    ("/var/tmp", "PrivateTmp=yes"),
];

/// Refuses a system unit whose binary or configuration its own sandbox would hide.
pub fn check_reachable(
    platform: Platform,
    scope: Scope,
    binary: &Path,
    config: &Path,
) -> Result<(), ServiceError> {
    if (platform, scope) != (Platform::Systemd, Scope::System) {
        return Ok(());
    }
    if let Some((dir, setting)) = hidden(binary) {
        return Err(ServiceError::Config(format!(
            "the system service cannot run {}: {setting} hides {dir} from it. Copy the binary \
             to /usr/local/bin and run `/usr/local/bin/xoauth-relay service install` from there \
             (or use --user)",
            binary.display()
        )));
    }
    if let Some((dir, setting)) = hidden(config) {
        return Err(ServiceError::Config(format!(
            "the system service cannot read {}: {setting} hides {dir} from it. Put the \
             configuration in /etc/xoauth-relay/config.toml (or pass --config with a path \
             outside {dir}), or use --user",
            config.display()
        )));
    }
    Ok(())
}

fn hidden(path: &Path) -> Option<(&'static str, &'static str)> {
    HIDDEN_FROM_SYSTEM_UNIT
        .iter()
        .copied()
        .find(|(dir, _)| path.starts_with(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_and_tmp_are_hidden_from_the_system_unit() {
        let ok = Path::new("/usr/local/bin/xoauth-relay");
        let etc = Path::new("/etc/xoauth-relay/config.toml");
        assert!(check_reachable(Platform::Systemd, Scope::System, ok, etc).is_ok());
        let home = Path::new("/home/u/relay.toml");
        let tmp_bin = Path::new("/tmp/build/xoauth-relay");
        assert!(check_reachable(Platform::Systemd, Scope::System, ok, home).is_err());
        assert!(check_reachable(Platform::Systemd, Scope::System, tmp_bin, etc).is_err());
        assert!(check_reachable(Platform::Systemd, Scope::User, tmp_bin, home).is_ok());
        assert!(check_reachable(Platform::Launchd, Scope::System, tmp_bin, home).is_ok());
        // A prefix of a name is not the directory.
        let homer = Path::new("/homer/relay.toml");
        assert!(check_reachable(Platform::Systemd, Scope::System, ok, homer).is_ok());
    }
}
