//! The SMTP upstream: STARTTLS connections to the account's SMTP host, authenticated with the
//! two-step `AUTH XOAUTH2` (or, for Azure Communication Services, `AUTH LOGIN` with a user name
//! and password), then per message MAIL, every RCPT and DATA. A session that carried a
//! message is kept for the next one (see `pool`), which starts with `RSET`.
//!
//! Built on mail-send's `SmtpClient` for reply parsing and the STARTTLS upgrade; the XOAUTH2
//! exchange and the DATA transfer are written here (mail-send's XOAUTH2 answers the error
//! challenge by sending the credentials again, losing the reason, and its DATA would add a line
//! to the body). Each step has its own deadline, and at most `max_connections` conversations
//! are open at once per account, idle ones included.

use std::sync::Arc;
use std::time::Duration;

use mail_send::SmtpClient;
use mail_send::smtp::AssertReply;
use smtp_proto::{
    AUTH_LOGIN, AUTH_XOAUTH2, EXT_8BIT_MIME, EXT_PIPELINING, EXT_SIZE, EXT_SMTP_UTF8,
    EXT_START_TLS, EhloResponse,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::body::write_body;
use super::pool::Pool;
use super::xoauth2;
use super::{Delivered, Mechanism, Phase, Probe, Progress, Upstream, UpstreamError, UpstreamReply};
use crate::BoxFuture;
use crate::address::path;
use crate::config::{Account, Pool as PoolSettings, Timeouts};
use crate::message::{Body, Envelope};
use crate::oauth::AccessToken;
use crate::secret::Secret;

type Tls = SmtpClient<TlsStream<TcpStream>>;

/// How long a probe waits for one of the account's connection slots. When deliveries hold
/// them all, the account is evidently in use: the probe gives way ([`UpstreamError::Busy`])
/// instead of queueing behind them, and never opens a session beyond `max_connections`.
pub(crate) const PROBE_SLOT_WAIT: Duration = Duration::from_secs(1);

pub(crate) struct SmtpUpstream {
    host: String,
    port: u16,
    mailbox: String,
    helo: String,
    tls: TlsConnector,
    timeouts: Timeouts,
    slots: Arc<Semaphore>,
    max_slots: usize,
    pool: Arc<Pool>,
    /// Set for accounts that sign in with a user name and password (`AUTH LOGIN`) instead of
    /// a token; the token they are handed is then not used.
    login: Option<Login>,
}

/// `AUTH LOGIN` credentials: Azure Communication Services' SMTP Username and the Entra app's
/// client secret as the password.
#[derive(Clone)]
pub(crate) struct Login {
    pub(crate) user: String,
    pub(crate) password: Secret<String>,
}

/// What a session authenticates with.
enum Credential<'a> {
    Token(&'a AccessToken),
    Login(&'a Login),
}

/// A login has no refresh point of its own; a session on it ends by the pool's age and idle
/// limits only.
const LOGIN_GOOD_FOR: Duration = Duration::from_secs(365 * 24 * 3600);

/// An authenticated upstream connection and what the server offered after STARTTLS.
pub(crate) struct Conversation {
    client: Tls,
    caps: EhloResponse<String>,
    timeouts: Timeouts,
    pub(super) opened: Instant,
    /// When its last message ended (or it was opened).
    pub(super) last_used: Instant,
    /// The refresh point of the token it authenticated with: after it, Exchange may end the
    /// session any moment, so it carries no new message.
    pub(super) token_good_until: Instant,
    /// Messages delivered on it.
    pub(super) messages: u32,
    /// It came from the idle list (it carried a message before).
    pub(super) reused: bool,
    /// The server said `354` to a pipelined DATA whose message is not going to be sent: every
    /// byte from here would be message data, so the connection is dropped without QUIT.
    in_data: bool,
    _slot: OwnedSemaphorePermit,
}

/// Why a transaction failed, and whether the message may go on a fresh session: only when the
/// session was reused and it ended before any of the message (the DATA command included) was
/// sent.
struct Failure {
    error: UpstreamError,
    stale: bool,
}

impl From<UpstreamError> for Failure {
    fn from(error: UpstreamError) -> Self {
        Failure {
            error,
            stale: false,
        }
    }
}

impl SmtpUpstream {
    pub(crate) fn new(
        account: &Account,
        helo: &str,
        tls: Arc<rustls::ClientConfig>,
        timeouts: &Timeouts,
        pool: &PoolSettings,
    ) -> Self {
        Self {
            host: account.smtp_host.clone(),
            port: account.smtp_port,
            mailbox: account.mailbox.clone(),
            helo: helo.to_string(),
            tls: TlsConnector::from(tls),
            timeouts: timeouts.clone(),
            slots: Arc::new(Semaphore::new(account.max_connections)),
            max_slots: account.max_connections,
            pool: Pool::new(pool.clone()),
            login: account.smtp_username.as_ref().map(|user| Login {
                user: user.clone(),
                password: account.client_secret.clone(),
            }),
        }
    }

    /// Waits (bounded) for a free connection slot, so Exchange never sees more than
    /// `max_connections` sessions for this mailbox (a 4th would get `432 4.3.2`).
    async fn slot(&self, wait: Duration) -> Result<OwnedSemaphorePermit, UpstreamError> {
        let busy = UpstreamError::Busy {
            slots: self.max_slots,
            waited: wait,
        };
        match tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(busy),
        }
    }

    /// An authenticated session, holding one of the account's connection slots: an idle one
    /// if there is one, else a new one in a free slot, else whichever of the two comes first
    /// within `slot_wait`.
    async fn session(
        &self,
        token: &AccessToken,
        slot_wait: Duration,
    ) -> Result<Conversation, UpstreamError> {
        let deadline = Instant::now() + slot_wait;
        loop {
            // Registered before looking, so a session given back in between is not missed.
            let returned = self.pool.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(c) = self.pool.take() {
                return Ok(c);
            }
            let slot = tokio::select! {
                slot = self.slots.clone().acquire_owned() => slot,
                _ = &mut returned => continue,
                _ = tokio::time::sleep_until(deadline) => return Err(self.busy(slot_wait)),
            };
            let slot = slot.map_err(|_| self.busy(slot_wait))?;
            return self.open(slot, token).await;
        }
    }

    fn busy(&self, waited: Duration) -> UpstreamError {
        UpstreamError::Busy {
            slots: self.max_slots,
            waited,
        }
    }

    async fn open(
        &self,
        slot: OwnedSemaphorePermit,
        token: &AccessToken,
    ) -> Result<Conversation, UpstreamError> {
        let t = &self.timeouts;
        let tcp = self.connect().await?;
        let mut plain = SmtpClient {
            stream: tcp,
            timeout: t.upstream_greeting,
        };
        step(Phase::Greeting, t.upstream_greeting, async {
            plain.read().await?.assert_positive_completion()
        })
        .await?;
        plain.timeout = t.upstream_command;
        let caps = step(Phase::Ehlo, t.upstream_command, plain.ehlo(&self.helo)).await?;
        if !caps.has_capability(EXT_START_TLS) {
            return Err(UpstreamError::NoStartTls);
        }
        let mut client = step(
            Phase::StartTls,
            t.upstream_command,
            plain.start_tls(&self.tls, &self.host),
        )
        .await?;
        // RFC 3207: forget everything learned before TLS and ask again.
        let caps = step(Phase::Ehlo, t.upstream_command, client.ehlo(&self.helo)).await?;
        let now = Instant::now();
        let mut conversation = Conversation {
            client,
            caps,
            timeouts: t.clone(),
            opened: now,
            last_used: now,
            token_good_until: match self.login {
                Some(_) => now + LOGIN_GOOD_FOR,
                None => token.refresh_at(),
            },
            messages: 0,
            reused: false,
            in_data: false,
            _slot: slot,
        };
        let credential = match &self.login {
            Some(login) => Credential::Login(login),
            None => Credential::Token(token),
        };
        conversation.authenticate(&self.mailbox, credential).await?;
        Ok(conversation)
    }

    async fn connect(&self) -> Result<TcpStream, UpstreamError> {
        let after = self.timeouts.upstream_connect;
        let addr = (self.host.as_str(), self.port);
        let connect_error = |detail: String| UpstreamError::Connect {
            host: format!("{}:{}", self.host, self.port),
            detail,
        };
        let tcp = tokio::time::timeout(after, TcpStream::connect(addr))
            .await
            .map_err(|_| UpstreamError::Timeout {
                phase: Phase::Connect,
                after,
            })?
            .map_err(|e| connect_error(e.to_string()))?;
        // mail-send writes commands and body pieces separately; without this each would wait
        // for the delayed ACK (Nagle), about 40 ms each.
        tcp.set_nodelay(true)
            .map_err(|e| connect_error(e.to_string()))?;
        Ok(tcp)
    }

    async fn send(
        &self,
        token: &AccessToken,
        envelope: &Envelope,
        body: &Body,
        progress: &Progress,
    ) -> Result<Delivered, UpstreamError> {
        let wait = self.timeouts.upstream_slot_wait;
        let mut conversation = self.session(token, wait).await?;
        loop {
            let reused = conversation.reused;
            match conversation.transaction(envelope, body, progress).await {
                Ok(reply) => {
                    conversation.messages += 1;
                    conversation.last_used = Instant::now();
                    self.pool.give_back(conversation);
                    return Ok(Delivered { reply, reused });
                }
                Err(Failure { error, stale: true }) => {
                    // The server closed it while it was idle: nothing of the message was
                    // sent, so it goes once more, on a new session.
                    tracing::debug!(error = %error, "idle upstream session was closed by the server; opening a new one");
                    drop(conversation);
                    let slot = self.slot(wait).await?;
                    conversation = self.open(slot, token).await?;
                }
                Err(Failure { error, .. }) => {
                    conversation.close_in_background();
                    return Err(error);
                }
            }
        }
    }

    /// An idle session answering `NOOP` proves the account as well as a new login and costs
    /// one round trip; without one, a new session is opened and closed again.
    async fn check(&self, token: &AccessToken) -> Result<Probe, UpstreamError> {
        while let Some(mut conversation) = self.pool.take() {
            if conversation.noop().await {
                let probe = conversation.probe();
                // Not a use: the probe does not extend its idle time.
                self.pool.give_back(conversation);
                return Ok(probe);
            }
        }
        let slot = self.slot(PROBE_SLOT_WAIT).await?;
        let conversation = self.open(slot, token).await?;
        let probe = conversation.probe();
        conversation.close_in_background();
        Ok(probe)
    }

    /// Closes the idle sessions with QUIT and keeps none from now on.
    async fn close_idle(&self) {
        self.pool.close().await;
    }
}

impl Drop for SmtpUpstream {
    fn drop(&mut self) {
        self.pool.stop_sweeping();
    }
}

impl Upstream for SmtpUpstream {
    fn deliver<'a>(
        &'a self,
        token: &'a AccessToken,
        envelope: &'a Envelope,
        body: &'a Body,
        progress: &'a Progress,
    ) -> BoxFuture<'a, Result<Delivered, UpstreamError>> {
        Box::pin(self.send(token, envelope, body, progress))
    }

    fn probe<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, Result<Probe, UpstreamError>> {
        Box::pin(self.check(token))
    }

    fn active_sessions(&self) -> usize {
        self.max_slots
            .saturating_sub(self.slots.available_permits())
    }

    fn idle_sessions(&self) -> usize {
        self.pool.idle_count()
    }

    fn close_idle(&self) -> BoxFuture<'_, ()> {
        Box::pin(SmtpUpstream::close_idle(self))
    }
}

impl Conversation {
    async fn authenticate(
        &mut self,
        mailbox: &str,
        credential: Credential<'_>,
    ) -> Result<(), UpstreamError> {
        match credential {
            Credential::Token(token) => self.xoauth2(mailbox, token).await,
            Credential::Login(login) => self.login(login).await,
        }
    }

    /// `AUTH LOGIN` (draft-murchison-sasl-login; RFC 4954 §4 for the exchange): `334` for the
    /// user name, `334` for the password, each answered with its base64 on a line of its own.
    /// The challenges' texts are not checked: the order is fixed by the mechanism.
    async fn login(&mut self, login: &Login) -> Result<(), UpstreamError> {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        if self.caps.auth_mechanisms & AUTH_LOGIN == 0 {
            let offered = extension_names(&self.caps).join(" ");
            return Err(UpstreamError::NoLogin { offered });
        }
        let deadline = self.timeouts.upstream_command;
        let refused = |reply: smtp_proto::Response<String>| UpstreamError::AuthRejected {
            mechanism: Mechanism::Login,
            reply: reply.into(),
            challenge: None,
        };
        let go_ahead = step(Phase::Auth, deadline, self.client.cmd(b"AUTH LOGIN\r\n")).await?;
        if go_ahead.code != 334 {
            return Err(refused(go_ahead));
        }
        let user = format!("{}\r\n", STANDARD.encode(&login.user));
        let asked = step(Phase::Auth, deadline, self.client.cmd(user.as_bytes())).await?;
        if asked.code != 334 {
            return Err(refused(asked));
        }
        let password = Secret::new(format!("{}\r\n", STANDARD.encode(login.password.expose())));
        let reply = step(
            Phase::Auth,
            deadline,
            self.client.cmd(password.expose().as_bytes()),
        )
        .await?;
        match reply.code {
            235 => Ok(()),
            _ => Err(refused(reply)),
        }
    }

    /// `AUTH XOAUTH2`, `334`, then the blob on its own line: an Entra token makes the one-line
    /// form longer than the 512-octet command limit (RFC 4954 §4 and RFC 5321 §4.5.3.1.4: a command line is at most 512 octets).
    async fn xoauth2(&mut self, mailbox: &str, token: &AccessToken) -> Result<(), UpstreamError> {
        if self.caps.auth_mechanisms & AUTH_XOAUTH2 == 0 {
            let offered = extension_names(&self.caps).join(" ");
            return Err(UpstreamError::NoXoauth2 { offered });
        }
        let deadline = self.timeouts.upstream_command;
        let go_ahead = step(Phase::Auth, deadline, self.client.cmd(b"AUTH XOAUTH2\r\n")).await?;
        if go_ahead.code != 334 {
            return Err(UpstreamError::AuthRejected {
                mechanism: Mechanism::Xoauth2,
                reply: go_ahead.into(),
                challenge: None,
            });
        }
        let blob = xoauth2::client_response(mailbox, token.value.expose());
        let line = format!("{}\r\n", blob.expose());
        let reply = step(Phase::Auth, deadline, self.client.cmd(line.as_bytes())).await?;
        match reply.code {
            235 => Ok(()),
            334 => {
                // The server explains the refusal in a challenge and expects an empty reply.
                let challenge = xoauth2::decode_challenge(&reply.message);
                let last = step(Phase::Auth, deadline, self.client.cmd(b"\r\n")).await?;
                Err(UpstreamError::AuthRejected {
                    mechanism: Mechanism::Xoauth2,
                    reply: last.into(),
                    challenge,
                })
            }
            _ => Err(UpstreamError::AuthRejected {
                mechanism: Mechanism::Xoauth2,
                reply: reply.into(),
                challenge: None,
            }),
        }
    }

    /// (`RSET` on a reused session,) MAIL, every RCPT, DATA; all recipients or none. With
    /// PIPELINING they go in one write (RFC 2920 §3.1: DATA last in the group), so a message on
    /// a warm session costs two round trips: the envelope, then the body and its final dot.
    async fn transaction(
        &mut self,
        envelope: &Envelope,
        body: &Body,
        progress: &Progress,
    ) -> Result<UpstreamReply, Failure> {
        let mail = self.mail_command(envelope, body.len())?;
        let pipelined = self.caps.has_capability(EXT_PIPELINING);
        let mut commands = Vec::with_capacity(envelope.rcpts.len() + 3);
        if self.reused {
            commands.push("RSET\r\n".to_string());
        }
        commands.push(mail);
        commands.extend(
            envelope
                .rcpts
                .iter()
                .map(|r| ["RCPT TO:", &path(Some(r)), "\r\n"].concat()),
        );
        if pipelined {
            commands.push("DATA\r\n".to_string());
        }
        let mut replies = match self.envelope_replies(&commands).await {
            Ok(replies) => replies,
            Err(error) => {
                let stale = self.reused && closed_under_us(&error);
                return Err(Failure { error, stale });
            }
        };
        let go = if pipelined { replies.pop() } else { None };
        // A 354 to a DATA whose message will not follow leaves the server reading message
        // data; only dropping the connection ends that without delivering anything.
        self.in_data = go.as_ref().is_some_and(|r| r.code == 354);
        let replies = if self.reused {
            check_reset(&replies)?
        } else {
            &replies[..]
        };
        if let Err(error) = check_envelope(replies, envelope) {
            let stale = self.reused && replies.first().is_some_and(|r| r.code == 421);
            if !stale && !self.in_data {
                self.reset().await;
            }
            return Err(Failure { error, stale });
        }
        let go = match go {
            Some(go) => go,
            None => self.data_command().await?,
        };
        Ok(self.data(go, body, progress).await?)
    }

    /// `NOOP` answered with `250` within the command deadline.
    async fn noop(&mut self) -> bool {
        let deadline = self.timeouts.upstream_command;
        matches!(
            tokio::time::timeout(deadline, self.client.cmd(b"NOOP\r\n")).await,
            Ok(Ok(reply)) if reply.code == 250
        )
    }

    fn probe(&self) -> Probe {
        Probe {
            tls_version: self
                .client
                .tls_connection()
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
        }
    }

    fn mail_command(&self, envelope: &Envelope, size: u64) -> Result<String, UpstreamError> {
        let mut mail = ["MAIL FROM:", &path(envelope.mail_from.as_ref())].concat();
        if self.caps.has_capability(EXT_SIZE) {
            mail.push_str(&format!(" SIZE={size}"));
        }
        if envelope.body_8bitmime {
            if !self.caps.has_capability(EXT_8BIT_MIME) {
                return Err(UpstreamError::Unsupported("8BITMIME"));
            }
            mail.push_str(" BODY=8BITMIME");
        }
        // The session refuses non-ASCII addresses without SMTPUTF8; this keeps the promise
        // even for an envelope built elsewhere.
        let non_ascii = envelope
            .mail_from
            .iter()
            .chain(&envelope.rcpts)
            .any(|a| !a.is_ascii());
        if envelope.smtputf8 || non_ascii {
            if !self.caps.has_capability(EXT_SMTP_UTF8) {
                return Err(UpstreamError::Unsupported("SMTPUTF8"));
            }
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");
        Ok(mail)
    }

    /// The replies to (RSET,) MAIL and each RCPT, pipelined in one write when the server
    /// allows it (RFC 2920 §3.1: RSET, MAIL and RCPT may stand anywhere in a group).
    async fn envelope_replies(
        &mut self,
        commands: &[String],
    ) -> Result<Vec<UpstreamReply>, UpstreamError> {
        let deadline = self.timeouts.upstream_command;
        if !self.caps.has_capability(EXT_PIPELINING) {
            let mut replies = Vec::with_capacity(commands.len());
            for command in commands {
                let phase = match command.get(..4) {
                    Some("RSET") => Phase::Rset,
                    Some("MAIL") => Phase::Mail,
                    _ => Phase::Rcpt,
                };
                replies.push(
                    step(phase, deadline, self.client.cmd(command.as_bytes()))
                        .await?
                        .into(),
                );
            }
            return Ok(replies);
        }
        let batch = commands.concat();
        let stream = &mut self.client.stream;
        step(Phase::Rcpt, deadline, async {
            stream.write_all(batch.as_bytes()).await?;
            Ok(stream.flush().await?)
        })
        .await?;
        // Each reply within the deadline of its own command: a pipelined DATA gets the DATA
        // initiation deadline, the rest the command deadline.
        let mut reader = ReplyReader::default();
        let mut replies = Vec::with_capacity(commands.len());
        for command in commands {
            let (phase, deadline) = match command.as_str() {
                "DATA\r\n" => (Phase::DataStart, self.timeouts.upstream_data_start),
                _ => (Phase::Rcpt, deadline),
            };
            let reply = step(phase, deadline, reader.next(&mut self.client.stream)).await?;
            replies.push(UpstreamReply::from(reply));
        }
        Ok(replies)
    }

    async fn data_command(&mut self) -> Result<UpstreamReply, UpstreamError> {
        let deadline = self.timeouts.upstream_data_start;
        let go = step(Phase::DataStart, deadline, self.client.cmd(b"DATA\r\n")).await?;
        Ok(go.into())
    }

    /// The body after the reply `go` to DATA, then the verdict on it.
    async fn data(
        &mut self,
        go: UpstreamReply,
        body: &Body,
        progress: &Progress,
    ) -> Result<UpstreamReply, UpstreamError> {
        let t = self.timeouts.clone();
        if go.code != 354 {
            return Err(UpstreamError::Rejected {
                phase: Phase::DataStart,
                reply: go,
                recipient: None,
            });
        }
        self.in_data = false;
        write_body(
            &mut self.client.stream,
            body,
            t.upstream_data_block,
            progress,
        )
        .await?;
        let client = &mut self.client;
        let verdict: UpstreamReply = step(Phase::DataEnd, t.upstream_data_end, client.read())
            .await?
            .into();
        if (200..300).contains(&verdict.code) {
            Ok(verdict)
        } else {
            Err(UpstreamError::Rejected {
                phase: Phase::DataEnd,
                reply: verdict,
                recipient: None,
            })
        }
    }

    /// Cancels the upstream transaction after a refused recipient, so nobody gets the message.
    /// The connection is dropped right after, so a failure here changes nothing.
    async fn reset(&mut self) {
        let deadline = self.timeouts.upstream_command;
        let _ = tokio::time::timeout(deadline, self.client.rset()).await;
    }

    /// Says QUIT without making the client wait for it; the connection slot is released only
    /// once the connection is really closed.
    pub(super) fn close_in_background(self) {
        tokio::spawn(self.quit());
    }

    /// Says QUIT (waiting a bounded time for the reply), then releases the slot.
    pub(super) fn quit(self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let deadline = self.timeouts.upstream_command.min(Duration::from_secs(30));
        async move {
            let Conversation {
                client,
                _slot,
                in_data,
                ..
            } = self;
            if !in_data {
                let _ = tokio::time::timeout(deadline, client.quit()).await;
            }
        }
    }
}

/// Reads replies one at a time from a pipelined group, keeping the bytes of later replies that
/// arrive in the same read as an earlier one.
#[derive(Default)]
struct ReplyReader {
    parser: smtp_proto::response::parser::ResponseReceiver,
    held: Vec<u8>,
    at: usize,
}

impl ReplyReader {
    async fn next<S: tokio::io::AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> mail_send::Result<smtp_proto::Response<String>> {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 1024];
        loop {
            let mut bytes = self.held[self.at..].iter();
            match self.parser.parse(&mut bytes) {
                Ok(reply) => {
                    self.at = self.held.len() - bytes.len();
                    self.parser.reset();
                    return Ok(reply);
                }
                // The parser keeps what it has consumed so far.
                Err(smtp_proto::Error::NeedsMoreData { .. }) => {
                    self.held.clear();
                    self.at = 0;
                }
                Err(_) => return Err(mail_send::Error::UnparseableReply),
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                return Err(mail_send::Error::Io(eof));
            }
            self.held.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The connection ended (or broke) before a reply came: how a session the server closed while
/// it was idle shows itself on its next use.
fn closed_under_us(error: &UpstreamError) -> bool {
    matches!(
        error,
        UpstreamError::Io { .. } | UpstreamError::Protocol { .. }
    )
}

/// The replies after that to `RSET`, which must be `250`. Anything else (`421`: the server
/// ended the idle session) says only that the session is no good, nothing about the message,
/// which then goes on a new session.
fn check_reset(replies: &[UpstreamReply]) -> Result<&[UpstreamReply], Failure> {
    let Some((reset, rest)) = replies.split_first() else {
        return Err(Failure {
            stale: true,
            error: UpstreamError::Protocol {
                phase: Phase::Rset,
                detail: "no reply to RSET".into(),
            },
        });
    };
    if reset.code == 250 {
        return Ok(rest);
    }
    Err(Failure {
        stale: true,
        error: UpstreamError::Rejected {
            phase: Phase::Rset,
            reply: reset.clone(),
            recipient: None,
        },
    })
}

/// The first refused reply of MAIL or a recipient, as an error.
fn check_envelope(replies: &[UpstreamReply], envelope: &Envelope) -> Result<(), UpstreamError> {
    let mut replies = replies.iter();
    let mail = replies.next().ok_or_else(|| UpstreamError::Protocol {
        phase: Phase::Mail,
        detail: "no reply to MAIL FROM".into(),
    })?;
    if !(200..300).contains(&mail.code) {
        return Err(UpstreamError::Rejected {
            phase: Phase::Mail,
            reply: mail.clone(),
            recipient: None,
        });
    }
    for (reply, rcpt) in replies.zip(&envelope.rcpts) {
        if !(200..300).contains(&reply.code) {
            return Err(UpstreamError::Rejected {
                phase: Phase::Rcpt,
                reply: reply.clone(),
                recipient: Some(rcpt.to_string()),
            });
        }
    }
    Ok(())
}

/// Runs one upstream step under its deadline, mapping every failure to the phase.
async fn step<T>(
    phase: Phase,
    after: Duration,
    fut: impl std::future::Future<Output = mail_send::Result<T>>,
) -> Result<T, UpstreamError> {
    match tokio::time::timeout(after, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(UpstreamError::from_mail_send(phase, after, e)),
        Err(_) => Err(UpstreamError::Timeout { phase, after }),
    }
}

fn extension_names(caps: &EhloResponse<String>) -> Vec<String> {
    let mut names = Vec::new();
    let mut text = Vec::new();
    let _ = caps.write(&mut text);
    for line in String::from_utf8_lossy(&text).lines().skip(1) {
        names.push(line.get(4..).unwrap_or_default().to_string());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe finding every slot taken by deliveries gives way after its short deadline
    /// instead of queueing for the delivery's (a minute) or opening another session.
    #[tokio::test(start_paused = true)]
    async fn a_probe_gives_way_when_every_slot_is_in_use() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut account = crate::testkit::relay_config::example_account();
        account.smtp_host = "127.0.0.1".into();
        account.smtp_port = listener.local_addr().unwrap().port();
        account.max_connections = 1;
        let tls = crate::tls::client_config(&[]).unwrap();
        let upstream = SmtpUpstream::new(
            &account,
            "relay.test",
            tls,
            &Timeouts::default(),
            &PoolSettings::default(),
        );
        let _delivery = upstream.slot(Duration::ZERO).await.unwrap();
        let token = AccessToken::new("t".into(), Duration::from_secs(3600));
        let started = tokio::time::Instant::now();
        let probed = upstream.probe(&token).await;
        assert!(
            matches!(probed, Err(UpstreamError::Busy { .. })),
            "{probed:?}"
        );
        assert_eq!(started.elapsed(), PROBE_SLOT_WAIT);
        let accepted = tokio::time::timeout(Duration::ZERO, listener.accept()).await;
        assert!(accepted.is_err(), "no session was opened");
    }

    /// A probe on an account with an idle session asks it `NOOP` (one round trip, no new
    /// login) and leaves it idle for the next message.
    #[tokio::test]
    async fn a_probe_borrows_an_idle_session() {
        use crate::testkit::{FakeUpstream, TestPki, TokenRegistry};
        crate::tls::install_crypto_provider();
        let pki = TestPki::new().unwrap();
        let registry = TokenRegistry::new();
        let fake = FakeUpstream::start(&pki, registry.clone()).unwrap();
        let mut account = crate::testkit::relay_config::example_account();
        account.smtp_host = "127.0.0.1".into();
        account.smtp_port = fake.port();
        account.extra_roots = vec![pki.ca_der()];
        let tls = crate::tls::client_config(&account.extra_roots).unwrap();
        let pool = PoolSettings::default();
        let upstream = SmtpUpstream::new(&account, "relay.test", tls, &Timeouts::default(), &pool);
        let token = AccessToken::new(
            registry.issue_for_test("contoso", "app"),
            Duration::from_secs(3600),
        );
        let envelope = Envelope {
            mail_from: Some(crate::address::Address::parse("a@contoso.com").unwrap()),
            rcpts: vec![crate::address::Address::parse("b@example.net").unwrap()],
            ..Envelope::default()
        };
        let sent = upstream
            .deliver(
                &token,
                &envelope,
                &Body::Memory(b"hi\r\n".to_vec()),
                &Progress::default(),
            )
            .await
            .unwrap();
        assert!(!sent.reused);
        upstream.probe(&token).await.unwrap();
        assert_eq!(upstream.idle_sessions(), 1);
        let sent = upstream
            .deliver(
                &token,
                &envelope,
                &Body::Memory(b"hi\r\n".to_vec()),
                &Progress::default(),
            )
            .await
            .unwrap();
        assert!(sent.reused);
        assert_eq!(fake.connections(), 1);
        let verbs = &fake.transcripts()[0];
        assert_eq!(
            verbs[verbs.len() - 5..],
            ["NOOP", "RSET", "MAIL", "RCPT", "DATA"],
            "{verbs:?}"
        );
        assert_eq!(fake.auth_attempts(), 1);
    }
}
