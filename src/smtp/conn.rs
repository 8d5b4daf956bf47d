//! The I/O driver of one client connection: reads with deadlines (idle, session lifetime,
//! minimum data rate), feeds the session, writes its replies, and carries out what it asks:
//! check a password, relay a message, upgrade to TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::guard::{IpGuard, LoginKey};
use super::sasl::Credentials;
use super::session::{Action, Session, SessionLimits};
use super::stream::Stream;
use crate::auth::{Argon2Pool, Checked, Users, failure_delay};
use crate::logging::Untrusted;
use crate::message::{Body, Submission, Submit, Submitter};
use crate::reply::{self, Reply};
use crate::spool::{Incoming, Spool};
use crate::stats::{Outcome, Stats};
use crate::swap::Swap;

/// Bytes read from the socket at a time; also the most unconsumed input held while the session
/// waits for a password check or the upstream.
const READ_CHUNK: usize = 16 * 1024;
/// Message data held in memory before it is appended to the message's spool file.
const SPOOL_CHUNK: usize = 64 * 1024;
/// The period over which `min_data_rate` is measured.
const RATE_WINDOW: Duration = Duration::from_secs(60);
/// Longest a TLS handshake may take.
pub(crate) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Once the grace period is over, how long a client gets to read its `421`.
const FORCED_WRITE: Duration = Duration::from_secs(5);

/// What every connection shares. Users and the relay can be replaced by a reload; a session
/// takes the current ones when it needs them.
pub(crate) struct Services {
    pub(crate) users: Swap<Users>,
    /// Runs every argon2 check; outlives reloads of `users`.
    pub(crate) passwords: Arc<Argon2Pool>,
    pub(crate) relay: Arc<dyn Submit>,
    /// Where message data goes as it arrives; `None`: kept in memory (`delivery.mode = "sync"`
    /// without a state directory, and tests).
    pub(crate) spool: Option<Arc<Spool>>,
    pub(crate) idle_timeout: Duration,
    pub(crate) auth_failure_delay: Duration,
    pub(crate) session_lifetime: Duration,
    /// From connect until AUTH must have succeeded; commands do not extend it.
    pub(crate) login_timeout: Duration,
    pub(crate) min_data_rate: usize,
    pub(crate) guard: Arc<IpGuard>,
    pub(crate) stats: Arc<Stats>,
    /// Cancelled when the shutdown grace period is over: a session still open is told
    /// `421 4.3.0` even mid-command, since a client without a 250 still owns its message.
    pub(crate) force: CancellationToken,
}

/// How one listener's sessions behave.
#[derive(Clone)]
pub(crate) struct Listener {
    pub(crate) limits: SessionLimits,
    /// Set when the listener offers STARTTLS or speaks implicit TLS.
    pub(crate) tls: Option<TlsAcceptor>,
    /// TLS from the first byte (SMTPS).
    pub(crate) implicit_tls: bool,
}

/// Why the connection ended, for the debug log.
#[derive(Debug)]
pub(crate) enum Ended {
    Closed,
    ClientLeft,
    Io(std::io::Error),
}

/// Serves one client until it quits, times out, fails too often, or the server shuts down.
pub(crate) async fn serve(
    stream: Stream,
    peer: SocketAddr,
    services: Arc<Services>,
    listener: Listener,
    shutdown: CancellationToken,
    login_slot: Option<OwnedSemaphorePermit>,
) -> Ended {
    let mut session = Session::new(listener.limits.clone());
    if stream.is_tls() {
        session.set_tls();
    }
    if let Some(device) = services.users.load().trusted_for(peer.ip()) {
        tracing::debug!(%peer, user = %device.user, "client trusted by its network address");
        session.trust_network(device);
    }
    session.greet();
    let started = Instant::now();
    let mut conn = Conn {
        stream: Some(stream),
        session,
        services,
        tls: listener.tls,
        peer,
        started,
        login_slot,
        incoming: None,
    };
    conn.release_login_slot();
    match conn.run(&shutdown).await {
        Ok(ended) => ended,
        Err(e) => Ended::Io(e),
    }
}

struct Conn {
    /// `None` only while a STARTTLS handshake owns the socket.
    stream: Option<Stream>,
    session: Session,
    services: Arc<Services>,
    tls: Option<TlsAcceptor>,
    peer: SocketAddr,
    started: Instant,
    /// The connection's place among those not logged in; given back once the client is.
    login_slot: Option<OwnedSemaphorePermit>,
    /// The spool file of the message being received.
    incoming: Option<Incoming>,
}

/// How an AUTH attempt ended, for the session.
enum Login {
    /// `Some` when the password was right.
    Checked(Option<Arc<Submitter>>),
    /// With the reply: the whole address, or this user name at it.
    LockedOut(Reply),
    /// The password could not be checked now.
    Busy,
}

/// When the client last sent something, and the bytes received in the current rate window
/// (counted while the client is in the middle of a command or message).
struct Rate {
    last_read: Instant,
    window_start: Instant,
    bytes: usize,
}

fn io_error(text: &'static str) -> std::io::Error {
    std::io::Error::other(text)
}

impl Conn {
    fn stream(&mut self) -> std::io::Result<&mut Stream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io_error("connection lost during TLS handshake"))
    }

    async fn run(&mut self, shutdown: &CancellationToken) -> std::io::Result<Ended> {
        let mut buf = vec![0u8; READ_CHUNK];
        let now = Instant::now();
        let mut rate = Rate {
            last_read: now,
            window_start: now,
            bytes: 0,
        };
        loop {
            self.flush().await?;
            if self.session.is_closed() {
                return Ok(Ended::Closed);
            }
            let force = self.services.force.clone();
            if force.is_cancelled() {
                self.session.abort(reply::SHUTTING_DOWN);
                continue;
            }
            if shutdown.is_cancelled() && self.session.is_idle() {
                self.session.shutdown();
                continue;
            }
            if let Some(r) = self.deadline_passed(&mut rate) {
                self.session.abort(r);
                continue;
            }
            let deadline = self.read_deadline(&rate);
            let idle = self.session.is_idle();
            let stream = self.stream()?;
            let n = tokio::select! {
                read = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => match read {
                    Ok(read) => read?,
                    Err(_) => continue,
                },
                _ = shutdown.cancelled(), if idle => continue,
                _ = force.cancelled() => continue,
            };
            if n == 0 {
                return Ok(Ended::ClientLeft);
            }
            rate.bytes += n;
            rate.last_read = Instant::now();
            self.process(&buf[..n]).await?;
            self.release_login_slot();
        }
    }

    /// The next read must complete by the earliest of: the idle timeout, the end of the
    /// session's lifetime, and (mid-command or mid-message) the end of the rate window.
    fn read_deadline(&self, rate: &Rate) -> Instant {
        let now = Instant::now();
        let idle = rate.last_read + self.services.idle_timeout;
        let mut deadline = idle.min(self.started + self.services.session_lifetime);
        if !self.logged_in() {
            deadline = deadline.min(self.started + self.services.login_timeout);
        }
        if !self.session.is_idle() {
            deadline = deadline.min(rate.window_start + RATE_WINDOW);
        }
        deadline.max(now)
    }

    /// The reply to close with when a deadline has passed, if one has.
    fn deadline_passed(&mut self, rate: &mut Rate) -> Option<Reply> {
        let now = Instant::now();
        if now >= self.started + self.services.session_lifetime {
            return Some(reply::SESSION_TOO_LONG);
        }
        if now >= rate.last_read + self.services.idle_timeout {
            return Some(reply::IDLE_TIMEOUT);
        }
        if !self.logged_in() && now >= self.started + self.services.login_timeout {
            tracing::info!(peer = %self.peer, "client did not log in in time; closing");
            return Some(reply::LOGIN_TIMEOUT);
        }
        if self.session.is_idle() {
            (rate.window_start, rate.bytes) = (now, 0);
        } else if now >= rate.window_start + RATE_WINDOW {
            let needed = self
                .services
                .min_data_rate
                .saturating_mul(RATE_WINDOW.as_secs() as usize);
            if rate.bytes < needed {
                tracing::info!(peer = %self.peer, bytes = rate.bytes, "client too slow; closing");
                return Some(reply::TOO_SLOW);
            }
            (rate.window_start, rate.bytes) = (now, 0);
        }
        None
    }

    /// True once AUTH succeeded or the client's address is trusted.
    fn logged_in(&self) -> bool {
        self.session.submitter().is_some()
    }

    /// A client that has logged in no longer counts against the share of connections for
    /// those that have not.
    fn release_login_slot(&mut self) {
        if self.logged_in() {
            self.login_slot = None;
        }
    }

    /// Feeds `input` to the session, running each action it asks for, until all is consumed.
    async fn process(&mut self, mut input: &[u8]) -> std::io::Result<()> {
        loop {
            let (used, action) = self.session.feed(input);
            input = &input[used..];
            self.count_local_rejections();
            self.log_refusals();
            self.spool_data(matches!(action, Action::Relay(_))).await;
            match action {
                Action::Read | Action::Close => return Ok(()),
                Action::Authenticate(credentials) => {
                    // Replies to earlier pipelined commands go out before the slow check.
                    self.flush().await?;
                    let next = match self.check_password(credentials).await {
                        Login::Checked(result) => self.session.auth_checked(result),
                        Login::LockedOut(r) => self.session.abort(r),
                        Login::Busy => {
                            self.session.auth_unavailable(reply::AUTH_TEMPORARY);
                            Action::Read
                        }
                    };
                    if let Action::Close = next {
                        return Ok(());
                    }
                }
                Action::Relay(message) => {
                    self.flush().await?;
                    let verdict = match self.spooled(*message).await {
                        Ok(message) => self.services.relay.submit(&message).await,
                        Err(refusal) => refusal,
                    };
                    self.session.relay_finished(verdict);
                }
                Action::StartTls => {
                    // Anything the client pipelined after STARTTLS was sent in clear text and
                    // must not be read as if it came through TLS (CVE-2011-0411): drop it.
                    self.flush().await?;
                    return self.start_tls().await;
                }
            }
        }
    }

    /// Moves what the session holds of the message being received to its spool file, and
    /// drops the file of a message the session refused (too big, bare line endings).
    async fn spool_data(&mut self, relaying: bool) {
        let Some(spool) = self.services.spool.clone() else {
            return;
        };
        if !self.session.receiving_data() {
            if !relaying && let Some(mut incoming) = self.incoming.take() {
                incoming.discard().await;
            }
            return;
        }
        if let Some(chunk) = self.session.take_data(SPOOL_CHUNK) {
            let incoming = match &mut self.incoming {
                Some(incoming) => incoming,
                None => self.incoming.insert(Incoming::create(spool).await),
            };
            incoming.write(&chunk).await;
        }
    }

    /// The finished message with its content in its spool file (when there is a spool), or the
    /// reply for a message that could not be stored.
    async fn spooled(&mut self, mut message: Submission) -> Result<Submission, Reply> {
        // A message smaller than one spool chunk stays in memory: it goes to disk only if it
        // has to be queued.
        let Some(mut incoming) = self.incoming.take() else {
            return Ok(message);
        };
        if let Body::Memory(rest) = message.take_body() {
            incoming.write(&rest).await;
        }
        let id = incoming.id.clone();
        match incoming.finish().await {
            Ok(file) => {
                message.set_body(Body::File(file));
                Ok(message)
            }
            Err(why) => {
                let user = &message.submitter.user;
                tracing::error!(peer = %self.peer, user = %Untrusted(user), id, reason = %why, "message not stored: 452 to the client");
                Err(why.reply())
            }
        }
    }

    async fn start_tls(&mut self) -> std::io::Result<()> {
        let (Some(acceptor), Some(Stream::Plain(tcp))) = (self.tls.clone(), self.stream.take())
        else {
            return Err(io_error("STARTTLS without a TLS configuration"));
        };
        let accepted = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
        match accepted {
            Ok(Ok(tls)) => {
                self.stream = Some(Stream::Tls(Box::new(tls)));
                self.session.tls_started();
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io_error("TLS handshake timed out")),
        }
    }

    /// Counts the guess against the address before checking, and answers a failure at a fixed
    /// time after the check started, so how long the check took (which user, which kind of
    /// password, how busy the pool was) does not show.
    async fn check_password(&mut self, c: Credentials) -> Login {
        let started = Instant::now();
        let users = self.services.users.load();
        let key = LoginKey::for_login(self.peer.ip(), &c.username, users.knows(&c.username));
        let per_user = key.is_per_user();
        let Ok(guess) = self.services.guard.reserve(key).await else {
            let stats = &self.services.stats;
            stats.lockout_refusals.fetch_add(1, Ordering::Relaxed);
            tracing::info!(peer = %self.peer, user = %Untrusted(&c.username), per_user, "AUTH refused: locked out after failed logins");
            let r = if per_user {
                reply::USER_LOCKED_OUT
            } else {
                reply::IP_LOCKED_OUT
            };
            return Login::LockedOut(r);
        };
        let checked = users
            .check(&self.services.passwords, &c.username, &c.password)
            .await;
        let base = self.services.auth_failure_delay;
        match checked {
            Checked::Accepted(submitter) => {
                guess.succeeded();
                tracing::debug!(peer = %self.peer, user = %Untrusted(&c.username), "authenticated");
                return Login::Checked(Some(submitter));
            }
            Checked::Busy => {
                drop(guess);
                tracing::warn!(peer = %self.peer, "AUTH answered 454: too many password checks waiting");
                tokio::time::sleep_until(started + base).await;
                return Login::Busy;
            }
            Checked::Rejected => {}
        }
        self.services
            .stats
            .auth_failures
            .fetch_add(1, Ordering::Relaxed);
        let failure = guess.failed();
        let failures = failure.failures.max(self.session.auth_failures() + 1);
        tracing::warn!(peer = %self.peer, user = %Untrusted(&c.username), failures, "authentication failed");
        if failure.locked_out {
            let lockout = self.services.guard.lockout_duration();
            if per_user {
                tracing::warn!(address = %self.peer.ip(), user = %Untrusted(&c.username), failures, ?lockout, "user name locked out at this address after repeated failed logins (SIGHUP clears it)");
            } else {
                tracing::warn!(address = %self.peer.ip(), failures, ?lockout, "address locked out after repeated failed logins (SIGHUP clears it)");
            }
        }
        tokio::time::sleep_until(started + failure_delay(base, failures)).await;
        Login::Checked(None)
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

    /// One line per message the session refused itself, and one for a TLS handshake sent in
    /// clear, so an operator can answer "why did this not go out" from the log.
    fn log_refusals(&mut self) {
        if self.session.take_tls_in_clear() {
            tracing::info!(peer = %self.peer, "client sent a TLS handshake to a plain-text port (it wants implicit TLS or should use STARTTLS); closing");
        }
        let refusals = self.session.take_refusals();
        if refusals.is_empty() {
            return;
        }
        let user = self.session.submitter().map_or("-", |s| s.user.as_str());
        for r in refusals {
            tracing::info!(peer = %self.peer, user = %Untrusted(user), sender = %Untrusted(&r.sender), reason = r.reason, "message refused locally");
        }
    }

    /// Writes pending replies. A client that stops reading gets the same deadline as one that
    /// stops writing.
    async fn flush(&mut self) -> std::io::Result<()> {
        if self.session.output().is_empty() {
            return Ok(());
        }
        let out = std::mem::take(self.session.output());
        let force = self.services.force.clone();
        let limit = if force.is_cancelled() {
            FORCED_WRITE.min(self.services.idle_timeout)
        } else {
            self.services.idle_timeout
        };
        let stream = self.stream()?;
        let write = async {
            stream.write_all(&out).await?;
            stream.flush().await
        };
        // A write still stuck when the grace period ends is abandoned, not waited for.
        let result = tokio::select! {
            result = tokio::time::timeout(limit, write) => result,
            _ = force.cancelled(), if !force.is_cancelled() => {
                return Err(io_error("shutdown grace period over while writing"));
            }
        };
        let mut out = out;
        out.clear();
        *self.session.output() = out;
        result
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client not reading"))?
    }
}
