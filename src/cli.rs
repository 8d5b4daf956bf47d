//! The command line: `run`, `check`, `login`, `hash-password`, `demo`, `queue`, and the exit codes
//! (sysexits: 64 usage, 78 configuration, 71 system error, 69 the relay is not running, 1 a
//! check or demo failed).

mod queue;

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config, ConfigError};
use crate::daemon::{self, ReloadSource, StartError};

use crate::exit::{EX_CANTCREAT, EX_CONFIG, EX_OSERR, EX_SOFTWARE, EX_USAGE, FAILURE};

/// The heading the log flags appear under in every command's help, apart from its own options.
const LOG_OPTIONS: &str = "Log options";

#[derive(Debug, Parser)]
#[command(
    name = "xoauth-relay",
    version,
    about = "Local SMTP relay to Microsoft 365 with OAuth2 (XOAUTH2)"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Log lines as text (default) or JSON for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = crate::logging::Format::Text, help_heading = LOG_OPTIONS)]
    pub(crate) log_format: crate::logging::Format,
    /// Log level or filter (error, warn, info, debug, trace); overrides RUST_LOG.
    #[arg(long, global = true, value_name = "LEVEL", help_heading = LOG_OPTIONS)]
    pub(crate) log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the relay until SIGTERM or Ctrl-C.
    Run {
        /// Configuration file (else $XOAUTH_RELAY_CONFIG, else the usual locations).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check the configuration and every account's set-up with Microsoft 365.
    Check {
        /// Configuration file (else $XOAUTH_RELAY_CONFIG, else the usual locations).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Also send a test message to this address through each account, from each allowed
        /// sender of its users.
        #[arg(long, value_name = "ADDR")]
        send_to: Option<String>,
        /// With --send-to: send only from this sender.
        #[arg(long, value_name = "ADDR", requires = "send_to")]
        from: Option<String>,
    },
    /// Read a password (no echo on a terminal, or exactly one line from stdin) and print an
    /// argon2id hash for `password_hash`.
    HashPassword {
        /// Instead, test the password against this `password_hash` value: exit 0 when it
        /// matches, 1 when it does not.
        #[arg(long, value_name = "HASH")]
        verify: Option<String>,
    },
    /// Show the whole path on this machine: a stand-in for Microsoft 365, the real relay in
    /// front of it, and one message sent through. No account or network needed.
    Demo {
        /// Send one message, print what arrived and exit (0 when it arrived intact).
        #[arg(long)]
        once: bool,
        /// Address for the relay's SMTP listener (default 127.0.0.1:2525, or any free port
        /// with --once).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Sign in once for an account with auth = "delegated" (personal Outlook.com, or a
    /// Microsoft 365 user): opens the sign-in in a browser and stores the refresh token in
    /// state_dir, where a running relay picks it up.
    Login {
        /// The account's name (its [accounts.NAME] table).
        account: String,
        /// Sign in with a code on another device instead (for machines without a browser).
        #[arg(long)]
        device: bool,
        /// Only print the sign-in address; do not try to open a browser.
        #[arg(long, conflicts_with = "device")]
        no_browser: bool,
        /// Configuration file (else $XOAUTH_RELAY_CONFIG, else the usual locations).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Install or remove the systemd unit (Linux) or launchd plist (macOS).
    Service(crate::service::ServiceArgs),
    /// List, show, retry, hold, release, delete or bounce queued messages (through the running
    /// relay's socket in state_dir).
    Queue(queue::QueueArgs),
}

/// Parses the command line and runs the command; the process exit code comes from here.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EX_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    crate::tls::install_crypto_provider();
    let env = process_env();
    if let Err(e) = crate::logging::init(cli.log_format, cli.log_level.as_deref(), &env) {
        eprintln!("xoauth-relay: {e}");
        return ExitCode::from(EX_USAGE);
    }
    // Commands that read files or the terminal do it here, before any async task runs.
    match cli.command {
        Command::HashPassword { verify: None } => hash_password(),
        Command::HashPassword { verify: Some(hash) } => verify_password(&hash),
        Command::Service(args) => crate::service::run(args),
        Command::Run { config } => match load_config_from(config, env) {
            Ok((config, source)) => block_on(run(config, source)),
            Err(code) => code,
        },
        Command::Check {
            config,
            send_to,
            from,
        } => match load_config_from(config, env) {
            Ok((config, _)) => block_on(check(config, send_to, from)),
            Err(code) => code,
        },
        Command::Demo { once, listen } => block_on(demo(once, listen)),
        Command::Login {
            account,
            device,
            no_browser,
            config,
        } => {
            let loaded = config::resolve_path(config.as_deref(), &env)
                .and_then(|path| config::load_for_account(&path, &env, &account));
            match loaded {
                Ok(config) => block_on(login(config, account, device, no_browser)),
                Err(e) => {
                    eprintln!("xoauth-relay: {e}");
                    ExitCode::from(EX_CONFIG)
                }
            }
        }
        Command::Queue(args) => {
            let located = config::resolve_path(args.config.as_deref(), &env)
                .and_then(|path| config::queue_location(&path, &env));
            match located {
                Ok(location) => queue::run(location, &args.action),
                Err(e) => {
                    eprintln!("xoauth-relay: {e}");
                    ExitCode::from(EX_CONFIG)
                }
            }
        }
    }
}

/// Runs `command` on a multi-threaded tokio runtime.
fn block_on(command: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(command),
        Err(e) => {
            eprintln!("xoauth-relay: cannot start the async runtime: {e}");
            ExitCode::from(EX_OSERR)
        }
    }
}

/// Loads the configuration and says where it came from (for reloading it later), printing
/// problems on failure.
fn load_config_from(
    cli_path: Option<PathBuf>,
    env: HashMap<String, String>,
) -> Result<(Config, ReloadSource), ExitCode> {
    let loaded = config::resolve_path(cli_path.as_deref(), &env).and_then(|path| {
        tracing::info!(config = %path.display(), "loading configuration");
        let config = config::load(&path, &env)?;
        Ok((config, ReloadSource { path, env }))
    });
    loaded.map_err(|e| {
        eprintln!("xoauth-relay: {e}");
        ExitCode::from(match e {
            ConfigError::Read { .. }
            | ConfigError::NotFound { .. }
            | ConfigError::Invalid { .. } => EX_CONFIG,
        })
    })
}

/// The process environment; variables that are not valid UTF-8 cannot be configuration and
/// are skipped (`std::env::vars` would panic on them).
fn process_env() -> HashMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

async fn run(config: Config, source: ReloadSource) -> ExitCode {
    match daemon::run(config, Some(source), daemon::termination_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(start_error_code(&e))
        }
    }
}

fn start_error_code(e: &StartError) -> u8 {
    match e {
        StartError::Bind { .. } => EX_OSERR,
        StartError::Spool { .. } | StartError::ControlSocket(_) => EX_CANTCREAT,
        StartError::ListenerTls(_) | StartError::Tls { .. } => EX_CONFIG,
        StartError::Http { .. } => EX_SOFTWARE,
    }
}

async fn check(config: Config, send_to: Option<String>, from: Option<String>) -> ExitCode {
    let mut out = std::io::stdout();
    let options = crate::check::Options {
        send_to: send_to.as_deref(),
        from: from.as_deref(),
    };
    if crate::check::run_with(&config, options, &mut out).await {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILURE)
    }
}

async fn login(config: Config, account: String, device: bool, no_browser: bool) -> ExitCode {
    let method = match device {
        true => crate::login::Method::Device,
        false => crate::login::Method::Browser { open: !no_browser },
    };
    let mut out = std::io::stdout();
    match crate::login::run(&config, &account, method, &mut out).await {
        Ok(path) => {
            let _ = writeln!(
                out,
                "Signed in. The refresh token is stored in {}.
A running relay uses it from \
                 its next token request; no restart is needed.",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xoauth-relay login: {e}");
            ExitCode::from(FAILURE)
        }
    }
}

async fn demo(once: bool, listen: Option<SocketAddr>) -> ExitCode {
    match crate::demo::run(once, listen).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xoauth-relay demo: {e}");
            ExitCode::from(FAILURE)
        }
    }
}

fn hash_password() -> ExitCode {
    let password = match read_password() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("xoauth-relay: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    match crate::auth::hash_password(&password) {
        Ok(hash) => {
            let _ = writeln!(std::io::stdout(), "{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xoauth-relay: cannot hash the password: {e}");
            ExitCode::from(EX_SOFTWARE)
        }
    }
}

fn verify_password(hash: &str) -> ExitCode {
    let password = match read_password_once() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("xoauth-relay: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    match crate::auth::verify_password(&password, hash) {
        Ok(true) => {
            let _ = writeln!(std::io::stdout(), "the password matches this hash");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("xoauth-relay: the password does NOT match this hash");
            ExitCode::from(FAILURE)
        }
        Err(e) => {
            eprintln!("xoauth-relay: {e}");
            ExitCode::from(EX_USAGE)
        }
    }
}

/// Prompts twice without echo on a terminal; otherwise reads stdin, which must hold one line.
fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the two passwords differ".into());
        }
        return non_empty(first);
    }
    read_stdin_line()
}

/// Prompts once without echo on a terminal; otherwise reads stdin, which must hold one line.
fn read_password_once() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        return non_empty(rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?);
    }
    read_stdin_line()
}

/// Longest stdin read for a password: a password is short, a file piped in by mistake is not.
const MAX_PASSWORD_INPUT: u64 = 64 * 1024;

/// The one line on stdin (its line end removed). More than one line is refused: hashing only
/// the first of several would silently give a hash of something else than what was meant.
fn read_stdin_line() -> Result<String, String> {
    let mut input = String::new();
    std::io::stdin()
        .lock()
        .take(MAX_PASSWORD_INPUT)
        .read_to_string(&mut input)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    one_line(&input)
}

fn one_line(input: &str) -> Result<String, String> {
    let line = input.strip_suffix('\n').unwrap_or(input);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.contains(['\n', '\r']) {
        return Err("stdin holds more than one line; give the password alone, on one line".into());
    }
    non_empty(line.to_string())
}

fn non_empty(password: String) -> Result<String, String> {
    if password.is_empty() {
        return Err("empty password".into());
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_password_on_stdin_is_exactly_one_line() {
        assert_eq!(one_line("pw\n").as_deref(), Ok("pw"));
        assert_eq!(one_line("pw\r\n").as_deref(), Ok("pw"));
        assert_eq!(one_line("pw").as_deref(), Ok("pw"));
        for bad in ["pw\nother\n", "pw\n\n", "pw\rx", "\n", ""] {
            assert!(one_line(bad).is_err(), "{bad:?}");
        }
    }
}
