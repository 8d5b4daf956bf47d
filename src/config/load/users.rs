//! `[[users]]` entries → [`User`]s: the local AUTH identity, how its password is checked, the
//! account it sends through and the senders it may use.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Params};

use super::check::{Context, Problems};
use super::secrets;
use crate::config::file::UserFile;
use crate::config::syntax::{address_problem, is_domain};
use crate::config::{Account, Network, PasswordCheck, SenderRule, User};

pub fn users(
    p: &mut Problems,
    ctx: &Context,
    raw: &[UserFile],
    accounts: &BTreeMap<String, Arc<Account>>,
    warnings: &mut Vec<String>,
) -> Vec<User> {
    if raw.is_empty() {
        p.push(
            "users",
            "no users: add a [[users]] table with name, password_hash and account",
        );
    }
    let users: Vec<User> = raw
        .iter()
        .enumerate()
        .filter_map(|(index, raw)| {
            user(p, ctx, &format!("users[{index}]"), raw, accounts, warnings)
        })
        .collect();
    check_unique(p, raw);
    users
}

fn user(
    p: &mut Problems,
    ctx: &Context,
    table: &str,
    raw: &UserFile,
    accounts: &BTreeMap<String, Arc<Account>>,
    warnings: &mut Vec<String>,
) -> Option<User> {
    let key = |field: &str| format!("{table}.{field}");
    let what = "set the user name that clients give in SMTP AUTH";
    let name = p.required(&key("name"), raw.name.as_ref(), what);
    let networks = networks(p, &key("networks"), raw.networks.as_deref(), warnings);
    let shown = name.as_deref().unwrap_or(table);
    let password = (networks.is_empty() || has_password(raw))
        .then(|| password(p, ctx, table, raw, shown, warnings));
    let account = account(p, &key("account"), raw.account.as_ref(), accounts);
    let mailbox = account.as_ref().and_then(|name| accounts.get(name));
    let mailbox = mailbox.map(|a| a.mailbox.clone());
    let listed = raw.allowed_senders.as_deref();
    let allowed_senders = senders(p, &key("allowed_senders"), listed, mailbox);
    let password = match password {
        Some(check) => Some(check?),
        None => None,
    };
    Some(User {
        name: name?,
        password,
        networks,
        account: account?,
        allowed_senders,
    })
}

fn has_password(raw: &UserFile) -> bool {
    password_options(raw)
        .iter()
        .any(|(_, value)| value.is_some())
}

/// The ways to give a password, in the order they are named in messages.
fn password_options(raw: &UserFile) -> [(&'static str, Option<&String>); 4] {
    [
        ("password_hash", raw.password_hash.as_ref()),
        ("password", raw.password.as_ref()),
        ("password_file", raw.password_file.as_ref()),
        ("password_env", raw.password_env.as_ref()),
    ]
}

/// `networks = ["192.168.1.0/24"]`: addresses that may send as this user without AUTH. The
/// whole Internet is refused (that would be an open relay), public ranges are warned about.
fn networks(
    p: &mut Problems,
    key: &str,
    texts: Option<&[String]>,
    warnings: &mut Vec<String>,
) -> Vec<Network> {
    let mut networks = Vec::new();
    for text in texts.unwrap_or_default() {
        match parse_network(text) {
            Some(n) if n.prefix == 0 => p.push(key, format!("{text:?} is every address: that would make an open relay; list only the devices' networks")),
            Some(n) => {
                if !is_private(n.addr) {
                    warnings.push(format!("{key} includes {n}, which is not a private network: every host there can send without a password"));
                }
                networks.push(n);
            }
            None => p.push(key, format!("{text:?} is not an address range such as 192.168.1.0/24, 10.0.0.7 or fd00::/8")),
        }
    }
    networks
}

/// `a.b.c.d/len`, `v6/len`, or a single address (a /32 or /128). Host bits must be zero.
pub fn parse_network(text: &str) -> Option<Network> {
    let (addr, prefix) = match text.trim().split_once('/') {
        Some((a, len)) => (a.parse::<IpAddr>().ok()?, len.parse::<u8>().ok()?),
        None => {
            let a = text.trim().parse::<IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let net = Network { addr, prefix };
    (prefix <= max && net.contains(addr) && masked(addr, prefix) == addr).then_some(net)
}

fn masked(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

fn is_private(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_private() || a.is_loopback() || a.is_link_local(),
        IpAddr::V6(a) => a.is_loopback() || a.is_unique_local() || a.is_unicast_link_local(),
    }
}

/// `account = "…"` must name an `[accounts.NAME]` table; the message lists the ones there are.
fn account(
    p: &mut Problems,
    key: &str,
    value: Option<&String>,
    accounts: &BTreeMap<String, Arc<Account>>,
) -> Option<String> {
    let names: Vec<&str> = accounts.keys().map(String::as_str).collect();
    let known = match names.as_slice() {
        [] => "there are no [accounts.NAME] tables yet".to_owned(),
        names => format!("the accounts are: {}", names.join(", ")),
    };
    let name = p.required(
        key,
        value,
        &format!("name the account this user sends through; {known}"),
    )?;
    if accounts.contains_key(&name) {
        return Some(name);
    }
    p.push(key, format!("there is no [accounts.{name}]; {known}"));
    None
}

fn password(
    p: &mut Problems,
    ctx: &Context,
    table: &str,
    raw: &UserFile,
    user: &str,
    warnings: &mut Vec<String>,
) -> Option<PasswordCheck> {
    let options = password_options(raw);
    let (name, value) = secrets::pick_one(p, ctx, table, "password", &options)?;
    let key = format!("{table}.{name}");
    if name == "password_hash" {
        return argon2_hash(p, &key, value);
    }
    let secret = secrets::read(p, ctx, &key, name, value)?;
    warnings.push(format!(
        "user {user:?} has a plain-text password (from {name}); store a hash instead: run \
         `xoauth-relay hash-password` and put its output in password_hash"
    ));
    Some(PasswordCheck::Plain(secret))
}

/// Parsed once here, so a hash that could never match is refused at start-up.
fn argon2_hash(p: &mut Problems, key: &str, text: &str) -> Option<PasswordCheck> {
    let problem = match PasswordHash::new(text) {
        Ok(hash) => hash_problem(&hash),
        Err(e) => Some(unparsable(text, &e.to_string())),
    };
    match problem {
        None => Some(PasswordCheck::Argon2(text.to_owned())),
        Some(problem) => {
            let fix =
                "make one with `xoauth-relay hash-password`; it looks like $argon2id$v=19$m=…";
            p.push(key, format!("{problem}; {fix}"));
            None
        }
    }
}

/// Names a foreign algorithm when there is one: bcrypt's `$2b$…` is not even valid PHC, and the
/// parser's complaint about its salt would mislead.
fn unparsable(text: &str, error: &str) -> String {
    match text
        .strip_prefix('$')
        .and_then(|rest| rest.split('$').next())
    {
        Some(algorithm) if Algorithm::from_str(algorithm).is_err() => wrong_algorithm(algorithm),
        _ => format!("is not a PHC hash string ({error})"),
    }
}

fn wrong_algorithm(algorithm: &str) -> String {
    // bcrypt's identifiers are $2$, $2a$, $2b$, $2y$: name it rather than quote the code.
    let name = if algorithm.starts_with('2') {
        "bcrypt"
    } else {
        algorithm
    };
    format!("is a {name} hash, but only argon2id, argon2i and argon2d are supported")
}

/// The most memory (in KiB, argon2's `m`) one password check may use.
const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;

fn hash_problem(hash: &PasswordHash) -> Option<String> {
    if Algorithm::try_from(hash.algorithm).is_err() {
        return Some(wrong_algorithm(hash.algorithm.as_str()));
    }
    match Params::try_from(hash) {
        Err(e) => return Some(format!("has unusable argon2 parameters ({e})")),
        // Each argon2 worker keeps a buffer of the largest m, so one absurd hash would make
        // the relay hold gigabytes.
        Ok(params) if params.m_cost() > MAX_ARGON2_MEMORY_KIB => {
            return Some(format!(
                "asks for m={} KiB of memory per login; at most {MAX_ARGON2_MEMORY_KIB} (256 MiB) is allowed",
                params.m_cost()
            ));
        }
        Ok(_) => {}
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Some("has no salt or no hash part".to_owned());
    }
    None
}

/// The MAIL FROM allow-list; without one, the account's mailbox only.
fn senders(
    p: &mut Problems,
    key: &str,
    items: Option<&[String]>,
    mailbox: Option<String>,
) -> Vec<SenderRule> {
    let Some(items) = items else {
        return mailbox
            .map(|m| SenderRule::Address(m.to_lowercase()))
            .into_iter()
            .collect();
    };
    if items.is_empty() {
        p.push(
            key,
            "is empty, so this user could send nothing; remove it to allow the account's mailbox",
        );
    }
    let rules = items.iter().enumerate();
    rules
        .filter_map(|(i, item)| sender_rule(p, &format!("{key}[{i}]"), item))
        .collect()
}

fn sender_rule(p: &mut Problems, key: &str, item: &str) -> Option<SenderRule> {
    let text = item.trim().to_lowercase();
    if let Some(domain) = text.strip_prefix('@') {
        if is_domain(domain) && domain.contains('.') {
            return Some(SenderRule::Domain(domain.to_owned()));
        }
        p.push(
            key,
            format!("{text:?} is not @ followed by a domain such as @contoso.com"),
        );
        return None;
    }
    match address_problem(&text) {
        None => Some(SenderRule::Address(text)),
        Some(problem) => {
            let hint =
                "use an address such as sender@contoso.com, or @contoso.com for a whole domain";
            p.push(
                key,
                format!("{text:?} is not a valid e-mail address: {problem}; {hint}"),
            );
            None
        }
    }
}

/// AUTH names must pick one user; names differing only in case are refused too, since some
/// clients change the case of what the operator typed.
fn check_unique(p: &mut Problems, raw: &[UserFile]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, user) in raw.iter().enumerate() {
        let Some(name) = &user.name else {
            continue;
        };
        match seen.get(&name.to_lowercase()) {
            Some(first) => p.push(
                format!("users[{index}].name"),
                format!("{name:?} is already the name of users[{first}]; user names must be unique (ignoring case)"),
            ),
            None => {
                seen.insert(name.to_lowercase(), index);
            }
        }
    }
}
