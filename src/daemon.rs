//! The composition root: turns a `Config` into running parts (token caches, upstream clients,
//! the relay, the listener) and stops them in order. The only module that names the concrete
//! implementations.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Users;
use crate::config::{Account, Config};
use crate::oauth::TokenCache;
use crate::oauth::client_credentials::ClientCredentials;
use crate::relay::{Relay, Route};
use crate::smtp::conn::Services;
use crate::smtp::listener::accept_loop;
use crate::smtp::session::SessionLimits;
use crate::upstream::SmtpUpstream;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "refusing to listen on {0}: the listener has no TLS yet, so it only binds loopback addresses (127.0.0.1 or ::1)"
    )]
    NotLoopback(SocketAddr),
    #[error("account {account}: cannot set up TLS: {source}")]
    Tls {
        account: String,
        source: rustls::Error,
    },
    #[error("account {account}: cannot set up the HTTP client: {source}")]
    Http {
        account: String,
        source: reqwest::Error,
    },
}

/// Builds one route (token cache + SMTP upstream) per account.
pub fn build_relay(config: &Config) -> Result<Relay, StartError> {
    let routes = config
        .accounts
        .values()
        .map(|account| build_route(config, account.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Relay::new(routes))
}

pub fn build_route(config: &Config, account: Arc<Account>) -> Result<Route, StartError> {
    let name = account.name.clone();
    let tls =
        crate::tls::client_config(&account.extra_roots).map_err(|source| StartError::Tls {
            account: name.clone(),
            source,
        })?;
    let source =
        ClientCredentials::new(&account, tls.clone(), &config.timeouts).map_err(|source| {
            StartError::Http {
                account: name,
                source,
            }
        })?;
    let upstream = SmtpUpstream::new(&account, &config.hostname, tls, &config.timeouts);
    Ok(Route {
        account,
        tokens: Arc::new(TokenCache::new(Arc::new(source))),
        upstream: Arc::new(upstream),
    })
}

fn services(config: &Config, relay: Arc<Relay>) -> Services {
    Services {
        users: Arc::new(Users::from_config(config)),
        relay,
        limits: SessionLimits {
            hostname: Arc::from(config.hostname.as_str()),
            max_message_size: config.limits.max_message_size,
            max_recipients: config.limits.max_recipients,
            max_line_length: config.limits.max_line_length,
            max_auth_failures: config.limits.max_auth_failures,
        },
        idle_timeout: config.timeouts.idle,
        auth_failure_delay: config.limits.auth_failure_delay,
    }
}

/// Binds the SMTP listener, refusing anything but loopback.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    if !addr.ip().is_loopback() {
        return Err(StartError::NotLoopback(addr));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// A relay serving clients; stop it with [`Running::stop`].
pub struct Running {
    pub smtp_addr: SocketAddr,
    pub relay: Arc<Relay>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets transactions in flight finish within the grace period, and waits.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// A token that stops the relay when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Starts serving on an already bound listener (tests bind port 0 and pass it in).
pub fn start(config: &Config, listener: TcpListener) -> Result<Running, StartError> {
    let relay = Arc::new(build_relay(config)?);
    let smtp_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen.smtp,
        source,
    })?;
    let services = Arc::new(services(config, relay.clone()));
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let (max, grace) = (
        config.limits.max_connections,
        config.timeouts.shutdown_grace,
    );
    let (stop, tracker) = (shutdown.clone(), tasks.clone());
    let task = tokio::spawn(async move {
        accept_loop(listener, services, max, stop, tracker.clone()).await;
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                connections = tracker.len(),
                ?grace,
                "shutdown grace period over; closing remaining connections"
            );
        }
    });
    Ok(Running {
        smtp_addr,
        relay,
        shutdown,
        task,
    })
}

/// `xoauth-relay run`: bind, serve until `stop_signal` completes, then drain.
pub async fn run(config: Config, stop_signal: impl Future<Output = ()>) -> Result<(), StartError> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let listener = bind(config.listen.smtp).await?;
    let running = start(&config, listener)?;
    crate::notify::ready();
    crate::notify::status(&format!("listening on {}", running.smtp_addr));
    // Pings go on through the drain below: the process is alive until `run` returns.
    let watchdog = CancellationToken::new();
    crate::notify::spawn_watchdog(watchdog.clone());
    let _stop_watchdog = watchdog.drop_guard();
    let accounts: Vec<&str> = config.accounts.keys().map(String::as_str).collect();
    tracing::info!(smtp = %running.smtp_addr, users = config.users.len(), accounts = ?accounts, "xoauth-relay listening");
    stop_signal.await;
    crate::notify::stopping();
    tracing::info!("shutting down: no new connections; letting messages in flight finish");
    running.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
