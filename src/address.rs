//! Mailbox addresses and the arguments of MAIL FROM and RCPT TO, parsed strictly: RFC 5321
//! §4.1.2 (with the UTF-8 forms of RFC 6531 §3.3) for the path, §4.1.1.11 for parameters.
//!
//! An address is kept as its local part and domain, never as the text the client sent, and is
//! written back in one canonical form (a dot-string where possible, else a quoted string with
//! `"` and `\` escaped). So a sender rule is checked against the address the upstream will
//! see, and nothing a client writes inside a path (a `>`, a space, a parameter) can become part
//! of an upstream command.

use std::fmt;

/// RFC 5321 §4.5.3.1: local part 64 octets, domain 255, path 256 with its angle brackets.
const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 255;
const MAX_PATH: usize = 256;
const MAX_LABEL: usize = 63;

/// A mailbox: `local-part@domain`, with any quoting and escaping of the local part undone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    local: String,
    domain: String,
}

/// Why an address or a MAIL/RCPT argument was refused; the text goes into the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Not a valid path; says what is wrong.
    Syntax(&'static str),
    /// A parameter we do not offer, or one with a bad value.
    Parameter(String),
}

/// What MAIL FROM declared.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailArgs {
    /// `None` for the null reverse-path `<>`.
    pub from: Option<Address>,
    /// `SIZE=`, if given.
    pub size: Option<u64>,
    /// `BODY=8BITMIME`.
    pub body_8bitmime: bool,
    /// `SMTPUTF8`.
    pub smtputf8: bool,
}

impl Address {
    /// Parses `local@domain` (no angle brackets), as in a configuration file.
    pub fn parse(text: &str) -> Result<Address, PathError> {
        let mut p = Parser::new(text);
        let address = p.mailbox()?;
        if !p.rest().is_empty() {
            return Err(PathError::Syntax("unexpected text after the address"));
        }
        Ok(address)
    }

    /// The local part, unquoted.
    pub fn local_part(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Only ASCII: no SMTPUTF8 needed to send it.
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }

    /// True when the domain is `domain`, ignoring case.
    pub fn in_domain(&self, domain: &str) -> bool {
        self.domain.to_lowercase() == domain.to_lowercase()
    }

    /// True when this is `other` (as written in a configuration), ignoring case: Exchange
    /// treats both parts of an address case-insensitively.
    pub fn is(&self, other: &str) -> bool {
        self.to_string().to_lowercase() == other.to_lowercase()
    }
}

/// The RFC 5321 `Mailbox` form: what goes between `<` and `>` upstream.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_string(&self.local) {
            f.write_str(&self.local)?;
        } else {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                fmt::Write::write_char(f, c)?;
            }
            f.write_str("\"")?;
        }
        write!(f, "@{}", self.domain)
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Syntax(why) => f.write_str(why),
            PathError::Parameter(text) => f.write_str(text),
        }
    }
}

/// The path of an address in angle brackets, `<>` for the null sender: the only text that
/// goes into an upstream MAIL or RCPT command.
pub fn path(address: Option<&Address>) -> String {
    address.map_or_else(|| "<>".to_string(), |a| format!("<{a}>"))
}

/// Parses what follows `MAIL FROM:` (the line without its CRLF).
pub fn parse_mail(args: &str) -> Result<MailArgs, PathError> {
    let mut p = Parser::new(args.trim_start_matches(' '));
    let from = p.path(true)?;
    let mut mail = MailArgs {
        from,
        ..MailArgs::default()
    };
    let mut seen = Vec::new();
    for (keyword, value) in p.parameters()? {
        let upper = keyword.to_ascii_uppercase();
        if seen.contains(&upper) {
            return Err(PathError::Parameter(format!("{upper} given twice")));
        }
        mail_parameter(&mut mail, &upper, value)?;
        seen.push(upper);
    }
    Ok(mail)
}

/// Parses what follows `RCPT TO:`. No RCPT parameter is offered, so any is refused.
pub fn parse_rcpt(args: &str) -> Result<Address, PathError> {
    let mut p = Parser::new(args.trim_start_matches(' '));
    let to = p
        .path(false)?
        .ok_or(PathError::Syntax("a recipient cannot be empty"))?;
    if let Some((keyword, _)) = p.parameters()?.first() {
        let keyword = keyword.to_ascii_uppercase();
        return Err(PathError::Parameter(format!(
            "RCPT TO parameter {keyword} not supported by this relay"
        )));
    }
    Ok(to)
}

/// The MAIL parameters this relay offers: SIZE, BODY (7BIT, 8BITMIME), SMTPUTF8, and AUTH=
/// (RFC 4954 §5), which is accepted and ignored.
fn mail_parameter(
    mail: &mut MailArgs,
    keyword: &str,
    value: Option<&str>,
) -> Result<(), PathError> {
    let bad = |what: &str| PathError::Parameter(what.to_string());
    match (keyword, value) {
        ("SIZE", Some(v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            mail.size = Some(v.parse().unwrap_or(u64::MAX));
        }
        ("SIZE", _) => return Err(bad("SIZE needs a number of octets")),
        ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => mail.body_8bitmime = true,
        ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => {}
        ("BODY", _) => return Err(bad("BODY must be 7BIT or 8BITMIME")),
        ("SMTPUTF8", None) => mail.smtputf8 = true,
        ("SMTPUTF8", Some(_)) => return Err(bad("SMTPUTF8 takes no value")),
        ("AUTH", Some(_)) => {}
        _ => {
            return Err(bad(&format!(
                "MAIL FROM parameter {keyword} not supported by this relay"
            )));
        }
    }
    Ok(())
}

/// A dot-string (RFC 5321 §4.1.2): atoms of atext joined by single dots.
fn is_dot_string(local: &str) -> bool {
    !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// RFC 5321 atext, plus RFC 6531's UTF8-non-ascii (but no control or space characters).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || is_utf8_text(c)
}

fn is_utf8_text(c: char) -> bool {
    !c.is_ascii() && !c.is_control() && !c.is_whitespace() && !is_invisible_control(c)
}

/// Bidirectional overrides and other format characters that would make an address look like
/// another in a log or a reply.
fn is_invisible_control(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// RFC 5321 qtextSMTP (printable ASCII but `"` and `\`), plus UTF-8 text.
fn is_qtext(c: char) -> bool {
    matches!(c, ' ' | '!' | '#'..='[' | ']'..='~') || is_utf8_text(c)
}

/// A cursor over the argument text.
struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, at: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.at += c.len_utf8();
        }
        found
    }

    /// `<` [source route `:`] Mailbox `>`, `<>` when `null_ok`, or (leniently, as many
    /// servers accept from old clients) a bare mailbox without brackets.
    fn path(&mut self, null_ok: bool) -> Result<Option<Address>, PathError> {
        if !self.eat('<') {
            return self.mailbox().map(Some);
        }
        if self.eat('>') {
            return if null_ok {
                Ok(None)
            } else {
                Err(PathError::Syntax("a recipient cannot be empty"))
            };
        }
        if self.peek() == Some('@') {
            self.source_route()?;
        }
        let address = self.mailbox()?;
        if !self.eat('>') {
            return Err(PathError::Syntax("the path must end with '>'"));
        }
        Ok(Some(address))
    }

    /// `@one.example,@two.example:` before the mailbox: RFC 5321 §4.1.1.3 says to accept and
    /// ignore it.
    fn source_route(&mut self) -> Result<(), PathError> {
        loop {
            if !self.eat('@') {
                return Err(PathError::Syntax("bad source route"));
            }
            self.domain()?;
            if self.eat(':') {
                return Ok(());
            }
            if !self.eat(',') {
                return Err(PathError::Syntax("bad source route"));
            }
        }
    }

    fn mailbox(&mut self) -> Result<Address, PathError> {
        let local = if self.peek() == Some('"') {
            self.quoted_string()?
        } else {
            self.dot_string()?
        };
        if local.len() > MAX_LOCAL {
            return Err(PathError::Syntax("the local part is longer than 64 octets"));
        }
        if !self.eat('@') {
            return Err(PathError::Syntax("an address needs a domain after '@'"));
        }
        let domain = if self.peek() == Some('[') {
            self.address_literal()?
        } else {
            self.domain()?
        };
        let address = Address { local, domain };
        // Measured as it will be written (`<` canonical form `>`), however the client wrote it:
        // with or without brackets, quotes or a source route.
        if address.to_string().len() + 2 > MAX_PATH {
            return Err(PathError::Syntax("the path is longer than 256 octets"));
        }
        Ok(address)
    }

    fn dot_string(&mut self) -> Result<String, PathError> {
        let start = self.at;
        while self.peek().is_some_and(|c| is_atext(c) || c == '.') {
            self.bump();
        }
        let text = &self.text[start..self.at];
        if !is_dot_string(text) {
            return Err(PathError::Syntax(
                "the local part must be a dot-string or a quoted string",
            ));
        }
        Ok(text.to_string())
    }

    fn quoted_string(&mut self) -> Result<String, PathError> {
        self.eat('"');
        let mut local = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(local),
                Some('\\') => match self.bump() {
                    Some(c) if matches!(c, ' '..='~') => local.push(c),
                    _ => return Err(PathError::Syntax("bad escape in a quoted local part")),
                },
                Some(c) if is_qtext(c) => local.push(c),
                _ => return Err(PathError::Syntax("bad character in a quoted local part")),
            }
        }
    }

    /// Labels of letters, digits and inner hyphens (or UTF-8 U-labels), joined by dots.
    fn domain(&mut self) -> Result<String, PathError> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || is_utf8_text(c))
        {
            self.bump();
        }
        let domain = &self.text[start..self.at];
        let labels_ok = domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
        if domain.is_empty() || domain.len() > MAX_DOMAIN || !labels_ok {
            return Err(PathError::Syntax("bad domain"));
        }
        Ok(domain.to_string())
    }

    /// `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
    fn address_literal(&mut self) -> Result<String, PathError> {
        let start = self.at;
        let end = self
            .rest()
            .find(']')
            .ok_or(PathError::Syntax("bad address literal"))?;
        let inner = &self.rest()[1..end];
        let valid = match inner.strip_prefix("IPv6:") {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => inner.parse::<std::net::Ipv4Addr>().is_ok(),
        };
        if !valid {
            return Err(PathError::Syntax("bad address literal"));
        }
        self.at += end + 1;
        Ok(self.text[start..self.at].to_string())
    }

    /// `*(SP esmtp-keyword ["=" esmtp-value])` to the end.
    fn parameters(&mut self) -> Result<Vec<(&'a str, Option<&'a str>)>, PathError> {
        let rest = self.rest();
        self.at = self.text.len();
        if !rest.is_empty() && !rest.starts_with(' ') {
            return Err(PathError::Syntax("expected a space after the path"));
        }
        rest.split(' ')
            .filter(|p| !p.is_empty())
            .map(|param| {
                let (keyword, value) = match param.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (param, None),
                };
                let keyword_ok = keyword.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && keyword
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-');
                let value_ok = value.is_none_or(|v| {
                    !v.is_empty()
                        && v.chars()
                            .all(|c| matches!(c, '!'..='<' | '>'..='~') || is_utf8_text(c))
                });
                if keyword_ok && value_ok {
                    Ok((keyword, value))
                } else {
                    Err(PathError::Syntax("bad parameter syntax"))
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
