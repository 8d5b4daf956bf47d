//! `service install|uninstall` and the service files: generation for both platforms and both
//! scopes on any host, installing into a temporary root, the committed and generated plists
//! parsed by Python's plistlib, and the generated systemd units checked by
//! `systemd-analyze verify` (skipped, with a notice, only where systemd-analyze is missing).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use xoauth_relay::service::{
    self, Host, InstallArgs, Platform, Scope, ScopeArgs, ServiceError, UninstallArgs, launchd,
    systemd,
};

const BIN: &str = env!("CARGO_BIN_EXE_xoauth-relay");
/// A binary path for generation tests: it need not exist, and is outside what the system
/// unit's sandbox hides (a checkout under /home or /tmp would be refused for `--system`).
const FAKE_BIN: &str = "/opt/xoauth relay/bin/xoauth-relay";
const SYSTEM_CONFIG: &str = "/etc/xoauth-relay/test-config.toml";

fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xoauth-relay-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A host whose `/` is `dir/root` and whose home is `dir/home`.
fn host(dir: &Path, binary: &str) -> Host {
    let home = dir.join("home");
    Host {
        root: dir.join("root"),
        env: HashMap::from([("HOME".to_string(), home.display().to_string())]),
        binary: PathBuf::from(binary),
    }
}

fn scope_args(scope: Scope) -> ScopeArgs {
    ScopeArgs {
        user: scope == Scope::User,
        system: scope == Scope::System,
    }
}

fn install_args(scope: Scope, config: &Path, print: bool, force: bool) -> InstallArgs {
    InstallArgs {
        scope: scope_args(scope),
        print,
        config: Some(config.to_path_buf()),
        force,
    }
}

fn run_install(
    host: &Host,
    platform: Platform,
    args: &InstallArgs,
) -> Result<String, ServiceError> {
    let mut out = Vec::new();
    service::install(host, platform, args, &mut out)?;
    Ok(String::from_utf8(out).expect("UTF-8 output"))
}

fn run_uninstall(
    host: &Host,
    platform: Platform,
    scope: Scope,
    print: bool,
) -> Result<String, ServiceError> {
    let mut out = Vec::new();
    let args = UninstallArgs {
        scope: scope_args(scope),
        print,
    };
    service::uninstall(host, platform, &args, &mut out)?;
    Ok(String::from_utf8(out).expect("UTF-8 output"))
}

/// Every platform and scope, with the configuration path each test uses for it.
fn all_cases(dir: &Path) -> Vec<(Platform, Scope, PathBuf)> {
    let user_config = dir.join("home/my config/relay.toml");
    vec![
        (
            Platform::Systemd,
            Scope::System,
            PathBuf::from(SYSTEM_CONFIG),
        ),
        (Platform::Systemd, Scope::User, user_config.clone()),
        (
            Platform::Launchd,
            Scope::System,
            PathBuf::from(SYSTEM_CONFIG),
        ),
        (Platform::Launchd, Scope::User, user_config),
    ]
}

#[test]
fn print_shows_paths_and_commands_and_writes_nothing() {
    let dir = scratch_dir("service-print");
    let host = host(&dir, FAKE_BIN);
    for (platform, scope, config) in all_cases(&dir) {
        let out = run_install(&host, platform, &install_args(scope, &config, true, false))
            .unwrap_or_else(|e| panic!("{platform:?} {scope:?}: {e}"));
        let case = format!("{platform:?} {scope:?}:\n{out}");
        assert!(out.contains(FAKE_BIN), "binary path in {case}");
        assert!(
            out.contains(&config.display().to_string()),
            "config in {case}"
        );
        let expected: &[&str] = match (platform, scope) {
            (Platform::Systemd, Scope::System) => &[
                "sudo systemctl daemon-reload",
                "sudo systemctl enable --now xoauth-relay",
                "journalctl -u xoauth-relay -f",
                "Type=notify",
            ],
            (Platform::Systemd, Scope::User) => &[
                "systemctl --user enable --now xoauth-relay",
                "loginctl enable-linger $USER",
                "journalctl --user -u xoauth-relay -f",
            ],
            (Platform::Launchd, Scope::User) => &[
                "launchctl bootstrap gui/$(id -u) ",
                "launchctl kickstart -k gui/$(id -u)/com.xoauth-relay.agent",
                "/Library/Logs/xoauth-relay.log",
                "<key>Label</key>",
            ],
            (Platform::Launchd, Scope::System) => &[
                "sudo launchctl bootstrap system ",
                "sudo launchctl kickstart -k system/com.xoauth-relay.daemon",
                "tail -f /Library/Logs/xoauth-relay.log",
            ],
        };
        for part in expected {
            assert!(out.contains(part), "{part:?} missing in {case}");
        }
        assert!(out.contains("Nothing was written"), "{case}");
    }
    assert!(!dir.join("root").exists(), "--print wrote under the root");
    assert!(
        !dir.join("home/.config").exists(),
        "--print wrote in the home"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn install_then_uninstall_in_a_temporary_root() {
    let dir = scratch_dir("service-install");
    let host = host(&dir, FAKE_BIN);
    let expected_paths = [
        dir.join("root/etc/systemd/system/xoauth-relay.service"),
        dir.join("home/.config/systemd/user/xoauth-relay.service"),
        dir.join("root/Library/LaunchDaemons/com.xoauth-relay.daemon.plist"),
        dir.join("home/Library/LaunchAgents/com.xoauth-relay.agent.plist"),
    ];
    for ((platform, scope, config), path) in all_cases(&dir).into_iter().zip(expected_paths) {
        let out = run_install(&host, platform, &install_args(scope, &config, false, false))
            .unwrap_or_else(|e| panic!("{platform:?} {scope:?}: {e}"));
        assert!(out.contains(&format!("Wrote {}", path.display())), "{out}");
        let written = std::fs::read_to_string(&path).expect("installed file");
        assert!(written.contains(FAKE_BIN));
        assert_mode_644(&path);

        let again = run_install(&host, platform, &install_args(scope, &config, false, false))
            .expect("installing the same file again is fine");
        assert!(again.contains("Already up to date"), "{again}");

        let out = run_uninstall(&host, platform, scope, false).expect("uninstall");
        assert!(
            out.contains(&format!("Removed {}", path.display())),
            "{out}"
        );
        assert!(!path.exists(), "{} still there", path.display());
        let stop = match platform {
            Platform::Systemd => "daemon-reload",
            Platform::Launchd => "launchctl bootout ",
        };
        assert!(out.contains(stop), "{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
fn assert_mode_644(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644, "{}", path.display());
}

#[cfg(not(unix))]
fn assert_mode_644(_path: &Path) {}

#[test]
fn a_different_file_is_kept_unless_forced() {
    let dir = scratch_dir("service-differs");
    let host = host(&dir, FAKE_BIN);
    let path = dir.join("root/etc/systemd/system/xoauth-relay.service");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "[Service]\nExecStart=/bin/true\n").unwrap();
    let config = Path::new(SYSTEM_CONFIG);

    let refused = run_install(
        &host,
        Platform::Systemd,
        &install_args(Scope::System, config, false, false),
    );
    match refused {
        Err(e) => {
            assert_eq!(e.exit_code(), 73, "{e}");
            assert!(e.to_string().contains("--force"), "{e}");
        }
        Ok(out) => panic!("overwrote a different file:\n{out}"),
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "[Service]\nExecStart=/bin/true\n"
    );

    let out = run_install(
        &host,
        Platform::Systemd,
        &install_args(Scope::System, config, false, true),
    )
    .expect("--force replaces it");
    assert!(out.contains("Replaced"), "{out}");
    assert!(std::fs::read_to_string(&path).unwrap().contains(FAKE_BIN));
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn uninstall_waits_until_the_unit_is_disabled() {
    let dir = scratch_dir("service-enabled");
    let host = host(&dir, FAKE_BIN);
    let config = Path::new(SYSTEM_CONFIG);
    run_install(
        &host,
        Platform::Systemd,
        &install_args(Scope::System, config, false, false),
    )
    .expect("install");
    // What `systemctl enable` leaves behind.
    let units = dir.join("root/etc/systemd/system");
    let wants = units.join("multi-user.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(
        units.join("xoauth-relay.service"),
        wants.join("xoauth-relay.service"),
    )
    .unwrap();

    let planned = run_uninstall(&host, Platform::Systemd, Scope::System, true).expect("--print");
    assert!(
        planned.contains("sudo systemctl disable --now xoauth-relay"),
        "{planned}"
    );
    assert!(
        units.join("xoauth-relay.service").exists(),
        "--print removed the unit"
    );

    match run_uninstall(&host, Platform::Systemd, Scope::System, false) {
        Err(e) => {
            assert_eq!(e.exit_code(), 73);
            assert!(
                e.to_string()
                    .contains("systemctl disable --now xoauth-relay"),
                "{e}"
            );
        }
        Ok(out) => panic!("removed an enabled unit:\n{out}"),
    }
    assert!(units.join("xoauth-relay.service").exists());

    std::fs::remove_file(wants.join("xoauth-relay.service")).unwrap();
    run_uninstall(&host, Platform::Systemd, Scope::System, false).expect("disabled: removed");
    assert!(!units.join("xoauth-relay.service").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn system_unit_refuses_paths_its_sandbox_hides() {
    let dir = scratch_dir("service-hidden");
    let config = Path::new("/home/someone/relay.toml");
    let err = run_install(
        &host(&dir, FAKE_BIN),
        Platform::Systemd,
        &install_args(Scope::System, config, true, false),
    )
    .expect_err("config under /home");
    assert_eq!(err.exit_code(), 78);
    assert!(err.to_string().contains("ProtectHome"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn default_config_is_the_scope_s_usual_place() {
    let dir = scratch_dir("service-default-config");
    let host = host(&dir, FAKE_BIN);
    let args = |scope| InstallArgs {
        scope: scope_args(scope),
        print: true,
        config: None,
        force: false,
    };
    let cases = [
        (
            Platform::Systemd,
            Scope::System,
            PathBuf::from("/etc/xoauth-relay/config.toml"),
        ),
        (
            Platform::Systemd,
            Scope::User,
            dir.join("home/.config/xoauth-relay/config.toml"),
        ),
        (
            Platform::Launchd,
            Scope::User,
            dir.join("home/Library/Application Support/xoauth-relay/config.toml"),
        ),
    ];
    for (platform, scope, expected) in cases {
        let out = run_install(&host, platform, &args(scope)).expect("print");
        let line = format!("Configuration: {} (the usual place", expected.display());
        assert!(out.contains(&line), "{platform:?} {scope:?}: {out}");
        assert!(out.contains("does not exist yet"), "{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------------ plists

/// Parses a plist with Python's plistlib and returns it as JSON.
fn plistlib(path: &Path) -> serde_json::Value {
    let script = "import json, plistlib, sys\n\
                  print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))";
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 is required for this test");
    assert!(
        output.status.success(),
        "{} is not a valid plist: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from python")
}

#[test]
fn committed_plists_are_valid() {
    let launchd_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("launchd");
    for (name, label) in [
        ("com.xoauth-relay.agent.plist", launchd::AGENT_LABEL),
        ("com.xoauth-relay.daemon.plist", launchd::DAEMON_LABEL),
    ] {
        let plist = plistlib(&launchd_dir.join(name));
        assert_eq!(plist["Label"], label);
        assert_eq!(plist["KeepAlive"]["SuccessfulExit"], false);
        assert_eq!(plist["RunAtLoad"], true);
        assert_eq!(plist["ProcessType"], "Background");
        assert_eq!(plist["ProgramArguments"][1], "run");
        let log = plist["StandardErrorPath"].as_str().unwrap_or_default();
        assert!(log.ends_with("/Library/Logs/xoauth-relay.log"), "{log}");
    }
}

#[test]
fn generated_plists_are_valid_with_awkward_paths() {
    let dir = scratch_dir("service-plists");
    let home = dir.join("home of a&b <x>");
    let binary = Path::new("/opt/x & y/xoauth-relay");
    let config = home.join("Library/Application Support/xoauth-relay/config.toml");
    for scope in [Scope::User, Scope::System] {
        let text = launchd::render(scope, binary, &config, Some(&home)).expect("render");
        let path = dir.join(format!("{scope:?}.plist"));
        std::fs::write(&path, text).unwrap();
        let plist = plistlib(&path);
        let args = &plist["ProgramArguments"];
        assert_eq!(args[0], binary.display().to_string());
        assert_eq!(args[3], config.display().to_string());
        let log = match scope {
            Scope::User => home.join("Library/Logs/xoauth-relay.log"),
            Scope::System => PathBuf::from(launchd::DAEMON_LOG),
        };
        assert_eq!(plist["StandardOutPath"], log.display().to_string());
        assert_eq!(plist["StandardErrorPath"], log.display().to_string());
        if scope == Scope::System {
            assert_eq!(plist["UserName"], "nobody");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------ systemd units

/// `systemd-analyze verify` on one unit: any output is a problem (it exits 0 on many).
/// `None` when systemd-analyze is not installed.
fn systemd_analyze_verify(unit: &Path, scope: Scope, runtime_dir: &Path) -> Option<String> {
    let mut command = Command::new("systemd-analyze");
    if scope == Scope::User {
        // The user manager's runtime directory; no running user manager is needed.
        command.arg("--user").env("XDG_RUNTIME_DIR", runtime_dir);
    }
    let output = match command.arg("verify").arg(unit).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("systemd-analyze: {e}"),
    };
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        text.push_str(&format!("\n(exit status {})", output.status));
    }
    Some(text)
}

#[cfg(unix)]
#[test]
fn generated_units_pass_systemd_analyze_verify() {
    let dir = scratch_dir("service-verify");
    let runtime_dir = dir.join("runtime");
    std::fs::create_dir_all(&runtime_dir).unwrap();
    // The real binary, and the same through a path that needs quoting in ExecStart=.
    let awkward = dir.join("bin dir 100%");
    std::fs::create_dir_all(&awkward).unwrap();
    let link = awkward.join("xoauth-relay");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let config = Path::new("/etc/xoauth-relay/config.toml");
    for binary in [Path::new(BIN), link.as_path()] {
        for scope in [Scope::System, Scope::User] {
            let unit_dir = dir.join(format!("{scope:?}"));
            std::fs::create_dir_all(&unit_dir).unwrap();
            let unit = unit_dir.join(systemd::UNIT_NAME);
            std::fs::write(
                &unit,
                systemd::render(scope, binary, config).expect("render"),
            )
            .unwrap();
            let Some(problems) = systemd_analyze_verify(&unit, scope, &runtime_dir) else {
                eprintln!("NOTICE: systemd-analyze is not installed; skipping the unit check");
                return;
            };
            assert!(
                problems.trim().is_empty(),
                "{scope:?} unit with {}:\n{problems}",
                binary.display()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// --------------------------------------------------------------- the built binary

#[test]
fn the_binary_prints_its_own_canonical_path() {
    let dir = scratch_dir("service-binary");
    let config = dir.join("relay.toml");
    let output = Command::new(BIN)
        .args(["service", "install", "--print", "--user", "--config"])
        .arg(&config)
        .output()
        .expect("run xoauth-relay");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let canonical = std::fs::canonicalize(BIN).expect("canonical binary path");
    assert!(
        stdout.contains(&canonical.display().to_string()),
        "{stdout}"
    );
    assert!(stdout.contains(&config.display().to_string()), "{stdout}");
    assert!(stdout.contains("enable --now xoauth-relay") || stdout.contains("launchctl bootstrap"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn user_and_system_together_is_a_usage_error() {
    let status = Command::new(BIN)
        .args(["service", "install", "--user", "--system", "--print"])
        .output()
        .expect("run xoauth-relay")
        .status;
    assert_eq!(status.code(), Some(64));
}

#[test]
fn a_binary_in_a_build_tree_or_tmp_is_warned_about() {
    let dir = scratch_dir("service-transient");
    let config = dir.join("home/relay.toml");
    for binary in [
        "/tmp/checkout/target/debug/xoauth-relay",
        "/home/me/src/xoauth-relay/target/release/xoauth-relay",
        "/home/me/src/xoauth-relay/target/x86_64-unknown-linux-gnu/release/xoauth-relay",
        "/tmp/xoauth-relay",
    ] {
        for platform in [Platform::Systemd, Platform::Launchd] {
            let out = run_install(
                &host(&dir, binary),
                platform,
                &install_args(Scope::User, &config, true, false),
            )
            .expect("--user --print");
            assert!(
                out.contains(&format!("Warning: the service would run {binary}")),
                "{out}"
            );
            assert!(
                out.contains("~/.local/bin/xoauth-relay service install --user"),
                "suggests the install step: {out}"
            );
        }
    }
    let out = run_install(
        &host(&dir, FAKE_BIN),
        Platform::Systemd,
        &install_args(Scope::User, &config, true, false),
    )
    .expect("--user --print");
    assert!(!out.contains("Warning:"), "an installed binary: {out}");
    let _ = std::fs::remove_dir_all(&dir);
}
