//! `FakeUpstream`: an SMTP server that behaves like `smtp.office365.com:587` (STARTTLS, then
//! `AUTH XOAUTH2` against a [`TokenRegistry`], or, when scripted, Azure Communication Services'
//! `AUTH LOGIN`), driven by a [`Script`] that tests change while it
//! runs, and recording every accepted message.
//!
//! Changing the script:
//! ```no_run
//! # use xoauth_relay::testkit::{FakeUpstream, Phase};
//! # fn demo(fake: &FakeUpstream) {
//! fake.script(|s| {
//!     s.mail_reply = Some("451 4.3.0 Try later".into());
//!     s.rcpt_replies.insert("nobody@contoso.test".into(), "550 5.1.1 User unknown".into());
//!     s.hang_at = Some(Phase::DataEnd);
//! });
//! # }
//! ```
//! Every command reads the script when it runs, so a change affects open sessions too.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use super::pki::TestPki;
use super::server_task::{ServerTask, spawn_loopback_server};
use super::smtp_session::Session;
use super::tokens::TokenRegistry;

/// Host name the fake announces in its greeting and replies.
pub const HOSTNAME: &str = "fake.outlook.test";

/// Default maximum message size accepted after DATA (200 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 200 * 1024 * 1024;

/// A point in the SMTP conversation, for [`Script::hang_at`] and [`Script::drop_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Instead of the 220 greeting.
    Greeting,
    /// On EHLO or HELO.
    Ehlo,
    /// On STARTTLS.
    StartTls,
    /// On the AUTH command (before any 334).
    Auth,
    /// On MAIL FROM.
    Mail,
    /// On RCPT TO.
    Rcpt,
    /// On the DATA command (instead of 354).
    DataStart,
    /// After the final dot (instead of the 250).
    DataEnd,
}

/// How the fake behaves. Reply overrides are whole reply lines such as
/// `"550 5.1.1 User unknown"`; a `\n` inside makes a multi-line reply.
#[derive(Debug, Clone)]
pub struct Script {
    /// Advertise and accept STARTTLS (default true).
    pub offer_starttls: bool,
    /// Advertise and accept `AUTH XOAUTH2` after TLS (default true).
    pub advertise_xoauth2: bool,
    /// `SIZE` value advertised; `None` leaves the keyword out (default 157286400).
    pub size: Option<usize>,
    /// Advertise `PIPELINING` (default true; pipelined input is processed either way).
    pub pipelining: bool,
    /// Advertise `DSN` (default true).
    pub dsn: bool,
    /// Advertise `ENHANCEDSTATUSCODES` (default true).
    pub enhanced_status_codes: bool,
    /// Advertise `8BITMIME` (default true).
    pub eight_bit_mime: bool,
    /// Advertise `BINARYMIME` (default true).
    pub binary_mime: bool,
    /// Advertise `CHUNKING` (default true; BDAT is still answered with 502).
    pub chunking: bool,
    /// Advertise `SMTPUTF8` (default true).
    pub smtputf8: bool,
    /// Answer every XOAUTH2 attempt with this reply; a 2xx code counts as success.
    pub auth_reply: Option<String>,
    /// Google-style failure: answer the blob with `334 base64(json)`, wait for the client's
    /// (empty) line, then send `535 5.7.8`.
    pub auth_json_challenge: Option<String>,
    /// Only these XOAUTH2 users may log in (case-insensitive); `None` allows any.
    pub allowed_users: Option<Vec<String>>,
    /// Require the `SMTP.SendAsApp` role (app tokens) or the `SMTP.Send` scope (a user's
    /// token) in the token, as Exchange does (default true).
    pub require_send_role: bool,
    /// More authenticated sessions than this at once get `432 4.3.2` at AUTH.
    pub max_concurrent_sessions: Option<usize>,
    /// Reply to RSET; a `421` closes the connection after it (an idle session ended).
    pub rset_reply: Option<String>,
    /// Reply to MAIL FROM; a 2xx code still starts the transaction.
    pub mail_reply: Option<String>,
    /// Reply to every RCPT TO without an entry in `rcpt_replies`.
    pub rcpt_reply: Option<String>,
    /// Reply per recipient, keyed by lower-case address; 2xx adds the recipient.
    pub rcpt_replies: HashMap<String, String>,
    /// Reply to the DATA command instead of 354; a 3xx code still reads the body.
    pub data_reply: Option<String>,
    /// Reply after the final dot; a 2xx code still records the message.
    pub final_reply: Option<String>,
    /// Greet with this line instead of `220`; after a non-2xx greeting the fake closes the
    /// connection, as Exchange does after `421 4.3.2 Service not available`.
    pub greeting: Option<String>,
    /// Addresses the XOAUTH2 user may send as besides itself (case-insensitive), checked after
    /// the final dot as Exchange does (`554 5.2.252 SendAsDenied`); `None` allows any.
    pub send_as: Option<Vec<String>>,
    /// Read the command of this phase and never answer; the connection stays open.
    pub hang_at: Option<Phase>,
    /// Close the connection instead of answering at this phase.
    pub drop_at: Option<Phase>,
    /// Record an accepted message, then close the connection instead of sending its `250`:
    /// the server has the message, the client never learns it.
    pub lose_verdict: bool,
    /// Answer this phase only after the given time (a slow server; tokio's clock, so a
    /// paused-clock test can skip the wait).
    pub delay_at: Option<(Phase, Duration)>,
    /// Accept `AUTH LOGIN` with this user name and password, as Azure Communication Services
    /// does (`334 VXNlcm5hbWU6`, `334 UGFzc3dvcmQ6`, then `235` or `535`). `None` (the
    /// default): AUTH LOGIN is refused as Exchange Online refuses basic authentication.
    pub login: Option<(String, String)>,
    /// Largest message body accepted (default 200 MiB); larger gets `552 5.3.4`.
    pub max_message_size: usize,
    /// How long a read may wait for the client (default 60 s) before `421` and close.
    pub read_timeout: Duration,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            offer_starttls: true,
            advertise_xoauth2: true,
            size: Some(157_286_400),
            pipelining: true,
            dsn: true,
            enhanced_status_codes: true,
            eight_bit_mime: true,
            binary_mime: true,
            chunking: true,
            smtputf8: true,
            auth_reply: None,
            auth_json_challenge: None,
            allowed_users: None,
            require_send_role: true,
            max_concurrent_sessions: None,
            rset_reply: None,
            mail_reply: None,
            rcpt_reply: None,
            rcpt_replies: HashMap::new(),
            data_reply: None,
            final_reply: None,
            greeting: None,
            send_as: None,
            hang_at: None,
            drop_at: None,
            lose_verdict: false,
            delay_at: None,
            login: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// One message the fake accepted (final reply 2xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The MAIL FROM address, without angle brackets (`""` for the null sender).
    pub mail_from: String,
    /// Everything after the path on the MAIL FROM line, e.g. `"BODY=8BITMIME SIZE=120"`.
    pub mail_params: String,
    /// Accepted RCPT TO addresses, in order.
    pub rcpts: Vec<String>,
    /// The MAIL FROM line and each accepted RCPT TO line exactly as received, without CRLF.
    pub envelope_lines: Vec<String>,
    /// The body after un-stuffing, final CRLF included, terminating `.` line excluded.
    pub body: Vec<u8>,
    /// The `user=` of the XOAUTH2 login.
    pub xoauth2_user: String,
    /// The bearer token of the XOAUTH2 login.
    pub token: String,
    /// Whether the session was in TLS.
    pub tls: bool,
    /// The id given in the final reply, `<...@fake.outlook.test>`.
    pub message_id: String,
}

/// Observations; a std mutex because no lock is held across an `.await`.
#[derive(Default)]
pub(crate) struct Record {
    pub messages: Vec<Received>,
    pub transcripts: Vec<Vec<String>>,
}

/// State shared between the handle and the session tasks.
pub(crate) struct Shared {
    pub script: Mutex<Script>,
    pub tls: Arc<rustls::ServerConfig>,
    pub registry: TokenRegistry,
    pub record: Mutex<Record>,
    /// Watch channels rather than bare `Notify`: a waiter that subscribes late still sees the
    /// current count, so no wake-up can be lost.
    pub message_count: watch::Sender<usize>,
    pub connection_count: watch::Sender<usize>,
    /// Bumped by [`FakeUpstream::close_all_connections`]; every session watches it.
    pub kick: watch::Sender<u64>,
    pub open: AtomicUsize,
    pub peak: AtomicUsize,
    pub auth_attempts: AtomicUsize,
    pub resets: AtomicUsize,
    pub authenticated: AtomicUsize,
    pub next_id: AtomicU64,
}

impl Shared {
    pub fn script(&self) -> MutexGuard<'_, Script> {
        // Poisoning can only come from a panicking test closure; the script is plain data.
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake Microsoft 365 SMTP server. Dropping it stops it and closes every connection.
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Index of the next message [`next_message`](Self::next_message) hands out.
    cursor: Mutex<usize>,
    _task: ServerTask,
}

impl FakeUpstream {
    /// Starts the server on `127.0.0.1:0`, accepting tokens from `registry`. Needs a tokio
    /// runtime.
    pub fn start(pki: &TestPki, registry: TokenRegistry) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            script: Mutex::new(Script::default()),
            tls: pki.server_config(),
            registry,
            record: Mutex::new(Record::default()),
            message_count: watch::Sender::new(0),
            connection_count: watch::Sender::new(0),
            kick: watch::Sender::new(0),
            open: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            auth_attempts: AtomicUsize::new(0),
            resets: AtomicUsize::new(0),
            authenticated: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        });
        let state = Arc::clone(&shared);
        let (addr, task) = spawn_loopback_server(move |tcp| Session::run(Arc::clone(&state), tcp))?;
        Ok(Self {
            addr,
            shared,
            cursor: Mutex::new(0),
            _task: task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Changes the script; takes effect at the next command of every session.
    pub fn script(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.shared.script());
    }

    /// The registry tokens are checked against.
    pub fn token_registry(&self) -> TokenRegistry {
        self.shared.registry.clone()
    }

    /// All accepted messages, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.record().messages.clone()
    }

    /// The next accepted message not yet returned by this method, waiting for it if needed.
    /// Each call hands out a different message, so concurrent callers never get the same one.
    pub async fn next_message(&self) -> Received {
        let index = {
            let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
            *cursor += 1;
            *cursor - 1
        };
        self.wait_for_messages(index + 1).await;
        self.shared.record().messages[index].clone()
    }

    /// Waits until at least `n` messages were accepted.
    pub async fn wait_for_messages(&self, n: usize) {
        let mut rx = self.shared.message_count.subscribe();
        // The sender lives in `self.shared`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|count| *count >= n).await;
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        *self.shared.connection_count.borrow()
    }

    /// Waits until at least `n` connections were accepted.
    pub async fn wait_for_connections(&self, n: usize) {
        let mut rx = self.shared.connection_count.subscribe();
        let _ = rx.wait_for(|count| *count >= n).await;
    }

    /// Closes every open connection at once without a word, as a server does with sessions
    /// it finds idle too long; the next command on one finds it closed.
    pub fn close_all_connections(&self) {
        self.shared.kick.send_modify(|n| *n += 1);
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// The largest number of connections that were open at the same time.
    pub fn max_concurrent(&self) -> usize {
        self.shared.peak.load(Ordering::SeqCst)
    }

    /// AUTH commands received (any mechanism, any outcome).
    pub fn auth_attempts(&self) -> usize {
        self.shared.auth_attempts.load(Ordering::SeqCst)
    }

    /// RSET commands received.
    pub fn transactions_reset(&self) -> usize {
        self.shared.resets.load(Ordering::SeqCst)
    }

    /// Per connection (in accept order), the command verbs received, e.g.
    /// `["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]`.
    pub fn transcripts(&self) -> Vec<Vec<String>> {
        self.shared.record().transcripts.clone()
    }
}
