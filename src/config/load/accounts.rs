//! `[accounts.NAME]` tables → [`Account`]s: the Exchange mailbox, the Entra app registration
//! that sends as it, and where to reach Microsoft.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::check::{Context, Problems};
use super::syntax::{address_problem, is_domain, is_guid};
use super::{roots, secrets};
use crate::config::Account;
use crate::config::defaults::*;
use crate::config::file::AccountFile;
use crate::secret::Secret;

/// Tenant aliases for multi-tenant sign-in; client credentials need the real tenant there
/// (Entra answers AADSTS9001023 otherwise).
const ALIASES: &[&str] = &["common", "consumers", "organizations"];

pub fn accounts(
    p: &mut Problems,
    ctx: &Context,
    raw: &BTreeMap<String, AccountFile>,
    warnings: &mut Vec<String>,
) -> BTreeMap<String, Arc<Account>> {
    if raw.is_empty() {
        p.push("accounts", "no accounts: add an [accounts.NAME] table with mailbox, tenant, client_id and client_secret");
    }
    let built: BTreeMap<String, Arc<Account>> = raw
        .iter()
        .map(|(name, raw)| (name.clone(), Arc::new(account(p, ctx, name, raw))))
        .collect();
    warnings.extend(
        built
            .values()
            .filter_map(|a| tenant_unused(a, raw.get(&a.name))),
    );
    built
}

/// With `token_url` set, `tenant` is not used to reach the token endpoint: say so when the URL
/// names another tenant, so a changed tenant is not believed to have taken effect.
fn tenant_unused(account: &Account, raw: Option<&AccountFile>) -> Option<String> {
    raw?.token_url.as_ref()?;
    let url = reqwest::Url::parse(&account.token_url).ok()?;
    let first = url.path_segments()?.next().unwrap_or_default();
    (!first.eq_ignore_ascii_case(&account.tenant)).then(|| {
        format!(
            "accounts.{}.tenant ({:?}) is not used: token_url ({}) is set and names tenant {first:?}; \
             make them agree, or remove token_url",
            account.name, account.tenant, account.token_url
        )
    })
}

fn account(p: &mut Problems, ctx: &Context, name: &str, raw: &AccountFile) -> Account {
    let table = format!("accounts.{name}");
    check_name(p, &table, name);
    let key = |field: &str| format!("{table}.{field}");
    let tenant = tenant(p, &key("tenant"), raw.tenant.as_ref());
    let authority = https_url(p, &key("authority"), &raw.authority)
        .trim_end_matches('/')
        .to_owned();
    let token_url = match &raw.token_url {
        Some(url) => https_url(p, &key("token_url"), url),
        None => format!("{authority}/{tenant}/oauth2/v2.0/token"),
    };
    let (ca_file, extra_roots) = roots::extra_roots(p, ctx, &key("ca_file"), raw.ca_file.as_ref());
    Account {
        name: name.to_owned(),
        mailbox: mailbox(p, &key("mailbox"), raw.mailbox.as_ref()),
        tenant,
        client_id: client_id(p, &key("client_id"), raw.client_id.as_ref()),
        client_secret: client_secret(p, ctx, &table, raw).unwrap_or_default(),
        authority,
        token_url,
        scope: scope(p, &key("scope"), &raw.scope),
        smtp_host: smtp_host(p, &key("smtp_host"), &raw.smtp_host),
        smtp_port: raw.smtp_port,
        ca_file,
        extra_roots,
        max_connections: raw.max_connections,
        client_secret_expires: raw.client_secret_expires,
        client_secret_warn_days: raw.client_secret_warn_days,
    }
}

/// Environment variable names are lower-cased on the way in, so an account named with
/// capitals could never be reached by `XOAUTH_RELAY__ACCOUNTS__NAME__…`; refuse it up front
/// instead of letting such a variable silently create a second account.
fn check_name(p: &mut Problems, table: &str, name: &str) {
    let fine = !name.is_empty()
        && !name.contains("__")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !fine {
        let message = format!(
            "account names may only use lower-case letters, digits, _ and - (environment \
             variables XOAUTH_RELAY__ACCOUNTS__NAME__KEY can only address such names); rename \
             [accounts.{name}] to for example [accounts.{}] and use that name in account = \"…\"",
            suggest_name(name)
        );
        p.push(table, message);
    }
}

fn suggest_name(name: &str) -> String {
    let name: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "main".to_owned()
    } else {
        name.replace("__", "_")
    }
}

fn mailbox(p: &mut Problems, key: &str, value: Option<&String>) -> String {
    let missing = "set the address of the Exchange mailbox to send as, such as sender@contoso.com";
    let mailbox = p.required(key, value, missing).unwrap_or_default();
    if !mailbox.is_empty()
        && let Some(problem) = address_problem(&mailbox)
    {
        p.push(
            key,
            format!("{mailbox:?} is not a valid e-mail address: {problem}"),
        );
    }
    mailbox
}

fn tenant(p: &mut Problems, key: &str, value: Option<&String>) -> String {
    let missing = "set the directory (tenant) ID, a GUID, or a verified domain such as contoso.onmicrosoft.com";
    let tenant = p.required(key, value, missing).unwrap_or_default();
    if ALIASES.contains(&tenant.to_ascii_lowercase().as_str()) {
        let message = format!(
            "{tenant:?} is a multi-tenant alias, where client credentials do not work \
             (AADSTS9001023); {missing}"
        );
        p.push(key, message);
    } else if !tenant.is_empty() && !is_tenant_shape(&tenant) {
        p.push(
            key,
            format!("{tenant:?} is neither a GUID nor a domain name; {missing}"),
        );
    }
    tenant
}

/// A tenant goes into the token URL path: a GUID or a domain, nothing else.
fn is_tenant_shape(tenant: &str) -> bool {
    is_guid(tenant) || (is_domain(tenant) && tenant.contains('.'))
}

fn client_id(p: &mut Problems, key: &str, value: Option<&String>) -> String {
    let what = "set the Application (client) ID of the app registration (Entra admin center → \
                App registrations → Overview), a GUID such as 00000000-0000-0000-0000-000000000000";
    let id = p.required(key, value, what).unwrap_or_default();
    // The value is not echoed: a client secret pasted here by mistake must not reach a log.
    if !id.is_empty() && !is_guid(id.trim()) {
        p.push(key, format!("is not a GUID; {what}"));
    }
    id.trim().to_owned()
}

fn client_secret(
    p: &mut Problems,
    ctx: &Context,
    table: &str,
    raw: &AccountFile,
) -> Option<Secret<String>> {
    let options = [
        ("client_secret", raw.client_secret.as_ref()),
        ("client_secret_file", raw.client_secret_file.as_ref()),
        ("client_secret_env", raw.client_secret_env.as_ref()),
    ];
    let (name, value) = secrets::pick_one(p, ctx, table, "client_secret", &options)?;
    secrets::read(p, ctx, &format!("{table}.{name}"), name, value)
}

/// Tokens and client secrets travel to this URL, so it must be https.
fn https_url(p: &mut Problems, key: &str, text: &str) -> String {
    let fine = reqwest::Url::parse(text.trim())
        .is_ok_and(|url| url.scheme() == "https" && url.host_str().is_some_and(|h| !h.is_empty()));
    if !fine {
        p.push(key, format!("{text:?} is not an https:// URL; the client secret is sent there, so plain http is refused"));
    }
    text.trim().to_owned()
}

fn smtp_host(p: &mut Problems, key: &str, host: &str) -> String {
    if !is_domain(host) && host.parse::<std::net::IpAddr>().is_err() {
        p.push(
            key,
            format!("{host:?} is not a host name such as smtp.office365.com"),
        );
    }
    host.to_owned()
}

fn scope(p: &mut Problems, key: &str, scope: &str) -> String {
    if scope.trim().is_empty() {
        p.push(
            key,
            format!("is empty; remove it to use the default {DEFAULT_SCOPE}"),
        );
    }
    scope.to_owned()
}
