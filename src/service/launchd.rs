//! launchd: the committed plists under `launchd/` with the real binary, configuration and home
//! paths filled in (launchd expands neither `~` nor variables), where each goes, and the
//! `launchctl` commands around them.

use std::path::Path;

use super::text::{plain, shell_word, xml_text};
use super::{Host, Layout, Scope, ServiceError};

/// The LaunchAgent (per user, `~/Library/LaunchAgents`).
pub const AGENT_PLIST: &str = include_str!("../../launchd/com.xoauth-relay.agent.plist");
/// The LaunchDaemon (system, `/Library/LaunchDaemons`).
pub const DAEMON_PLIST: &str = include_str!("../../launchd/com.xoauth-relay.daemon.plist");
pub const AGENT_LABEL: &str = "com.xoauth-relay.agent";
pub const DAEMON_LABEL: &str = "com.xoauth-relay.daemon";
/// The daemon's log file (the agent's is under the user's `~/Library/Logs`).
pub const DAEMON_LOG: &str = "/Library/Logs/xoauth-relay.log";

/// The elements of the templates that are replaced. Whole elements, so that the same text in
/// a comment is never touched.
const BINARY: &str = "<string>/usr/local/bin/xoauth-relay</string>";
const AGENT_CONFIG: &str =
    "<string>@HOME@/Library/Application Support/xoauth-relay/config.toml</string>";
const DAEMON_CONFIG: &str = "<string>/etc/xoauth-relay/config.toml</string>";
const HOME: &str = "<string>@HOME@";

pub fn template(scope: Scope) -> &'static str {
    match scope {
        Scope::User => AGENT_PLIST,
        Scope::System => DAEMON_PLIST,
    }
}

pub fn label(scope: Scope) -> &'static str {
    match scope {
        Scope::User => AGENT_LABEL,
        Scope::System => DAEMON_LABEL,
    }
}

/// The plist for `scope`; `home` is needed for the agent's paths.
pub fn render(
    scope: Scope,
    binary: &Path,
    config: &Path,
    home: Option<&Path>,
) -> Result<String, ServiceError> {
    let element = |path: &Path| -> Result<String, ServiceError> {
        Ok(format!("<string>{}</string>", xml_text(plain(path)?)))
    };
    let config_marker = match scope {
        Scope::User => AGENT_CONFIG,
        Scope::System => DAEMON_CONFIG,
    };
    let text = template(scope)
        .replacen(BINARY, &element(binary)?, 1)
        .replacen(config_marker, &element(config)?, 1);
    if scope == Scope::System {
        return Ok(text);
    }
    let home =
        home.ok_or_else(|| ServiceError::Config("HOME is needed for a LaunchAgent".into()))?;
    Ok(text.replace(HOME, &format!("<string>{}", xml_text(plain(home)?))))
}

/// Where the plist goes and the commands for it.
pub fn layout(scope: Scope, host: &Host) -> Result<Layout, ServiceError> {
    let (path, domain, sudo, log) = match scope {
        Scope::User => {
            let home = host.home()?;
            let path = home
                .join("Library/LaunchAgents")
                .join(format!("{AGENT_LABEL}.plist"));
            let log = home.join("Library/Logs/xoauth-relay.log");
            (path, "gui/$(id -u)", "", log.to_string_lossy().into_owned())
        }
        Scope::System => (
            host.system_path("/Library/LaunchDaemons")
                .join(format!("{DAEMON_LABEL}.plist")),
            "system",
            "sudo ",
            DAEMON_LOG.to_owned(),
        ),
    };
    let service = format!("{domain}/{}", label(scope));
    let plist = shell_word(&path.to_string_lossy());
    let mut notes = vec![
        "launchd restarts the relay after any error exit, a configuration error (exit 78) \
         included, at most every 30 seconds: if it keeps restarting, read the log"
            .to_owned(),
    ];
    if scope == Scope::System {
        notes.push(
            "the daemon runs as user nobody: the configuration and its secret files must be \
             readable by nobody (or set UserName in the plist to a dedicated account)"
                .to_owned(),
        );
    }
    Ok(Layout {
        start: vec![
            format!("{sudo}launchctl bootstrap {domain} {plist}"),
            format!("{sudo}launchctl kickstart -k {service}"),
        ],
        watch: vec![
            format!("{sudo}launchctl print {service}"),
            format!("tail -f {}", shell_word(&log)),
        ],
        stop: vec![format!("{sudo}launchctl bootout {service}")],
        cleanup: Vec::new(),
        enabled_link: None,
        path,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_marker_is_in_its_template() {
        for (scope, config) in [(Scope::User, AGENT_CONFIG), (Scope::System, DAEMON_CONFIG)] {
            let plist = template(scope);
            assert_eq!(plist.matches(BINARY).count(), 1, "{scope:?}");
            assert_eq!(plist.matches(config).count(), 1, "{scope:?}");
            assert!(plist.contains(&format!("<string>{}</string>", label(scope))));
        }
        assert_eq!(AGENT_PLIST.matches(HOME).count(), 3);
        assert!(!DAEMON_PLIST.contains("@HOME@"));
    }

    #[test]
    fn agent_gets_absolute_escaped_paths() {
        let plist = render(
            Scope::User,
            Path::new("/opt/x&y/xoauth-relay"),
            Path::new("/Users/a/relay.toml"),
            Some(Path::new("/Users/a")),
        )
        .expect("render");
        assert!(plist.contains("<string>/opt/x&amp;y/xoauth-relay</string>"));
        assert!(plist.contains("<string>/Users/a/relay.toml</string>"));
        assert!(plist.contains("<string>/Users/a/Library/Logs/xoauth-relay.log</string>"));
        assert!(!plist.contains("<string>@HOME@"));
    }
}
