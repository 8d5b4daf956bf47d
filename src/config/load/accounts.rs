//! `[accounts.NAME]` tables → [`Account`]s: the Exchange mailbox, the Entra app registration
//! that sends as it, and where to reach Microsoft.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::check::{Context, Problems};
use super::{certificate, roots, secrets};
use crate::config::file::AccountFile;
use crate::config::syntax::is_domain;
use crate::config::values;
use crate::config::{Account, Auth, ClientCertificate};
use crate::secret::Secret;

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
    let preset = raw.provider.preset();
    let auth = raw.auth.unwrap_or(preset.auth);
    supported(p, &key, raw, auth);
    let mut required = |field, value, missing| p.required(&key(field), value, missing);
    let mailbox = required("mailbox", raw.mailbox.as_ref(), values::MAILBOX);
    let tenant = match (&raw.tenant, preset.tenant) {
        (None, Some(default)) => default.to_owned(),
        (given, _) => required("tenant", given.as_ref(), values::TENANT).unwrap_or_default(),
    };
    let client_id = required("client_id", raw.client_id.as_ref(), values::CLIENT_ID);
    let authority = raw.authority.clone().unwrap_or(preset.authority.to_owned());
    let token_url = match &raw.token_url {
        Some(url) => url.clone(),
        None => format!("{authority}/{tenant}/oauth2/v2.0/token"),
    };
    let (ca_file, extra_roots) = roots::extra_roots(p, ctx, &key("ca_file"), raw.ca_file.as_ref());
    let domains = raw.allowed_recipient_domains.as_deref();
    let allowed_recipient_domains =
        recipient_domains(p, &key("allowed_recipient_domains"), domains);
    let credential = credential(p, ctx, &table, raw);
    Account {
        name: name.to_owned(),
        provider: raw.provider,
        auth,
        scope: raw.scope.clone().unwrap_or(preset.scope.to_owned()),
        smtp_host: raw.smtp_host.clone().unwrap_or(preset.smtp_host.to_owned()),
        smtp_port: raw.smtp_port.unwrap_or(preset.smtp_port),
        allowed_recipient_domains,
        mailbox: mailbox.unwrap_or_default(),
        tenant,
        client_id: client_id.unwrap_or_default(),
        client_secret: credential.0.unwrap_or_default(),
        client_certificate: credential.1,
        authority,
        token_url,
        ca_file,
        extra_roots,
        settings: raw.settings(),
    }
}

/// A provider or sign-in this version cannot do is refused at load, at the key that asked
/// for it, rather than failing at the first message.
fn supported(p: &mut Problems, key: &dyn Fn(&str) -> String, raw: &AccountFile, auth: Auth) {
    if let Some(why) = raw.provider.unsupported() {
        p.push(key("provider"), format!("{:?}: {why}", raw.provider.name()));
    }
    let Some(why) = auth.unsupported() else {
        return;
    };
    let message = match raw.auth {
        Some(_) => format!("{:?}: {why}", auth.name()),
        None => format!(
            "provider {:?} signs in as {:?} by default: {why}",
            raw.provider.name(),
            auth.name()
        ),
    };
    p.push(key("auth"), message);
}

/// `allowed_recipient_domains = ["contoso.com"]`, stored lower-case without a leading `@`.
/// An empty list would refuse every recipient, so it is refused instead.
fn recipient_domains(p: &mut Problems, key: &str, listed: Option<&[String]>) -> Vec<String> {
    let Some(listed) = listed else {
        return Vec::new();
    };
    if listed.is_empty() {
        p.push(
            key,
            "is empty, which would refuse every recipient; remove it to allow any domain",
        );
    }
    let mut domains = Vec::new();
    for text in listed {
        let domain = text.trim().trim_start_matches('@').to_ascii_lowercase();
        if is_domain(&domain) && domain.contains('.') {
            domains.push(domain);
        } else {
            p.push(
                key,
                format!("{text:?} is not a domain name such as contoso.com"),
            );
        }
    }
    domains
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

/// A client secret or a certificate, exactly one of them.
fn credential(
    p: &mut Problems,
    ctx: &Context,
    table: &str,
    raw: &AccountFile,
) -> (Option<Secret<String>>, Option<ClientCertificate>) {
    let certificate = raw.client_certificate.is_some() || raw.client_key.is_some();
    if !certificate {
        let before = p.0.len();
        let secret = client_secret(p, ctx, table, raw);
        // Only the secret keys are pick_one's to list; the certificate is the other way.
        if let Some(missing) = p.0.get_mut(before..).and_then(|new| new.first_mut())
            && missing.message.starts_with("is missing")
        {
            missing
                .message
                .push_str(", or client_certificate and client_key");
        }
        return (secret, None);
    }
    let secrets = [
        ("client_secret", &raw.client_secret),
        ("client_secret_file", &raw.client_secret_file),
        ("client_secret_env", &raw.client_secret_env),
    ];
    if let Some((name, _)) = secrets.iter().find(|(_, value)| value.is_some()) {
        let message = format!(
            "{name} and client_certificate are set at the same time; keep either the secret or              the certificate"
        );
        p.push(format!("{table}.{name}"), message);
    }
    (None, certificate::client_certificate(p, ctx, table, raw))
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
