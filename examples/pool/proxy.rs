//! A TCP proxy that holds every chunk for a set one-way delay in each direction (20 ms each way
//! is a 40 ms round trip), as a faraway Exchange would. Buffers are bounded: a chunk is at most
//! `CHUNK` octets and at most `IN_FLIGHT` chunks wait per direction, after which reading stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

const CHUNK: usize = 16 * 1024;
const IN_FLIGHT: usize = 64;

/// The proxy; the delay may change between runs.
pub struct DelayProxy {
    pub addr: SocketAddr,
    one_way_ms: Arc<AtomicU64>,
}

impl DelayProxy {
    /// Forwards every connection on its own port to `target`.
    pub async fn start(target: SocketAddr) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let one_way_ms = Arc::new(AtomicU64::new(0));
        let delay = one_way_ms.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, target, delay.clone()));
            }
        });
        DelayProxy { addr, one_way_ms }
    }

    /// For every chunk from now on, on open connections too (warm upstream sessions).
    pub fn set_one_way(&self, delay: Duration) {
        self.one_way_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

async fn forward(client: TcpStream, target: SocketAddr, delay: Arc<AtomicU64>) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        direction(client_read, server_write, delay.clone()),
        direction(server_read, client_write, delay)
    );
}

/// One direction: a reader stamps each chunk with when it is due, a writer sends it then.
async fn direction(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Arc<AtomicU64>) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let reader = async move {
        let mut buf = vec![0; CHUNK];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            let delay = Duration::from_millis(delay.load(Ordering::Relaxed));
            if tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            // Even an expired timer waits for the next millisecond tick: skip it when due.
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
