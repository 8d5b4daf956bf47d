//! Delivery status notifications: the bounce (and delay warning) the spool sends back to a
//! message's envelope sender, an RFC 3464 report inside an RFC 6522 `multipart/report`, and the
//! RFC 3834 rule for when not to send one. Pure: the caller passes every value, the times too.
//!
//! Every text in a report that came from a client or the upstream (addresses, the upstream's
//! reply, the original header) is untrusted: control characters become spaces before it is
//! written, so none can start a header line or a MIME boundary of its own, and every line stays
//! within RFC 5322 §2.1.1's 998 octets.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::address::Address;
use crate::dates;
use crate::reply::Enhanced;

/// Most octets of the original message searched for, and returned as, its header section.
pub(crate) const MAX_ORIGINAL_HEADER: usize = 64 * 1024;
/// Our marker on every report we send, so a report that comes back is never bounced again.
pub(crate) const MARKER: &str = "X-Xoauth-Relay-DSN";
/// RFC 5322 §2.1.1: a line is at most 998 octets before its CRLF.
const MAX_LINE: usize = 998;
/// Where header lines are folded when whitespace allows (RFC 5322 §2.1.1's "SHOULD" of 78).
const FOLD_AT: usize = 78;
/// Longest value we write for one field; with its name it stays within [`MAX_LINE`] unfolded.
const MAX_VALUE: usize = 900;

/// What a report says happened to its recipients (RFC 3464 §2.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Given up: the message is returned.
    Failed,
    /// Not delivered yet, still being retried: a delay warning.
    Delayed,
}

/// One recipient the report is about.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Recipient<'a> {
    pub address: &'a str,
    /// The RFC 3463 status, e.g. 5.1.1; the caller keeps it consistent with the action.
    pub status: Enhanced,
    /// The upstream's reply as received, e.g. `550 5.1.1 User unknown`, if there was one.
    pub diagnostic: Option<&'a str>,
}

/// Everything a report is built from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Report<'a> {
    pub action: Action,
    /// Our host name, for `Reporting-MTA: dns; <host>`.
    pub reporting_host: &'a str,
    /// The upstream host the message was refused by, if known.
    pub remote_mta: Option<&'a str>,
    /// The account's mailbox: the report's `From:`.
    pub mailbox: &'a str,
    /// The original envelope sender, whom the report goes to.
    pub to: &'a str,
    pub queue_id: &'a str,
    pub arrived: SystemTime,
    pub now: SystemTime,
    /// For a delay warning: until when it is retried.
    pub will_retry_until: Option<SystemTime>,
    /// Plain words for the human-readable part.
    pub reason: &'a str,
    pub recipients: &'a [Recipient<'a>],
    /// The original message, or at least its header; only the header goes into the report.
    pub original: &'a [u8],
    /// The report may carry UTF-8 (the original was sent with SMTPUTF8): RFC 6533's forms.
    pub smtputf8: bool,
    /// The host part of the report's own `Message-ID`.
    pub message_id_host: &'a str,
}

/// The whole report as an RFC 5322 message, CRLF line ends.
pub(crate) fn build(r: &Report) -> Vec<u8> {
    let parts = [notification(r), delivery_status(r), returned_header(r)];
    let boundary = boundary(r, &parts);
    let mut out = String::new();
    top_header(&mut out, r, &boundary);
    out.push_str("\r\nThis is a MIME-encapsulated delivery status notification.\r\n");
    for part in &parts {
        out.push_str("\r\n--");
        out.push_str(&boundary);
        out.push_str("\r\n");
        out.push_str(part);
    }
    out.push_str("\r\n--");
    out.push_str(&boundary);
    out.push_str("--\r\n");
    out.into_bytes()
}

/// Whether a message that failed may be answered with a report: never to the null sender, nor
/// for a message that is itself automatic (RFC 3834 §2: an `Auto-Submitted` other than `no`),
/// nor for one of our own reports.
pub(crate) fn may_bounce(mail_from: Option<&Address>, original: &[u8]) -> bool {
    mail_from.is_some()
        && header_fields(original_header(original))
            .iter()
            .all(|(name, value)| {
                let auto = name.eq_ignore_ascii_case("Auto-Submitted") && !is_no(value);
                !auto && !name.eq_ignore_ascii_case(MARKER)
            })
}

/// The message's header section, up to and including the empty line that ends it, within the
/// first [`MAX_ORIGINAL_HEADER`] octets. Without an empty line there, all complete lines in
/// that bound (a short message with no empty line is all header, RFC 5322 §2.1).
pub(crate) fn original_header(message: &[u8]) -> &[u8] {
    let scanned = &message[..message.len().min(MAX_ORIGINAL_HEADER)];
    let mut start = 0;
    while let Some(nl) = memchr::memchr(b'\n', &scanned[start..]) {
        let end = start + nl + 1;
        if matches!(&scanned[start..end], b"\n" | b"\r\n") {
            return &scanned[..end];
        }
        start = end;
    }
    if message.len() <= MAX_ORIGINAL_HEADER {
        message
    } else {
        &scanned[..start]
    }
}

/// `no`, ignoring case and a comment or parameters after it (RFC 3834 §5's syntax).
fn is_no(value: &str) -> bool {
    let token = value.split([';', '(']).next().unwrap_or("").trim();
    token.eq_ignore_ascii_case("no")
}

/// The fields of a header section, names and unfolded values, in order.
fn header_fields(header: &[u8]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut open = false;
    for line in header.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if text.starts_with([' ', '\t']) {
            if let (true, Some(last)) = (open, fields.last_mut()) {
                last.1.push_str(&text);
            }
            continue;
        }
        open = match text.split_once(':') {
            Some((name, value)) => {
                fields.push((name.trim_end().to_string(), value.to_string()));
                true
            }
            None => false,
        };
    }
    for field in &mut fields {
        field.1 = field.1.trim().to_string();
    }
    fields
}

fn top_header(out: &mut String, r: &Report, boundary: &str) {
    let utf8 = r.smtputf8;
    let subject = match r.action {
        Action::Failed => "Undelivered Mail Returned to Sender",
        Action::Delayed => "Delayed Mail (still being retried)",
    };
    let from = format!("Mail Delivery System <{}>", angle(r.mailbox, utf8));
    field(out, "From", &from);
    field(out, "To", &format!("<{}>", angle(r.to, utf8)));
    let subject = format!("{subject} ({})", clean(r.queue_id, utf8));
    field(out, "Subject", &subject);
    field(out, "Date", &dates::rfc5322(unix(r.now)));
    field(out, "Message-ID", &message_id(r));
    field(out, "Auto-Submitted", "auto-replied");
    field(out, MARKER, &clean(r.queue_id, utf8));
    field(out, "MIME-Version", "1.0");
    let content_type =
        format!("multipart/report; report-type=delivery-status; boundary=\"{boundary}\"");
    field(out, "Content-Type", &content_type);
}

/// Part 1: what happened, in plain words.
fn notification(r: &Report) -> String {
    let utf8 = r.smtputf8;
    let mut text = vec![
        format!(
            "This is the mail system at host {}.",
            clean(r.reporting_host, utf8)
        ),
        String::new(),
    ];
    text.extend(summary(r));
    text.push(String::new());
    text.push(format!("Reason: {}", clean(r.reason, utf8)));
    text.push(format!("Queue ID: {}", clean(r.queue_id, utf8)));
    text.push(format!("Arrived: {}", dates::rfc5322(unix(r.arrived))));
    text.push(String::new());
    for rcpt in r.recipients {
        let said = rcpt.diagnostic.map_or_else(
            || rcpt.status.to_string(),
            |reply| format!("{} said: {}", remote(r), clean(reply, utf8)),
        );
        text.push(format!("<{}>: {said}", clean(rcpt.address, utf8)));
    }
    let charset = if utf8 { "utf-8" } else { "us-ascii" };
    let mut part = mime_part(
        "Notification",
        &format!("text/plain; charset={charset}"),
        utf8,
    );
    for line in &text {
        fold(&mut part, line, FOLD_AT);
    }
    part
}

fn summary(r: &Report) -> Vec<String> {
    match r.action {
        Action::Failed => vec![
            "Your message could not be delivered to the recipients below.".into(),
            "Delivery has been given up; the message's header is attached.".into(),
        ],
        Action::Delayed => {
            let until = r.will_retry_until.map(|t| dates::rfc5322(unix(t)));
            vec![
                "Your message has not yet been delivered to the recipients below.".into(),
                match until {
                    Some(until) => format!("It is still being retried until {until}."),
                    None => "It is still being retried.".into(),
                },
                "You do not need to send it again.".into(),
            ]
        }
    }
}

fn remote(r: &Report) -> String {
    r.remote_mta
        .map_or_else(|| "The remote server".into(), |h| clean(h, r.smtputf8))
}

/// A body part's MIME header and the empty line after it.
fn mime_part(description: &str, media: &str, utf8: bool) -> String {
    let mut part = String::new();
    field(&mut part, "Content-Description", description);
    field(&mut part, "Content-Type", media);
    field(&mut part, "Content-Transfer-Encoding", encoding(utf8));
    part.push_str("\r\n");
    part
}

/// Part 2: the machine-readable report (RFC 3464 §2.2 and §2.3; RFC 6533's global form).
fn delivery_status(r: &Report) -> String {
    let utf8 = r.smtputf8;
    let media = if utf8 {
        "message/global-delivery-status"
    } else {
        "message/delivery-status"
    };
    let mut part = mime_part("Delivery report", media, utf8);
    let host = format!("dns; {}", clean(r.reporting_host, false));
    field(&mut part, "Reporting-MTA", &host);
    field(&mut part, "Arrival-Date", &dates::rfc5322(unix(r.arrived)));
    for rcpt in r.recipients {
        part.push_str("\r\n");
        recipient_fields(&mut part, r, rcpt);
    }
    part
}

fn recipient_fields(part: &mut String, r: &Report, rcpt: &Recipient) {
    let utf8 = r.smtputf8;
    field(
        part,
        "Final-Recipient",
        &final_recipient(rcpt.address, utf8),
    );
    let action = match r.action {
        Action::Failed => "failed",
        Action::Delayed => "delayed",
    };
    field(part, "Action", action);
    field(part, "Status", &rcpt.status.to_string());
    if let Some(host) = r.remote_mta {
        field(part, "Remote-MTA", &format!("dns; {}", clean(host, false)));
    }
    if let Some(reply) = rcpt.diagnostic {
        field(
            part,
            "Diagnostic-Code",
            &format!("smtp; {}", clean(reply, utf8)),
        );
    }
    field(part, "Last-Attempt-Date", &dates::rfc5322(unix(r.now)));
    if let (Action::Delayed, Some(until)) = (r.action, r.will_retry_until) {
        field(part, "Will-Retry-Until", &dates::rfc5322(unix(until)));
    }
    field(part, "Final-Log-ID", &clean(r.queue_id, utf8));
}

/// `rfc822; addr`, or for a non-ASCII address RFC 6533 §3's `utf-8` type: the address as it
/// is in a global report, `utf-8-addr-xtext` (`\x{HEX}` escapes) in a plain one.
fn final_recipient(address: &str, utf8: bool) -> String {
    let address = angle(address, true);
    if address.is_ascii() {
        return format!("rfc822; {address}");
    }
    if utf8 {
        return format!("utf-8; {address}");
    }
    let mut xtext = String::new();
    for c in address.chars() {
        if c.is_ascii() && !matches!(c, '+' | '=' | '\\' | ' ') {
            xtext.push(c);
        } else {
            xtext.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
        }
    }
    format!("utf-8; {xtext}")
}

/// Part 3: the original header, never the body (privacy and size; RFC 6522 §3 and §4 let a
/// report return only the header). RFC 6533's `message/global-headers` when it may be UTF-8.
fn returned_header(r: &Report) -> String {
    let utf8 = r.smtputf8;
    let media = if utf8 {
        "message/global-headers"
    } else {
        "text/rfc822-headers"
    };
    let mut part = mime_part("Undelivered message header", media, utf8);
    let header = original_header(r.original);
    for line in header.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.is_empty() {
            fold(
                &mut part,
                &printable(&String::from_utf8_lossy(line), utf8),
                MAX_LINE,
            );
        }
    }
    part
}

/// A boundary that occurs in none of the parts (RFC 2046 §5.1.1). The parts are finite, so
/// counting up finds one; in practice the first does.
fn boundary(r: &Report, parts: &[String]) -> String {
    let seed = format!("{}.{}", clean(r.queue_id, false), unix(r.now));
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0u64..)
        .map(|n| format!("=_dsn_{hash:016x}_{n}"))
        .find(|b| !parts.iter().any(|p| p.contains(b.as_str())))
        .unwrap_or_default()
}

/// `<dsn.QUEUEID.SECONDS@host>`, with only the characters a `Message-ID` allows unquoted.
fn message_id(r: &Report) -> String {
    let keep = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .take(200)
            .collect()
    };
    let (id, host) = (keep(r.queue_id), keep(r.message_id_host));
    let host = if host.is_empty() {
        "localhost".into()
    } else {
        host
    };
    format!("<dsn.{id}.{}@{host}>", unix(r.now))
}

fn encoding(utf8: bool) -> &'static str {
    if utf8 { "8bit" } else { "7bit" }
}

/// A field value from untrusted text, on one line: control characters become spaces, runs of
/// spaces one, non-ASCII `?` unless UTF-8 may be sent, at most [`MAX_VALUE`] octets.
fn clean(text: &str, utf8: bool) -> String {
    let mut out = String::new();
    for c in printable(text, utf8).chars() {
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if out.len() + c.len_utf8() > MAX_VALUE {
            break;
        }
        out.push(c);
    }
    out.trim_end().to_string()
}

/// [`clean`], also without `<` and `>`: what goes between angle brackets.
fn angle(text: &str, utf8: bool) -> String {
    clean(&text.replace(['<', '>'], ""), utf8)
}

/// Control characters (CR and LF among them) to spaces, non-ASCII to `?` unless `utf8`.
fn printable(text: &str, utf8: bool) -> String {
    text.chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            c if !c.is_ascii() && !utf8 => '?',
            c => c,
        })
        .collect()
}

/// One header field, folded.
fn field(out: &mut String, name: &str, value: &str) {
    fold(out, &format!("{name}: {value}"), FOLD_AT);
}

/// Writes `line` (no CR or LF in it) with CRLF, folded before a space or tab (RFC 5322
/// §2.2.3) so lines stay within `width` where whitespace allows and never exceed
/// [`MAX_LINE`]; a longer run without whitespace is split with a space put in.
fn fold(out: &mut String, line: &str, width: usize) {
    let is_space = |c: char| c == ' ' || c == '\t';
    let mut rest = line.to_string();
    while rest.len() > width {
        // A fold never goes before the first character, so every line holds something.
        let first = rest.chars().next().map_or(0, char::len_utf8);
        let near = rest.floor_char_boundary(width).max(first);
        let far = rest.floor_char_boundary(MAX_LINE).max(first);
        let soft = rest[first..near]
            .rfind(is_space)
            .or_else(|| rest[first..far].find(is_space))
            .map(|i| i + first);
        let (cut, inserted) = match soft {
            Some(cut) => (cut, ""),
            None if rest.len() <= MAX_LINE => break,
            None => (rest.floor_char_boundary(MAX_LINE - 1), " "),
        };
        out.push_str(&rest[..cut]);
        out.push_str("\r\n");
        rest = format!("{inserted}{}", &rest[cut..]);
    }
    out.push_str(&rest);
    out.push_str("\r\n");
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
