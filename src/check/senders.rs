//! `check --send-to ADDR`: one real message from each sender the account's users may use
//! (Exchange checks Send As only after DATA, so nothing short of sending finds a missing grant),
//! or from the one `--from` names; addresses are validated here, before anything is sent.

use std::io::Write;

use super::Report;
use crate::address::Address;
use crate::config::{Config, SenderRule};
use crate::error::explain::explain_upstream_for;
use crate::message::Envelope;
use crate::oauth::AccessToken;
use crate::relay::Route;

/// Exchange lets a mailbox send 30 messages a minute; `check` stays well below.
const MAX_TEST_SENDERS: usize = 10;

/// The validated addresses of `--send-to` and `--from`.
pub(crate) struct Plan {
    to: Address,
    from: Option<Address>,
}

/// `None` (and a failure) when there is nothing to send or an address is malformed.
pub(crate) fn plan<W: Write>(
    options: super::Options<'_>,
    report: &mut Report<'_, W>,
) -> Option<Plan> {
    let to = parse("--send-to", options.send_to?, report)?;
    let from = match options.from {
        Some(from) => Some(parse("--from", from, report)?),
        None => None,
    };
    Some(Plan { to, from })
}

fn parse<W: Write>(flag: &str, text: &str, report: &mut Report<'_, W>) -> Option<Address> {
    match Address::parse(text.trim()) {
        Ok(address) => Some(address),
        Err(e) => {
            report.fail(&format!(
                "{flag} {:?} is not an e-mail address ({e}); no test message sent",
                crate::reply::sanitize(text)
            ));
            None
        }
    }
}

/// The senders to try for `route`'s account: `--from`, or the mailbox and every address in the
/// `allowed_senders` of the account's users (domain rules are named, not guessed).
fn senders<W: Write>(
    route: &Route,
    config: &Config,
    plan: &Plan,
    report: &mut Report<'_, W>,
) -> Vec<Address> {
    if let Some(from) = &plan.from {
        return vec![from.clone()];
    }
    let account = &route.account;
    let mut list: Vec<Address> = Address::parse(&account.mailbox).into_iter().collect();
    let rules = config
        .users
        .iter()
        .filter(|u| u.account == account.name)
        .flat_map(|u| &u.allowed_senders);
    for rule in rules {
        match rule {
            SenderRule::Address(a) => {
                if let Ok(address) = Address::parse(a)
                    && !list.iter().any(|known| known.is(a))
                {
                    list.push(address);
                }
            }
            SenderRule::Domain(d) => report.warn(
                &format!("allowed sender @{d} is a whole domain; not tried"),
                Some(&format!("try one of its addresses with --from someone@{d}")),
            ),
        }
    }
    if list.len() > MAX_TEST_SENDERS {
        report.warn(
            &format!(
                "{} allowed senders; trying the first {MAX_TEST_SENDERS}",
                list.len()
            ),
            Some("try the others with --from"),
        );
        list.truncate(MAX_TEST_SENDERS);
    }
    list
}

/// Sends the test messages and says which senders Exchange refused.
pub(crate) async fn send_tests<W: Write>(
    route: &Route,
    config: &Config,
    token: &AccessToken,
    plan: &Plan,
    report: &mut Report<'_, W>,
) {
    let mut refused = Vec::new();
    let list = senders(route, config, plan, report);
    for from in &list {
        if !send_one(route, token, from, &plan.to, &config.hostname, report).await {
            refused.push(from.to_string());
        }
    }
    if list.len() > 1 {
        match refused.len() {
            0 => report.ok(&format!("Exchange accepted all {} senders", list.len())),
            n => report.line(&format!(
                "Exchange refused {n} of {} senders: {}",
                list.len(),
                refused.join(", ")
            )),
        }
    }
}

async fn send_one<W: Write>(
    route: &Route,
    token: &AccessToken,
    from: &Address,
    to: &Address,
    hostname: &str,
    report: &mut Report<'_, W>,
) -> bool {
    let envelope = Envelope {
        smtputf8: !from.is_ascii() || !to.is_ascii(),
        mail_from: Some(from.clone()),
        rcpts: vec![to.clone()],
        ..Envelope::default()
    };
    let body =
        crate::message::Body::Memory(test_message(&from.to_string(), &to.to_string(), hostname));
    report.wait(&format!("sending a test message from {from} to {to}…"));
    match route
        .upstream
        .deliver(token, &envelope, &body, &Default::default())
        .await
    {
        Ok(d) => {
            report.ok(&format!(
                "test message to {to} accepted: {} (sent as {from})",
                d.reply
            ));
            true
        }
        Err(e) => {
            let text = format!("test message to {to} as {from} refused: {e}");
            report.explained(
                &text,
                explain_upstream_for(&e, &route.account),
                &route.account,
            );
            false
        }
    }
}

/// A minimal RFC 5322 message.
fn test_message(from: &str, to: &str, hostname: &str) -> Vec<u8> {
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: xoauth-relay test message\r\nDate: {}\r\n\
         Message-ID: <{secs}.{}@{hostname}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         This message was sent by `xoauth-relay check` to confirm that the relay can send as {from}.\r\n",
        crate::dates::rfc5322(secs),
        std::process::id(),
    )
    .into_bytes()
}
