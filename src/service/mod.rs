//! `xoauth-relay service install|uninstall`: writes (or with `--print` only shows) the systemd
//! unit on Linux or the launchd plist on macOS, with this binary's real path and the
//! configuration's absolute path filled in, and prints the commands that enable, watch and
//! stop it. It never runs `systemctl` or `launchctl`: starting a service is the operator's call.
//!
//! The templates are the committed files under `systemd/` and `launchd/`. Everything that
//! depends on the machine comes in through a [`Host`] (where `/` is, the environment, the
//! binary), so tests install into a temporary directory, for both platforms, on any OS.
//!
//! Scopes: `--system` (a system unit with `DynamicUser=`, or a LaunchDaemon) is the default on
//! Linux, where the relay usually serves a machine; `--user` (`systemctl --user`, or a
//! LaunchAgent) is the default on macOS, where it usually serves one person's mail programs.

mod config_file;
mod files;
pub mod launchd;
pub mod systemd;
mod text;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::exit::{EX_CANTCREAT, EX_CONFIG, EX_OSERR, EX_USAGE};

pub use config_file::{ConfigChoice, ConfigSource, choose_config};

/// `xoauth-relay service …`
#[derive(Debug, clap::Args)]
pub struct ServiceArgs {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Write the systemd unit (Linux) or launchd plist (macOS) and print how to start it.
    Install(InstallArgs),
    /// Remove the unit or plist and print how to stop the service.
    Uninstall(UninstallArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Print the file and the commands; write nothing.
    #[arg(long)]
    pub print: bool,
    /// Configuration file for the service (default: the one `run` would find, else the usual
    /// place for the scope).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Replace an existing file that differs from the one generated.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Print the commands; remove nothing.
    #[arg(long)]
    pub print: bool,
}

#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct ScopeArgs {
    /// For your user only: `systemctl --user`, or a LaunchAgent (the default on macOS).
    #[arg(long, conflicts_with = "system")]
    pub user: bool,
    /// For the whole machine: a system unit, or a LaunchDaemon (the default on Linux).
    #[arg(long)]
    pub system: bool,
}

impl ScopeArgs {
    pub fn scope(self, platform: Platform) -> Scope {
        match (self.user, self.system) {
            (true, _) => Scope::User,
            (_, true) => Scope::System,
            _ => platform.default_scope(),
        }
    }
}

/// The service manager the files are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Systemd,
    Launchd,
}

impl Platform {
    /// Linux → systemd, macOS → launchd; anything else has no installer.
    pub fn current() -> Result<Platform, ServiceError> {
        if cfg!(target_os = "linux") {
            Ok(Platform::Systemd)
        } else if cfg!(target_os = "macos") {
            Ok(Platform::Launchd)
        } else {
            Err(ServiceError::Usage(format!(
                "`service` knows systemd (Linux) and launchd (macOS), not {}; run \
                 `xoauth-relay run --config PATH` from your service manager instead",
                std::env::consts::OS
            )))
        }
    }

    pub fn default_scope(self) -> Scope {
        match self {
            Platform::Systemd => Scope::System,
            Platform::Launchd => Scope::User,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User,
    System,
}

impl Scope {
    /// The command-line flag, for messages.
    pub fn flag(self) -> &'static str {
        match self {
            Scope::User => "--user",
            Scope::System => "--system",
        }
    }
}

/// The machine as the installer sees it.
#[derive(Debug, Clone)]
pub struct Host {
    /// Where `/` is for system-wide files: `/`, or a temporary directory in tests.
    pub root: PathBuf,
    /// The environment (`HOME`, `XDG_CONFIG_HOME`, `XOAUTH_RELAY_CONFIG`).
    pub env: HashMap<String, String>,
    /// The absolute path of the relay binary the service will run.
    pub binary: PathBuf,
}

impl Host {
    /// This process: `/`, the process environment, and the canonical path of this binary
    /// (so a symlink such as a package manager's shim does not end up in the unit).
    pub fn current() -> Result<Host, ServiceError> {
        let binary = std::env::current_exe()
            .and_then(std::fs::canonicalize)
            .map_err(ServiceError::Binary)?;
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Ok(Host {
            root: PathBuf::from("/"),
            env,
            binary,
        })
    }

    /// A system-wide location (`/etc/…`) under [`Host::root`].
    pub fn system_path(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
    }

    /// A non-empty environment variable.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `$HOME`, needed for every per-user location.
    pub fn home(&self) -> Result<PathBuf, ServiceError> {
        match self.var("HOME").map(PathBuf::from) {
            Some(home) if home.is_absolute() => Ok(home),
            _ => Err(ServiceError::Config(
                "HOME is not set to an absolute path, so the per-user locations are unknown".into(),
            )),
        }
    }

    /// `$XDG_CONFIG_HOME` if absolute (the XDG spec ignores a relative one), else `~/.config`.
    pub fn config_home(&self) -> Result<PathBuf, ServiceError> {
        match self.var("XDG_CONFIG_HOME").map(PathBuf::from) {
            Some(dir) if dir.is_absolute() => Ok(dir),
            _ => Ok(self.home()?.join(".config")),
        }
    }
}

/// Where a backend puts its file for one scope, and the commands around it.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The unit or plist file.
    pub path: PathBuf,
    /// systemd: the link `enable` creates; while it exists the unit is still enabled.
    pub enabled_link: Option<PathBuf>,
    /// Enable and start.
    pub start: Vec<String>,
    /// Status and logs.
    pub watch: Vec<String>,
    /// Stop and disable, before the file is removed.
    pub stop: Vec<String>,
    /// After the file is removed.
    pub cleanup: Vec<String>,
    /// Anything else worth knowing for this scope.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Config(String),
    #[error("cannot find the path of this program: {0}")]
    Binary(std::io::Error),
    #[error("cannot {action} {path}: {source}{hint}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
        hint: String,
    },
    #[error(
        "{} exists and differs from the file that would be written; see the difference with \
         `xoauth-relay service install --print`, or replace it with --force",
        .0.display()
    )]
    Differs(PathBuf),
    #[error(
        "{} is still enabled; stop and disable it first, then run this command again:\n{}",
        .path.display(),
        indent(.stop)
    )]
    StillEnabled { path: PathBuf, stop: Vec<String> },
}

impl ServiceError {
    /// The process exit code (sysexits).
    pub fn exit_code(&self) -> u8 {
        match self {
            ServiceError::Usage(_) => EX_USAGE,
            ServiceError::Config(_) => EX_CONFIG,
            ServiceError::Binary(_) => EX_OSERR,
            ServiceError::Io { .. }
            | ServiceError::Differs(_)
            | ServiceError::StillEnabled { .. } => EX_CANTCREAT,
        }
    }
}

/// `xoauth-relay service …` for this machine; the exit code comes from here.
pub fn run(args: ServiceArgs) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let result = Platform::current().and_then(|platform| {
        let host = Host::current()?;
        match &args.action {
            Action::Install(a) => install(&host, platform, a, &mut out),
            Action::Uninstall(a) => uninstall(&host, platform, a, &mut out),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xoauth-relay service: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The layout for `platform` and `scope` on `host`.
pub fn layout(platform: Platform, scope: Scope, host: &Host) -> Result<Layout, ServiceError> {
    match platform {
        Platform::Systemd => systemd::layout(scope, host),
        Platform::Launchd => launchd::layout(scope, host),
    }
}

/// The file's text, with the binary and configuration paths filled in.
pub fn render(
    platform: Platform,
    scope: Scope,
    host: &Host,
    config: &Path,
) -> Result<String, ServiceError> {
    match platform {
        Platform::Systemd => systemd::render(scope, &host.binary, config),
        Platform::Launchd => {
            let home = match scope {
                Scope::User => Some(host.home()?),
                Scope::System => None,
            };
            launchd::render(scope, &host.binary, config, home.as_deref())
        }
    }
}

/// `service install`: writes the file (unless `--print`) and prints what to do next.
pub fn install(
    host: &Host,
    platform: Platform,
    args: &InstallArgs,
    out: &mut dyn Write,
) -> Result<(), ServiceError> {
    let scope = args.scope.scope(platform);
    let config = choose_config(platform, scope, host, args.config.as_deref())?;
    config_file::check_reachable(platform, scope, &host.binary, &config.path)?;
    let layout = layout(platform, scope, host)?;
    let content = render(platform, scope, host, &config.path)?;
    let mut report = String::new();
    if args.print {
        report.push_str(&format!(
            "# ---- {} ----\n{content}# ---- end ----\n\n",
            layout.path.display()
        ));
    } else {
        let outcome = files::write(&layout.path, &content, args.force)?;
        report.push_str(&format!("{outcome} {}\n", layout.path.display()));
    }
    report.push_str(&install_report(host, scope, &config, &layout));
    if args.print {
        report.push_str("\nNothing was written (--print).\n");
    }
    let _ = out.write_all(report.as_bytes());
    Ok(())
}

fn install_report(host: &Host, scope: Scope, config: &ConfigChoice, layout: &Layout) -> String {
    let mut report = format!(
        "Binary:        {}\nConfiguration: {} ({})\n\nEnable and start it:\n{}Status and logs:\n{}",
        host.binary.display(),
        config.path.display(),
        config.describe(),
        indent(&layout.start),
        indent(&layout.watch),
    );
    for note in config.notes.iter().chain(&layout.notes) {
        report.push_str(&format!("Note: {note}\n"));
    }
    if let Some(warning) = transient_binary_warning(&host.binary, scope) {
        report.push_str(&format!("Warning: {warning}\n"));
    }
    report
}

/// Where a binary does not stay: a cargo build tree (`cargo clean` or the next build replaces
/// it) or a temporary directory (cleaned at boot). A unit pointing there breaks later.
fn transient_binary_warning(binary: &Path, scope: Scope) -> Option<String> {
    let names: Vec<&str> = binary
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .collect();
    let profile = |n: &&str| matches!(*n, "debug" | "release");
    let in_build_tree = names.windows(2).any(|w| w[0] == "target" && profile(&w[1]))
        || names.windows(3).any(|w| w[0] == "target" && profile(&w[2]));
    let in_tmp = ["/tmp", "/var/tmp", "/private/tmp", "/private/var/folders"]
        .iter()
        .any(|dir| binary.starts_with(dir));
    let what = match (in_build_tree, in_tmp) {
        (true, _) => "a cargo build tree (the next build or `cargo clean` replaces or removes it)",
        (false, true) => "a temporary directory (cleaned at boot)",
        (false, false) => return None,
    };
    let target = match scope {
        Scope::User => "~/.local/bin/xoauth-relay",
        Scope::System => "/usr/local/bin/xoauth-relay",
    };
    Some(format!(
        "the service would run {}, which is in {what}. Install the binary first, e.g. `install \
         -D -m 755 {} {target}` (or `cargo install --path .`), then run `{target} service \
         install {}` from there",
        binary.display(),
        binary.display(),
        scope.flag()
    ))
}

/// `service uninstall`: removes the file (unless `--print`) and prints how to stop the service.
pub fn uninstall(
    host: &Host,
    platform: Platform,
    args: &UninstallArgs,
    out: &mut dyn Write,
) -> Result<(), ServiceError> {
    let scope = args.scope.scope(platform);
    let layout = layout(platform, scope, host)?;
    let report = if args.print {
        uninstall_plan(&layout, scope)
    } else {
        remove(&layout)?
    };
    let _ = out.write_all(report.as_bytes());
    Ok(())
}

fn uninstall_plan(layout: &Layout, scope: Scope) -> String {
    let mut report = format!(
        "Stop and disable it:\n{}Then remove {} (`xoauth-relay service uninstall {}` does that)",
        indent(&layout.stop),
        layout.path.display(),
        scope.flag(),
    );
    if layout.cleanup.is_empty() {
        report.push_str(".\n");
    } else {
        report.push_str(&format!(" and run:\n{}", indent(&layout.cleanup)));
    }
    report.push_str("\nNothing was removed (--print).\n");
    report
}

fn remove(layout: &Layout) -> Result<String, ServiceError> {
    // systemctl disable needs the unit file: removing it first would strand the enable link.
    if let Some(link) = &layout.enabled_link
        && link.symlink_metadata().is_ok()
    {
        return Err(ServiceError::StillEnabled {
            path: layout.path.clone(),
            stop: layout.stop.clone(),
        });
    }
    let mut report = if files::remove(&layout.path)? {
        format!("Removed {}\n", layout.path.display())
    } else {
        format!(
            "{} is not there; nothing to remove\n",
            layout.path.display()
        )
    };
    if layout.enabled_link.is_none() {
        report.push_str(&format!(
            "If it is loaded, stop it:\n{}",
            indent(&layout.stop)
        ));
    }
    if !layout.cleanup.is_empty() {
        report.push_str(&format!("Then:\n{}", indent(&layout.cleanup)));
    }
    Ok(report)
}

/// Commands, one per line, indented.
fn indent(commands: &[String]) -> String {
    commands.iter().map(|c| format!("  {c}\n")).collect()
}
