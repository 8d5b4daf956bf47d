//! How `queue list` and `queue show` print messages: a table like `postqueue -p`, a detailed
//! view, or JSON. Envelope addresses and upstream replies are client or remote text, so control
//! characters are escaped before they reach a terminal.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::spool::Meta;

/// Widest account, sender and last-error columns of the table, in characters.
const ACCOUNT_WIDTH: usize = 16;
const SENDER_WIDTH: usize = 32;
const ERROR_WIDTH: usize = 60;
/// Longest text shown in full by `show`; beyond it, `...`.
const MAX_SHOWN: usize = 1000;

/// `text` with control characters escaped as Rust writes them (`\n`, `\u{1b}`, `\\`), as
/// `logging::Untrusted` does for log lines, and cut after [`MAX_SHOWN`] characters.
pub(super) fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        if i == MAX_SHOWN {
            out.push_str("...");
            break;
        }
        match c {
            '"' | '\'' => out.push(c),
            _ => {
                let _ = write!(out, "{}", c.escape_debug());
            }
        }
    }
    out
}

/// [`shown`], cut to `width` characters for a table cell.
fn cell(text: &str, width: usize) -> String {
    let text = shown(text);
    if text.chars().count() <= width {
        return text;
    }
    let mut cut: String = text.chars().take(width.saturating_sub(3)).collect();
    cut.push_str("...");
    cut
}

fn sender(meta: &Meta) -> String {
    match &meta.mail_from {
        Some(a) => a.clone(),
        None => "<>".into(),
    }
}

/// One line per message, then a summary line.
pub(super) fn table(messages: &[Meta], now: u64, out: &mut impl Write) -> io::Result<()> {
    if messages.is_empty() {
        return writeln!(out, "the queue is empty");
    }
    let rows: Vec<[String; 8]> = messages.iter().map(|m| row(m, now)).collect();
    let header = [
        "ID",
        "AGE",
        "SIZE",
        "STATE",
        "ACCOUNT",
        "SENDER",
        "RCPTS",
        "LAST ERROR",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            match i {
                7 => line.push_str(c),
                1 | 2 | 6 => {
                    let _ = write!(line, "{c:>w$}  ");
                }
                _ => {
                    let _ = write!(line, "{c:<w$}  ");
                }
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    let total: u64 = messages.iter().map(|m| m.size).sum();
    let held = messages.iter().filter(|m| m.state() == "held").count();
    writeln!(
        out,
        "-- {} message(s), {} held, {} in all",
        messages.len(),
        held,
        size(total)
    )
}

fn row(m: &Meta, now: u64) -> [String; 8] {
    let error = m.last_error.as_deref().unwrap_or(&m.reason);
    [
        cell(&m.id, 16),
        age(now.saturating_sub(m.arrived)),
        size(m.size),
        if m.ambiguous {
            format!("{}*", m.state())
        } else {
            m.state().to_string()
        },
        cell(&m.account, ACCOUNT_WIDTH),
        cell(&sender(m), SENDER_WIDTH),
        m.rcpts.len().to_string(),
        cell(error, ERROR_WIDTH),
    ]
}

/// Every field of one message.
pub(super) fn details(m: &Meta, now: u64, out: &mut impl Write) -> io::Result<()> {
    let mut lines: Vec<(&str, String)> = vec![
        ("id", shown(&m.id)),
        ("state", m.state().to_string()),
        ("account", shown(&m.account)),
        ("user", shown(&m.user)),
        ("from", shown(&sender(m))),
    ];
    for (i, rcpt) in m.rcpts.iter().enumerate() {
        lines.push((if i == 0 { "to" } else { "" }, shown(rcpt)));
    }
    lines.push(("size", format!("{} octets", m.size)));
    if let Some(id) = &m.message_id {
        lines.push(("message-id", shown(id)));
    }
    lines.push(("arrived", when(m.arrived, now)));
    lines.push(("attempts", m.attempts.to_string()));
    lines.push(("next attempt", when(m.next_attempt, now)));
    lines.push(("queued because", shown(&m.reason)));
    if let Some(e) = &m.last_error {
        lines.push(("last error", shown(e)));
    }
    if m.ambiguous {
        lines.push((
            "ambiguous",
            "yes: its final dot went upstream and no reply came back; it may have been delivered"
                .into(),
        ));
    }
    if let Some(hold) = m.hold {
        lines.push(("held", format!("{hold:?}").to_lowercase()));
    }
    if let Some(failure) = &m.failure {
        lines.push(("failed", shown(failure)));
    }
    for (key, value) in lines {
        let key = if key.is_empty() {
            String::new()
        } else {
            format!("{key}:")
        };
        writeln!(out, "{key:<16}{value}")?;
    }
    Ok(())
}

/// Pretty JSON, with the control characters JSON allows raw in strings (DEL and U+0080–U+009F,
/// which some terminals take as escape sequences) written as `\u` escapes too.
pub(super) fn json<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut impl Write,
) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' {
            let _ = write!(safe, "\\u{:04x}", c as u32);
        } else {
            safe.push(c);
        }
    }
    writeln!(out, "{safe}")
}

/// `2026-12-01T10:00:00Z (2h05m ago)`, or `(in 5m)`.
fn when(at: u64, now: u64) -> String {
    let date = crate::dates::rfc3339(at);
    if at <= now {
        format!("{date} ({} ago)", age(now - at))
    } else {
        format!("{date} (in {})", age(at - now))
    }
}

/// `42s`, `17m`, `3h05m`, `2d04h`.
fn age(seconds: u64) -> String {
    let (m, h, d) = (seconds / 60, seconds / 3600, seconds / 86_400);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{m}m"),
        3600..86_400 => format!("{h}h{:02}m", m % 60),
        _ => format!("{d}d{:02}h", h % 24),
    }
}

/// `812`, `12K`, `3.4M` (powers of 1024, as `ls -h`).
fn size(octets: u64) -> String {
    const K: u64 = 1024;
    match octets {
        0..K => octets.to_string(),
        K..1_048_576 => format!("{}K", octets.div_ceil(K)),
        _ => format!("{:.1}M", octets as f64 / (K * K) as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, from: Option<&str>, error: Option<&str>) -> Meta {
        Meta {
            id: id.into(),
            account: "contoso".into(),
            user: "app".into(),
            mail_from: from.map(String::from),
            rcpts: vec!["a@example.net".into(), "b@example.net".into()],
            body_8bitmime: false,
            smtputf8: false,
            size: 2048,
            message_id: None,
            arrived: 1_000,
            attempts: 2,
            next_attempt: 2_000,
            reason: "upstream 432 4.3.2".into(),
            last_error: error.map(String::from),
            ambiguous: false,
            hold: None,
            in_flight: false,
            warned: false,
            failure: None,
        }
    }

    fn text(f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        f(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_table_escapes_client_text_and_cuts_long_errors() {
        let long = format!("451 4.7.0 {}", "x".repeat(200));
        let m = [
            meta("0190A1B2C3D40000", Some("evil\u{1b}[31m@example.com"), None),
            meta("0190A1B2C3D40001", None, Some(&long)),
        ];
        let t = text(|o| table(&m, 1_000 + 7_500, o));
        assert!(!t.contains('\u{1b}'), "{t}");
        assert!(t.contains("evil\\u{1b}[31m@example.com"), "{t}");
        assert!(t.contains("<>"), "{t}");
        assert!(t.contains("2h05m") && t.contains("2K"), "{t}");
        assert!(t.contains("upstream 432 4.3.2"), "{t}");
        let cut = t.lines().find(|l| l.contains("451 4.7.0")).unwrap();
        assert!(
            cut.ends_with("...") && !cut.contains(&"x".repeat(60)),
            "{cut}"
        );
        assert!(t.ends_with("-- 2 message(s), 0 held, 4K in all\n"), "{t}");
    }

    #[test]
    fn details_escape_every_recipient_and_json_escapes_c1_controls() {
        let mut m = meta("0190A1B2C3D40000", Some("a@b"), Some("421 4.4.2\r\nforged"));
        m.rcpts.push("c\u{9b}2J@example.net".into());
        let d = text(|o| details(&m, 5_000, o));
        assert!(
            d.contains("421 4.4.2\\r\\nforged") && d.contains("c\\u{9b}2J"),
            "{d}"
        );
        assert!(
            d.contains("next attempt:   1970-01-01T00:33:20Z (50m ago)"),
            "{d}"
        );
        let j = text(|o| json(&[m.clone()], o));
        assert!(!j.contains('\u{9b}') && j.contains("c\\u009b2J"), "{j}");
        let back: Vec<Meta> = serde_json::from_str(&j).unwrap();
        assert_eq!(back, [m]);
    }

    #[test]
    fn ages_and_sizes_read_like_ls_and_postqueue() {
        assert_eq!(age(59), "59s");
        assert_eq!(age(61), "1m");
        assert_eq!(age(3 * 3600 + 5 * 60), "3h05m");
        assert_eq!(age(2 * 86_400 + 4 * 3600), "2d04h");
        assert_eq!(size(812), "812");
        assert_eq!(size(12 * 1024), "12K");
        assert_eq!(size(3_565_158), "3.4M");
    }
}
