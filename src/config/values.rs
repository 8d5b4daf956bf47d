//! Leaf values of the file: durations ("500ms", "30s", "5m", "1h", "5d"), sizes ("35MB", "512KiB"),
//! bounded whole numbers, socket addresses, dates, lists and the mode words. Each is a
//! `deserialize_with` function or a `Deserialize` impl whose error is ready to follow the key.
//! A number may also come as a string of digits, because environment values always are strings.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

use super::syntax::{address_problem, is_domain, is_guid};
use super::{Auth, BareLineEndings, DeliveryMode, LogRecipients, OnAmbiguous, Provider, TlsMode};
use crate::dates::Day;

/// RFC 5321 §4.5.3.1.4: a server must accept command lines of 512 octets.
const MIN_LINE_LENGTH: usize = 512;

/// A number or a string, the two ways TOML and the environment give a leaf. Anything else is
/// refused by serde with `expecting` in the message.
enum Leaf {
    Int(i128),
    Text(String),
}

impl Leaf {
    fn read<'de, D: Deserializer<'de>>(d: D, expecting: &'static str) -> Result<Leaf, D::Error> {
        d.deserialize_any(LeafVisitor(expecting))
    }
}

/// Only for leaves that cannot be secrets: numbers, durations and sizes.
impl fmt::Display for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leaf::Int(n) => write!(f, "{n}"),
            Leaf::Text(text) => write!(f, "{text:?}"),
        }
    }
}

struct LeafVisitor(&'static str);

impl Visitor<'_> for LeafVisitor {
    type Value = Leaf;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_i64<E: Error>(self, v: i64) -> Result<Leaf, E> {
        Ok(Leaf::Int(v.into()))
    }
    fn visit_u64<E: Error>(self, v: u64) -> Result<Leaf, E> {
        Ok(Leaf::Int(v.into()))
    }
    fn visit_str<E: Error>(self, v: &str) -> Result<Leaf, E> {
        Ok(Leaf::Text(v.to_owned()))
    }
}

/// A whole number in `min..=max`.
fn whole<'de, D: Deserializer<'de>>(d: D, min: u64, max: u64) -> Result<u64, D::Error> {
    let leaf = Leaf::read(d, "a whole number")?;
    let number = match &leaf {
        Leaf::Int(n) => u64::try_from(*n).ok(),
        Leaf::Text(text) => text.trim().parse::<u64>().ok(),
    };
    number.filter(|n| (min..=max).contains(n)).ok_or_else(|| {
        D::Error::custom(format!(
            "must be a whole number {}, found {leaf}",
            range(min, max)
        ))
    })
}

fn range(min: u64, max: u64) -> String {
    // Nobody needs to read "to 4294967295".
    if max >= u64::from(u32::MAX) {
        format!("of at least {min}")
    } else {
        format!("from {min} to {max}")
    }
}

fn narrow<T: TryFrom<u64>, E: Error>(n: u64) -> Result<T, E> {
    T::try_from(n).map_err(|_| E::custom(format!("{n} is too large")))
}

/// A count of at least 1, since zero would refuse everything.
pub fn count<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    narrow(whole(d, 1, u64::MAX)?)
}

/// A count where `0` turns the limit off.
pub fn count_or_off<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    narrow(whole(d, 0, u32::MAX.into())?)
}

/// `max_messages_per_minute`: `0` (off) to 10,000, because the relay remembers the time of each
/// of the last that many messages.
pub fn per_minute<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    narrow(whole(d, 0, MAX_PER_MINUTE)?)
}

/// Far above Exchange's 30; a host that needs more turns pacing off.
const MAX_PER_MINUTE: u64 = 10_000;

pub fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    narrow(whole(d, 1, u16::MAX.into())?)
}

pub fn optional_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    port(d).map(Some)
}

/// Up to ten years: a longer warning would be on from the day the secret is made.
pub fn warn_days<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    narrow(whole(d, 1, 3650)?)
}

pub fn line_length<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let length: usize = count(d)?;
    if length < MIN_LINE_LENGTH {
        return Err(D::Error::custom(format!(
            "must be at least {MIN_LINE_LENGTH}, found {length}: RFC 5321 requires servers to \
             accept command lines of {MIN_LINE_LENGTH} octets"
        )));
    }
    Ok(length)
}

/// A duration above zero: `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"5d"`, or a number of seconds.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let parsed = match Leaf::read(d, "a duration such as \"30s\"")? {
        Leaf::Int(n) => u64::try_from(n)
            .map(Duration::from_secs)
            .map_err(|_| format!("{n} is negative; durations are like \"30s\" or \"5m\"")),
        Leaf::Text(text) => parse_duration(&text),
    };
    positive(parsed, Duration::ZERO)
}

/// A duration above zero, or unset.
pub fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// A non-empty list of durations, each above zero.
pub fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    #[derive(serde::Deserialize)]
    struct One(#[serde(deserialize_with = "duration")] Duration);
    let list = Vec::<One>::deserialize(d)?;
    if list.is_empty() {
        return Err(D::Error::custom(
            "needs at least one wait, such as [\"1m\", \"1h\"]",
        ));
    }
    Ok(list.into_iter().map(|One(d)| d).collect())
}

/// A size above zero: a number of octets or a string like `"35MB"`.
pub fn size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let parsed = match Leaf::read(d, "a size such as \"35MB\"")? {
        Leaf::Int(n) => usize::try_from(n)
            .map_err(|_| format!("{n} is not a size; sizes are like 1048576 or \"35MB\"")),
        Leaf::Text(text) => parse_size(&text),
    };
    positive(parsed, 0)
}

fn positive<T: PartialEq, E: Error>(parsed: Result<T, String>, zero: T) -> Result<T, E> {
    match parsed {
        Ok(value) if value == zero => Err(E::custom("must be more than zero")),
        Ok(value) => Ok(value),
        Err(message) => Err(E::custom(message)),
    }
}

pub fn socket_address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    parse_socket(&String::deserialize(d)?)
}

/// `submissions` and `health`: an address, or `"off"` (also `""`, `"none"`, `"false"`).
pub fn optional_socket_address<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    let off = matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "" | "off" | "none" | "false"
    );
    if off {
        Ok(None)
    } else {
        parse_socket(&text).map(Some)
    }
}

fn parse_socket<E: Error>(text: &str) -> Result<SocketAddr, E> {
    text.trim().parse().map_err(|_| {
        E::custom(format!(
            "{text:?} is not an IP address and port such as 127.0.0.1:2525 or [::1]:2525"
        ))
    })
}

/// `client_secret_expires = "2027-05-01"`: the date shown in Entra next to the secret.
pub fn day<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Day>, D::Error> {
    let text = String::deserialize(d)?;
    match Day::parse(&text) {
        Some(day) => Ok(Some(day)),
        None => Err(D::Error::custom(format!(
            "{text:?} is not a date: write it as YYYY-MM-DD, e.g. \"2027-05-01\" (the Expires \
             column in Entra)"
        ))),
    }
}

/// A string that `check` accepts (or refuses with a message ready to follow the key).
fn text<'de, D: Deserializer<'de>, T>(
    d: D,
    check: impl FnOnce(String) -> Result<T, String>,
) -> Result<T, D::Error> {
    check(String::deserialize(d)?).map_err(D::Error::custom)
}

/// A blank value passes, for the check of required keys to call it empty.
fn unless_blank<'de, D: Deserializer<'de>>(
    d: D,
    problem: impl FnOnce(&str) -> Option<String>,
) -> Result<Option<String>, D::Error> {
    text(d, |text| match problem(&text) {
        Some(message) if !text.trim().is_empty() => Err(message),
        _ => Ok(Some(text)),
    })
}

/// `hostname`, our name in the greeting and in EHLO.
pub fn hostname<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    text(d, |name| match is_domain(&name) {
        true => Ok(Some(name)),
        false => Err(format!(
            "{name:?} is not a host name such as relay.example.com"
        )),
    })
}

pub fn smtp_host<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    text(d, |host| {
        match is_domain(&host) || host.parse::<std::net::IpAddr>().is_ok() {
            true => Ok(host),
            false => Err(format!(
                "{host:?} is not a host name such as smtp.office365.com"
            )),
        }
    })
}

pub fn optional_smtp_host<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    smtp_host(d).map(Some)
}

pub fn scope<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    text(d, |scope| match scope.trim().is_empty() {
        true => Err("is empty; remove it to use the provider's default".to_owned()),
        false => Ok(scope),
    })
}

pub fn optional_scope<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    scope(d).map(Some)
}

/// Tokens and client secrets travel to this URL, so it must be https.
pub fn https_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    text(d, |text| {
        let url = reqwest::Url::parse(text.trim());
        match url
            .is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()))
        {
            true => Ok(text.trim().to_owned()),
            false => Err(format!(
                "{text:?} is not an https:// URL; the client secret is sent there, so plain http is refused"
            )),
        }
    })
}

/// `authority`, without a trailing `/` (the token URL is made from it).
pub fn authority<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    https_url(d).map(|url| url.trim_end_matches('/').to_owned())
}

pub fn optional_authority<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    authority(d).map(Some)
}

pub fn optional_https_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    https_url(d).map(Some)
}

/// What to put in `mailbox`, also when it is missing.
pub const MAILBOX: &str =
    "set the address of the Exchange mailbox to send as, such as sender@contoso.com";

pub fn mailbox<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    unless_blank(d, |mailbox| {
        let problem = address_problem(mailbox)?;
        Some(format!(
            "{mailbox:?} is not a valid e-mail address: {problem}"
        ))
    })
}

/// What to put in `tenant`, also when it is missing.
pub const TENANT: &str = "set the directory (tenant) ID, a GUID, or a verified domain such as \
                          contoso.onmicrosoft.com";

/// Tenant aliases for multi-tenant sign-in; client credentials need the real tenant there
/// (Entra answers AADSTS9001023 otherwise).
const ALIASES: &[&str] = &["common", "consumers", "organizations"];

/// A tenant goes into the token URL path: a GUID or a domain, nothing else.
pub fn tenant<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    unless_blank(d, |tenant| {
        if ALIASES.contains(&tenant.to_ascii_lowercase().as_str()) {
            Some(format!(
                "{tenant:?} is a multi-tenant alias, where client credentials do not \
                 work (AADSTS9001023); {TENANT}"
            ))
        } else if is_guid(tenant) || (is_domain(tenant) && tenant.contains('.')) {
            None
        } else {
            Some(format!(
                "{tenant:?} is neither a GUID nor a domain name; {TENANT}"
            ))
        }
    })
}

/// What to put in `client_id`, also when it is missing.
pub const CLIENT_ID: &str = "set the Application (client) ID of the app registration (Entra \
     admin center → App registrations → Overview), a GUID such as \
     00000000-0000-0000-0000-000000000000";

/// The value is not echoed: a client secret pasted here by mistake must not reach a log.
pub fn client_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let id = unless_blank(d, |id| {
        (!is_guid(id.trim())).then(|| format!("is not a GUID; {CLIENT_ID}"))
    })?;
    Ok(id.map(|id| id.trim().to_owned()))
}

/// The AUTH user name: any text a client can send, e-mail addresses included.
pub fn user_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    unless_blank(d, |name| {
        let control = name.chars().any(char::is_control);
        control.then(|| "contains control characters, which SMTP AUTH cannot carry".to_owned())
    })
}

/// A list of strings: a TOML array, or one string of comma-separated items (the only way to
/// give a list through an environment variable). Empty items (a trailing comma) are dropped.
pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    d.deserialize_any(ListVisitor).map(Some)
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of strings")
    }
    fn visit_str<E: Error>(self, v: &str) -> Result<Vec<String>, E> {
        let items = v.split(',').map(str::trim).filter(|item| !item.is_empty());
        Ok(items.map(str::to_owned).collect())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(items)
    }
}

/// Case and spaces do not matter in the mode words, as in the rest of the file's words.
fn word<'de, D: Deserializer<'de>>(d: D) -> Result<(String, String), D::Error> {
    let text = String::deserialize(d)?;
    let word = text.trim().to_ascii_lowercase();
    Ok((text, word))
}

impl<'de> Deserialize<'de> for TlsMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (text, word) = word(d)?;
        match word.as_str() {
            "none" | "off" | "" => Ok(TlsMode::None),
            "starttls" => Ok(TlsMode::StartTls),
            "implicit" | "tls" => Ok(TlsMode::Implicit),
            _ => Err(D::Error::custom(format!(
                "{text:?} is not one of \"none\", \"starttls\", \"implicit\""
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for BareLineEndings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (text, word) = word(d)?;
        match word.as_str() {
            "reject" => Ok(BareLineEndings::Reject),
            "normalize" | "normalise" => Ok(BareLineEndings::Normalize),
            _ => Err(D::Error::custom(format!(
                "{text:?} is not \"reject\" or \"normalize\""
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for LogRecipients {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (text, word) = word(d)?;
        match word.as_str() {
            "full" => Ok(LogRecipients::Full),
            "domain" => Ok(LogRecipients::Domain),
            _ => Err(D::Error::custom(format!(
                "{text:?} is not \"full\" or \"domain\""
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Provider {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (text, word) = word(d)?;
        one_of(&text, &word, &Provider::ALL, |p| p.name())
    }
}

impl<'de> Deserialize<'de> for DeliveryMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (text, word) = word(d)?;
        one_of(&text, &word, &DeliveryMode::ALL, |m| m.name())
    }
}

impl<'de> Deserialize<'de> for OnAmbiguous {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (text, word) = word(d)?;
        one_of(&text, &word, &OnAmbiguous::ALL, |m| m.name())
    }
}

impl<'de> Deserialize<'de> for Auth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (text, word) = word(d)?;
        one_of(&text, &word, &Auth::ALL, |a| a.name())
    }
}

/// The choice whose name is `word`, or an error listing every name.
fn one_of<T: Copy, E: Error>(
    text: &str,
    word: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, E> {
    if let Some(found) = all.iter().copied().find(|c| name(*c) == word) {
        return Ok(found);
    }
    let names: Vec<String> = all.iter().map(|c| format!("{:?}", name(*c))).collect();
    Err(E::custom(format!(
        "{text:?} is not one of {}",
        names.join(", ")
    )))
}

/// Parses a duration: a whole number followed by `ms`, `s`, `m` or `h`; a bare number is seconds.
///
/// The error says what is wrong and what is accepted, ready to follow a key in a message.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(text, "\"30s\" or \"5m\"")?;
    let seconds = |factor: u64| {
        number
            .checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too long a duration"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "" | "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(60 * 60),
        "d" => seconds(24 * 60 * 60),
        _ => Err(format!(
            "{text:?} has an unknown unit {unit:?}; use ms, s, m, h or d (for example \"30s\" or \"5m\")"
        )),
    }
}

/// Parses a size in octets: a whole number, optionally followed by `B`, `KB`, `MB` or `GB`
/// (also `KiB`, `MiB`, `GiB`; any case). All units are 1024-based, as Exchange counts them.
fn parse_size(text: &str) -> Result<usize, String> {
    let (number, unit) = split_number(text, "\"35MB\"")?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "kib" => 1 << 10,
        "mb" | "mib" => 1 << 20,
        "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit {unit:?}; use B, KB, MB or GB (for example \"35MB\")"
            ));
        }
    };
    number
        .checked_mul(factor)
        .and_then(|octets| usize::try_from(octets).ok())
        .ok_or_else(|| format!("{text:?} is too large a size"))
}

/// Splits `" 30 s "` into `(30, "s")`. Only whole, non-negative numbers are accepted because
/// fractions ("1.5s") and signs would need rules nobody asked for.
fn split_number<'a>(text: &'a str, example: &str) -> Result<(u64, &'a str), String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "{text:?} does not start with a whole number (for example {example})"
        ));
    }
    let number = digits
        .parse::<u64>()
        .map_err(|_| format!("{text:?} is too large a number"))?;
    Ok((number, unit.trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("500ms", Some(Duration::from_millis(500))),
            ("0ms", Some(Duration::ZERO)),
            ("30s", Some(Duration::from_secs(30))),
            ("30", Some(Duration::from_secs(30))),
            (" 30 s ", Some(Duration::from_secs(30))),
            ("5m", Some(Duration::from_secs(300))),
            ("1h", Some(Duration::from_secs(3600))),
            ("5d", Some(Duration::from_secs(5 * 86400))),
            ("60s", Some(Duration::from_secs(60))),
            ("", None),
            ("s", None),
            ("-5s", None),
            ("1.5s", None),
            ("5 fortnights", None),
            ("5S", None),
            ("1m30s", None),
            ("99999999999999999999s", None),
            ("18446744073709551615h", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text).ok(), *want, "input {text:?}");
        }
    }

    #[test]
    fn sizes() {
        let cases: &[(&str, Option<usize>)] = &[
            ("0", Some(0)),
            ("1024", Some(1024)),
            ("100B", Some(100)),
            ("1KB", Some(1024)),
            ("1kb", Some(1024)),
            ("1KiB", Some(1024)),
            ("35MB", Some(35 * 1024 * 1024)),
            ("35 MiB", Some(35 * 1024 * 1024)),
            ("2GB", Some(2 << 30)),
            ("1GiB", Some(1 << 30)),
            ("", None),
            ("MB", None),
            ("35XB", None),
            ("1.5MB", None),
            ("-1", None),
            ("18446744073709551615GB", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text).ok(), *want, "input {text:?}");
        }
    }

    fn int(n: i64) -> toml::Value {
        toml::Value::Integer(n)
    }

    fn text(s: &str) -> toml::Value {
        toml::Value::String(s.to_owned())
    }

    fn message<T>(result: Result<T, toml::de::Error>) -> String {
        result
            .err()
            .map(|e| e.message().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn numbers_accept_integers_and_digit_strings() {
        assert_eq!(count::<_, usize>(int(20)).ok(), Some(20));
        assert_eq!(count::<_, u32>(text(" 20 ")).ok(), Some(20));
        assert_eq!(port(text("25")).ok(), Some(25));
        for wrong in [int(0), int(-3), text("x"), text("1e3")] {
            assert!(count::<_, usize>(wrong).is_err());
        }
        assert_eq!(
            message(port(int(0))),
            "must be a whole number from 1 to 65535, found 0"
        );
        assert_eq!(
            message(count::<_, usize>(text("0"))),
            "must be a whole number of at least 1, found \"0\""
        );
        assert_eq!(
            message(count::<_, u32>(toml::Value::Float(1.5))),
            "invalid type: floating point `1.5`, expected a whole number"
        );
    }

    #[test]
    fn durations_and_sizes_refuse_zero() {
        assert_eq!(duration(int(5)).ok(), Some(Duration::from_secs(5)));
        assert_eq!(
            duration(text("250ms")).ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(size(text("2KB")).ok(), Some(2048));
        assert_eq!(message(duration(text("0s"))), "must be more than zero");
        assert_eq!(message(size(int(0))), "must be more than zero");
        assert!(message(duration(int(-1))).contains("is negative"));
    }

    #[test]
    fn lists_come_as_arrays_or_comma_separated() {
        let array = toml::Value::Array(vec![text("a"), text("b")]);
        let want = Some(vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(list(array).ok(), Some(want.clone()));
        assert_eq!(list(text(" a, b ,")).ok(), Some(want));
    }

    #[test]
    fn mode_words_ignore_case() {
        assert_eq!(
            TlsMode::deserialize(text(" StartTLS ")).ok(),
            Some(TlsMode::StartTls)
        );
        assert_eq!(
            TlsMode::deserialize(text("tls")).ok(),
            Some(TlsMode::Implicit)
        );
        assert_eq!(
            BareLineEndings::deserialize(text("Normalise")).ok(),
            Some(BareLineEndings::Normalize)
        );
        assert!(message(TlsMode::deserialize(text("ssl"))).contains("is not one of"));
    }

    #[test]
    fn single_key_checks_refuse_with_the_key_and_pass_blanks_on() {
        assert_eq!(
            smtp_host(text("10.0.0.1")).ok().as_deref(),
            Some("10.0.0.1")
        );
        assert!(message(smtp_host(text("smtp host"))).contains("is not a host name"));
        assert!(message(scope(text(" "))).starts_with("is empty; remove it"));
        assert_eq!(
            authority(text(" https://a.example/ ")).ok().as_deref(),
            Some("https://a.example")
        );
        let url = optional_https_url(text("https://a.example/t/"));
        assert_eq!(url.ok().flatten().as_deref(), Some("https://a.example/t/"));
        assert!(message(hostname(text("a b"))).contains("is not a host name"));
        assert!(message(user_name(text("a\u{7}b"))).contains("control characters"));
        assert_eq!(user_name(text("\t")).ok().flatten().as_deref(), Some("\t"));
        assert_eq!(mailbox(text(" ")).ok().flatten().as_deref(), Some(" "));
        assert_eq!(
            client_id(text(" 00000000-0000-0000-0000-000000000000 "))
                .ok()
                .flatten()
                .as_deref(),
            Some("00000000-0000-0000-0000-000000000000")
        );
        let secret = "hunter2~not-a-guid";
        let refused = message(client_id(text(secret)));
        assert!(refused.starts_with("is not a GUID") && !refused.contains(secret));
        assert!(message(tenant(text("Common"))).contains("multi-tenant alias"));
        assert!(message(tenant(text("contoso"))).contains("neither a GUID nor a domain"));
    }

    #[test]
    fn errors_name_the_input_and_the_choices() {
        let err = parse_duration("5x").unwrap_err();
        assert!(
            err.contains("\"5x\"") && err.contains("ms, s, m, h or d"),
            "{err}"
        );
        let err = parse_size("35XB").unwrap_err();
        assert!(
            err.contains("\"35XB\"") && err.contains("KB, MB or GB"),
            "{err}"
        );
    }
}
