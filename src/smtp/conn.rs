//! The I/O driver of one client connection: reads with the idle deadline, feeds the session,
//! writes its replies, and carries out what it asks (check a password, relay a message).
//! Generic over the stream so tests and a later TLS listener use the same code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::sasl::Credentials;
use super::session::{Action, Session, SessionLimits};
use crate::auth::{Submitter, Users, failure_delay};
use crate::relay::Submit;
use crate::stats::{Outcome, Stats};
use crate::swap::Swap;

/// Bytes read from the socket at a time; also the most unconsumed input held while the session
/// waits for a password check or the upstream.
const READ_CHUNK: usize = 64 * 1024;

/// What every connection shares. Users and the relay can be replaced by a reload; a session
/// takes the current ones when it needs them.
pub struct Services {
    pub users: Swap<Users>,
    pub relay: Swap<dyn Submit>,
    pub limits: SessionLimits,
    pub idle_timeout: Duration,
    pub auth_failure_delay: Duration,
    pub stats: Arc<Stats>,
}

/// Why the connection ended, for the debug log.
#[derive(Debug)]
pub enum Ended {
    Closed,
    ClientLeft,
    Io(std::io::Error),
}

/// Serves one client until it quits, times out, fails too often, or the server shuts down.
pub async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    services: Arc<Services>,
    shutdown: CancellationToken,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Conn {
        stream,
        session: Session::new(services.limits.clone()),
        services,
        peer,
    };
    conn.session.greet();
    match conn.run(&shutdown).await {
        Ok(ended) => ended,
        Err(e) => Ended::Io(e),
    }
}

struct Conn<S> {
    stream: S,
    session: Session,
    services: Arc<Services>,
    peer: SocketAddr,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn run(&mut self, shutdown: &CancellationToken) -> std::io::Result<Ended> {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            self.flush().await?;
            if self.session.is_closed() {
                return Ok(Ended::Closed);
            }
            if shutdown.is_cancelled() && self.session.is_idle() {
                self.session.shutdown();
                continue;
            }
            let n = tokio::select! {
                read = tokio::time::timeout(self.services.idle_timeout, self.stream.read(&mut buf)) => match read {
                    Ok(read) => read?,
                    Err(_) => {
                        self.session.idle_timeout();
                        continue;
                    }
                },
                _ = shutdown.cancelled(), if self.session.is_idle() => continue,
            };
            if n == 0 {
                return Ok(Ended::ClientLeft);
            }
            self.process(&buf[..n]).await?;
        }
    }

    /// Feeds `input` to the session, running each action it asks for, until all is consumed.
    async fn process(&mut self, mut input: &[u8]) -> std::io::Result<()> {
        loop {
            let (used, action) = self.session.feed(input);
            input = &input[used..];
            self.count_local_rejections();
            match action {
                Action::Read | Action::Close => return Ok(()),
                Action::Authenticate(credentials) => {
                    // Replies to earlier pipelined commands go out before the slow check.
                    self.flush().await?;
                    let result = self.check_password(credentials).await;
                    if let Action::Close = self.session.auth_checked(result) {
                        return Ok(());
                    }
                }
                Action::Relay(message) => {
                    self.flush().await?;
                    let relay = self.services.relay.load();
                    let verdict = relay.submit(&message).await;
                    self.session.relay_finished(verdict);
                }
            }
        }
    }

    async fn check_password(&mut self, c: Credentials) -> Option<Arc<Submitter>> {
        let users = self.services.users.load();
        let username = c.username.clone();
        let checked =
            tokio::task::spawn_blocking(move || users.verify(&c.username, c.password.expose()))
                .await;
        let result = checked.unwrap_or(None);
        if result.is_none() {
            self.services
                .stats
                .auth_failures
                .fetch_add(1, Ordering::Relaxed);
            let failures = self.session.auth_failures() + 1;
            tracing::warn!(peer = %self.peer, user = %username, failures, "authentication failed");
            tokio::time::sleep(failure_delay(self.services.auth_failure_delay, failures)).await;
        } else {
            tracing::debug!(peer = %self.peer, user = %username, "authenticated");
        }
        result
    }

    /// Counts messages the session refused itself (sender policy, size, recipients), per
    /// account once the user is known.
    fn count_local_rejections(&mut self) {
        let n = self.session.take_local_rejections();
        if n == 0 {
            return;
        }
        match self.session.submitter() {
            Some(s) => {
                let stats = self.services.stats.account(&s.account);
                (0..n).for_each(|_| stats.count(Outcome::RejectedLocally));
            }
            None => {
                let total = &self.services.stats.rejected_unauthenticated;
                total.fetch_add(u64::from(n), Ordering::Relaxed);
            }
        }
    }

    /// Writes pending replies. A client that stops reading gets the same deadline as one that
    /// stops writing.
    async fn flush(&mut self) -> std::io::Result<()> {
        let out = self.session.output();
        if out.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(out).await?;
            self.stream.flush().await
        };
        let result = tokio::time::timeout(self.services.idle_timeout, write).await;
        out.clear();
        result
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client not reading"))?
    }
}
