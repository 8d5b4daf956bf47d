//! One connection of the fake upstream: the SMTP state machine (greeting, EHLO, STARTTLS,
//! AUTH XOAUTH2 or LOGIN, MAIL/RCPT/DATA) with the script's overrides applied at each phase.
//!
//! Input is kept in one buffer of unconsumed bytes; every state takes what it needs from it and
//! reads more only when it runs dry. Replies are queued and written just before the next read,
//! so a pipelined batch gets its replies in one write.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use smtp_proto::request::receiver::{
    DataReceiver, DummyDataReceiver, MAX_LINE_LENGTH, RequestReceiver,
};
use smtp_proto::{AUTH_LOGIN, AUTH_XOAUTH2, Request};
use tokio::net::TcpStream;

use super::pki::random_hex;
use super::smtp_server::{HOSTNAME, Phase, Received, Shared};
use super::smtp_wire::{
    self, Transport, Xoauth2, Xoauth2Error, decode_xoauth2, push_reply, reply_code,
};
use super::tokens::{SMTP_ROLE, SMTP_SCOPE};

/// Longest SASL continuation line accepted (RFC 4954 suggests at least 12288).
const MAX_AUTH_LINE: usize = 16 * 1024;

/// How long the TLS handshake after STARTTLS may take.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

const REPLY_535_573: &str = "535 5.7.3 Authentication unsuccessful [fake.outlook.test]";
const REPLY_432: &str = "432 4.3.2 Concurrent connections limit exceeded. Visit \
                         https://aka.ms/concurrent_sending for more information. [Hostname=FAKE]";
const REPLY_NEED_TLS: &str = "530 5.7.0 Must issue a STARTTLS command first";
const REPLY_NEED_HELLO: &str = "503 5.5.2 Send hello first";

/// The connection ended (EOF, I/O error, timeout or a scripted stop): stop serving.
struct Closed;

/// What the session does after a command.
enum Flow {
    Continue,
    Close,
}

/// One line of input.
enum Line {
    /// A complete line, CRLF included.
    Complete(Vec<u8>),
    /// Longer than allowed; it has been discarded up to and including its LF.
    TooLong,
}

/// The XOAUTH2 identity of an authenticated session.
struct Login {
    user: String,
    token: String,
}

/// An open mail transaction.
struct Transaction {
    from: String,
    params: String,
    rcpts: Vec<String>,
    lines: Vec<String>,
}

/// Counts an open connection (and the peak) for as long as it lives.
struct OpenGuard(Arc<Shared>);

impl OpenGuard {
    fn new(shared: &Arc<Shared>) -> Self {
        let now = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak.fetch_max(now, Ordering::SeqCst);
        Self(Arc::clone(shared))
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One of the limited authenticated-session slots (`max_concurrent_sessions`).
struct AuthSlot(Arc<Shared>);

impl Drop for AuthSlot {
    fn drop(&mut self) {
        self.0.authenticated.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The state of one connection.
pub(crate) struct Session {
    shared: Arc<Shared>,
    index: usize,
    peer: String,
    io: Transport,
    input: Vec<u8>,
    out: Vec<u8>,
    scratch: Vec<u8>,
    greeted: bool,
    login: Option<Login>,
    slot: Option<AuthSlot>,
    transaction: Option<Transaction>,
    kick: tokio::sync::watch::Receiver<u64>,
}

impl Session {
    /// Serves one accepted connection until it ends.
    pub async fn run(shared: Arc<Shared>, tcp: TcpStream) {
        let _open = OpenGuard::new(&shared);
        let index = {
            let mut record = shared.record();
            record.transcripts.push(Vec::new());
            record.transcripts.len() - 1
        };
        shared.connection_count.send_modify(|count| *count += 1);
        let peer = tcp
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let kick = shared.kick.subscribe();
        let mut session = Session {
            shared,
            index,
            peer,
            io: Transport::plain(tcp),
            input: Vec::new(),
            out: Vec::new(),
            scratch: vec![0u8; 16 * 1024],
            greeted: false,
            login: None,
            slot: None,
            transaction: None,
            kick,
        };
        let _ = session.serve().await;
    }

    async fn serve(&mut self) -> Result<(), Closed> {
        if let Some(flow) = self.scripted_stop(Phase::Greeting).await {
            return flow.map(|_| ());
        }
        let greeting = self.shared.script().greeting.clone();
        let greeting = greeting
            .unwrap_or_else(|| format!("220 {HOSTNAME} Microsoft ESMTP MAIL Service ready"));
        self.reply(&greeting);
        if reply_code(&greeting) / 100 != 2 {
            return self.flush().await;
        }
        while let Flow::Continue = self.step().await? {}
        self.flush().await?;
        // A clean end (QUIT): clients reading to EOF over TLS expect close_notify.
        self.io.shutdown().await;
        Ok(())
    }

    /// Reads and handles one command line.
    async fn step(&mut self) -> Result<Flow, Closed> {
        let line = match self.read_line(MAX_LINE_LENGTH).await? {
            Line::TooLong => {
                self.reply("500 5.5.2 Line too long");
                return Ok(Flow::Continue);
            }
            Line::Complete(line) => line,
        };
        self.note_verb(&line);
        let parsed = RequestReceiver::default()
            .ingest(&mut line.iter())
            .map(Request::into_owned);
        match parsed {
            Ok(request) => self.dispatch(request, &line).await,
            Err(error) => {
                self.reply(&parse_error_reply(&error));
                Ok(Flow::Continue)
            }
        }
    }

    async fn dispatch(&mut self, request: Request<String>, line: &[u8]) -> Result<Flow, Closed> {
        match request {
            Request::Ehlo { .. } => self.on_hello(true).await,
            Request::Helo { .. } => self.on_hello(false).await,
            Request::StartTls => self.on_starttls().await,
            Request::Auth {
                mechanism,
                initial_response,
            } => self.on_auth(mechanism, initial_response).await,
            Request::Mail { from } => self.on_mail(from.address, line).await,
            Request::Rcpt { to } => self.on_rcpt(to.address, line).await,
            Request::Data => self.on_data().await,
            Request::Bdat { chunk_size, .. } => self.on_bdat(chunk_size).await,
            Request::Rset => self.on_rset().await,
            Request::Noop { .. } => Ok(self.answer("250 2.0.0 OK")),
            Request::Quit => {
                self.reply("221 2.0.0 Service closing transmission channel");
                Ok(Flow::Close)
            }
            Request::Lhlo { .. } => Ok(self.answer("500 5.3.3 Unrecognized command")),
            _ => Ok(self.answer("502 5.3.3 Command not implemented")),
        }
    }

    async fn on_hello(&mut self, extended: bool) -> Result<Flow, Closed> {
        if let Some(flow) = self.scripted_stop(Phase::Ehlo).await {
            return flow;
        }
        self.greeted = true;
        self.transaction = None;
        let reply = self.hello_reply(extended);
        Ok(self.answer(&reply))
    }

    /// The EHLO (or HELO) reply, with the script's extensions.
    fn hello_reply(&self, extended: bool) -> String {
        let mut lines = vec![format!("250 {HOSTNAME} Hello [{}]", self.peer)];
        if !extended {
            return lines.remove(0);
        }
        let tls = self.io.is_tls();
        let s = self.shared.script();
        if let Some(size) = s.size {
            lines.push(format!("SIZE {size}"));
        }
        let flags = [
            (s.pipelining, "PIPELINING"),
            (s.dsn, "DSN"),
            (s.enhanced_status_codes, "ENHANCEDSTATUSCODES"),
            (s.offer_starttls && !tls, "STARTTLS"),
            (tls && s.advertise_xoauth2, "AUTH LOGIN XOAUTH2"),
            (tls && !s.advertise_xoauth2, "AUTH LOGIN"),
            (s.eight_bit_mime, "8BITMIME"),
            (s.binary_mime, "BINARYMIME"),
            (s.chunking, "CHUNKING"),
            (s.smtputf8, "SMTPUTF8"),
        ];
        lines.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, k)| k.to_string()),
        );
        lines.join("\n")
    }

    async fn on_starttls(&mut self) -> Result<Flow, Closed> {
        if let Some(flow) = self.scripted_stop(Phase::StartTls).await {
            return flow;
        }
        if !self.shared.script().offer_starttls {
            return Ok(self.answer("500 5.3.3 Unrecognized command"));
        }
        if self.io.is_tls() {
            return Ok(self.answer("503 5.5.1 TLS already active"));
        }
        self.reply("220 2.0.0 SMTP server ready");
        self.flush().await?;
        // RFC 3207: plaintext pipelined after STARTTLS must not survive into the TLS session.
        self.input.clear();
        let config = Arc::clone(&self.shared.tls);
        self.io
            .upgrade(config, HANDSHAKE_DEADLINE)
            .await
            .map_err(|_| Closed)?;
        // Everything learned before TLS is forgotten; the client must EHLO again.
        self.greeted = false;
        self.login = None;
        self.slot = None;
        self.transaction = None;
        Ok(Flow::Continue)
    }

    async fn on_auth(&mut self, mechanism: u64, initial: String) -> Result<Flow, Closed> {
        self.shared.auth_attempts.fetch_add(1, Ordering::SeqCst);
        if let Some(flow) = self.scripted_stop(Phase::Auth).await {
            return flow;
        }
        let login = self.shared.script().login.clone();
        if let (AUTH_LOGIN, Some(expected), None) = (mechanism, &login, self.refusal_in_state()) {
            return self.login_exchange(expected, initial).await;
        }
        if let Some(refusal) = self.auth_refusal(mechanism) {
            return Ok(self.answer(refusal));
        }
        let blob = if initial.is_empty() {
            // Two-step form: the empty challenge, with the trailing space Exchange sends.
            self.reply("334 ");
            match self.read_line(MAX_AUTH_LINE).await? {
                Line::TooLong => {
                    return Ok(self.answer("500 5.5.6 Authentication exchange line is too long"));
                }
                Line::Complete(line) => String::from_utf8_lossy(&line).trim().to_string(),
            }
        } else {
            initial
        };
        self.finish_xoauth2(&blob).await
    }

    /// Why AUTH cannot even start in this session state, whatever the mechanism.
    fn refusal_in_state(&self) -> Option<&'static str> {
        if !self.greeted {
            Some(REPLY_NEED_HELLO)
        } else if !self.io.is_tls() {
            Some(REPLY_NEED_TLS)
        } else if self.login.is_some() {
            Some("503 5.5.2 Already authenticated")
        } else if self.transaction.is_some() {
            Some("503 5.5.2 Not allowed during a mail transaction")
        } else {
            None
        }
    }

    /// ACS's `AUTH LOGIN`: the base64 user name and password, each after its own challenge.
    /// An initial response (`AUTH LOGIN dXNlcg==`, RFC 4954 §4) stands for the user name.
    async fn login_exchange(
        &mut self,
        expected: &(String, String),
        initial: String,
    ) -> Result<Flow, Closed> {
        let mut answers = Vec::new();
        let mut initial = Some(initial).filter(|i| !i.is_empty());
        for challenge in ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"] {
            let given = match initial.take() {
                Some(text) => Line::Complete(text.into_bytes()),
                None => {
                    self.reply(challenge);
                    self.read_line(MAX_AUTH_LINE).await?
                }
            };
            match given {
                Line::TooLong => {
                    return Ok(self.answer("500 5.5.6 Authentication exchange line is too long"));
                }
                Line::Complete(line) => {
                    let text = String::from_utf8_lossy(&line).trim().to_string();
                    if text == "*" {
                        return Ok(self.answer("501 5.0.0 Authentication cancelled"));
                    }
                    let Some(decoded) = STANDARD
                        .decode(&text)
                        .ok()
                        .and_then(|raw| String::from_utf8(raw).ok())
                    else {
                        return Ok(self.answer("501 5.5.2 Cannot decode response"));
                    };
                    answers.push(decoded);
                }
            }
        }
        if answers[0] != expected.0 || answers[1] != expected.1 {
            return Ok(self.answer("535 5.7.3 Authentication unsuccessful"));
        }
        let Some(slot) = self.take_slot() else {
            return Ok(self.answer(REPLY_432));
        };
        self.slot = Some(slot);
        self.login = Some(Login {
            user: answers.swap_remove(0),
            token: String::new(),
        });
        Ok(self.answer("235 2.7.0 Authentication successful"))
    }

    /// Why AUTH cannot even start, if it cannot.
    fn auth_refusal(&self, mechanism: u64) -> Option<&'static str> {
        let advertised = self.shared.script().advertise_xoauth2;
        if !self.greeted {
            Some(REPLY_NEED_HELLO)
        } else if !self.io.is_tls() {
            Some(REPLY_NEED_TLS)
        } else if self.login.is_some() {
            Some("503 5.5.2 Already authenticated")
        } else if self.transaction.is_some() {
            Some("503 5.5.2 Not allowed during a mail transaction")
        } else if mechanism == AUTH_LOGIN {
            // Basic authentication is retired at Exchange Online (MC786329).
            Some("535 5.7.139 Authentication unsuccessful, basic authentication is disabled.")
        } else if mechanism != AUTH_XOAUTH2 || !advertised {
            Some("504 5.7.4 Unrecognized authentication type")
        } else {
            None
        }
    }

    /// Judges the XOAUTH2 response, applying the script's overrides first.
    async fn finish_xoauth2(&mut self, blob: &str) -> Result<Flow, Closed> {
        if blob == "*" {
            return Ok(self.answer("501 5.0.0 Authentication cancelled"));
        }
        let (forced, challenge) = {
            let s = self.shared.script();
            (s.auth_reply.clone(), s.auth_json_challenge.clone())
        };
        let decoded = decode_xoauth2(blob);
        if let Some(reply) = forced {
            if reply_code(&reply) / 100 == 2 {
                self.login = decoded.ok().map(|x| Login {
                    user: x.user,
                    token: x.token,
                });
            }
            return Ok(self.answer(&reply));
        }
        if let Some(json) = challenge {
            return self.json_challenge(&json).await;
        }
        match decoded {
            Err(Xoauth2Error::Base64) => Ok(self.answer("501 5.5.2 Cannot decode response")),
            Err(Xoauth2Error::Format) => Ok(self.answer("501 5.5.124 Invalid XOAUTH2 auth data")),
            Ok(login) => Ok(self.authenticate(login)),
        }
    }

    /// Google's failure dance: `334 base64(json)`, the client's empty line, then 535.
    async fn json_challenge(&mut self, json: &str) -> Result<Flow, Closed> {
        self.reply(&format!("334 {}", STANDARD.encode(json)));
        self.read_line(MAX_AUTH_LINE).await?;
        Ok(self.answer(
            "535 5.7.8 Username and Password not accepted. For more information, go to\n\
             535 5.7.8 https://support.google.com/mail/?p=BadCredentials",
        ))
    }

    /// Checks the token and the user, then takes a session slot.
    fn authenticate(&mut self, login: Xoauth2) -> Flow {
        if !self.accepts(&login) {
            return self.answer(REPLY_535_573);
        }
        let Some(slot) = self.take_slot() else {
            return self.answer(REPLY_432);
        };
        self.slot = Some(slot);
        self.login = Some(Login {
            user: login.user,
            token: login.token,
        });
        self.answer("235 2.7.0 Authentication successful")
    }

    fn accepts(&self, login: &Xoauth2) -> bool {
        let script = self.shared.script();
        let token_ok = self
            .shared
            .registry
            .lookup(&login.token)
            .is_some_and(|info| {
                info.is_valid()
                    && (!script.require_send_role
                        || info.roles.iter().any(|r| r == SMTP_ROLE)
                        || info.scopes.iter().any(|s| s == SMTP_SCOPE))
            });
        let user_ok = script
            .allowed_users
            .as_ref()
            .is_none_or(|users| users.iter().any(|u| u.eq_ignore_ascii_case(&login.user)));
        token_ok && user_ok
    }

    /// Claims an authenticated-session slot, or None when `max_concurrent_sessions` are taken.
    fn take_slot(&self) -> Option<AuthSlot> {
        let limit = self
            .shared
            .script()
            .max_concurrent_sessions
            .unwrap_or(usize::MAX);
        self.shared
            .authenticated
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| AuthSlot(Arc::clone(&self.shared)))
    }

    async fn on_mail(&mut self, address: String, line: &[u8]) -> Result<Flow, Closed> {
        if let Some(flow) = self.scripted_stop(Phase::Mail).await {
            return flow;
        }
        let refusal = if !self.greeted {
            Some(REPLY_NEED_HELLO)
        } else if !self.io.is_tls() {
            Some(REPLY_NEED_TLS)
        } else if self.login.is_none() {
            Some("530 5.7.57 Client not authenticated to send mail")
        } else if self.transaction.is_some() {
            Some("503 5.5.1 Sender already specified")
        } else {
            None
        };
        if let Some(refusal) = refusal {
            return Ok(self.answer(refusal));
        }
        let reply = self.shared.script().mail_reply.clone();
        let reply = reply.unwrap_or_else(|| "250 2.1.0 Sender OK".to_string());
        if reply_code(&reply) / 100 == 2 {
            self.transaction = Some(Transaction {
                from: address,
                params: smtp_wire::mail_params(&String::from_utf8_lossy(line)),
                rcpts: Vec::new(),
                lines: vec![wire_line(line)],
            });
        }
        Ok(self.answer(&reply))
    }

    async fn on_rcpt(&mut self, address: String, line: &[u8]) -> Result<Flow, Closed> {
        if let Some(flow) = self.scripted_stop(Phase::Rcpt).await {
            return flow;
        }
        let reply = {
            let s = self.shared.script();
            let specific = s.rcpt_replies.get(&address.to_lowercase());
            specific.or(s.rcpt_reply.as_ref()).cloned()
        };
        let Some(transaction) = self.transaction.as_mut() else {
            return Ok(self.answer("503 5.5.1 Need MAIL command"));
        };
        let reply = reply.unwrap_or_else(|| "250 2.1.5 Recipient OK".to_string());
        if reply_code(&reply) / 100 == 2 {
            transaction.rcpts.push(address);
            transaction.lines.push(wire_line(line));
        }
        Ok(self.answer(&reply))
    }

    async fn on_data(&mut self) -> Result<Flow, Closed> {
        if let Some(flow) = self.scripted_stop(Phase::DataStart).await {
            return flow;
        }
        match &self.transaction {
            None => return Ok(self.answer("503 5.5.1 Need MAIL command")),
            Some(t) if t.rcpts.is_empty() => return Ok(self.answer("503 5.5.2 Need rcpt command")),
            Some(_) => {}
        }
        let reply = self.shared.script().data_reply.clone();
        let reply = reply.unwrap_or_else(|| "354 Start mail input; end with <CRLF>.<CRLF>".into());
        self.reply(&reply);
        if reply_code(&reply) / 100 != 3 {
            return Ok(Flow::Continue);
        }
        match self.read_body().await? {
            Some(body) => self.finish_message(body).await,
            None => {
                self.transaction = None;
                Ok(self.answer("552 5.3.4 Message size exceeds fixed maximum message size"))
            }
        }
    }

    /// Records the message (if the final reply accepts it) and answers the final dot.
    async fn finish_message(&mut self, body: Vec<u8>) -> Result<Flow, Closed> {
        if let Some(flow) = self.scripted_stop(Phase::DataEnd).await {
            return flow;
        }
        let Some(transaction) = self.transaction.take() else {
            return Ok(self.answer("503 5.5.1 Need MAIL command"));
        };
        let id = self.shared.next_id.fetch_add(1, Ordering::SeqCst);
        let message_id = format!("<{id:08X}{}@{HOSTNAME}>", random_hex(6).to_uppercase());
        let reply = self.shared.script().final_reply.clone();
        let reply = reply
            .or_else(|| self.send_as_denied(&transaction.from))
            .unwrap_or_else(|| format!("250 2.0.0 OK {message_id} [Hostname=FAKE]"));
        if reply_code(&reply) / 100 == 2 {
            self.record(transaction, body, message_id);
            if self.shared.script().lose_verdict {
                let _ = self.flush().await;
                return Err(Closed);
            }
        }
        Ok(self.answer(&reply))
    }

    /// Exchange's refusal when the logged-in mailbox may not send as `from`.
    fn send_as_denied(&self, from: &str) -> Option<String> {
        let user = self
            .login
            .as_ref()
            .map(|l| l.user.as_str())
            .unwrap_or_default();
        let allowed = self.shared.script().send_as.clone()?;
        let ok =
            from.eq_ignore_ascii_case(user) || allowed.iter().any(|a| a.eq_ignore_ascii_case(from));
        (!ok).then(|| {
            format!(
                "554 5.2.252 SendAsDenied; {user} not allowed to send as {from}; \
                 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied"
            )
        })
    }

    fn record(&self, transaction: Transaction, body: Vec<u8>, message_id: String) {
        let (user, token) = self
            .login
            .as_ref()
            .map(|l| (l.user.clone(), l.token.clone()))
            .unwrap_or_default();
        let received = Received {
            mail_from: transaction.from,
            mail_params: transaction.params,
            rcpts: transaction.rcpts,
            envelope_lines: transaction.lines,
            body,
            xoauth2_user: user,
            token,
            tls: self.io.is_tls(),
            message_id,
        };
        // Store before the reply leaves, so a client that saw 250 also finds the message.
        self.shared.record().messages.push(received);
        self.shared.message_count.send_modify(|count| *count += 1);
    }

    /// Reads a dot-terminated body; None if it grew past the size limit (the rest is drained).
    async fn read_body(&mut self) -> Result<Option<Vec<u8>>, Closed> {
        let max = self.shared.script().max_message_size;
        let mut receiver = DataReceiver::new();
        let mut body = Vec::new();
        // smtp-proto 0.2.5: the receiver starts mid-line, so a first line of "." or "..x" would not
        // be seen as a line start. Feed it a CRLF first and strip that CRLF at the end.
        receiver.ingest(&mut b"\r\n".iter(), &mut body);
        loop {
            let mut iter = self.input.iter();
            let done = receiver.ingest(&mut iter, &mut body);
            let used = self.input.len() - iter.as_slice().len();
            self.input.drain(..used);
            if done {
                return Ok(Some(body.split_off(2.min(body.len()))));
            }
            if body.len() > max.saturating_add(2) {
                self.discard_body(DummyDataReceiver::new_data(&receiver))
                    .await?;
                return Ok(None);
            }
            self.fill().await?;
        }
    }

    /// Drains the rest of a DATA body or a BDAT chunk without keeping it.
    async fn discard_body(&mut self, mut receiver: DummyDataReceiver) -> Result<(), Closed> {
        loop {
            let mut iter = self.input.iter();
            let done = receiver.ingest(&mut iter);
            let used = self.input.len() - iter.as_slice().len();
            self.input.drain(..used);
            if done {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    async fn on_bdat(&mut self, chunk_size: usize) -> Result<Flow, Closed> {
        self.discard_body(DummyDataReceiver::new_bdat(chunk_size))
            .await?;
        Ok(self.answer("502 5.5.1 BDAT is not supported by this fake"))
    }

    async fn on_rset(&mut self) -> Result<Flow, Closed> {
        self.shared.resets.fetch_add(1, Ordering::SeqCst);
        self.transaction = None;
        let reply = self.shared.script().rset_reply.clone();
        let reply = reply.unwrap_or_else(|| "250 2.0.0 Resetting".into());
        self.reply(&reply);
        if reply_code(&reply) == 421 {
            // Whatever was pipelined after it is never answered.
            self.flush().await?;
            return Err(Closed);
        }
        Ok(Flow::Continue)
    }

    /// Applies `delay_at`, then `hang_at`/`drop_at` for `phase`. `Some` means the session is
    /// over.
    async fn scripted_stop(&mut self, phase: Phase) -> Option<Result<Flow, Closed>> {
        let (hang, drop, delay) = {
            let s = self.shared.script();
            let delay = s.delay_at.filter(|(p, _)| *p == phase).map(|(_, d)| d);
            (s.hang_at == Some(phase), s.drop_at == Some(phase), delay)
        };
        if let Some(delay) = delay {
            // A slow server: earlier replies go out, this one comes after `delay`.
            let _ = self.flush().await;
            tokio::time::sleep(delay).await;
        }
        if hang {
            self.hang().await;
            Some(Ok(Flow::Close))
        } else if drop {
            // Replies to earlier pipelined commands still go out; this one never does.
            let _ = self.flush().await;
            Some(Err(Closed))
        } else {
            None
        }
    }

    /// Never answers again, but keeps reading (and discarding) until the client gives up.
    async fn hang(&mut self) {
        if self.flush().await.is_err() {
            return;
        }
        while let Ok(n) = self.io.read(&mut self.scratch).await {
            if n == 0 {
                break;
            }
        }
    }

    /// Next line from the input, reading more as needed, bounded by `max` bytes.
    async fn read_line(&mut self, max: usize) -> Result<Line, Closed> {
        loop {
            if let Some(pos) = self.input.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.input.drain(..=pos).collect();
                return Ok(if line.len() > max {
                    Line::TooLong
                } else {
                    Line::Complete(line)
                });
            }
            if self.input.len() > max {
                self.input.clear();
                self.skip_rest_of_line().await?;
                return Ok(Line::TooLong);
            }
            self.fill().await?;
        }
    }

    /// Discards input up to and including the next LF.
    async fn skip_rest_of_line(&mut self) -> Result<(), Closed> {
        loop {
            self.fill().await?;
            if let Some(pos) = self.input.iter().position(|&b| b == b'\n') {
                self.input.drain(..=pos);
                return Ok(());
            }
            self.input.clear();
        }
    }

    /// Sends queued replies, then reads more input within the script's read timeout.
    async fn fill(&mut self) -> Result<(), Closed> {
        self.flush().await?;
        let timeout = self.shared.script().read_timeout;
        let read = tokio::time::timeout(timeout, self.io.read(&mut self.scratch));
        let kicked = self.kick.changed();
        let read = tokio::select! {
            // A kick that came before the input wins: the session was closed first.
            biased;
            _ = kicked => return Err(Closed),
            read = read => read,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => Err(Closed),
            Ok(Ok(n)) => {
                self.input.extend_from_slice(&self.scratch[..n]);
                Ok(())
            }
            Err(_) => {
                self.reply(&format!("421 4.4.2 {HOSTNAME} Connection timed out"));
                let _ = self.flush().await;
                Err(Closed)
            }
        }
    }

    async fn flush(&mut self) -> Result<(), Closed> {
        if self.out.is_empty() {
            return Ok(());
        }
        let timeout = self.shared.script().read_timeout;
        let write = self.io.write_all(&self.out);
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => {
                self.out.clear();
                Ok(())
            }
            _ => Err(Closed),
        }
    }

    fn reply(&mut self, reply: &str) {
        push_reply(&mut self.out, reply);
    }

    /// Queues `reply` and keeps the session going.
    fn answer(&mut self, reply: &str) -> Flow {
        self.reply(reply);
        Flow::Continue
    }

    fn note_verb(&self, line: &[u8]) {
        if let Some(transcript) = self.shared.record().transcripts.get_mut(self.index) {
            transcript.push(smtp_wire::verb(line));
        }
    }
}

/// The reply for a command line smtp-proto could not parse. Peer text is sanitised before it
/// is echoed, so a reply can never be split by CR/LF from the client.
fn parse_error_reply(error: &smtp_proto::Error) -> String {
    use smtp_proto::Error as E;
    match error {
        E::UnknownCommand => "500 5.3.3 Unrecognized command".to_string(),
        E::InvalidSenderAddress => "501 5.1.7 Invalid address".to_string(),
        E::InvalidRecipientAddress => "501 5.1.3 Invalid recipient address".to_string(),
        E::SyntaxError { syntax } => format!("501 5.5.4 Syntax error, expected: {syntax}"),
        E::InvalidParameter { param } => format!("501 5.5.4 Invalid parameter {param}"),
        E::UnsupportedParameter { param } => {
            let safe: String = param
                .chars()
                .filter(char::is_ascii_graphic)
                .take(64)
                .collect();
            format!("555 5.5.4 Unsupported parameter {safe}")
        }
        E::ResponseTooLong => "500 5.5.2 Line too long".to_string(),
        _ => "500 5.5.2 Syntax error, command unrecognized".to_string(),
    }
}

/// A command line as received, without its CRLF; bytes that are not UTF-8 shown as U+FFFD.
fn wire_line(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}
