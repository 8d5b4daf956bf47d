//! The client-side SMTP session as a state machine without I/O.
//!
//! The driver (`conn`) feeds it bytes and gets back how many it used plus an [`Action`]: read
//! more, check a password, relay a message, or close. Replies accumulate in an output buffer the
//! driver writes out. The session never awaits, sleeps or reads the clock, so every protocol rule
//! can be tested by feeding bytes.

use std::sync::Arc;

use smtp_proto::request::receiver::DummyDataReceiver;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN, Request};

use super::data::{BareLineEndings, DataReceiver};
use super::line::{Framed, LineBuffer};
use super::sasl::{self, Credentials, SaslError};
use crate::address::{self, Address, PathError};
use crate::message::{Envelope, Submission, Submitter};
use crate::reply::{self, Enhanced, Reply};

/// RFC 4954 §4: SASL continuation lines are not bound by the command limit; 12288 octets is
/// called sufficient.
pub const MAX_SASL_LINE: usize = 12288;

/// Limits fixed for the whole session when it starts.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    pub hostname: Arc<str>,
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_line_length: usize,
    pub max_auth_failures: u32,
    /// Bad commands before the connection is closed.
    pub max_errors: u32,
    /// The listener can upgrade to TLS: STARTTLS is offered while the session is in clear.
    pub starttls: bool,
    /// AUTH (and so MAIL) only inside TLS; AUTH is not even advertised before.
    pub tls_required_for_auth: bool,
    /// What a bare CR or LF in a message means.
    pub bare_line_endings: BareLineEndings,
}

/// Most refusals kept between two calls of [`Session::take_refusals`]; one read of pipelined
/// commands can refuse many, and the rest are still counted.
pub const MAX_PENDING_REFUSALS: usize = 16;

/// A message (or a recipient of one) the session refused by local policy, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What the policy refused, in a few words.
    pub reason: &'static str,
    /// The envelope sender as the client gave it (`<>` for the null sender); client text.
    pub sender: String,
}

/// The first octet of a TLS record carrying a handshake message (RFC 8446 §5.1): a client that
/// starts TLS on a plain-text port sends its ClientHello where a command should be.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What the driver must do next.
#[derive(Debug)]
pub enum Action {
    /// Read more input.
    Read,
    /// Check these credentials, then call [`Session::auth_checked`].
    Authenticate(Credentials),
    /// Relay this message, then call [`Session::relay_finished`].
    Relay(Box<Submission>),
    /// Write the pending output (the `220` go-ahead), discard any input the client sent after
    /// STARTTLS, do the TLS handshake, then call [`Session::tls_started`].
    StartTls,
    /// Write the pending output and close the connection.
    Close,
}

enum Mode {
    Command,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPass {
        username: String,
    },
    AwaitAuth,
    Data(DataReceiver),
    /// Unwanted BDAT payload being swallowed.
    Bdat(DummyDataReceiver),
    AwaitRelay,
    Closed,
}

enum Step {
    Continue,
    Stop(Action),
}

/// One client connection's protocol state.
pub struct Session {
    limits: SessionLimits,
    mode: Mode,
    lines: LineBuffer,
    out: Vec<u8>,
    helo: bool,
    submitter: Option<Arc<Submitter>>,
    auth_failures: u32,
    envelope: Option<Envelope>,
    data: Vec<u8>,
    /// Messages or recipients refused by local policy since the driver last asked.
    local_rejections: u32,
    /// What those refusals were, for the log; at most [`MAX_PENDING_REFUSALS`].
    refusals: Vec<Refusal>,
    /// The current transaction's recipient-limit refusal was noted already: a client that
    /// sends 600 RCPTs gets one log line, not 100.
    recipients_refusal_noted: bool,
    /// The client sent a TLS handshake where a command was expected.
    tls_in_clear: bool,
    /// Nothing was received yet on this connection (or since STARTTLS).
    first_input: bool,
    /// The session runs inside TLS (implicit, or after STARTTLS).
    tls: bool,
    /// `submitter` comes from the client's address (trusted `networks`), not from AUTH.
    network_trusted: bool,
    /// Protocol errors so far (5xx syntax and sequence errors).
    errors: u32,
}

impl Session {
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            mode: Mode::Command,
            lines: LineBuffer::default(),
            out: Vec::with_capacity(512),
            helo: false,
            submitter: None,
            auth_failures: 0,
            envelope: None,
            data: Vec::new(),
            local_rejections: 0,
            refusals: Vec::new(),
            recipients_refusal_noted: false,
            tls_in_clear: false,
            first_input: true,
            tls: false,
            network_trusted: false,
            errors: 0,
        }
    }

    /// For an implicit-TLS listener: the session starts inside TLS.
    pub fn set_tls(&mut self) {
        self.tls = true;
    }

    /// The client's address is in a trusted network: it may send as `submitter` without AUTH.
    pub fn trust_network(&mut self, submitter: Arc<Submitter>) {
        self.submitter = Some(submitter);
        self.network_trusted = true;
    }

    /// The TLS handshake after STARTTLS succeeded: forget everything learned in clear text
    /// (RFC 3207 §4.2); the client starts again with EHLO.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.helo = false;
        self.envelope = None;
        self.lines = LineBuffer::default();
        self.first_input = true;
        if !self.network_trusted {
            self.submitter = None;
        }
        self.mode = Mode::Command;
    }

    /// Local policy refusals (sender not allowed, message too big, too many recipients) since
    /// the last call; the driver counts them.
    pub fn take_local_rejections(&mut self) -> u32 {
        std::mem::take(&mut self.local_rejections)
    }

    /// What was refused since the last call (at most [`MAX_PENDING_REFUSALS`]); the driver
    /// logs them.
    pub fn take_refusals(&mut self) -> Vec<Refusal> {
        std::mem::take(&mut self.refusals)
    }

    /// True once, after the client sent a TLS handshake to a session in clear text (it wants
    /// implicit TLS, or skipped STARTTLS); the session then closes.
    pub fn take_tls_in_clear(&mut self) -> bool {
        std::mem::take(&mut self.tls_in_clear)
    }

    /// Queues the 220 greeting.
    pub fn greet(&mut self) {
        let line = format!("220 {} ESMTP xoauth-relay ready\r\n", self.limits.hostname);
        self.out.extend_from_slice(line.as_bytes());
    }

    /// Replies produced so far; the driver writes them and clears the buffer.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Failed AUTH attempts so far.
    /// A message's data is being received.
    pub fn receiving_data(&self) -> bool {
        matches!(self.mode, Mode::Data(_))
    }

    /// The content received so far for the message in progress, once it holds at least `min`
    /// octets, so the driver can move it to disk and memory per message stays bounded.
    pub fn take_data(&mut self, min: usize) -> Option<Vec<u8>> {
        if !self.receiving_data() || self.data.len() < min {
            return None;
        }
        Some(std::mem::replace(&mut self.data, Vec::with_capacity(min)))
    }

    pub fn auth_failures(&self) -> u32 {
        self.auth_failures
    }

    /// The authenticated user, if any.
    pub fn submitter(&self) -> Option<&Arc<Submitter>> {
        self.submitter.as_ref()
    }

    /// True between commands: no message or AUTH exchange is in progress, so the connection can
    /// be closed without losing anything.
    pub fn is_idle(&self) -> bool {
        matches!(self.mode, Mode::Command) && self.lines.is_empty()
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.mode, Mode::Closed)
    }

    /// Consumes input until an action is needed. Returns the number of bytes used; the rest must
    /// be fed again after the action completes.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Action) {
        if let Some(&first) = input.first()
            && std::mem::take(&mut self.first_input)
            && first == TLS_HANDSHAKE_RECORD
            && !self.tls
        {
            self.tls_in_clear = true;
            return (input.len(), self.close_with(reply::TLS_IN_CLEAR));
        }
        let mut rest = input;
        let action = loop {
            if rest.is_empty() {
                break if self.is_closed() {
                    Action::Close
                } else {
                    Action::Read
                };
            }
            match self.step(&mut rest) {
                Step::Continue => {}
                Step::Stop(action) => break action,
            }
        };
        (input.len() - rest.len(), action)
    }

    /// Result of [`Action::Authenticate`]: `Some` when the password was right.
    pub fn auth_checked(&mut self, result: Option<Arc<Submitter>>) -> Action {
        self.mode = Mode::Command;
        match result {
            Some(submitter) => {
                self.submitter = Some(submitter);
                self.network_trusted = false;
                self.reply(reply::AUTH_OK);
                Action::Read
            }
            None => {
                self.auth_failures += 1;
                if self.auth_failures >= self.limits.max_auth_failures {
                    self.close_with(reply::AUTH_TOO_MANY)
                } else {
                    self.reply(reply::AUTH_FAILED);
                    Action::Read
                }
            }
        }
    }

    /// Result of [`Action::Authenticate`] when the password could not be checked: `reply` (a
    /// 4xx), and the attempt does not count as a failure.
    pub fn auth_unavailable(&mut self, reply: Reply) {
        self.reply(reply);
        self.mode = Mode::Command;
    }

    /// Result of [`Action::Relay`]: the reply for the client's final dot.
    pub fn relay_finished(&mut self, verdict: Reply) {
        self.reply(verdict);
        self.mode = Mode::Command;
    }

    /// Ends the session with `reply` (a deadline passed, the address was locked out).
    pub fn abort(&mut self, reply: Reply) -> Action {
        self.close_with(reply)
    }

    /// The server is stopping; call only when [`Session::is_idle`].
    pub fn shutdown(&mut self) -> Action {
        self.close_with(reply::SHUTTING_DOWN)
    }

    fn close_with(&mut self, r: Reply) -> Action {
        self.reply(r);
        self.mode = Mode::Closed;
        Action::Close
    }

    fn reply(&mut self, r: Reply) {
        if is_protocol_error(&r) {
            self.errors += 1;
        }
        r.write_to(&mut self.out);
    }

    /// Closes the connection once the client made too many protocol errors (a scanner, or a
    /// program speaking something else than SMTP).
    fn too_many_errors(&mut self) -> Option<Step> {
        (self.errors >= self.limits.max_errors)
            .then(|| Step::Stop(self.close_with(reply::TOO_MANY_ERRORS)))
    }

    fn step(&mut self, rest: &mut &[u8]) -> Step {
        match std::mem::replace(&mut self.mode, Mode::Closed) {
            Mode::Command => self.step_command(rest),
            Mode::AuthPlain => self.step_sasl(rest, SaslStep::Plain),
            Mode::AuthLoginUser => self.step_sasl(rest, SaslStep::LoginUser),
            Mode::AuthLoginPass { username } => self.step_sasl(rest, SaslStep::LoginPass(username)),
            Mode::Data(rx) => self.step_data(rest, rx),
            Mode::Bdat(rx) => self.step_bdat(rest, rx),
            waiting @ (Mode::AwaitAuth | Mode::AwaitRelay) => {
                // The driver feeds again only after the action finished; reaching this means
                // it did not, so stop rather than read ahead.
                self.mode = waiting;
                Step::Stop(Action::Read)
            }
            Mode::Closed => {
                *rest = &[];
                Step::Stop(Action::Close)
            }
        }
    }

    fn step_command(&mut self, rest: &mut &[u8]) -> Step {
        self.mode = Mode::Command;
        match self.lines.push(rest, self.limits.max_line_length) {
            Framed::Partial => Step::Continue,
            Framed::TooLong => {
                self.reply(reply::LINE_TOO_LONG);
                self.too_many_errors().unwrap_or(Step::Continue)
            }
            Framed::Line => {
                let line = std::mem::take(&mut self.lines);
                let step = match envelope_command(line.line_trimmed()) {
                    Some(EnvelopeCommand::Mail(args)) => {
                        let r = self.handle_mail(args);
                        self.reply(r);
                        Step::Continue
                    }
                    Some(EnvelopeCommand::Rcpt(args)) => {
                        let r = self.handle_rcpt(args);
                        self.reply(r);
                        Step::Continue
                    }
                    None => match Request::parse(&mut line.line().iter()) {
                        Ok(request) => self.handle(request.into_owned()),
                        Err(e) => {
                            self.reply(parse_error_reply(e));
                            Step::Continue
                        }
                    },
                };
                self.lines = line;
                match step {
                    Step::Continue => self.too_many_errors().unwrap_or(Step::Continue),
                    stop => stop,
                }
            }
        }
    }

    fn handle(&mut self, request: Request<String>) -> Step {
        let r = match request {
            Request::Ehlo { host } => return self.handle_ehlo(&host),
            Request::Helo { .. } => self.handle_helo(),
            Request::Auth {
                mechanism,
                initial_response,
            } => {
                return self.handle_auth(mechanism, &initial_response);
            }
            // Only when the line is not `MAIL FROM:` / `RCPT TO:` (see `envelope_command`).
            Request::Mail { .. } => BAD_MAIL_SYNTAX,
            Request::Rcpt { .. } => BAD_RCPT_SYNTAX,
            Request::Data => return self.handle_data(),
            Request::Bdat { chunk_size, .. } => {
                self.mode = Mode::Bdat(DummyDataReceiver::new_bdat(chunk_size));
                return Step::Continue;
            }
            Request::Rset => {
                self.envelope = None;
                reply::RESET
            }
            Request::Noop { .. } => reply::OK,
            Request::Quit => return Step::Stop(self.close_with(reply::BYE)),
            Request::Vrfy { .. } => reply::VRFY,
            Request::Help { .. } => reply::HELP,
            Request::StartTls => return self.handle_starttls(),
            Request::Lhlo { .. }
            | Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => reply::NOT_IMPLEMENTED,
        };
        self.reply(r);
        Step::Continue
    }

    fn handle_starttls(&mut self) -> Step {
        let refusal = if !self.limits.starttls {
            Some(reply::NO_STARTTLS)
        } else if self.tls {
            Some(reply::ALREADY_TLS)
        } else if !self.helo {
            Some(reply::HELLO_FIRST)
        } else {
            None
        };
        if let Some(r) = refusal {
            self.reply(r);
            return Step::Continue;
        }
        self.reply(reply::START_TLS);
        Step::Stop(Action::StartTls)
    }

    /// AUTH needs TLS on this listener and the session is not in TLS yet.
    fn needs_tls(&self) -> bool {
        self.limits.tls_required_for_auth && !self.tls
    }

    fn handle_ehlo(&mut self, client: &str) -> Step {
        self.helo = true;
        self.envelope = None;
        let host = &self.limits.hostname;
        let client = reply::sanitize(client);
        let size = self.limits.max_message_size;
        let mut lines = vec![
            format!("{host} Hello {client}"),
            format!("SIZE {size}"),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "PIPELINING".into(),
            "ENHANCEDSTATUSCODES".into(),
        ];
        if self.limits.starttls && !self.tls {
            lines.push("STARTTLS".into());
        }
        if !self.needs_tls() {
            // The `AUTH=` form is for clients that predate RFC 4954 (old Outlook, printers).
            lines.extend(["AUTH PLAIN LOGIN".into(), "AUTH=PLAIN LOGIN".into()]);
        }
        write_multiline(&mut self.out, 250, &lines);
        Step::Continue
    }

    fn handle_helo(&mut self) -> Reply {
        self.helo = true;
        self.envelope = None;
        Reply::with_text(250, Enhanced(2, 0, 0), self.limits.hostname.to_string())
    }

    fn handle_auth(&mut self, mechanism: u64, initial: &str) -> Step {
        let refusal = if !self.helo {
            Some(reply::HELLO_FIRST)
        } else if self.needs_tls() {
            Some(reply::ENCRYPTION_REQUIRED)
        } else if self.submitter.is_some() && !self.network_trusted {
            Some(reply::ALREADY_AUTHENTICATED)
        } else if self.envelope.is_some() {
            Some(reply::AUTH_IN_TRANSACTION)
        } else if mechanism != AUTH_PLAIN && mechanism != AUTH_LOGIN {
            Some(reply::AUTH_MECHANISM)
        } else {
            None
        };
        if let Some(r) = refusal {
            self.reply(r);
            return Step::Continue;
        }
        let step = if mechanism == AUTH_PLAIN {
            SaslStep::Plain
        } else {
            SaslStep::LoginUser
        };
        if initial.is_empty() {
            self.challenge(&step);
            return Step::Continue;
        }
        self.sasl_response(initial.as_bytes(), step)
    }

    fn challenge(&mut self, step: &SaslStep) {
        let (line, mode): (&[u8], Mode) = match step {
            SaslStep::Plain => (b"334 \r\n", Mode::AuthPlain),
            SaslStep::LoginUser => (b"334 VXNlcm5hbWU6\r\n", Mode::AuthLoginUser),
            SaslStep::LoginPass(username) => (
                b"334 UGFzc3dvcmQ6\r\n",
                Mode::AuthLoginPass {
                    username: username.clone(),
                },
            ),
        };
        self.out.extend_from_slice(line);
        self.mode = mode;
    }

    fn step_sasl(&mut self, rest: &mut &[u8], step: SaslStep) -> Step {
        match self.lines.push(rest, MAX_SASL_LINE) {
            Framed::Partial => {
                self.mode = step.into_mode();
                Step::Continue
            }
            Framed::TooLong => {
                self.mode = Mode::Command;
                self.reply(reply::AUTH_LINE_TOO_LONG);
                Step::Continue
            }
            Framed::Line => {
                let line = self.lines.line_trimmed().to_vec();
                self.sasl_response(&line, step)
            }
        }
    }

    /// Handles one client response (initial or continuation) of a PLAIN or LOGIN exchange.
    fn sasl_response(&mut self, response: &[u8], step: SaslStep) -> Step {
        self.mode = Mode::Command;
        let decoded = match step {
            SaslStep::Plain => sasl::decode_plain(response),
            SaslStep::LoginUser => match sasl::decode_login_field(response) {
                Ok(username) => {
                    self.challenge(&SaslStep::LoginPass(username));
                    return Step::Continue;
                }
                Err(e) => Err(e),
            },
            SaslStep::LoginPass(username) => {
                sasl::decode_login_field(response).map(|password| Credentials {
                    username,
                    password: password.into(),
                })
            }
        };
        match decoded {
            Ok(credentials) => {
                self.mode = Mode::AwaitAuth;
                Step::Stop(Action::Authenticate(credentials))
            }
            Err(e) => {
                self.reply(sasl_error_reply(e));
                Step::Continue
            }
        }
    }

    fn handle_mail(&mut self, args: &[u8]) -> Reply {
        let Some(submitter) = &self.submitter else {
            return if !self.helo {
                reply::HELLO_FIRST
            } else if self.needs_tls() {
                reply::STARTTLS_FIRST
            } else {
                reply::AUTH_REQUIRED
            };
        };
        if self.envelope.is_some() {
            return reply::NESTED_MAIL;
        }
        let mail = match utf8_args(args).and_then(address::parse_mail) {
            Ok(mail) => mail,
            Err(e) => return path_error_reply(e, Enhanced(5, 1, 7), "sender"),
        };
        if mail
            .size
            .is_some_and(|n| n > self.limits.max_message_size as u64)
        {
            self.refused("message too big (SIZE)", mail.from.as_ref());
            return self.too_big();
        }
        if mail.from.as_ref().is_some_and(|a| !a.is_ascii()) && !mail.smtputf8 {
            return reply::NEEDS_SMTPUTF8;
        }
        if !submitter.may_send_as(mail.from.as_ref()) {
            let refusal = sender_refused(submitter, mail.from.as_ref(), self.network_trusted);
            self.refused("sender not allowed", mail.from.as_ref());
            return refusal;
        }
        let shown = mail
            .from
            .as_ref()
            .map(Address::to_string)
            .unwrap_or_default();
        let r = Reply::with_text(250, Enhanced(2, 1, 0), format!("<{shown}> sender OK"));
        self.recipients_refusal_noted = false;
        self.envelope = Some(Envelope {
            body_8bitmime: mail.body_8bitmime,
            smtputf8: mail.smtputf8,
            mail_from: mail.from,
            rcpts: Vec::new(),
        });
        r
    }

    fn handle_rcpt(&mut self, args: &[u8]) -> Reply {
        let max = self.limits.max_recipients;
        let Some(envelope) = &mut self.envelope else {
            return reply::MAIL_FIRST;
        };
        let to = match utf8_args(args).and_then(address::parse_rcpt) {
            Ok(to) => to,
            Err(e) => return path_error_reply(e, Enhanced(5, 1, 3), "recipient"),
        };
        if !to.is_ascii() && !envelope.smtputf8 {
            return reply::NEEDS_SMTPUTF8;
        }
        if envelope.rcpts.len() >= max {
            let sender = envelope.mail_from.clone();
            if std::mem::replace(&mut self.recipients_refusal_noted, true) {
                self.local_rejections += 1;
            } else {
                self.refused("too many recipients", sender.as_ref());
            }
            return reply::TOO_MANY_RECIPIENTS;
        }
        if let Some(submitter) = &self.submitter
            && !submitter.may_send_to(&to)
        {
            let refusal = recipient_refused(submitter, &to);
            let sender = envelope.mail_from.clone();
            self.refused("recipient domain not allowed", sender.as_ref());
            return refusal;
        }
        let r = Reply::with_text(250, Enhanced(2, 1, 5), format!("<{to}> recipient OK"));
        envelope.rcpts.push(to);
        r
    }

    fn handle_data(&mut self) -> Step {
        let r = match &self.envelope {
            None => reply::MAIL_FIRST,
            Some(e) if e.rcpts.is_empty() => reply::NO_RECIPIENTS,
            Some(_) => {
                self.out
                    .extend_from_slice(b"354 Start mail input; end with <CRLF>.<CRLF>\r\n");
                let limits = &self.limits;
                let rx = DataReceiver::new(limits.max_message_size, limits.bare_line_endings);
                self.data = Vec::new();
                self.mode = Mode::Data(rx);
                return Step::Continue;
            }
        };
        self.reply(r);
        Step::Continue
    }

    fn step_data(&mut self, rest: &mut &[u8], mut rx: DataReceiver) -> Step {
        let (used, done) = rx.ingest(rest, &mut self.data);
        *rest = &rest[used..];
        if !done {
            self.mode = Mode::Data(rx);
            return Step::Continue;
        }
        self.finish_data(&rx)
    }

    fn finish_data(&mut self, rx: &DataReceiver) -> Step {
        self.mode = Mode::Command;
        let (Some(envelope), Some(submitter)) = (self.envelope.take(), self.submitter.clone())
        else {
            self.reply(reply::INTERNAL);
            return Step::Continue;
        };
        let refusal = if rx.too_big() {
            Some((self.too_big(), "message too big"))
        } else if rx.refused_for_bare_line_endings() {
            Some((reply::BARE_LINE_ENDING, "bare CR or LF in the message"))
        } else {
            None
        };
        if let Some((r, reason)) = refusal {
            self.data = Vec::new();
            self.refused(reason, envelope.mail_from.as_ref());
            self.reply(r);
            return Step::Continue;
        }
        let data = std::mem::take(&mut self.data);
        self.mode = Mode::AwaitRelay;
        let message = Submission::new(submitter, envelope, data);
        Step::Stop(Action::Relay(Box::new(message)))
    }

    fn step_bdat(&mut self, rest: &mut &[u8], mut rx: DummyDataReceiver) -> Step {
        let mut iter = rest.iter();
        let done = rx.ingest(&mut iter);
        *rest = iter.as_slice();
        if done {
            self.mode = Mode::Command;
            self.reply(reply::BDAT_REFUSED);
        } else {
            self.mode = Mode::Bdat(rx);
        }
        Step::Continue
    }

    /// Counts a local policy refusal and keeps it for the log.
    fn refused(&mut self, reason: &'static str, sender: Option<&Address>) {
        self.local_rejections += 1;
        if self.refusals.len() < MAX_PENDING_REFUSALS {
            let sender = sender.map_or_else(|| "<>".to_string(), Address::to_string);
            self.refusals.push(Refusal { reason, sender });
        }
    }

    fn too_big(&self) -> Reply {
        let max = self.limits.max_message_size;
        Reply::with_text(
            552,
            Enhanced(5, 3, 4),
            format!("Message size exceeds fixed maximum message size of {max} octets"),
        )
    }
}

enum SaslStep {
    Plain,
    LoginUser,
    LoginPass(String),
}

impl SaslStep {
    fn into_mode(self) -> Mode {
        match self {
            SaslStep::Plain => Mode::AuthPlain,
            SaslStep::LoginUser => Mode::AuthLoginUser,
            SaslStep::LoginPass(username) => Mode::AuthLoginPass { username },
        }
    }
}

/// Syntax and sequence errors (500–504, 555); refusals of what the client asked for are not.
fn is_protocol_error(r: &Reply) -> bool {
    matches!(r.code, 500..=504 | 555)
}

/// Writes `250-first`, …, `250 last`.
fn write_multiline(out: &mut Vec<u8>, code: u16, lines: &[String]) {
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        out.extend_from_slice(format!("{code}{sep}{line}\r\n").as_bytes());
    }
}

fn sasl_error_reply(e: SaslError) -> Reply {
    match e {
        SaslError::Cancelled => reply::AUTH_CANCELLED,
        SaslError::BadBase64 => reply::AUTH_BAD_BASE64,
        SaslError::Malformed => reply::AUTH_MALFORMED,
    }
}

/// `MAIL FROM:` or `RCPT TO:` with its argument text. These two are parsed here, not by
/// smtp-proto, whose parser drops the quotes of a quoted local part (so the text after them
/// became parameters upstream) and replaces bytes that are not UTF-8.
enum EnvelopeCommand<'a> {
    Mail(&'a [u8]),
    Rcpt(&'a [u8]),
}

fn envelope_command(line: &[u8]) -> Option<EnvelopeCommand<'_>> {
    let starts = |prefix: &[u8]| {
        line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    if starts(b"MAIL FROM:") {
        Some(EnvelopeCommand::Mail(&line[10..]))
    } else if starts(b"RCPT TO:") {
        Some(EnvelopeCommand::Rcpt(&line[8..]))
    } else {
        None
    }
}

const BAD_MAIL_SYNTAX: Reply = Reply::new(501, (5, 5, 4), "Syntax: MAIL FROM:<address>");
const BAD_RCPT_SYNTAX: Reply = Reply::new(501, (5, 5, 4), "Syntax: RCPT TO:<address>");

fn utf8_args(args: &[u8]) -> Result<&str, PathError> {
    std::str::from_utf8(args).map_err(|_| PathError::Syntax("the address is not valid UTF-8"))
}

/// `501` for a malformed path (`enhanced` says sender or recipient), `555` for a parameter.
fn path_error_reply(e: PathError, enhanced: Enhanced, what: &str) -> Reply {
    match e {
        PathError::Syntax(why) => {
            Reply::with_text(501, enhanced, format!("Bad {what} address syntax: {why}"))
        }
        PathError::Parameter(text) => Reply::with_text(555, Enhanced(5, 5, 4), text),
    }
}

/// The refusal of a sender. A logged-in user is told which senders it may use; a device
/// trusted by its network address proved nothing, so it is not shown the list.
fn sender_refused(submitter: &Submitter, from: Option<&Address>, network_trusted: bool) -> Reply {
    let shown = from.map_or_else(|| "<>".to_string(), Address::to_string);
    let text = if network_trusted {
        format!("Sender {shown} not allowed for this client")
    } else {
        format!(
            "Sender {shown} not allowed for user {}; allowed: {}",
            submitter.user,
            submitter.allowed_list()
        )
    };
    Reply::with_text(550, Enhanced(5, 7, 1), text)
}

/// The refusal of a recipient outside the account's `allowed_recipient_domains`. The domains
/// are the operator's, not a secret of the user's, so every client is told them.
fn recipient_refused(submitter: &Submitter, to: &Address) -> Reply {
    let allowed = submitter.allowed_recipient_domains.join(", ");
    let text = format!("Recipient <{to}> not allowed: this relay sends only to {allowed}");
    Reply::with_text(550, Enhanced(5, 7, 1), text)
}

fn parse_error_reply(e: smtp_proto::Error) -> Reply {
    use smtp_proto::Error as E;
    match e {
        E::UnknownCommand => reply::UNKNOWN_COMMAND,
        E::InvalidSenderAddress => reply::BAD_SENDER,
        E::InvalidRecipientAddress => reply::BAD_RECIPIENT,
        E::SyntaxError { syntax } => {
            Reply::with_text(501, Enhanced(5, 5, 2), format!("Syntax: {syntax}"))
        }
        E::InvalidParameter { param } => {
            Reply::with_text(501, Enhanced(5, 5, 4), format!("Invalid parameter {param}"))
        }
        E::UnsupportedParameter { param } => Reply::with_text(
            555,
            Enhanced(5, 5, 4),
            format!("Unsupported parameter {param}"),
        ),
        E::ResponseTooLong => reply::LINE_TOO_LONG,
        E::NeedsMoreData { .. } | E::InvalidResponse { .. } => {
            Reply::new(500, (5, 5, 2), "Syntax error")
        }
    }
}

#[cfg(test)]
mod tests;
