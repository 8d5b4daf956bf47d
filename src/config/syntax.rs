//! Shape checks for e-mail addresses, domain names and GUIDs. Deliberately a little stricter
//! than RFC 5321 (no quoted local parts, no address literals): these are addresses of Exchange
//! mailboxes, and a typo caught at start-up beats a `501` from upstream later.

/// Why `address` is not a usable mailbox address, or `None` if it is.
pub fn address_problem(address: &str) -> Option<&'static str> {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Some("it has no @");
    };
    if local.is_empty() {
        return Some("nothing comes before the @");
    }
    if local.len() > 64 || !is_dot_atom(local) {
        return Some("the part before the @ has characters that need quoting, or misplaced dots");
    }
    if !is_domain(domain) || !domain.contains('.') {
        return Some("the part after the @ is not a domain name such as example.com");
    }
    None
}

/// `a.b-c+d`: RFC 5322 atext (plus non-ASCII, for SMTPUTF8 mailboxes) separated by single dots.
fn is_dot_atom(local: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";
    local.split('.').all(|atom| {
        !atom.is_empty()
            && atom.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || SPECIALS.contains(c)
                    || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
            })
    })
}

/// A host name: dot-separated labels of letters, digits and inner hyphens, 63 octets each,
/// 253 in all. One label (`localhost`) is enough here; callers wanting a dot check for it.
pub fn is_domain(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// `00000000-0000-0000-0000-000000000000`: the shape of Entra tenant and application IDs.
pub fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    lengths == [8, 4, 4, 4, 12]
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let good = [
            "sender@contoso.com",
            "first.last+tag@sub.contoso.co.uk",
            "o'brien@example.org",
            "jörg@bücher.example",
            "x@a-b.example.",
        ];
        for address in good {
            assert_eq!(address_problem(address), None, "{address}");
        }
        let bad = [
            ("contoso.com", "no @"),
            ("@contoso.com", "before the @"),
            ("a b@contoso.com", "before the @"),
            (".a@contoso.com", "before the @"),
            ("a..b@contoso.com", "before the @"),
            ("\"a\"@contoso.com", "before the @"),
            ("a@contoso", "after the @"),
            ("a@-contoso.com", "after the @"),
            ("a@contoso..com", "after the @"),
            ("a@[127.0.0.1]", "after the @"),
            ("<a@contoso.com>", "before the @"),
            ("a@", "after the @"),
        ];
        for (address, want) in bad {
            let got = address_problem(address).unwrap_or("accepted");
            assert!(got.contains(want), "{address}: {got}");
        }
    }

    #[test]
    fn domains() {
        for name in [
            "localhost",
            "relay.example",
            "a-b.c",
            "xn--bcher-kva.example",
        ] {
            assert!(is_domain(name), "{name}");
        }
        let long_label = "a".repeat(64);
        for name in [
            "",
            ".",
            "a..b",
            "-a.b",
            "a-.b",
            "a_b.c",
            "a b",
            &long_label,
            "host:25",
        ] {
            assert!(!is_domain(name), "{name}");
        }
    }

    #[test]
    fn guids() {
        assert!(is_guid("00000000-0000-0000-0000-000000000000"));
        assert!(is_guid("8a2F3c4d-1B2c-4d5e-9f00-aabbccddeeff"));
        for text in [
            "",
            "contoso",
            "00000000-0000-0000-0000-00000000000",
            "0000000g-0000-0000-0000-000000000000",
            "{00000000-0000-0000-0000-000000000000}",
            "000000000000-0000-0000-0000-00000000",
        ] {
            assert!(!is_guid(text), "{text}");
        }
    }
}
