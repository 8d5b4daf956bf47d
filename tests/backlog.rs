//! The listen backlog: a burst of connections to a listener that is not accepting yet must all
//! complete the TCP handshake at once, instead of some waiting out SYN retries.

use std::time::Duration;

use tokio::net::TcpStream;
use xoauth_relay::daemon;

/// More than tokio's default backlog of 128.
const BURST: usize = 300;
/// A handshake on loopback takes microseconds; a dropped SYN is retried after one second.
const PROMPT: Duration = Duration::from_millis(700);

/// The kernel caps every backlog at `somaxconn`; below the burst this test cannot tell.
fn somaxconn() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok()?;
    text.trim().parse().ok()
}

#[tokio::test]
async fn a_burst_of_connections_fits_in_the_backlog() {
    if somaxconn().is_some_and(|n| n < BURST) {
        eprintln!("skipped: net.core.somaxconn is below {BURST}");
        return;
    }
    let listener = daemon::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::with_capacity(BURST);
    for i in 0..BURST {
        // Nothing accepts: each connection waits in the kernel's queue.
        let connect = tokio::time::timeout(PROMPT, TcpStream::connect(addr)).await;
        match connect {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(e)) => panic!("connection {i}: {e}"),
            Err(_) => panic!("connection {i} waited for SYN retries: the backlog is full"),
        }
    }
    drop(listener);
}
