//! The accept loop: one task per client. Before a task is spawned the client must get past the
//! global connection limit, the share of it for clients not logged in yet, and its address's
//! limits (connections per address, lockout after failed logins); otherwise it is told
//! `421 4.7.0` and disconnected instead of queueing unseen.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn::{self, Ended, Listener, Services, TLS_HANDSHAKE_TIMEOUT};
use super::guard::{Permit, Refusal};
use super::stream::Stream;
use crate::reply::{self, Reply};

/// How long a refused client gets to read its `421`.
const REFUSAL_WRITE: Duration = Duration::from_secs(5);

/// The connection slots shared by all listeners: `all` is `limits.max_connections`; clients
/// that have not logged in may hold at most half of them (rounded up), so idle connections
/// from many addresses cannot crowd out the clients that have.
#[derive(Clone)]
pub(crate) struct Slots {
    all: Arc<Semaphore>,
    not_logged_in: Arc<Semaphore>,
}

impl Slots {
    pub(crate) fn new(max_connections: usize) -> Self {
        Self {
            all: Arc::new(Semaphore::new(max_connections)),
            not_logged_in: Arc::new(Semaphore::new(max_connections.div_ceil(2))),
        }
    }
}

/// What an admitted client holds: its global slot and address slot for the whole connection,
/// and a slot among those not logged in until it logs in (none for a trusted address).
struct Permits {
    _slot: OwnedSemaphorePermit,
    _address: Permit,
    login: Option<OwnedSemaphorePermit>,
}

/// Accepts clients on `socket` until `shutdown` fires. `slots` is shared by all listeners (the
/// global connection limit); connection tasks go on `tasks` so the caller can wait for them.
pub(crate) async fn accept_loop(
    socket: TcpListener,
    services: Arc<Services>,
    listener: Listener,
    slots: Slots,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            _ = shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually out of file descriptors; pausing lets connections close.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        let _ = stream.set_nodelay(true);
        match admit(&services, &slots, peer) {
            Ok(permits) => {
                let (services, listener, shutdown) =
                    (services.clone(), listener.clone(), shutdown.clone());
                tasks.spawn(client(stream, peer, services, listener, shutdown, permits));
            }
            Err(r) => {
                let stats = &services.stats;
                let counter = if r == reply::IP_LOCKED_OUT {
                    &stats.lockout_refusals
                } else {
                    &stats.listener.connections_refused
                };
                counter.fetch_add(1, Ordering::Relaxed);
                // A TLS client cannot read a clear-text reply; it just sees the close.
                if !listener.implicit_tls {
                    tasks.spawn(refuse(stream, r));
                }
            }
        }
    }
}

/// The client's slots, or the reply refusing it.
fn admit(services: &Services, slots: &Slots, peer: SocketAddr) -> Result<Permits, Reply> {
    let Ok(slot) = slots.all.clone().try_acquire_owned() else {
        tracing::warn!(%peer, "connection refused: too many connections");
        return Err(reply::TOO_MANY_CONNECTIONS);
    };
    // A device trusted by its address is logged in from the start.
    let login = if services.users.load().trusted_for(peer.ip()).is_some() {
        None
    } else {
        let Ok(permit) = slots.not_logged_in.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: too many connections not logged in");
            return Err(reply::TOO_MANY_CONNECTIONS);
        };
        Some(permit)
    };
    match services.guard.admit(peer.ip()) {
        Ok(address) => Ok(Permits {
            _slot: slot,
            _address: address,
            login,
        }),
        Err(Refusal::LockedOut) => {
            tracing::debug!(%peer, "connection refused: address locked out after failed logins");
            Err(reply::IP_LOCKED_OUT)
        }
        Err(Refusal::TooManyConnections) => {
            tracing::warn!(%peer, "connection refused: too many connections from this address");
            Err(reply::TOO_MANY_FROM_IP)
        }
    }
}

/// One client's task: the TLS handshake for an implicit-TLS listener, then the session.
async fn client(
    tcp: TcpStream,
    peer: SocketAddr,
    services: Arc<Services>,
    listener: Listener,
    shutdown: CancellationToken,
    mut permits: Permits,
) {
    let stats = &services.stats.listener;
    stats.connections_total.fetch_add(1, Ordering::Relaxed);
    stats.connections_now.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%peer, "client connected");
    let stream = match (&listener.tls, listener.implicit_tls) {
        (Some(acceptor), true) => {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => Some(Stream::Tls(Box::new(tls))),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    None
                }
                Err(_) => None,
            }
        }
        _ => Some(Stream::Plain(tcp)),
    };
    if let Some(stream) = stream {
        let login = permits.login.take();
        match conn::serve(stream, peer, services.clone(), listener, shutdown, login).await {
            Ended::Io(e) => tracing::debug!(%peer, error = %e, "client connection failed"),
            other => tracing::debug!(%peer, ?other, "client disconnected"),
        }
    }
    services
        .stats
        .listener
        .connections_now
        .fetch_sub(1, Ordering::Relaxed);
    drop(permits);
}

async fn refuse(mut stream: TcpStream, r: Reply) {
    let mut line = Vec::new();
    r.write_to(&mut line);
    let _ = tokio::time::timeout(REFUSAL_WRITE, stream.write_all(&line)).await;
}
