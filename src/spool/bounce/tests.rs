//! The reports are parsed back with an independent MIME parser (`mail-parser`), not with this
//! module's own header reader.

use std::time::{Duration, UNIX_EPOCH};

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::*;

const ORIGINAL: &[u8] = b"From: Ann <ann@example.com>\r\nTo: bob@example.net\r\n\
Subject: Quarterly figures\r\nMessage-ID: <q3@example.com>\r\nX-Long:\r\n folded\r\n\
\r\nSECRET BODY LINE\r\nAuto-Submitted: auto-generated\r\n";

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn report<'a>(recipients: &'a [Recipient<'a>]) -> Report<'a> {
    Report {
        action: Action::Failed,
        reporting_host: "relay.example.com",
        remote_mta: Some("smtp.office365.com"),
        mailbox: "relay@contoso.com",
        to: "ann@example.com",
        queue_id: "Q1A2B3",
        arrived: at(1_795_729_271),
        now: at(1_795_729_271 + 3600),
        will_retry_until: None,
        reason: "the recipient's server refused the message",
        recipients,
        original: ORIGINAL,
        smtputf8: false,
        message_id_host: "relay.example.com",
    }
}

const UNKNOWN: Recipient = Recipient {
    address: "bob@example.net",
    status: Enhanced(5, 1, 1),
    diagnostic: Some("550 5.1.1 User unknown"),
};
const FULL: Recipient = Recipient {
    address: "carol@example.net",
    status: Enhanced(5, 2, 2),
    diagnostic: None,
};

fn parse(bytes: &[u8]) -> Message<'_> {
    MessageParser::default().parse(bytes).expect("parses")
}

fn header(m: &Message, name: &str) -> Option<String> {
    m.headers_raw()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| unfold(v))
}

fn unfold(v: &str) -> String {
    v.replace("\r\n", "").trim().to_string()
}

/// The three parts of the report: (media type, contents).
fn parts(m: &Message) -> Vec<(String, Vec<u8>)> {
    let root = m.root_part();
    let ct = root.content_type().expect("content type");
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let ids = root.sub_parts().expect("multipart");
    ids.iter()
        .map(|&id| {
            let part = &m.parts[id as usize];
            let ct = part.content_type().expect("part content type");
            let media = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""));
            let body = match &part.body {
                PartType::Text(t) => t.as_bytes().to_vec(),
                PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
                other => panic!("unexpected part {other:?}"),
            };
            (media, body)
        })
        .collect()
}

/// The groups of fields of a delivery-status body (RFC 3464 §2.1), each parsed as a header.
fn groups(body: &[u8]) -> Vec<Vec<(String, String)>> {
    let text = String::from_utf8(body.to_vec()).expect("utf-8");
    text.split("\r\n\r\n")
        .filter(|g| !g.trim().is_empty())
        .map(|g| {
            let block = format!("{g}\r\n\r\n");
            let m = MessageParser::default()
                .parse_headers(block.as_bytes())
                .expect("fields");
            m.headers_raw()
                .map(|(n, v)| (n.to_string(), unfold(v)))
                .collect()
        })
        .collect()
}

fn get<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn assert_wire_form(bytes: &[u8]) {
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let last = i == bytes.split(|&b| b == b'\n').count() - 1;
        if !last {
            assert!(line.ends_with(b"\r"), "bare LF at line {i}");
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(!line.contains(&b'\r'), "bare CR at line {i}");
        assert!(line.len() <= 998, "line {i} is {} octets", line.len());
    }
    assert!(bytes.ends_with(b"--\r\n"));
}

#[test]
fn a_bounce_parses_back_as_a_delivery_status_report() {
    let rcpts = [UNKNOWN, FULL];
    let bytes = build(&report(&rcpts));
    assert_wire_form(&bytes);
    assert!(bytes.is_ascii());
    let m = parse(&bytes);
    assert_eq!(
        header(&m, "From").as_deref(),
        Some("Mail Delivery System <relay@contoso.com>")
    );
    assert_eq!(header(&m, "To").as_deref(), Some("<ann@example.com>"));
    assert_eq!(
        m.subject(),
        Some("Undelivered Mail Returned to Sender (Q1A2B3)")
    );
    assert_eq!(
        header(&m, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(header(&m, MARKER).as_deref(), Some("Q1A2B3"));
    assert_eq!(header(&m, "MIME-Version").as_deref(), Some("1.0"));
    assert_eq!(
        m.message_id(),
        Some("dsn.Q1A2B3.1795732871@relay.example.com")
    );
    assert_eq!(
        m.date().map(|d| d.to_timestamp()),
        Some(1_795_729_271 + 3600)
    );

    let parts = parts(&m);
    let media: Vec<&str> = parts.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        media,
        [
            "text/plain",
            "message/delivery-status",
            "text/rfc822-headers"
        ]
    );
    let human = String::from_utf8_lossy(&parts[0].1);
    assert!(human.contains("could not be delivered"), "{human}");
    assert!(human.contains("the recipient's server refused the message"));
    assert!(human.contains("<bob@example.net>: smtp.office365.com said: 550 5.1.1 User unknown"));
    assert!(human.contains("<carol@example.net>: 5.2.2"));

    let groups = groups(&parts[1].1);
    assert_eq!(groups.len(), 3, "{groups:?}");
    assert_eq!(
        get(&groups[0], "Reporting-MTA"),
        Some("dns; relay.example.com")
    );
    assert_eq!(
        get(&groups[0], "Arrival-Date"),
        Some("Thu, 26 Nov 2026 21:41:11 +0000")
    );
    let bob = &groups[1];
    assert_eq!(get(bob, "Final-Recipient"), Some("rfc822; bob@example.net"));
    assert_eq!(get(bob, "Action"), Some("failed"));
    assert_eq!(get(bob, "Status"), Some("5.1.1"));
    assert_eq!(get(bob, "Remote-MTA"), Some("dns; smtp.office365.com"));
    assert_eq!(
        get(bob, "Diagnostic-Code"),
        Some("smtp; 550 5.1.1 User unknown")
    );
    assert_eq!(
        get(bob, "Last-Attempt-Date"),
        Some("Thu, 26 Nov 2026 22:41:11 +0000")
    );
    assert_eq!(get(bob, "Final-Log-ID"), Some("Q1A2B3"));
    assert_eq!(get(bob, "Will-Retry-Until"), None);
    let carol = &groups[2];
    assert_eq!(
        get(carol, "Final-Recipient"),
        Some("rfc822; carol@example.net")
    );
    assert_eq!(get(carol, "Status"), Some("5.2.2"));
    assert_eq!(get(carol, "Diagnostic-Code"), None);

    let returned = String::from_utf8_lossy(&parts[2].1);
    assert!(
        returned.contains("Subject: Quarterly figures\r\n"),
        "{returned}"
    );
    assert!(returned.contains("Message-ID: <q3@example.com>\r\n"));
    assert!(returned.contains("X-Long:\r\n folded\r\n"), "folding kept");
    let needle = b"SECRET BODY";
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "the body never goes into a report"
    );
}

#[test]
fn a_delay_warning_says_until_when_it_is_retried() {
    let rcpts = [Recipient {
        status: Enhanced(4, 4, 1),
        diagnostic: Some("451 4.4.1 Try again later"),
        ..UNKNOWN
    }];
    let r = Report {
        action: Action::Delayed,
        will_retry_until: Some(at(1_795_729_271 + 5 * 86_400)),
        ..report(&rcpts)
    };
    let bytes = build(&r);
    assert_wire_form(&bytes);
    let m = parse(&bytes);
    assert_eq!(
        m.subject(),
        Some("Delayed Mail (still being retried) (Q1A2B3)")
    );
    let parts = parts(&m);
    let human = String::from_utf8_lossy(&parts[0].1);
    assert!(
        human.contains("still being retried until Tue, 01 Dec 2026 21:41:11 +0000"),
        "{human}"
    );
    let groups = groups(&parts[1].1);
    assert_eq!(get(&groups[1], "Action"), Some("delayed"));
    assert_eq!(get(&groups[1], "Status"), Some("4.4.1"));
    assert_eq!(
        get(&groups[1], "Will-Retry-Until"),
        Some("Tue, 01 Dec 2026 21:41:11 +0000")
    );
}

#[test]
fn smtputf8_reports_use_the_global_types() {
    let original = "From: Jürgen <jürgen@bücher.example>\r\nSubject: Grüße\r\n\r\nbody\r\n";
    let rcpts = [Recipient {
        address: "søren@bücher.example",
        ..UNKNOWN
    }];
    let r = Report {
        smtputf8: true,
        to: "jürgen@bücher.example",
        original: original.as_bytes(),
        ..report(&rcpts)
    };
    let bytes = build(&r);
    assert_wire_form(&bytes);
    let m = parse(&bytes);
    assert_eq!(header(&m, "To").as_deref(), Some("<jürgen@bücher.example>"));
    let parts = parts(&m);
    assert_eq!(parts[1].0, "message/global-delivery-status");
    assert_eq!(parts[2].0, "message/global-headers");
    let groups = groups(&parts[1].1);
    assert_eq!(
        get(&groups[1], "Final-Recipient"),
        Some("utf-8; søren@bücher.example")
    );
    assert!(String::from_utf8_lossy(&parts[2].1).contains("Subject: Grüße"));

    // Without SMTPUTF8 the report stays ASCII: RFC 6533's escaped form of the address.
    let plain = build(&Report {
        smtputf8: false,
        ..r
    });
    assert!(plain.is_ascii());
    let m = parse(&plain);
    let plain_parts = self::parts(&m);
    assert_eq!(plain_parts[1].0, "message/delivery-status");
    assert_eq!(
        get(&self::groups(&plain_parts[1].1)[1], "Final-Recipient"),
        Some("utf-8; s\\x{F8}ren@b\\x{FC}cher.example")
    );
}

#[test]
fn untrusted_text_cannot_add_a_header_line_or_a_part() {
    let evil = [Recipient {
        address: "bob@example.net>\r\nBcc: victim@example.org\r\n",
        status: Enhanced(5, 1, 1),
        diagnostic: Some("550 5.1.1 no\r\n\r\n--=_dsn\r\nContent-Type: text/html\r\n\r\n<b>"),
    }];
    let original = b"Subject: hi\r\nX-Evil: a\rBcc: b\x00\r\n\r\nbody";
    let r = Report {
        queue_id: "Q1\r\nBcc: victim@example.org",
        to: "ann@example.com>\r\nBcc: victim@example.org",
        reason: "refused\r\nBcc: victim@example.org",
        remote_mta: Some("smtp.office365.com\r\nX-Injected: 1"),
        original,
        ..report(&evil)
    };
    let bytes = build(&r);
    assert_wire_form(&bytes);
    let m = parse(&bytes);
    for name in ["Bcc", "X-Injected"] {
        assert_eq!(header(&m, name), None, "{name} in the report's header");
    }
    assert_eq!(
        header(&m, "To").as_deref(),
        Some("<ann@example.com Bcc: victim@example.org>")
    );
    let parts = parts(&m);
    assert_eq!(parts.len(), 3, "no part added");
    let groups = groups(&parts[1].1);
    assert_eq!(groups.len(), 2, "no recipient group added: {groups:?}");
    for group in &groups {
        for bad in ["Bcc", "Content-Type", "X-Injected"] {
            assert_eq!(get(group, bad), None, "{bad} in {group:?}");
        }
    }
    assert_eq!(
        get(&groups[1], "Diagnostic-Code"),
        Some("smtp; 550 5.1.1 no --=_dsn Content-Type: text/html <b>")
    );
    let returned = String::from_utf8_lossy(&parts[2].1);
    assert!(returned.contains("X-Evil: a Bcc: b \r\n"), "{returned:?}");
}

#[test]
fn long_values_and_header_lines_are_folded_within_998_octets() {
    let reply = format!("550 5.1.1 {}", "x".repeat(5000));
    let words = "word ".repeat(400);
    let rcpts = [Recipient {
        diagnostic: Some(&reply),
        ..UNKNOWN
    }];
    let original = format!(
        "Subject: {words}\r\nX-Blob: {}\r\nX-Wide: {}\r\n\r\n",
        "y".repeat(3000),
        "é".repeat(1500)
    );
    let r = Report {
        reason: &words,
        original: original.as_bytes(),
        smtputf8: true,
        ..report(&rcpts)
    };
    let bytes = build(&r);
    assert_wire_form(&bytes);
    let m = parse(&bytes);
    let parts = parts(&m);
    let diag = get(&groups(&parts[1].1)[1], "Diagnostic-Code")
        .unwrap()
        .to_string();
    assert!(diag.starts_with("smtp; 550 5.1.1 xxxx"), "{diag}");
    assert!(
        diag.len() <= "smtp; ".len() + MAX_VALUE,
        "bounded: {}",
        diag.len()
    );
    let returned = String::from_utf8(parts[2].1.clone()).unwrap();
    let unfolded = returned.replace("\r\n ", " ").replace("\r\n\t", "\t");
    assert!(unfolded.contains(&format!("Subject: {}", words.trim_end())));
    // A run without whitespace is split with a space put in; nothing is lost.
    assert_eq!(unfolded.matches('y').count(), 3000);
    assert_eq!(unfolded.matches('é').count(), 1500);
}

#[test]
fn the_boundary_never_occurs_in_the_content() {
    let rcpts = [UNKNOWN];
    let r = report(&rcpts);
    let first = boundary(&r, &[]);
    let original = format!("Subject: --{first}\r\nX-Next: {first}_1\r\n\r\n");
    let r = Report {
        original: original.as_bytes(),
        ..r
    };
    let bytes = build(&r);
    let m = parse(&bytes);
    let ct = m.root_part().content_type().unwrap();
    let chosen = ct.attribute("boundary").unwrap().to_string();
    assert!(!original.contains(&chosen), "{chosen}");
    let parts = parts(&m);
    assert_eq!(parts.len(), 3);
    assert!(String::from_utf8_lossy(&parts[2].1).contains(&format!("Subject: --{first}")));
}

#[test]
fn bounces_only_what_rfc_3834_allows() {
    let sender = Address::parse("ann@example.com").unwrap();
    let may = |original: &str| may_bounce(Some(&sender), original.as_bytes());
    assert!(may("From: a@x\r\nSubject: s\r\n\r\nbody\r\n"));
    assert!(!may_bounce(None, b"Subject: s\r\n\r\n"), "null sender");
    assert!(!may("Auto-Submitted: auto-generated\r\n\r\n"));
    assert!(
        !may("auto-submitted:auto-replied\r\n\r\n"),
        "case, no space"
    );
    assert!(
        !may("Subject: s\r\nAuto-Submitted:\r\n\tauto-replied\r\n\r\n"),
        "folded"
    );
    assert!(!may(
        "Auto-Submitted: auto-notified; owner-email=x@y\r\n\r\n"
    ));
    assert!(!may("Auto-Submitted:\r\n\r\n"), "empty is not `no`");
    assert!(may("Auto-Submitted: no\r\n\r\n"));
    assert!(may("Auto-Submitted: No (a person wrote this)\r\n\r\n"));
    assert!(!may(
        "Auto-Submitted: no\r\nAuto-Submitted: auto-replied\r\n\r\n"
    ));
    assert!(!may("X-Xoauth-Relay-DSN: Q1\r\n\r\n"), "our own report");
    assert!(
        !may("x-xoauth-relay-dsn : Q1\n\n"),
        "bare LF, space before colon"
    );
    assert!(may("X-Auto-Submitted: yes\r\n\r\n"), "another field");
    assert!(
        may("Subject: s\r\n\r\nAuto-Submitted: auto-replied\r\n"),
        "in the body"
    );
    let late = format!(
        "X-Pad: {}\r\nAuto-Submitted: auto-replied\r\n\r\n",
        "p".repeat(MAX_ORIGINAL_HEADER)
    );
    assert!(may(&late), "beyond the bounded header");
}

#[test]
fn the_original_header_ends_at_its_empty_line_within_the_bound() {
    assert_eq!(
        original_header(b"A: 1\r\nB: 2\r\n\r\nbody\r\n"),
        b"A: 1\r\nB: 2\r\n\r\n"
    );
    assert_eq!(original_header(b"A: 1\n\nbody"), b"A: 1\n\n");
    assert_eq!(original_header(b"\r\nbody"), b"\r\n");
    assert_eq!(
        original_header(b"A: 1\r\nB: 2"),
        b"A: 1\r\nB: 2",
        "all header"
    );
    assert_eq!(original_header(b""), b"");
    let huge = format!("A: 1\r\nB: {}\r\n\r\nbody", "b".repeat(MAX_ORIGINAL_HEADER));
    assert_eq!(original_header(huge.as_bytes()), b"A: 1\r\n");
    let many = "X: y\r\n".repeat(MAX_ORIGINAL_HEADER);
    let cut = original_header(many.as_bytes());
    assert!(cut.len() <= MAX_ORIGINAL_HEADER && cut.ends_with(b"\r\n"));
    assert!(cut.len() > MAX_ORIGINAL_HEADER - 6);
}

proptest::proptest! {
    /// Whatever the untrusted texts, the report keeps its wire form (CRLF only, lines within
    /// 998 octets), its three parts and one field group per recipient.
    #[test]
    fn any_untrusted_text_keeps_the_structure(
        address in "\\PC{0,300}|[\\x00-\\x7f]{0,300}",
        reply in "\\PC{0,1200}|[\\x00-\\x7f]{0,1200}",
        reason in "[\\x00-\\x7f\u{e9}\u{2028}]{0,1200}",
        original in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
        smtputf8 in proptest::prelude::any::<bool>(),
    ) {
        let rcpts = [Recipient { address: &address, diagnostic: Some(&reply), ..UNKNOWN }, FULL];
        let r = Report { reason: &reason, original: &original, smtputf8, ..report(&rcpts) };
        let bytes = build(&r);
        assert_wire_form(&bytes);
        proptest::prop_assert_eq!(smtputf8 || bytes.is_ascii(), true);
        let m = parse(&bytes);
        let parts = parts(&m);
        proptest::prop_assert_eq!(parts.len(), 3);
        proptest::prop_assert_eq!(groups(&parts[1].1).len(), 3);
    }
}
