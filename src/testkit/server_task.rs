//! The accept loop both fakes share: bind `127.0.0.1:0`, one task per connection, and every
//! task (the loop and all connections) cancelled when the owning fake is dropped.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::task::{JoinHandle, JoinSet};

/// Owns the accept loop; dropping it aborts the loop, which drops its `JoinSet`, which aborts
/// every connection task. That is what ties the lifetime of a fake's sockets to the fake value.
pub(crate) struct ServerTask {
    handle: JoinHandle<()>,
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Binds a loopback listener on an ephemeral port and spawns `serve` for each connection.
///
/// Synchronous so a fake can be started anywhere, but it needs a tokio runtime: without one it
/// returns an error instead of panicking the way `tokio::spawn` would.
pub(crate) fn spawn_loopback_server<F, Fut>(serve: F) -> io::Result<(SocketAddr, ServerTask)>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let runtime = Handle::try_current().map_err(io::Error::other)?;
    let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let _entered = runtime.enter();
    let listener = TcpListener::from_std(std_listener)?;
    let handle = runtime.spawn(accept_loop(listener, serve));
    Ok((addr, ServerTask { handle }))
}

async fn accept_loop<F, Fut>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set does not grow with the total count.
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _peer)) => {
                // Replies are small and latency matters more than packet count (Nagle against delayed ACK costs about 40 ms per write).
                let _ = stream.set_nodelay(true);
                connections.spawn(serve(stream));
            }
            Err(error) => {
                // Typically EMFILE: wait a little instead of spinning on the error.
                tracing::debug!(%error, "fake server accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
