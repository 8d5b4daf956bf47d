//! Default values for every optional setting, each with the reason for its value.

use std::time::Duration;

/// Loopback by default: a network address needs TLS and a decision by the operator.
pub const DEFAULT_SMTP_LISTEN: &str = "127.0.0.1:2525";
/// Loopback only: `/status` tells anyone who can reach it which mailboxes exist.
pub const DEFAULT_HEALTH_LISTEN: &str = "127.0.0.1:8025";
/// A month is enough to get a new secret through most change processes.
pub const DEFAULT_SECRET_WARN_DAYS: u32 = 30;
/// Exchange Online's default mailbox send limit (35 MB, counted in MiB as Exchange does).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 35 * 1024 * 1024;
/// Exchange Online's default recipient limit per message.
pub const DEFAULT_MAX_RECIPIENTS: usize = 500;
/// smtp-proto's own cap; RFC 5321 asks for at least 512 and clients with many MAIL
/// parameters exceed that.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 4096;
/// A small host rarely has more than a few clients; this bounds memory and file descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;
/// Three tries cover a typo; more only helps someone guessing.
pub const DEFAULT_MAX_AUTH_FAILURES: u32 = 3;
pub const DEFAULT_AUTH_FAILURE_DELAY: Duration = Duration::from_secs(1);
/// A busy office printer opens a few connections; twenty from one address is an attack or a bug.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 20;
/// Ten wrong passwords from one address in the lockout window is guessing, not typing.
pub const DEFAULT_AUTH_FAILURES_PER_IP: u32 = 10;
pub const DEFAULT_AUTH_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Long enough for a 35 MB message on a slow line, short enough that a slot is not held forever.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// A program logs in within a second; a person typing into telnet within a minute. Longer only
/// lets idle connections hold slots.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// 1 KiB/s: a 35 MB message at this rate takes 10 hours, so any real client is far faster;
/// a slowloris client that trickles bytes is not.
pub const DEFAULT_MIN_DATA_RATE: usize = 1024;
/// Clients make the odd mistake; twenty in one session is a scanner or a broken program.
pub const DEFAULT_MAX_ERRORS: u32 = 20;
/// RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for the next command.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_UPSTREAM_CONNECT: Duration = Duration::from_secs(30);
/// RFC 5321 §4.5.3.2.1: initial 220 message, 5 minutes.
pub const DEFAULT_UPSTREAM_GREETING: Duration = Duration::from_secs(5 * 60);
/// RFC 5321 §4.5.3.2.2–3: MAIL and RCPT, 5 minutes.
pub const DEFAULT_UPSTREAM_COMMAND: Duration = Duration::from_secs(5 * 60);
/// RFC 5321 §4.5.3.2.4: DATA initiation, 2 minutes.
pub const DEFAULT_UPSTREAM_DATA_START: Duration = Duration::from_secs(2 * 60);
/// RFC 5321 §4.5.3.2.5: data block, 3 minutes.
pub const DEFAULT_UPSTREAM_DATA_BLOCK: Duration = Duration::from_secs(3 * 60);
/// RFC 5321 §4.5.3.2.6: DATA termination, 10 minutes (shorter risks duplicates).
pub const DEFAULT_UPSTREAM_DATA_END: Duration = Duration::from_secs(10 * 60);
/// Long enough to ride out a burst through 3 connections, short enough for a client to retry.
pub const DEFAULT_UPSTREAM_SLOT_WAIT: Duration = Duration::from_secs(60);
pub const DEFAULT_TOKEN_CONNECT: Duration = Duration::from_secs(10);
pub const DEFAULT_TOKEN_TOTAL: Duration = Duration::from_secs(30);
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The Exchange Online resource for SMTP/IMAP/POP client credentials (Microsoft Learn,
/// "Authenticate an IMAP, POP or SMTP connection using OAuth").
pub const DEFAULT_SCOPE: &str = "https://outlook.office365.com/.default";
pub const DEFAULT_SMTP_HOST: &str = "smtp.office365.com";
pub const DEFAULT_SMTP_PORT: u16 = 587;
/// Exchange Online allows 3 concurrent submissions per mailbox; a 4th gets `432 4.3.2`.
pub const DEFAULT_ACCOUNT_MAX_CONNECTIONS: usize = 3;

impl Default for super::Limits {
    fn default() -> Self {
        Self {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_recipients: DEFAULT_MAX_RECIPIENTS,
            max_line_length: DEFAULT_MAX_LINE_LENGTH,
            bare_line_endings: super::BareLineEndings::Reject,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_auth_failures: DEFAULT_MAX_AUTH_FAILURES,
            auth_failure_delay: DEFAULT_AUTH_FAILURE_DELAY,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            auth_failures_per_ip: DEFAULT_AUTH_FAILURES_PER_IP,
            auth_lockout: DEFAULT_AUTH_LOCKOUT,
            session_lifetime: DEFAULT_SESSION_LIFETIME,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            min_data_rate: DEFAULT_MIN_DATA_RATE,
            max_errors: DEFAULT_MAX_ERRORS,
        }
    }
}

impl Default for super::Timeouts {
    fn default() -> Self {
        Self {
            idle: DEFAULT_IDLE_TIMEOUT,
            upstream_connect: DEFAULT_UPSTREAM_CONNECT,
            upstream_greeting: DEFAULT_UPSTREAM_GREETING,
            upstream_command: DEFAULT_UPSTREAM_COMMAND,
            upstream_data_start: DEFAULT_UPSTREAM_DATA_START,
            upstream_data_block: DEFAULT_UPSTREAM_DATA_BLOCK,
            upstream_data_end: DEFAULT_UPSTREAM_DATA_END,
            upstream_slot_wait: DEFAULT_UPSTREAM_SLOT_WAIT,
            token_connect: DEFAULT_TOKEN_CONNECT,
            token_total: DEFAULT_TOKEN_TOTAL,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}
