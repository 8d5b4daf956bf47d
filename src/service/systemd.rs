//! systemd: the committed units under `systemd/` with the real paths in `ExecStart=`, where
//! each scope's unit goes, and the `systemctl`/`journalctl` commands around it.

use std::path::Path;

use super::text::{plain, systemd_word};
use super::{Host, Layout, Scope, ServiceError};

/// The system unit (`DynamicUser=`, full sandbox).
pub const SYSTEM_UNIT: &str = include_str!("../../systemd/xoauth-relay.service");
/// The user unit (`systemctl --user`).
pub const USER_UNIT: &str = include_str!("../../systemd/xoauth-relay-user.service");
/// Both scopes install under this name, so the commands are the same apart from `--user`.
pub const UNIT_NAME: &str = "xoauth-relay.service";

pub fn template(scope: Scope) -> &'static str {
    match scope {
        Scope::System => SYSTEM_UNIT,
        Scope::User => USER_UNIT,
    }
}

/// The unit for `scope`, running `binary run --config config` (both absolute).
pub fn render(scope: Scope, binary: &Path, config: &Path) -> Result<String, ServiceError> {
    let exec = format!(
        "ExecStart={} run --config {}",
        systemd_word(plain(binary)?),
        systemd_word(plain(config)?)
    );
    Ok(template(scope)
        .lines()
        .map(|line| {
            let line = if line.starts_with("ExecStart=") {
                exec.as_str()
            } else {
                line
            };
            format!("{line}\n")
        })
        .collect())
}

/// Where the unit goes and the commands for it.
pub fn layout(scope: Scope, host: &Host) -> Result<Layout, ServiceError> {
    let (dir, systemctl, journalctl, sudo) = match scope {
        Scope::System => (
            host.system_path("/etc/systemd/system"),
            "systemctl",
            "journalctl -u",
            "sudo ",
        ),
        Scope::User => (
            host.config_home()?.join("systemd/user"),
            "systemctl --user",
            "journalctl --user -u",
            "",
        ),
    };
    let enabled_link = wanted_by(template(scope))
        .map(|target| dir.join(format!("{target}.wants")).join(UNIT_NAME));
    let mut notes = Vec::new();
    if scope == Scope::User {
        notes.push(
            "a user service runs while you are logged in; `loginctl enable-linger $USER` \
             starts it at boot and keeps it running after you log out"
                .to_owned(),
        );
    }
    if !host.system_path("/run/systemd/system").is_dir() {
        notes.push("systemd does not seem to be running on this machine".to_owned());
    }
    Ok(Layout {
        path: dir.join(UNIT_NAME),
        enabled_link,
        start: vec![
            format!("{sudo}{systemctl} daemon-reload"),
            format!("{sudo}{systemctl} enable --now xoauth-relay"),
        ],
        watch: vec![
            format!("{systemctl} status xoauth-relay"),
            format!("{journalctl} xoauth-relay -f"),
        ],
        stop: vec![format!("{sudo}{systemctl} disable --now xoauth-relay")],
        cleanup: vec![format!("{sudo}{systemctl} daemon-reload")],
        notes,
    })
}

/// The target named by `WantedBy=`: `enable` links the unit into `<target>.wants/`.
fn wanted_by(unit: &str) -> Option<&str> {
    unit.lines()
        .find_map(|line| line.strip_prefix("WantedBy="))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_template_has_one_exec_start_and_a_wanted_by() {
        for scope in [Scope::System, Scope::User] {
            let unit = template(scope);
            let execs = unit.lines().filter(|l| l.starts_with("ExecStart=")).count();
            assert_eq!(execs, 1, "{scope:?}");
            assert!(wanted_by(unit).is_some(), "{scope:?}");
        }
        assert_eq!(wanted_by(SYSTEM_UNIT), Some("multi-user.target"));
        assert_eq!(wanted_by(USER_UNIT), Some("default.target"));
    }

    #[test]
    fn exec_start_gets_the_real_paths() {
        let unit = render(
            Scope::System,
            Path::new("/opt/relay/bin/xoauth-relay"),
            Path::new("/srv/relay conf/config.toml"),
        )
        .expect("render");
        assert!(unit.contains(
            "\nExecStart=/opt/relay/bin/xoauth-relay run --config \"/srv/relay conf/config.toml\"\n"
        ));
        assert!(!unit.contains("/usr/local/bin/xoauth-relay run"));
    }
}
