//! `[listen]`: the SMTP listener and its TLS, the implicit-TLS `submissions` listener, the
//! health endpoint, and where generated files go (`state_dir`). A listener reachable from other
//! machines is allowed only when it requires TLS before AUTH.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::check::{Context, Problems};
use super::secrets;
use crate::config::defaults::*;
use crate::config::file::{RawListen, Scalar};
use crate::config::{Listen, TlsFiles, TlsMode};

pub fn listen(
    p: &mut Problems,
    ctx: &Context,
    raw: &RawListen,
    warnings: &mut Vec<String>,
) -> Listen {
    let smtp_tls = tls_mode(p, raw.smtp_tls.as_ref());
    let default = SocketAddr::from(([127, 0, 0, 1], 2525));
    let smtp = match p.text("listen.smtp", raw.smtp.as_ref()) {
        None => DEFAULT_SMTP_LISTEN.parse().unwrap_or(default),
        Some(text) => socket_address(p, "listen.smtp", &text).unwrap_or(default),
    };
    if !smtp.ip().is_loopback() {
        if smtp_tls == TlsMode::None {
            p.push(
                "listen.smtp",
                format!("{smtp} is not a loopback address: {PLAIN_NOT_LOOPBACK}"),
            );
        } else {
            warnings.push(exposed("listen.smtp", smtp));
        }
    }
    let submissions = match p.text("listen.submissions", raw.submissions.as_ref()) {
        Some(text) if !is_off(&text) => socket_address(p, "listen.submissions", &text),
        _ => None,
    };
    warnings.extend(
        submissions
            .filter(|a| !a.ip().is_loopback())
            .map(|a| exposed("listen.submissions", a)),
    );
    let tls_files = tls_files(p, ctx, raw);
    Listen {
        smtp,
        smtp_tls,
        submissions,
        tls_files,
        health: health(p, raw.health.as_ref()),
    }
}

const PLAIN_NOT_LOOPBACK: &str = "without TLS the listener only binds loopback addresses such as \
     127.0.0.1 or ::1 (passwords must not cross a network in clear text); set smtp_tls = \
     \"starttls\" or \"implicit\" to listen on other addresses";

fn exposed(key: &str, addr: SocketAddr) -> String {
    format!(
        "{key} = {addr} accepts connections from other machines: anyone who can reach it may try \
         to log in (AUTH requires TLS there, and failed logins are throttled per address); limit \
         who can reach it with a firewall"
    )
}

fn tls_mode(p: &mut Problems, value: Option<&Scalar>) -> TlsMode {
    let Some(text) = p.text("listen.smtp_tls", value) else {
        return TlsMode::None;
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "none" | "off" | "" => TlsMode::None,
        "starttls" => TlsMode::StartTls,
        "implicit" | "tls" => TlsMode::Implicit,
        _ => {
            p.push(
                "listen.smtp_tls",
                format!("{text:?} is not one of \"none\", \"starttls\", \"implicit\""),
            );
            TlsMode::None
        }
    }
}

fn tls_files(p: &mut Problems, ctx: &Context, raw: &RawListen) -> Option<TlsFiles> {
    let cert = p.text("listen.tls_cert", raw.tls_cert.as_ref());
    let key = p.text("listen.tls_key", raw.tls_key.as_ref());
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let files = TlsFiles {
                cert: secrets::resolve(ctx, &cert),
                key: secrets::resolve(ctx, &key),
            };
            check_files(p, &files);
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

/// Reads both files once so a wrong path or a file of the wrong kind stops start-up.
fn check_files(p: &mut Problems, files: &TlsFiles) {
    if let Err(e) = crate::tls::load_server_identity(&files.cert, &files.key) {
        p.push("listen.tls_cert", e);
    }
}

fn health(p: &mut Problems, value: Option<&Scalar>) -> Option<SocketAddr> {
    match p.text("listen.health", value) {
        None => DEFAULT_HEALTH_LISTEN.parse().ok(),
        Some(text) if is_off(&text) => None,
        Some(text) => {
            let addr = socket_address(p, "listen.health", &text)?;
            if !addr.ip().is_loopback() {
                p.push(
                    "listen.health",
                    format!("{addr} is not a loopback address: {HEALTH_NOT_LOOPBACK}"),
                );
            }
            Some(addr)
        }
    }
}

const HEALTH_NOT_LOOPBACK: &str = "the health and status endpoint only binds loopback addresses \
     such as 127.0.0.1 or ::1 (it shows which mailboxes exist); use \"off\" to disable it";

/// `""`, `"off"`, `"none"` or `"false"` switch a listener off.
fn is_off(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "" | "off" | "none" | "false"
    )
}

fn socket_address(p: &mut Problems, key: &str, text: &str) -> Option<SocketAddr> {
    let parsed = text.trim().parse::<SocketAddr>();
    if parsed.is_err() {
        let message =
            format!("{text:?} is not an IP address and port such as 127.0.0.1:2525 or [::1]:2525");
        p.push(key, message);
    }
    parsed.ok()
}

/// `state_dir`, else systemd's `$STATE_DIRECTORY`, else the per-user state directory.
pub fn state_dir(p: &mut Problems, ctx: &Context, value: Option<&Scalar>) -> Option<PathBuf> {
    if let Some(text) = p.text("state_dir", value) {
        return Some(secrets::resolve(ctx, &text));
    }
    default_state_dir(ctx.env)
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
