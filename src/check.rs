//! `xoauth-relay check`: walks each account through what a message needs (a token, the
//! token's roles, STARTTLS, XOAUTH2 accepted, optionally a real test message from each allowed
//! sender) and prints a checklist with a plain-words fix for each failure.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Account, Auth, Config};
use crate::daemon::build_route;
use crate::dates::Day;
use crate::error::Class;
use crate::error::explain::{
    Explanation, SMTP_AUTH_DISABLED, TOKEN_REJECTED, explain_token, explain_upstream_for, fill,
};
use crate::oauth::claims::Claims;
use crate::oauth::{AccessToken, TokenError};
use crate::pacing::Pacer;
use crate::relay::Route;
use crate::stats::Stats;

mod queue;
mod senders;

/// What `check` is asked to do besides the checks that send nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Send a test message to this address from each allowed sender.
    pub send_to: Option<&'a str>,
    /// Only from this sender.
    pub from: Option<&'a str>,
}

/// A transient token failure (a 5xx, a dropped connection) is tried this often, a timeout twice.
const TOKEN_ATTEMPTS: u32 = 3;
/// The pause before the second attempt; doubled before the third.
const TOKEN_RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Exchange answers `535 5.7.3` for each of these, so `check` cannot tell them apart; most
/// likely first (Microsoft, "Authenticate an IMAP, POP or SMTP connection using OAuth" and
/// "SMTP Onboarding to App RBAC"). The SMTP.SendAsApp consent is not listed: `check` reads it
/// from the token.
const AUTH_CAUSES: [&str; 3] = [
    "the app's service principal is not registered in Exchange, or with the object ID of the app \
     registration instead of the Enterprise application's: New-ServicePrincipal -AppId \
     {client_id} -ObjectId <Enterprise application object ID> (check cannot look this up: the \
     app's own token has no right to read Exchange's service principals)",
    "the service principal may not use the mailbox: Add-MailboxPermission -Identity {mailbox} \
     -User <service principal ID> -AccessRights FullAccess, or an RBAC for Applications scope \
     that includes {mailbox}",
    "{mailbox} is not the mailbox's primary SMTP address",
];

pub(crate) struct Report<'w, W: Write> {
    out: &'w mut W,
    failures: usize,
}

impl<W: Write> Report<'_, W> {
    pub(crate) fn ok(&mut self, text: &str) {
        let _ = writeln!(self.out, "  [ok]   {text}");
    }

    /// A step that may take a while, said before it starts.
    pub(crate) fn wait(&mut self, text: &str) {
        let _ = writeln!(self.out, "  [..]   {text}");
        let _ = self.out.flush();
    }

    pub(crate) fn warn(&mut self, text: &str, fix: Option<&str>) {
        let _ = writeln!(self.out, "  [warn] {text}");
        if let Some(fix) = fix {
            let _ = writeln!(self.out, "         fix: {fix}");
        }
    }

    pub(crate) fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "         {text}");
    }

    pub(crate) fn fail(&mut self, text: &str) {
        self.failures += 1;
        let _ = writeln!(self.out, "  [FAIL] {text}");
    }

    /// A failure, with what it means and the fix for this account when it is a known one.
    pub(crate) fn explained(&mut self, text: &str, x: Option<Explanation>, account: &Account) {
        self.fail(text);
        if let Some(x) = x {
            self.line(&format!("what: {}", x.what));
            self.line(&format!("fix:  {}", x.fix_for(account)));
        }
    }
}

/// Runs every check and writes the checklist to `out`. True when nothing failed.
pub async fn run<W: Write>(config: &Config, send_to: Option<&str>, out: &mut W) -> bool {
    let options = Options {
        send_to,
        from: None,
    };
    run_with(config, options, out).await
}

/// [`run`] with every option.
pub async fn run_with<W: Write>(config: &Config, options: Options<'_>, out: &mut W) -> bool {
    let mut report = Report { out, failures: 0 };
    let users = config.users.len();
    report.ok(&format!(
        "configuration valid: {users} user(s), {} account(s)",
        config.accounts.len()
    ));
    for warning in &config.warnings {
        report.warn(warning, None);
    }
    queue::check(config, &mut report);
    let plan = senders::plan(options, &mut report);
    for account in config.accounts.values() {
        let _ = writeln!(
            report.out,
            "\naccount {} (mailbox {}):",
            account.name, account.mailbox
        );
        secret_expiry(account, &mut report);
        let stats = Stats::default();
        let unpaced = Arc::new(Pacer::unlimited(stats.account(&account.name)));
        match build_route(config, account.clone(), &stats, Some(unpaced)) {
            Ok(route) => {
                check_account(&route, config, plan.as_ref(), &mut report).await;
                // A test message leaves its session idle for the next one; none comes.
                route.upstream.close_idle().await;
            }
            Err(e) => report.fail(&e.to_string()),
        }
    }
    let verdict = match report.failures {
        0 => "all checks passed".to_string(),
        n => format!("{n} check(s) failed"),
    };
    let _ = writeln!(report.out, "\n{verdict}");
    report.failures == 0
}

fn secret_expiry<W: Write>(account: &Account, report: &mut Report<'_, W>) {
    if let Some(text) = crate::expiry::warning(account, Day::today()) {
        report.warn(&text, None);
    }
}

async fn check_account<W: Write>(
    route: &Route,
    config: &Config,
    plan: Option<&senders::Plan>,
    report: &mut Report<'_, W>,
) {
    let login = route.account.provider.uses_login();
    let (token, has_role) = if login {
        // No token to ask for or read: the route's placeholder is never sent.
        let Ok(issued) = route.tokens.get().await else {
            return;
        };
        (issued.token, None)
    } else {
        let Some(token) = token(route, config.timeouts.token_total, report).await else {
            return;
        };
        let has_role = check_claims(&route.account, &token, report);
        (token, has_role)
    };
    if !check_smtp(route, &token, has_role, report).await {
        return;
    }
    if let Some(plan) = plan {
        senders::send_tests(route, config, &token, plan, report).await;
    }
}

/// A token, retrying a transient failure a few times; says what it waits for before waiting.
async fn token<W: Write>(
    route: &Route,
    deadline: Duration,
    report: &mut Report<'_, W>,
) -> Option<Arc<AccessToken>> {
    let url = &route.account.token_url;
    let mut pause = TOKEN_RETRY_PAUSE;
    let mut attempt = 1;
    loop {
        report.wait(&format!(
            "requesting a token from {url} (up to {})…",
            seconds(deadline)
        ));
        let error = match route.tokens.get().await {
            Ok(issued) => {
                let minutes = issued.token.lifetime.as_secs() / 60;
                report.ok(&format!("token from {url} (valid for {minutes} min)"));
                return Some(issued.token);
            }
            Err(e) => e,
        };
        if attempt >= attempts_for(&error) {
            let tries = match attempt {
                1 => String::new(),
                n => format!(" (still failing after {n} attempts)"),
            };
            let text = format!("token from {url}: {error}{tries}");
            report.explained(&text, explain_token(&error), &route.account);
            return None;
        }
        report.line(&format!("attempt {attempt} failed: {error}; trying again"));
        tokio::time::sleep(pause).await;
        pause *= 2;
        attempt += 1;
    }
}

fn attempts_for(error: &TokenError) -> u32 {
    match error {
        _ if error.class() != Class::Transient => 1,
        TokenError::Timeout(_) => 2,
        _ => TOKEN_ATTEMPTS,
    }
}

/// `30 s`, `0.5 s`.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

/// Reports what the token says about the app; `Some(true)` when it carries SMTP.SendAsApp,
/// `None` when it cannot be read.
fn check_claims<W: Write>(
    account: &Account,
    token: &AccessToken,
    report: &mut Report<'_, W>,
) -> Option<bool> {
    if account.auth == Auth::Delegated {
        user_claims(account, token, report);
        return None;
    }
    let Some(claims) = Claims::decode(token.value.expose()) else {
        report.warn(
            "the token is not a JWT; cannot read its roles",
            Some("nothing to do unless SMTP AUTH fails"),
        );
        return None;
    };
    if let Some(app) = claims.appid.as_deref()
        && !app.eq_ignore_ascii_case(&account.client_id)
    {
        report.warn(
            &format!(
                "the token is for app {app}, not client_id {}",
                account.client_id
            ),
            Some("check token_url and client_id"),
        );
    }
    if let Some(tid) = claims.tid.as_deref()
        && looks_like_guid(&account.tenant)
        && !tid.eq_ignore_ascii_case(&account.tenant)
    {
        report.warn(
            &format!(
                "the token is from tenant {tid}, not tenant {}",
                account.tenant
            ),
            Some("check tenant and token_url"),
        );
    }
    let has = claims.has_role("SMTP.SendAsApp");
    if has {
        report.ok("token carries the SMTP.SendAsApp role");
    } else {
        report.warn(
            &format!("token roles {:?} do not include SMTP.SendAsApp", claims.roles),
            Some("add the application permission Office 365 Exchange Online > SMTP.SendAsApp and grant admin \
             consent (not needed if you use RBAC for Applications instead)"),
        );
    }
    Some(has)
}

/// A user's token carries the delegated SMTP.Send permission (`scp`), not an app role.
/// Personal accounts get tokens that are not JWTs, which have nothing to read.
fn user_claims<W: Write>(account: &Account, token: &AccessToken, report: &mut Report<'_, W>) {
    let Some(claims) = Claims::decode(token.value.expose()) else {
        report.ok("signed in (the token is not a JWT, as for personal accounts; nothing to read)");
        return;
    };
    if claims.has_scope("SMTP.Send") {
        report.ok("the signed-in user's token carries the SMTP.Send permission");
        return;
    }
    let scopes = claims.scp.as_deref().unwrap_or_default();
    report.warn(
        &format!("the token's scopes {scopes:?} do not include SMTP.Send"),
        Some(&format!(
            "add the delegated permission SMTP.Send to the app registration {}, then sign in \
             again with `xoauth-relay login {}`",
            account.client_id, account.name
        )),
    );
}

/// A tenant ID rather than a domain (only an ID can be compared with the token's `tid`).
fn looks_like_guid(text: &str) -> bool {
    text.len() == 36 && text.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

async fn check_smtp<W: Write>(
    route: &Route,
    token: &Arc<AccessToken>,
    has_role: Option<bool>,
    report: &mut Report<'_, W>,
) -> bool {
    let account = &route.account;
    let target = format!("{}:{}", account.smtp_host, account.smtp_port);
    let login = account.provider.uses_login();
    let mechanism = if login { "AUTH LOGIN" } else { "AUTH XOAUTH2" };
    report.wait(&format!("connecting to {target} (STARTTLS, {mechanism})…"));
    match route.upstream.probe(token).await {
        Ok(probe) => {
            report.ok(&format!(
                "SMTP {target}: STARTTLS ({}), {mechanism} accepted",
                probe.tls_version
            ));
            if login {
                report.ok("Azure Communication Services accepted the SMTP username and secret (the app's role on the resource is in place)");
            } else if account.auth == Auth::Delegated {
                report.ok("Exchange accepted the signed-in user's token (SMTP.Send consented, SMTP AUTH enabled)");
            } else {
                report.ok("Exchange prerequisites in place (permission + consent, service principal, mailbox access, SMTP AUTH)");
            }
            true
        }
        Err(e) => {
            let text = format!("SMTP {target}: {e}");
            match explain_upstream_for(&e, account) {
                Some(x) if x == TOKEN_REJECTED => token_rejected(account, &text, has_role, report),
                Some(x) if x == SMTP_AUTH_DISABLED => report.explained(&text, Some(x), account),
                x => report.explained(&text, x, account),
            }
            false
        }
    }
}

/// `535 5.7.3`: what `check` knows from the token, then the causes it cannot tell apart.
fn token_rejected<W: Write>(
    account: &Account,
    text: &str,
    has_role: Option<bool>,
    report: &mut Report<'_, W>,
) {
    report.fail(text);
    report.line(&format!("what: {}", TOKEN_REJECTED.what));
    if has_role == Some(false) {
        report.line(
            "fix:  most likely the missing SMTP.SendAsApp permission or its admin consent (the \
             token's roles claim lacks it, see the warning above); if you use RBAC for \
             Applications instead, the causes below apply",
        );
    } else {
        let seen = match has_role {
            Some(_) => "the token carries SMTP.SendAsApp, so consent is in place",
            None => "the token's roles could not be read",
        };
        report.line(&format!(
            "Exchange answers the same for each of these ({seen}); most likely first:"
        ));
    }
    for (i, cause) in AUTH_CAUSES.iter().enumerate() {
        report.line(&format!("  {}. {}", i + 1, fill(cause, account)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn jwt(claims: &str) -> AccessToken {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims);
        AccessToken::new(format!("e30.{payload}.sig"), Duration::from_secs(60))
    }

    fn claims_report(account: &Account, token: &AccessToken) -> (Option<bool>, String) {
        let mut out = Vec::new();
        let mut report = Report {
            out: &mut out,
            failures: 0,
        };
        let has = check_claims(account, token, &mut report);
        (has, String::from_utf8(out).unwrap())
    }

    #[test]
    fn token_for_another_app_or_tenant_is_a_warning() {
        let mut account = crate::testkit::relay_config::example_account();
        account.client_id = "11111111-2222-3333-4444-555555555555".into();
        account.tenant = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into();
        let same = jwt(
            r#"{"roles":["SMTP.SendAsApp"],"appid":"11111111-2222-3333-4444-555555555555","tid":"AAAAAAAA-bbbb-cccc-dddd-eeeeeeeeeeee"}"#,
        );
        let (has, text) = claims_report(&account, &same);
        assert_eq!(has, Some(true));
        assert!(!text.contains("[warn]"), "{text}");
        let other = jwt(
            r#"{"roles":[],"appid":"99999999-2222-3333-4444-555555555555","tid":"ffffffff-bbbb-cccc-dddd-eeeeeeeeeeee"}"#,
        );
        let (has, text) = claims_report(&account, &other);
        assert_eq!(has, Some(false));
        assert!(text.contains("the token is for app 99999999-"), "{text}");
        assert!(
            text.contains("the token is from tenant ffffffff-"),
            "{text}"
        );
        account.tenant = "contoso.onmicrosoft.com".into();
        let (_, text) = claims_report(&account, &other);
        assert!(
            !text.contains("from tenant"),
            "a domain cannot be compared: {text}"
        );
        assert_eq!(
            claims_report(&account, &AccessToken::new("opaque".into(), Duration::ZERO)).0,
            None
        );
    }
}
