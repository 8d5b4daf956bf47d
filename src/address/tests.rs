//! The address parser against the RFC 5321 grammar, the review's bypass attempts, and round trips.

use super::*;

fn mail(args: &str) -> Result<MailArgs, PathError> {
    parse_mail(args)
}

fn wire(args: &str) -> String {
    parse_rcpt(args)
        .map(|a| a.to_string())
        .unwrap_or_else(|e| format!("{e:?}"))
}

#[test]
fn plain_paths_round_trip() {
    for (args, shown) in [
        ("<relay@contoso.example>", "relay@contoso.example"),
        (
            "<Relay.Name+tag@Contoso.Example>",
            "Relay.Name+tag@Contoso.Example",
        ),
        (" <a@b.c>", "a@b.c"),
        ("a@b.c", "a@b.c"),
        ("<@hop1.example,@hop2.example:a@b.c>", "a@b.c"),
        ("<\"a b\"@x.test>", "\"a b\"@x.test"),
        ("<\"ab\"@x.test>", "ab@x.test"),
        ("<\"a\\\"b\\\\c\"@x.test>", "\"a\\\"b\\\\c\"@x.test"),
        ("<user@[192.0.2.1]>", "user@[192.0.2.1]"),
        ("<user@[IPv6:2001:db8::1]>", "user@[IPv6:2001:db8::1]"),
        (
            "<j\u{f6}rg@m\u{fc}ller.example>",
            "j\u{f6}rg@m\u{fc}ller.example",
        ),
    ] {
        assert_eq!(wire(args), shown, "{args}");
        let again = format!("<{shown}>");
        assert_eq!(wire(&again), shown, "re-parse of {shown}");
    }
}

/// The review's bypass: the quotes were dropped and the text became an address and a
/// parameter upstream. Parsed, it is one odd local part in the allowed domain, and written
/// back quoted, so upstream sees exactly that.
#[test]
fn quoted_injection_stays_one_quoted_local_part() {
    let m = mail("<\"relay@contoso.example> ENVID=x\"@sales.contoso.example>").unwrap();
    let from = m.from.unwrap();
    assert_eq!(from.local_part(), "relay@contoso.example> ENVID=x");
    assert_eq!(from.domain(), "sales.contoso.example");
    assert!(!from.is("relay@contoso.example"));
    assert_eq!(
        from.to_string(),
        "\"relay@contoso.example> ENVID=x\"@sales.contoso.example"
    );
    let r = parse_rcpt("<\"a> NOTIFY=NEVER ORCPT=rfc822;x@y\"@example.net>").unwrap();
    assert_eq!(
        r.to_string(),
        "\"a> NOTIFY=NEVER ORCPT=rfc822;x@y\"@example.net"
    );
}

#[test]
fn bad_paths_are_refused() {
    for args in [
        "",
        "<>x",
        "<a@b.c",
        "<a@b.c>x",
        "<a b@c.d>",
        "<a@b c.d>",
        "<a@@b.c>",
        "<.a@b.c>",
        "<a.@b.c>",
        "<a..b@c.d>",
        "<a@-b.c>",
        "<a@b-.c>",
        "<a@b..c>",
        "<a@>",
        "<@b.c>",
        "<a>",
        "<a@b.c\r>",
        "<\"a\rb\"@c.d>",
        "<\"a\u{1b}\"@c.d>",
        "<a\u{202e}b@c.d>",
        "<\"unterminated@c.d>",
        "<a@[300.1.1.1]>",
        "<a@[IPv6:zz]>",
        "<@hop:a>",
    ] {
        assert!(
            matches!(parse_rcpt(args), Err(PathError::Syntax(_))),
            "{args:?}"
        );
    }
    let long_local = format!("<{}@b.c>", "a".repeat(65));
    assert!(parse_rcpt(&long_local).is_err());
    let long_domain = format!("<a@{}.example>", "b".repeat(64));
    assert!(parse_rcpt(&long_domain).is_err());
    // Found by fuzzing: without brackets the path length went unchecked, so the address
    // written back (with brackets) did not parse again.
    let long_path = format!("{}@{}.example", "a".repeat(60), "b.".repeat(95));
    assert!(parse_rcpt(&long_path).is_err());
    assert!(Address::parse(&long_path).is_err());
    assert!(parse_rcpt("<>").is_err(), "no null recipient");
}

#[test]
fn mail_parameters() {
    let m = mail("<a@b.c> SIZE=1200 BODY=8BITMIME SMTPUTF8 AUTH=<>").unwrap();
    assert_eq!(m.size, Some(1200));
    assert!(m.body_8bitmime && m.smtputf8);
    assert_eq!(mail("<>").unwrap().from, None);
    assert!(!mail("<a@b.c> body=7bit").unwrap().body_8bitmime);
    for bad in [
        "<a@b.c> ENVID=x",
        "<a@b.c> RET=FULL",
        "<a@b.c> BODY=BINARYMIME",
        "<a@b.c> SIZE=x",
        "<a@b.c> SIZE",
        "<a@b.c> SMTPUTF8=yes",
        "<a@b.c> SIZE=1 SIZE=2",
    ] {
        assert!(matches!(mail(bad), Err(PathError::Parameter(_))), "{bad}");
    }
    assert!(matches!(mail("<a@b.c> =x"), Err(PathError::Syntax(_))));
    assert!(matches!(
        parse_rcpt("<a@b.c> NOTIFY=NEVER"),
        Err(PathError::Parameter(_))
    ));
}

#[test]
fn comparisons_ignore_case() {
    let a = Address::parse("Relay@Contoso.Example").unwrap();
    assert!(a.is("relay@contoso.example"));
    assert!(a.in_domain("CONTOSO.example"));
    assert!(!a.in_domain("example"));
    assert!(Address::parse("a@b.c x").is_err());
}

proptest::proptest! {
    /// Whatever the local part, the written form parses back to the same address and never
    /// contains a space, '>' or control character outside quotes.
    #[test]
    fn written_form_parses_back(local in "[ -~\u{e9}]{1,40}", domain in "[a-z]{1,10}\\.[a-z]{2,5}") {
        let address = Address { local: local.clone(), domain };
        let written = address.to_string();
        let back = parse_rcpt(&format!("<{written}>"));
        if local.len() <= MAX_LOCAL {
            proptest::prop_assert_eq!(back, Ok(address));
        }
        if !written.starts_with('"') {
            proptest::prop_assert!(!written.contains([' ', '>', '<', '"']));
        }
    }
}
