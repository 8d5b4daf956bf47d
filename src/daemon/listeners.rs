//! The client-facing sockets: binding them, the TLS acceptor (the configured certificate, or a
//! self-signed one generated once and kept in `state_dir`), each listener's session rules, and
//! the accept loops sharing one global connection limit.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{StartError, key_file};
use crate::config::{Config, TlsMode};
use crate::smtp::conn::{Listener, Services};
use crate::smtp::listener::{Slots, accept_loop};
use crate::smtp::session::SessionLimits;

/// File names of the generated certificate and key in `state_dir`.
const SELF_SIGNED_CERT: &str = "listener-cert.pem";
const SELF_SIGNED_KEY: &str = "listener-key.pem";

/// The bound sockets.
pub(crate) struct Sockets {
    pub(crate) smtp: TcpListener,
    pub(crate) submissions: Option<TcpListener>,
    pub(crate) health: Option<TcpListener>,
}

/// Pending connections the kernel queues before we accept them. tokio's default of 128
/// overflows in a burst, and each dropped SYN costs the client a second of retries.
const BACKLOG: u32 = 1024;

/// Binds `addr`. The configuration already refused clear-text listeners off loopback.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    listen(addr).map_err(|source| StartError::Bind { addr, source })
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As std does on unix: a restart can bind while old connections sit in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The acceptor for STARTTLS and implicit TLS, when some listener uses TLS.
pub async fn tls_acceptor(config: &Config) -> Result<Option<TlsAcceptor>, StartError> {
    if !config.listen.uses_tls() {
        return Ok(None);
    }
    let files = config.listen.tls_files.clone();
    let state_dir = config.state_dir.clone();
    let names = vec![config.hostname.clone(), "localhost".to_string()];
    let identity = tokio::task::spawn_blocking(move || match files {
        Some(f) => {
            super::key_file::warn_if_shared(&f.key);
            crate::tls::load_server_identity(&f.cert, &f.key)
        }
        None => self_signed_identity(state_dir.as_deref(), names),
    })
    .await
    .map_err(|e| StartError::ListenerTls(e.to_string()))?
    .map_err(StartError::ListenerTls)?;
    let (certs, key) = identity;
    tracing::info!(
        sha256 = %crate::tls::fingerprint(&certs[0]),
        "listener certificate (pin this fingerprint in clients that cannot verify it)"
    );
    let server = crate::tls::server_config(certs, key)
        .map_err(|e| StartError::ListenerTls(e.to_string()))?;
    Ok(Some(TlsAcceptor::from(server)))
}

type Identity = (
    Vec<rustls_pki_types::CertificateDer<'static>>,
    rustls_pki_types::PrivateKeyDer<'static>,
);

/// Loads the generated certificate from `state_dir`, making it on first start.
fn self_signed_identity(state_dir: Option<&Path>, names: Vec<String>) -> Result<Identity, String> {
    let dir = state_dir.ok_or("no state_dir to keep the self-signed certificate in")?;
    let (cert, key) = (dir.join(SELF_SIGNED_CERT), dir.join(SELF_SIGNED_KEY));
    key_file::refuse_link(&cert)?;
    key_file::refuse_link(&key)?;
    if !cert.exists() || !key.exists() {
        generate(dir, &cert, &key, names)?;
    }
    let pem = key_file::read_private(&key)?;
    Ok((
        crate::tls::load_certs(&cert)?,
        crate::tls::parse_key(&pem, &key)?,
    ))
}

/// Makes a new pair, replacing the half of an old one that may be left.
fn generate(dir: &Path, cert: &Path, key: &Path, names: Vec<String>) -> Result<(), String> {
    let (cert_pem, key_pem) = crate::tls::self_signed(names)
        .map_err(|e| format!("cannot generate a certificate: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for old in [key, cert] {
        // Links were refused already; this removes a regular file of ours, never a target.
        if old.exists() {
            std::fs::remove_file(old)
                .map_err(|e| format!("cannot replace {}: {e}", old.display()))?;
        }
    }
    key_file::create_new(key, key_pem.as_bytes(), 0o600)?;
    key_file::create_new(cert, cert_pem.as_bytes(), 0o644)?;
    tracing::info!(cert = %cert.display(), "generated a self-signed listener certificate");
    Ok(())
}

/// The session rules of a listener.
fn limits(config: &Config, starttls: bool, tls_required_for_auth: bool) -> SessionLimits {
    SessionLimits {
        hostname: Arc::from(config.hostname.as_str()),
        max_message_size: config.limits.max_message_size,
        max_recipients: config.limits.max_recipients,
        max_line_length: config.limits.max_line_length,
        bare_line_endings: config.limits.bare_line_endings,
        max_auth_failures: config.limits.max_auth_failures,
        max_errors: config.limits.max_errors,
        starttls,
        tls_required_for_auth,
    }
}

/// Starts the accept loops; the future completes with the connection tasks once every loop has
/// stopped accepting (on `shutdown`).
pub(crate) fn spawn(
    config: &Config,
    smtp: TcpListener,
    submissions: Option<TcpListener>,
    tls: Option<TlsAcceptor>,
    services: &Arc<Services>,
    shutdown: &CancellationToken,
) -> impl Future<Output = TaskTracker> + use<> {
    let slots = Slots::new(config.limits.max_connections);
    let tasks = TaskTracker::new();
    let mode = config.listen.smtp_tls;
    let smtp_rules = Listener {
        limits: limits(config, mode == TlsMode::StartTls, mode == TlsMode::StartTls),
        tls: tls.clone().filter(|_| mode != TlsMode::None),
        implicit_tls: mode == TlsMode::Implicit,
    };
    let implicit = Listener {
        limits: limits(config, false, false),
        tls,
        implicit_tls: true,
    };
    let run = |socket, rules| {
        let (services, slots, shutdown, tasks) = (
            services.clone(),
            slots.clone(),
            shutdown.clone(),
            tasks.clone(),
        );
        tokio::spawn(accept_loop(socket, services, rules, slots, shutdown, tasks))
    };
    let first = run(smtp, smtp_rules);
    let second = submissions.map(|socket| run(socket, implicit));
    async move {
        let _ = first.await;
        if let Some(second) = second {
            let _ = second.await;
        }
        tasks
    }
}
