//! SMTP replies: one `Reply` type, the named replies the listener sends, and the wire writer.
//! Every reply to a client carries an enhanced status code (RFC 3463), except the few that
//! RFC 5321 defines without one (220 greeting, 334 challenge, 354 go-ahead), written by hand.

use std::borrow::Cow;
use std::fmt;

/// Longest reply text we send; RFC 5321 §4.5.3.1.5 caps a reply line at 512 octets.
pub const MAX_TEXT: usize = 400;

/// An enhanced status code `class.subject.detail` (detail may exceed 9, e.g. `5.7.139`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Enhanced(pub u8, pub u16, pub u16);

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// One single-line SMTP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Enhanced,
    pub text: Cow<'static, str>,
}

impl Reply {
    pub const fn new(code: u16, enhanced: (u8, u16, u16), text: &'static str) -> Self {
        Self {
            code,
            enhanced: Enhanced(enhanced.0, enhanced.1, enhanced.2),
            text: Cow::Borrowed(text),
        }
    }

    /// A reply with computed text; the text is sanitised when written.
    pub fn with_text(code: u16, enhanced: Enhanced, text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced,
            text: Cow::Owned(text.into()),
        }
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// Appends `"<code> <enhanced> <text>\r\n"` to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{} {} ", self.code, self.enhanced).as_bytes());
        out.extend_from_slice(sanitize(&self.text).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.code,
            self.enhanced,
            sanitize(&self.text)
        )
    }
}

/// Makes text safe for one reply line: control characters (CR and LF above all, which would let
/// upstream text inject reply lines) become spaces, and the length is bounded.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    let clean = text.len() <= MAX_TEXT && !text.chars().any(char::is_control);
    if clean {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(MAX_TEXT));
    for c in text.chars() {
        if out.len() + c.len_utf8() > MAX_TEXT {
            out.push_str("...");
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    Cow::Owned(out)
}

pub const OK: Reply = Reply::new(250, (2, 0, 0), "OK");
pub const BYE: Reply = Reply::new(221, (2, 0, 0), "Bye");
pub const RESET: Reply = Reply::new(250, (2, 0, 0), "Reset OK");
pub const AUTH_OK: Reply = Reply::new(235, (2, 7, 0), "Authentication successful");
pub const AUTH_FAILED: Reply = Reply::new(535, (5, 7, 8), "Authentication credentials invalid");
/// RFC 4954: the password could not be checked now (the argon2 queue is full).
pub const AUTH_TEMPORARY: Reply = Reply::new(454, (4, 7, 0), "Temporary authentication failure");
pub const AUTH_REQUIRED: Reply = Reply::new(530, (5, 7, 0), "Authentication required");
pub const AUTH_CANCELLED: Reply = Reply::new(501, (5, 7, 0), "Authentication cancelled");
pub const AUTH_BAD_BASE64: Reply = Reply::new(501, (5, 5, 2), "Invalid base64 data");
pub const AUTH_MALFORMED: Reply = Reply::new(501, (5, 5, 2), "Malformed authentication data");
pub const AUTH_LINE_TOO_LONG: Reply =
    Reply::new(500, (5, 5, 6), "Authentication exchange line is too long");
pub const AUTH_MECHANISM: Reply = Reply::new(
    504,
    (5, 5, 4),
    "Unrecognized authentication type; use PLAIN or LOGIN",
);
pub const AUTH_TOO_MANY: Reply = Reply::new(
    421,
    (4, 7, 0),
    "Too many failed authentication attempts, closing connection",
);
pub const ALREADY_AUTHENTICATED: Reply = Reply::new(503, (5, 5, 1), "Already authenticated");
pub const HELLO_FIRST: Reply = Reply::new(503, (5, 5, 1), "Send EHLO first");
pub const AUTH_IN_TRANSACTION: Reply =
    Reply::new(503, (5, 5, 1), "AUTH not allowed during a mail transaction");
pub const NESTED_MAIL: Reply = Reply::new(503, (5, 5, 1), "Sender already given; RSET first");
pub const MAIL_FIRST: Reply = Reply::new(503, (5, 5, 1), "Need MAIL command first");
pub const NO_RECIPIENTS: Reply = Reply::new(554, (5, 5, 1), "No valid recipients");
pub const TOO_MANY_RECIPIENTS: Reply = Reply::new(452, (4, 5, 3), "Too many recipients");
pub const BAD_RECIPIENT: Reply = Reply::new(501, (5, 1, 3), "Bad recipient address syntax");
pub const BAD_SENDER: Reply = Reply::new(501, (5, 1, 7), "Bad sender address syntax");
pub const UNKNOWN_COMMAND: Reply = Reply::new(500, (5, 5, 1), "Unknown command");
pub const LINE_TOO_LONG: Reply = Reply::new(500, (5, 5, 2), "Line too long");
pub const NOT_IMPLEMENTED: Reply = Reply::new(502, (5, 5, 1), "Command not implemented");
pub const NO_STARTTLS: Reply =
    Reply::new(502, (5, 5, 1), "STARTTLS is not offered on this listener");
pub const BDAT_REFUSED: Reply = Reply::new(502, (5, 5, 1), "CHUNKING is not offered; use DATA");
pub const VRFY: Reply = Reply::new(
    252,
    (2, 5, 0),
    "Cannot VRFY user, but will accept message and attempt delivery",
);
pub const HELP: Reply = Reply::new(
    214,
    (2, 0, 0),
    "Commands: EHLO HELO AUTH MAIL RCPT DATA RSET NOOP QUIT",
);
pub const SPOOL_FULL: Reply = Reply::new(
    452,
    (4, 3, 1),
    "Insufficient system storage: the relay's queue is full; try again later",
);
pub const SPOOL_FAILED: Reply = Reply::new(
    452,
    (4, 3, 1),
    "The relay could not store the message; try again later",
);
pub const IDLE_TIMEOUT: Reply = Reply::new(421, (4, 4, 2), "Idle timeout, closing connection");
pub const SHUTTING_DOWN: Reply = Reply::new(421, (4, 3, 0), "Server shutting down");
pub const TOO_MANY_CONNECTIONS: Reply =
    Reply::new(421, (4, 7, 0), "Too many connections, try again later");
pub const ALREADY_TLS: Reply = Reply::new(503, (5, 5, 1), "TLS already active");
pub const START_TLS: Reply = Reply::new(220, (2, 0, 0), "Ready to start TLS");
pub const ENCRYPTION_REQUIRED: Reply = Reply::new(
    538,
    (5, 7, 11),
    "Encryption required for requested authentication mechanism; use STARTTLS first",
);
pub const STARTTLS_FIRST: Reply = Reply::new(530, (5, 7, 0), "Must issue a STARTTLS command first");
pub const TOO_MANY_ERRORS: Reply =
    Reply::new(421, (4, 7, 0), "Too many errors, closing connection");
pub const SESSION_TOO_LONG: Reply =
    Reply::new(421, (4, 4, 2), "Connection time limit reached, closing");
pub const TOO_SLOW: Reply = Reply::new(
    421,
    (4, 4, 2),
    "Data arriving too slowly, closing connection",
);
pub const IP_LOCKED_OUT: Reply = Reply::new(
    421,
    (4, 7, 0),
    "Too many failed logins from your address; try again later",
);
pub const USER_LOCKED_OUT: Reply = Reply::new(
    421,
    (4, 7, 0),
    "Too many failed logins from your address for this user name; try again later",
);
pub const TOO_MANY_FROM_IP: Reply = Reply::new(
    421,
    (4, 7, 0),
    "Too many connections from your address, try again later",
);
pub const BARE_LINE_ENDING: Reply = Reply::new(
    550,
    (5, 6, 0),
    "Message refused: it contains a bare CR or LF; lines must end with CRLF (RFC 5321 section 2.3.8)",
);
/// Written in clear to a client that sent a TLS handshake; its TLS stack will not show it, but
/// a person testing with a raw socket will.
pub const TLS_IN_CLEAR: Reply = Reply::new(
    500,
    (5, 5, 1),
    "TLS handshake on a plain-text port; use STARTTLS, or the port that speaks TLS from the start",
);
pub const NEEDS_SMTPUTF8: Reply = Reply::new(
    553,
    (5, 6, 7),
    "Non-ASCII address not permitted without SMTPUTF8 in MAIL FROM (RFC 6531)",
);
pub const INTERNAL: Reply = Reply::new(451, (4, 3, 0), "Internal error; try again later");
pub const LOGIN_TIMEOUT: Reply = Reply::new(
    421,
    (4, 7, 0),
    "Login time limit reached, closing connection",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_code_enhanced_and_text() {
        let mut out = Vec::new();
        AUTH_FAILED.write_to(&mut out);
        assert_eq!(out, b"535 5.7.8 Authentication credentials invalid\r\n");
        let mut out = Vec::new();
        Reply::with_text(535, Enhanced(5, 7, 139), "x").write_to(&mut out);
        assert_eq!(out, b"535 5.7.139 x\r\n");
    }

    #[test]
    fn sanitize_removes_line_breaks_and_bounds_length() {
        assert_eq!(sanitize("a\r\n250 OK"), "a  250 OK");
        let long = "é".repeat(1000);
        let s = sanitize(&long);
        assert!(s.len() <= MAX_TEXT + 3, "{}", s.len());
        assert!(s.ends_with("..."));
        assert_eq!(sanitize("plain"), "plain");
    }
}
