//! The composition root: turns a `Config` into running parts (token caches kept fresh in the
//! background, upstream clients, the relay, the SMTP listener, the health endpoint), reloads
//! users and accounts on request, and stops everything in order. The only module that names
//! the concrete implementations.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{Argon2Pool, Users};
use crate::config::{Account, Auth, Config};
use crate::delivery::{Delivery, Restored};
use crate::logging::List;
use crate::oauth::client_credentials::ClientCredentials;
use crate::oauth::delegated::refresh::RefreshGrant;
use crate::oauth::{NoToken, Observed, TokenCache, TokenSource};
use crate::pacing::{Clock, Limits as PacingLimits, Pacer};
use crate::relay::{Relay, Route};
use crate::smtp::conn::Services;
use crate::smtp::guard::IpGuard;
use crate::spool::Spool;
use crate::stats::Stats;
use crate::swap::Swap;
use crate::upstream::SmtpUpstream;

mod key_file;
mod listeners;
mod signals;

/// After the grace period, how long connections get to say `421` and close.
const FORCED_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub use listeners::{bind, tls_acceptor};
pub(crate) use signals::termination_signal;
use signals::{hangup_signals, next_hangup};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("listener TLS: {0}")]
    ListenerTls(String),
    #[error("account {account}: cannot set up TLS: {source}")]
    Tls {
        account: String,
        source: rustls::Error,
    },
    #[error("cannot open the spool {dir}: {source}")]
    Spool {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} (is another xoauth-relay using the same state_dir?)")]
    ControlSocket(std::io::Error),
    #[error("account {account}: cannot set up the HTTP client: {source}")]
    Http {
        account: String,
        source: reqwest::Error,
    },
}

/// Builds one route (token cache + SMTP upstream + statistics) for `account`.
/// `pacer` is the account's running pacer when a reload keeps it (what the mailbox sent so far
/// still counts), or a given one; `None` makes a new one from `state_dir`.
pub(crate) fn build_route(
    config: &Config,
    account: Arc<Account>,
    stats: &Stats,
    pacer: Option<Arc<Pacer>>,
) -> Result<Route, StartError> {
    let name = account.name.clone();
    let tls =
        crate::tls::client_config(&account.extra_roots).map_err(|source| StartError::Tls {
            account: name.clone(),
            source,
        })?;
    let http_error = |source| StartError::Http {
        account: name.clone(),
        source,
    };
    let source: Option<Arc<dyn TokenSource>> = match (account.provider.uses_login(), account.auth) {
        (true, _) => None,
        (false, Auth::ClientCredentials) => Some(Arc::new(
            ClientCredentials::new(&account, tls.clone(), &config.timeouts).map_err(http_error)?,
        )),
        (false, Auth::Delegated) => Some(Arc::new(
            RefreshGrant::new(
                &account,
                config.state_dir.as_deref(),
                tls.clone(),
                &config.timeouts,
            )
            .map_err(http_error)?,
        )),
    };
    let upstream = SmtpUpstream::new(
        &account,
        &config.hostname,
        tls,
        &config.timeouts,
        &config.pool,
    );
    let stats = stats.account(&name);
    let pacer = pacer.unwrap_or_else(|| {
        Arc::new(Pacer::new(
            &name,
            pacing_limits(&account),
            config.timeouts.upstream_slot_wait,
            config.state_dir.as_deref(),
            Clock::system(),
            stats.clone(),
        ))
    });
    // A password account fetches no token, so it has no token statistics either.
    let tokens: Arc<dyn TokenSource> = match source {
        Some(source) => Arc::new(Observed {
            inner: source,
            stats: stats.clone(),
            account: name.clone(),
        }),
        None => Arc::new(NoToken),
    };
    Ok(Route {
        account,
        tokens: Arc::new(TokenCache::new(tokens)),
        upstream: Arc::new(upstream),
        stats,
        pacer,
    })
}

fn pacing_limits(account: &Account) -> PacingLimits {
    PacingLimits {
        messages_per_minute: account.max_messages_per_minute,
        recipients_per_day: account.max_recipients_per_day,
    }
}

/// A route and the cancellation of its background tasks (token refresh, expiry warnings).
struct Live {
    route: Arc<Route>,
    tasks: CancellationToken,
}

/// The state shared by the listener, the health endpoint and reloads.
pub struct Daemon {
    pub(crate) stats: Arc<Stats>,
    relay: Arc<Relay>,
    pub(crate) delivery: Arc<Delivery>,
    services: Arc<Services>,
    /// Stops the queue control socket, after the drain.
    control_stop: CancellationToken,
    config: Mutex<Config>,
    routes: Mutex<HashMap<String, Live>>,
    shutdown: CancellationToken,
}

impl Daemon {
    /// Replaces users and accounts with those of `new`. Accounts whose settings did not change
    /// keep their token cache and connections; settings that need a restart are reported.
    pub fn reload(&self, new: Config) -> Result<ReloadSummary, StartError> {
        let result = self.replace_config(new);
        match &result {
            Ok(s) => self.stats.reloaded(None, Some(s.restart_needed.clone())),
            Err(e) => self.stats.reloaded(Some(e.to_string()), None),
        }
        result
    }

    /// A configuration file that could not be loaded: the running one stays.
    pub(crate) fn reload_refused(&self, problems: String) {
        self.stats.reloaded(Some(problems), None);
    }

    fn replace_config(&self, new: Config) -> Result<ReloadSummary, StartError> {
        let mut current = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let mut summary = ReloadSummary {
            restart_needed: restart_needed(&current, &new),
            ..Default::default()
        };
        // Build every new route first, so a failure leaves the running state untouched.
        let mut built = Vec::new();
        for (name, account) in &new.accounts {
            let old = routes.get(name);
            if old.is_none_or(|r| *r.route.account != **account) {
                // What the mailbox sent so far still counts against Exchange's limits.
                let kept = old.map(|r| r.route.pacer.clone());
                built.push((
                    name.clone(),
                    build_route(&current, account.clone(), &self.stats, kept)?,
                ));
            }
        }
        let mut next = HashMap::new();
        for (name, route) in built {
            summary.changed.push(name.clone());
            if let Some(old) = routes.remove(&name) {
                route.pacer.retune(pacing_limits(&route.account));
                retire(old);
            }
            next.insert(name, launch(route, &self.shutdown));
        }
        for name in new.accounts.keys() {
            if let Some(kept) = routes.remove(name) {
                next.insert(name.clone(), kept);
            }
        }
        for (name, old) in routes.drain() {
            summary.removed.push(name);
            retire(old);
        }
        self.relay.replace(next.values().map(|r| r.route.clone()));
        self.relay.log_recipients(new.log.recipients);
        self.delivery.retune(new.delivery.clone());
        current.delivery = new.delivery.clone();
        *routes = next;
        self.services
            .users
            .store(Arc::new(Users::from_config(&new)));
        summary.users = new.users.len();
        current.users = new.users;
        current.accounts = new.accounts;
        current.warnings = new.warnings;
        current.log = new.log;
        Ok(summary)
    }
}

impl Daemon {
    /// Ends every login lockout (on SIGHUP, so an operator can let a fixed program back in
    /// without waiting out the lockout); logs and returns how many there were.
    pub fn clear_lockouts(&self) -> usize {
        let cleared = self.services.guard.clear_lockouts();
        tracing::info!(cleared, "SIGHUP: login lockouts cleared");
        cleared
    }
}

/// Stops the background tasks of a route a reload replaced or removed, and closes its idle
/// upstream sessions (messages still on it finish, then their sessions close too).
fn retire(old: Live) {
    old.tasks.cancel();
    tokio::spawn(async move { old.route.upstream.close_idle().await });
}

/// What a reload changed.
#[derive(Debug, Default)]
pub struct ReloadSummary {
    pub users: usize,
    /// Accounts added or changed (they start with a new token).
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// Settings that differ but only take effect after a restart.
    pub restart_needed: Vec<&'static str>,
}

fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let changed = [
        ("listen", old.listen != new.listen),
        ("limits", old.limits != new.limits),
        ("timeouts", old.timeouts != new.timeouts),
        ("pool", old.pool != new.pool),
        (
            "spool",
            old.spool != new.spool || old.state_dir != new.state_dir,
        ),
        ("hostname", old.hostname != new.hostname),
    ];
    changed
        .into_iter()
        .filter(|(_, c)| *c)
        .map(|(key, _)| key)
        .collect()
}

/// A relay serving clients; stop it with [`Running::stop`].
pub struct Running {
    pub smtp_addr: SocketAddr,
    /// The implicit-TLS listener, if configured.
    pub submissions_addr: Option<SocketAddr>,
    /// Where `/healthz`, `/readyz`, `/status` and `/metrics` answer, if enabled.
    pub health_addr: Option<SocketAddr>,
    pub daemon: Arc<Daemon>,
    task: JoinHandle<()>,
}

impl Running {
    /// Waits until `n` upstream probes of `account` have answered (for tests that count
    /// upstream sessions; a probe is one).
    pub async fn probes_answered(&self, account: &str, n: u64) {
        self.daemon.stats.account(account).probes_answered(n).await;
    }

    /// Stops accepting, tells idle clients `421`, lets transactions in flight finish within
    /// the grace period, then tells the rest `421` too, and waits.
    pub async fn stop(self) {
        self.daemon.stats.draining.store(true, Ordering::Relaxed);
        self.daemon.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Starts serving on an already bound SMTP listener (tests bind port 0 and pass it in); the
/// `submissions` and health listeners are bound here from the configuration.
pub async fn start(config: &Config, smtp: TcpListener) -> Result<Running, StartError> {
    let health = match config.listen.health {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let submissions = match config.listen.submissions {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let tls = tls_acceptor(config).await?;
    // Bound before the spool is opened: a second relay on the same state_dir stops here.
    let control = bind_control(config).await?;
    let spool = open_spool(config).await?;
    let running = start_with(
        config,
        listeners::Sockets {
            smtp,
            submissions,
            health,
        },
        tls,
        spool,
    )?;
    if let Some(control) = control {
        let ops: Arc<dyn crate::spool::control::QueueOps> = running.daemon.delivery.clone();
        let stop = running.daemon.control_stop.clone();
        tokio::spawn(async move {
            if let Err(e) = control.run(ops, stop).await {
                tracing::error!(error = %e, "queue control socket stopped");
            }
        });
    }
    Ok(running)
}

/// The socket `xoauth-relay queue` talks to, in `state_dir` (Unix only).
#[cfg(unix)]
async fn bind_control(
    config: &Config,
) -> Result<Option<crate::spool::control::ControlSocket>, StartError> {
    let Some(dir) = &config.state_dir else {
        return Ok(None);
    };
    let path = crate::spool::control::socket_path(dir);
    let created = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || crate::spool::create_private_dir(&dir)).await
    };
    let created = created.unwrap_or_else(|e| Err(std::io::Error::other(e)));
    created.map_err(|source| StartError::Spool {
        dir: dir.clone(),
        source,
    })?;
    let socket = crate::spool::control::ControlSocket::bind(&path).await;
    socket.map(Some).map_err(StartError::ControlSocket)
}

#[cfg(not(unix))]
async fn bind_control(_: &Config) -> Result<Option<std::convert::Infallible>, StartError> {
    Ok(None)
}

/// The spool under `state_dir`, emptied of what was being received and with its queue read;
/// `None` without a state directory (then only `delivery.mode = "sync"` is allowed).
async fn open_spool(config: &Config) -> Result<Option<(Spool, Restored)>, StartError> {
    let Some(dir) = config.spool_dir() else {
        return Ok(None);
    };
    let (root, max, on) = (
        dir.clone(),
        config.spool.max_size as u64,
        config.delivery.on_ambiguous,
    );
    let opened = tokio::task::spawn_blocking(move || crate::delivery::restore(&root, max, on))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    opened
        .map(Some)
        .map_err(|source| StartError::Spool { dir, source })
}

/// Like [`start`], with every socket already bound and the TLS acceptor (if any) built.
pub(crate) fn start_with(
    config: &Config,
    sockets: listeners::Sockets,
    tls: Option<tokio_rustls::TlsAcceptor>,
    spool: Option<(Spool, Restored)>,
) -> Result<Running, StartError> {
    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let force = CancellationToken::new();
    let smtp_addr = sockets
        .smtp
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.listen.smtp,
            source,
        })?;
    let daemon = Arc::new(assemble(
        config,
        stats.clone(),
        shutdown.clone(),
        force.clone(),
        spool,
    )?);
    let control_stop = daemon.control_stop.clone();
    let retries = tokio_util::task::TaskTracker::new();
    tokio::spawn(
        daemon
            .delivery
            .clone()
            .work(shutdown.clone(), retries.clone()),
    );
    let health_addr = sockets.health.as_ref().and_then(|h| h.local_addr().ok());
    let submissions_addr = sockets
        .submissions
        .as_ref()
        .and_then(|h| h.local_addr().ok());
    // The health endpoint outlives the drain, so monitoring sees "not ready" until the end.
    let health_stop = CancellationToken::new();
    if let Some(h) = sockets.health {
        let state = Arc::new(crate::health::State {
            stats: stats.clone(),
            relay: daemon.relay.clone(),
            delivery: daemon.delivery.clone(),
            smtp: smtp_addr,
            guard: daemon.services.guard.clone(),
        });
        let exposure = crate::health::Exposure {
            health_public: config.listen.health_public,
            status_public: config.listen.status_public,
        };
        tokio::spawn(crate::health::serve(
            h,
            state,
            exposure,
            health_stop.clone(),
        ));
    }
    stats.listener.bound.store(true, Ordering::Relaxed);
    let accepting = listeners::spawn(
        config,
        sockets.smtp,
        sockets.submissions,
        tls,
        &daemon.services,
        &shutdown,
    );
    let grace = config.timeouts.shutdown_grace;
    let relay = daemon.relay.clone();
    let task = tokio::spawn(async move {
        let tasks = accepting.await;
        stats.listener.bound.store(false, Ordering::Relaxed);
        tasks.close();
        if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!(
                connections = tasks.len(),
                ?grace,
                "shutdown grace period over; closing remaining connections"
            );
            force.cancel();
            // A relay to Microsoft in flight is not cut off (it may already have the message);
            // the process does not wait for it long either.
            if tokio::time::timeout(FORCED_CLOSE_WAIT, tasks.wait())
                .await
                .is_err()
            {
                tracing::warn!(
                    connections = tasks.len(),
                    "connections abandoned at shutdown"
                );
            }
        }
        // Retries under way finish (a cut-off one could leave a message's fate unknown).
        retries.close();
        if tokio::time::timeout(grace, retries.wait()).await.is_err() {
            tracing::warn!(
                "queued messages still being sent at the end of the grace period; their attempts are abandoned and will be retried"
            );
        }
        // Every message is done: the sessions kept for the next one say QUIT.
        let mut quits = tokio::task::JoinSet::new();
        for route in relay.routes() {
            quits.spawn(async move { route.upstream.close_idle().await });
        }
        while quits.join_next().await.is_some() {}
        health_stop.cancel();
        control_stop.cancel();
    });
    Ok(Running {
        smtp_addr,
        submissions_addr,
        health_addr,
        daemon,
        task,
    })
}

/// Builds the daemon state and starts each route's background tasks.
fn assemble(
    config: &Config,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
    force: CancellationToken,
    spool: Option<(Spool, Restored)>,
) -> Result<Daemon, StartError> {
    // Build every route before starting any background task, so a failure leaves none behind.
    let built = config
        .accounts
        .iter()
        .map(|(name, account)| {
            Ok((
                name.clone(),
                build_route(config, account.clone(), &stats, None)?,
            ))
        })
        .collect::<Result<Vec<_>, StartError>>()?;
    let routes: HashMap<String, Live> = built
        .into_iter()
        .map(|(name, route)| (name, launch(route, &shutdown)))
        .collect();
    let relay = Arc::new(Relay::new(routes.values().map(|r| r.route.clone())));
    relay.log_recipients(config.log.recipients);
    let (spool, restored) = match spool {
        Some((spool, restored)) => (Some(Arc::new(spool)), Some(restored)),
        None => (None, None),
    };
    let delivery = Arc::new(Delivery::new(
        relay.clone(),
        spool.clone(),
        config.delivery.clone(),
        config.spool.max_messages,
        config.hostname.clone(),
    ));
    if let Some(restored) = restored {
        delivery.restore(restored);
    }
    let services = Arc::new(Services {
        users: Swap::new(Arc::new(Users::from_config(config))),
        passwords: Argon2Pool::for_this_machine(),
        relay: delivery.clone(),
        spool,
        idle_timeout: config.timeouts.idle,
        auth_failure_delay: config.limits.auth_failure_delay,
        session_lifetime: config.limits.session_lifetime,
        login_timeout: config.limits.login_timeout,
        min_data_rate: config.limits.min_data_rate,
        guard: IpGuard::new(
            config.limits.max_connections_per_ip,
            config.limits.auth_failures_per_ip,
            config.limits.auth_lockout,
        ),
        stats: stats.clone(),
        force,
    });
    Ok(Daemon {
        stats,
        relay,
        delivery,
        services,
        control_stop: CancellationToken::new(),
        config: Mutex::new(config.clone()),
        routes: Mutex::new(routes),
        shutdown,
    })
}

/// Starts the background tasks of a route (token refresh, secret-expiry warnings, the probe
/// that proves it can send); they stop
/// with `shutdown` or when the route is replaced.
fn launch(route: Route, shutdown: &CancellationToken) -> Live {
    let route = Arc::new(route);
    let tasks = shutdown.child_token();
    tokio::spawn(route.tokens.clone().keep_fresh(tasks.clone()));
    tokio::spawn(crate::expiry::watch(route.account.clone(), tasks.clone()));
    tokio::spawn(crate::probe::watch(route.clone(), tasks.clone()));
    Live { route, tasks }
}

/// Where `run` reloads its configuration from on SIGHUP.
#[derive(Clone)]
pub(crate) struct ReloadSource {
    pub(crate) path: PathBuf,
    pub(crate) env: HashMap<String, String>,
}

/// `xoauth-relay run`: bind, serve until `stop_signal` completes, reload on SIGHUP, then drain.
pub(crate) async fn run(
    config: Config,
    reload: Option<ReloadSource>,
    stop_signal: impl Future<Output = ()>,
) -> Result<(), StartError> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // Before READY=1: a SIGHUP in between would otherwise end the process (its default).
    let mut hangups = hangup_signals();
    let listener = bind(config.listen.smtp).await?;
    let running = start(&config, listener).await?;
    crate::notify::ready();
    crate::notify::status(&format!("listening on {}", running.smtp_addr));
    // Pings go on through the drain below: the process is alive until `run` returns.
    let watchdog = CancellationToken::new();
    crate::notify::spawn_watchdog(watchdog.clone());
    let _stop_watchdog = watchdog.drop_guard();
    let accounts = List::new(config.accounts.keys());
    let health = running
        .health_addr
        .map(|a| a.to_string())
        .unwrap_or_else(|| "off".into());
    tracing::info!(smtp = %running.smtp_addr, health = %health, users = config.users.len(), accounts = ?accounts, "xoauth-relay listening");
    tokio::pin!(stop_signal);
    loop {
        tokio::select! {
            _ = &mut stop_signal => break,
            _ = next_hangup(&mut hangups) => {
                crate::notify::reloading();
                running.daemon.clear_lockouts();
                reload_from(&running.daemon, reload.as_ref()).await;
                crate::notify::ready();
            }
        }
    }
    crate::notify::stopping();
    tracing::info!("shutting down: no new connections; letting messages in flight finish");
    running.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// Re-reads the configuration file; an invalid file leaves the running configuration alone.
async fn reload_from(daemon: &Daemon, source: Option<&ReloadSource>) {
    let Some(source) = source.cloned() else {
        tracing::warn!("SIGHUP ignored: no configuration file to reload");
        return;
    };
    tracing::info!(config = %source.path.display(), "SIGHUP: reloading users and accounts");
    // Reading files (secrets, CA bundles) blocks; keep it off the async threads.
    let loaded =
        tokio::task::spawn_blocking(move || crate::config::load(&source.path, &source.env)).await;
    let config = match loaded {
        Ok(Ok(c)) => c,
        Err(e) => {
            daemon.reload_refused(e.to_string());
            tracing::error!(error = %e, "reload failed");
            return;
        }
        Ok(Err(e)) => {
            let problems = e.one_line();
            // Recorded before the log line, so whoever reads the log then `/status` sees it.
            daemon.reload_refused(problems.clone());
            tracing::error!(%problems, "reload refused, keeping the running configuration");
            return;
        }
    };
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    match daemon.reload(config) {
        Ok(s) => {
            tracing::info!(users = s.users, changed = ?List::new(&s.changed), removed = ?List::new(&s.removed), "configuration reloaded");
            if !s.restart_needed.is_empty() {
                tracing::warn!(settings = ?List::new(&s.restart_needed), "these settings changed but take effect only after a restart");
            }
        }
        Err(e) => tracing::error!("reload refused, keeping the running configuration: {e}"),
    }
}
