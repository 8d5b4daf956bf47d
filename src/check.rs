//! `xoauth-relay check`: walks each account through what a message needs (a token, the
//! token's roles, STARTTLS, XOAUTH2 accepted, optionally a real test message) and prints a
//! checklist with a plain-words fix for each failure.

use std::io::Write;
use std::sync::Arc;

use crate::address::Address;
use crate::config::{Account, Config};
use crate::daemon::build_route;
use crate::error::explain::{Explanation, explain_token, explain_upstream};
use crate::message::Envelope;
use crate::oauth::AccessToken;
use crate::oauth::claims::Claims;
use crate::relay::Route;
use crate::stats::Stats;
use crate::upstream::UpstreamError;

/// The four things Exchange Online needs before an app can send (Microsoft,
/// "Authenticate an IMAP, POP or SMTP connection using OAuth" and "SMTP Onboarding to App RBAC").
const PREREQUISITES: [&str; 4] = [
    "application permission Office 365 Exchange Online > SMTP.SendAsApp, with admin consent",
    "the app's service principal registered in Exchange (New-ServicePrincipal)",
    "the service principal allowed on the mailbox (Add-MailboxPermission FullAccess, or an RBAC for Applications scope)",
    "SMTP AUTH enabled for the mailbox (Set-CASMailbox -SmtpClientAuthenticationDisabled $false)",
];

struct Report<'w, W: Write> {
    out: &'w mut W,
    failures: usize,
}

impl<W: Write> Report<'_, W> {
    fn ok(&mut self, text: &str) {
        let _ = writeln!(self.out, "  [ok]   {text}");
    }

    fn warn(&mut self, text: &str, fix: &str) {
        let _ = writeln!(self.out, "  [warn] {text}\n         fix: {fix}");
    }

    fn fail(&mut self, text: &str, explanation: Option<Explanation>) {
        self.failures += 1;
        let _ = writeln!(self.out, "  [FAIL] {text}");
        if let Some(x) = explanation {
            let _ = writeln!(
                self.out,
                "         what: {}\n         fix:  {}",
                x.what, x.fix
            );
        }
    }
}

/// Runs every check and writes the checklist to `out`. True when nothing failed.
pub async fn run<W: Write>(config: &Config, send_to: Option<&str>, out: &mut W) -> bool {
    let mut report = Report { out, failures: 0 };
    let users = config.users.len();
    report.ok(&format!(
        "configuration valid: {users} user(s), {} account(s)",
        config.accounts.len()
    ));
    for warning in &config.warnings {
        report.warn(warning, "see the warning text");
    }
    for account in config.accounts.values() {
        let _ = writeln!(
            report.out,
            "\naccount {} (mailbox {}):",
            account.name, account.mailbox
        );
        match build_route(config, account.clone(), &Stats::default()) {
            Ok(route) => check_account(&route, send_to, &config.hostname, &mut report).await,
            Err(e) => report.fail(&e.to_string(), None),
        }
    }
    let verdict = match report.failures {
        0 => "all checks passed".to_string(),
        n => format!("{n} check(s) failed"),
    };
    let _ = writeln!(report.out, "\n{verdict}");
    report.failures == 0
}

async fn check_account<W: Write>(
    route: &Route,
    send_to: Option<&str>,
    hostname: &str,
    report: &mut Report<'_, W>,
) {
    let account = &route.account;
    let token = match route.tokens.get().await {
        Ok(issued) => issued.token,
        Err(e) => {
            report.fail(
                &format!("token from {}: {e}", account.token_url),
                explain_token(&e),
            );
            return;
        }
    };
    let minutes = token.lifetime.as_secs() / 60;
    report.ok(&format!(
        "token from {} (valid for {minutes} min)",
        account.token_url
    ));
    check_roles(&token, report);
    if !check_smtp(route, &token, report).await {
        return;
    }
    if let Some(to) = send_to {
        send_test(route, &token, to, hostname, report).await;
    }
}

fn check_roles<W: Write>(token: &AccessToken, report: &mut Report<'_, W>) {
    let Some(claims) = Claims::decode(token.value.expose()) else {
        report.warn(
            "the token is not a JWT; cannot read its roles",
            "nothing to do unless SMTP AUTH fails",
        );
        return;
    };
    if claims.has_role("SMTP.SendAsApp") {
        report.ok("token carries the SMTP.SendAsApp role");
    } else {
        report.warn(
            &format!("token roles {:?} do not include SMTP.SendAsApp", claims.roles),
            "add the application permission Office 365 Exchange Online > SMTP.SendAsApp and grant admin \
             consent (not needed if you use RBAC for Applications instead)",
        );
    }
}

async fn check_smtp<W: Write>(
    route: &Route,
    token: &Arc<AccessToken>,
    report: &mut Report<'_, W>,
) -> bool {
    let account = &route.account;
    let target = format!("{}:{}", account.smtp_host, account.smtp_port);
    match route.upstream.probe(token).await {
        Ok(probe) => {
            report.ok(&format!(
                "SMTP {target}: STARTTLS ({}), AUTH XOAUTH2 accepted",
                probe.tls_version
            ));
            report.ok("Exchange prerequisites in place (permission + consent, service principal, mailbox access, SMTP AUTH)");
            true
        }
        Err(e) => {
            let auth_failed = matches!(e, UpstreamError::AuthRejected { .. });
            report.fail(&format!("SMTP {target}: {e}"), explain_upstream(&e));
            if auth_failed {
                let _ = writeln!(
                    report.out,
                    "         the four Exchange prerequisites, one of which is missing:"
                );
                for (i, p) in PREREQUISITES.iter().enumerate() {
                    let _ = writeln!(report.out, "           {}. {p}", i + 1);
                }
            }
            false
        }
    }
}

async fn send_test<W: Write>(
    route: &Route,
    token: &AccessToken,
    to: &str,
    hostname: &str,
    report: &mut Report<'_, W>,
) {
    let account: &Account = &route.account;
    let (from, rcpt) = match (Address::parse(&account.mailbox), Address::parse(to)) {
        (Ok(from), Ok(rcpt)) => (from, rcpt),
        (Err(e), _) | (_, Err(e)) => {
            let why = format!("{e}");
            report.fail(
                &format!("test message to {to}: not an address: {why}"),
                None,
            );
            return;
        }
    };
    let envelope = Envelope {
        smtputf8: !from.is_ascii() || !rcpt.is_ascii(),
        mail_from: Some(from),
        rcpts: vec![rcpt],
        ..Envelope::default()
    };
    let body = test_message(&account.mailbox, to, hostname);
    match route.upstream.deliver(token, &envelope, &body).await {
        Ok(d) => report.ok(&format!("test message to {to} accepted: {}", d.reply)),
        Err(e) => report.fail(&format!("test message to {to}: {e}"), explain_upstream(&e)),
    }
}

/// A minimal RFC 5322 message.
pub(crate) fn test_message(from: &str, to: &str, hostname: &str) -> Vec<u8> {
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
