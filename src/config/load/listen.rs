//! `[listen]` and the names the relay goes by: the SMTP listener and its TLS, the implicit-TLS
//! `submissions` listener, the health endpoint, `hostname` and where generated files go
//! (`state_dir`). A listener reachable from other machines is allowed only when it requires
//! TLS before AUTH.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::check::{Context, Problems};
use super::secrets;
use crate::config::file::ListenFile;
use crate::config::syntax::is_domain;
use crate::config::{Listen, TlsFiles, TlsMode};

pub fn listen(
    p: &mut Problems,
    ctx: &Context,
    raw: &ListenFile,
    warnings: &mut Vec<String>,
) -> Listen {
    let smtp = raw.smtp;
    if !smtp.ip().is_loopback() {
        if raw.smtp_tls == TlsMode::None {
            p.push(
                "listen.smtp",
                format!("{smtp} is not a loopback address: {PLAIN_NOT_LOOPBACK}"),
            );
        } else {
            warnings.push(exposed("listen.smtp", smtp));
        }
    }
    warnings.extend(
        raw.submissions
            .filter(|a| !a.ip().is_loopback())
            .map(|a| exposed("listen.submissions", a)),
    );
    if raw.status_public && !raw.health_public {
        p.push(
            "listen.status_public",
            "needs listen.health_public = true as well (/status says more than the others)",
        );
    }
    if let Some(health) = raw.health.filter(|a| !a.ip().is_loopback()) {
        if raw.health_public {
            warnings.push(format!(
                "listen.health = {health} answers other machines: /healthz, /readyz and /metrics{}; \
                 limit who can reach it with a firewall",
                if raw.status_public { ", and /status (which names the mailboxes)" } else { " (not /status)" }
            ));
        } else {
            p.push(
                "listen.health",
                format!("{health} is not a loopback address: {HEALTH_NOT_LOOPBACK}"),
            );
        }
    }
    Listen {
        smtp,
        smtp_tls: raw.smtp_tls,
        submissions: raw.submissions,
        tls_files: tls_files(p, ctx, raw),
        health: raw.health,
        health_public: raw.health_public,
        status_public: raw.status_public,
    }
}

const PLAIN_NOT_LOOPBACK: &str = "without TLS the listener only binds loopback addresses such as \
     127.0.0.1 or ::1 (passwords must not cross a network in clear text); set smtp_tls = \
     \"starttls\" or \"implicit\" to listen on other addresses";

const HEALTH_NOT_LOOPBACK: &str = "the health and status endpoint only binds loopback addresses \
     such as 127.0.0.1 or ::1 (it shows which mailboxes exist); set health_public = true to let other \
     machines read /healthz, /readyz and /metrics, or use \"off\" to disable it";

fn exposed(key: &str, addr: SocketAddr) -> String {
    format!(
        "{key} = {addr} accepts connections from other machines: anyone who can reach it may try \
         to log in (AUTH requires TLS there, and failed logins are throttled per address); limit \
         who can reach it with a firewall"
    )
}

fn tls_files(p: &mut Problems, ctx: &Context, raw: &ListenFile) -> Option<TlsFiles> {
    match (&raw.tls_cert, &raw.tls_key) {
        (Some(cert), Some(key)) => {
            let files = TlsFiles {
                cert: secrets::resolve(ctx, cert),
                key: secrets::resolve(ctx, key),
            };
            // Read once here so a wrong path or a file of the wrong kind stops start-up.
            if let Err(e) = crate::tls::load_server_identity(&files.cert, &files.key) {
                p.push("listen.tls_cert", e);
            }
            Some(files)
        }
        (None, None) => None,
        (Some(_), None) => missing_pair(p, "listen.tls_key", "tls_cert"),
        (None, Some(_)) => missing_pair(p, "listen.tls_cert", "tls_key"),
    }
}

fn missing_pair(p: &mut Problems, key: &str, other: &str) -> Option<TlsFiles> {
    p.push(key, format!("is missing: {other} is set, and a certificate needs its private key (or leave both out for a self-signed certificate)"));
    None
}

/// The name for our greeting and upstream EHLO: the setting (checked by its reader), else the
/// machine's host name if it is a valid domain (EHLO needs one), else `localhost`.
pub fn hostname(value: Option<&String>) -> String {
    value.cloned().unwrap_or_else(machine_hostname)
}

fn machine_hostname() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    if is_domain(&name) {
        name
    } else {
        "localhost".to_owned()
    }
}

/// `state_dir`, else systemd's `$STATE_DIRECTORY`, else the per-user state directory.
pub fn state_dir(ctx: &Context, value: Option<&String>) -> Option<PathBuf> {
    match value {
        Some(text) => Some(secrets::resolve(ctx, text)),
        None => default_state_dir(ctx.env),
    }
}

fn default_state_dir(env: &HashMap<String, String>) -> Option<PathBuf> {
    let var = |name: &str| env.get(name).filter(|v| !v.is_empty()).map(String::as_str);
    // systemd may list several directories separated by colons; ours is the first.
    if let Some(dirs) = var("STATE_DIRECTORY") {
        return dirs.split(':').next().map(PathBuf::from);
    }
    if let Some(xdg) = var("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
    {
        return Some(xdg.join("xoauth-relay"));
    }
    let home = PathBuf::from(var("HOME")?);
    Some(if cfg!(target_os = "macos") {
        home.join("Library/Application Support/xoauth-relay")
    } else {
        home.join(".local/state/xoauth-relay")
    })
}
