//! Reading one field of a message's header section (RFC 5322 §2.2) for the log, bounded: the
//! relay never parses a message, it only looks for its `Message-ID` at the top.

/// Most octets of a message searched for the end of its header section; a header section
/// longer than this is not searched further.
pub const MAX_HEADER_SCAN: usize = 64 * 1024;
/// Longest field value returned (RFC 5322 §2.1.1 line limit), in octets.
const MAX_VALUE: usize = 998;

/// The unfolded value of the first header field called `name` (case-insensitive), trimmed, if
/// it is within the first [`MAX_HEADER_SCAN`] octets and before the empty line that ends the
/// header section. Client text: log it escaped.
pub fn field(message: &[u8], name: &str) -> Option<String> {
    let scanned = &message[..message.len().min(MAX_HEADER_SCAN)];
    let lines = scanned
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let mut value: Option<Vec<u8>> = None;
    for line in lines {
        let folded = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        match (&mut value, folded) {
            (Some(v), true) => v.extend_from_slice(line),
            (Some(_), false) => break,
            (None, _) if line.is_empty() => return None,
            (None, true) => {}
            (None, false) => value = value_of(line, name).map(<[u8]>::to_vec),
        }
    }
    let mut v = value?;
    v.truncate(MAX_VALUE);
    let text = String::from_utf8_lossy(&v);
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The text after `name:` when `line` starts that field.
fn value_of<'a>(line: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let field = line[..colon].trim_ascii_end();
    field
        .eq_ignore_ascii_case(name.as_bytes())
        .then(|| &line[colon + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message_id(m: &str) -> Option<String> {
        field(m.as_bytes(), "Message-ID")
    }

    #[test]
    fn finds_the_field_in_the_header_section_only() {
        assert_eq!(
            message_id("From: a@x\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n").as_deref(),
            Some("<1@x>")
        );
        assert_eq!(
            message_id("message-id:<2@x>\r\nSubject: s\r\n\r\n").as_deref(),
            Some("<2@x>"),
            "case-insensitive, no space needed"
        );
        assert_eq!(
            message_id("Subject: s\r\nMessage-ID:\r\n <3@x>\r\n\r\n").as_deref(),
            Some("<3@x>"),
            "folded"
        );
        assert_eq!(message_id("Subject: s\r\n\r\nMessage-ID: <4@x>\r\n"), None);
        assert_eq!(
            message_id("Subject: s\r\nX-Message-ID: <5@x>\r\n\r\n"),
            None
        );
        assert_eq!(message_id("Message-ID:   \r\n\r\n"), None);
        assert_eq!(message_id(""), None);
    }

    #[test]
    fn bounded_in_what_it_reads_and_returns() {
        let late = format!(
            "X-Pad: {}\r\nMessage-ID: <6@x>\r\n\r\n",
            "p".repeat(MAX_HEADER_SCAN)
        );
        assert_eq!(message_id(&late), None);
        let long = format!("Message-ID: <{}@x>\r\n\r\n", "i".repeat(5000));
        assert_eq!(message_id(&long).unwrap().len(), MAX_VALUE - 1);
        assert!(field(b"Message-ID: <\xff@x>\r\n\r\n", "message-id").is_some());
    }
}
