//! The accept loop: one task per client, at most `max_connections` at once; the next client is
//! told `421 4.7.0` and disconnected instead of queueing unseen.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn::{self, Ended, Services};
use super::reply;

/// How long a refused client gets to read its `421`.
const REFUSAL_WRITE: Duration = Duration::from_secs(5);

/// Accepts clients until `shutdown` fires. Connection tasks are spawned on `tasks` so the
/// caller can wait for them to drain.
pub async fn accept_loop(
    listener: TcpListener,
    services: Arc<Services>,
    max_connections: usize,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
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
        let listener_stats = &services.stats.listener;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max_connections, "connection refused: too many connections");
            listener_stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tasks.spawn(refuse(stream));
            continue;
        };
        listener_stats
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        listener_stats
            .connections_now
            .fetch_add(1, Ordering::Relaxed);
        let (services, shutdown) = (services.clone(), shutdown.clone());
        tasks.spawn(async move {
            tracing::debug!(%peer, "client connected");
            let ended = conn::serve(stream, peer, services.clone(), shutdown).await;
            services
                .stats
                .listener
                .connections_now
                .fetch_sub(1, Ordering::Relaxed);
            match ended {
                Ended::Io(e) => tracing::debug!(%peer, error = %e, "client connection failed"),
                other => tracing::debug!(%peer, ?other, "client disconnected"),
            }
            drop(permit);
        });
    }
}

async fn refuse(mut stream: TcpStream) {
    let mut line = Vec::new();
    reply::TOO_MANY_CONNECTIONS.write_to(&mut line);
    let _ = tokio::time::timeout(REFUSAL_WRITE, stream.write_all(&line)).await;
}
