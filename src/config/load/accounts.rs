//! `[accounts.NAME]` tables → [`Account`]s: the Exchange mailbox, the Entra app registration
//! that sends as it, and where to reach Microsoft.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::check::{Context, Problems};
use super::{certificate, roots, secrets};
use crate::config::file::AccountFile;
use crate::config::syntax::is_domain;
use crate::config::values;
use crate::config::{Account, Auth, ClientCertificate, Provider};
use crate::secret::Secret;

pub fn accounts(
    p: &mut Problems,
    ctx: &Context,
    raw: &BTreeMap<String, AccountFile>,
    has_state_dir: bool,
    warnings: &mut Vec<String>,
) -> BTreeMap<String, Arc<Account>> {
    if raw.is_empty() {
        p.push("accounts", "no accounts: add an [accounts.NAME] table with mailbox, tenant, client_id and client_secret");
    }
    let built: BTreeMap<String, Arc<Account>> = raw
        .iter()
        .map(|(name, raw)| (name.clone(), Arc::new(account(p, ctx, name, raw))))
        .collect();
    if let Some(a) = built.values().find(|a| a.auth == Auth::Delegated)
        && !has_state_dir
    {
        let message = format!(
            "is needed by accounts.{} (auth = \"delegated\"): the refresh token of its sign-in \
             is kept there; set state_dir, or HOME or STATE_DIRECTORY in the environment",
            a.name
        );
        p.push("state_dir", message);
    }
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
    let login = raw.provider.uses_login();
    if login {
        not_for_login(p, &key, raw);
    } else {
        supported(p, &key, raw, auth);
    }
    let mut required = |field, value, missing| p.required(&key(field), value, missing);
    let mailbox = required("mailbox", raw.mailbox.as_ref(), values::MAILBOX);
    let (tenant, client_id, smtp_username) = if login {
        let username = required("smtp_username", raw.smtp_username.as_ref(), SMTP_USERNAME);
        (String::new(), None, username)
    } else {
        let tenant = match (&raw.tenant, preset.tenant) {
            (None, Some(default)) => default.to_owned(),
            (given, _) => required("tenant", given.as_ref(), values::TENANT).unwrap_or_default(),
        };
        let client_id = required("client_id", raw.client_id.as_ref(), values::CLIENT_ID);
        (tenant, client_id, None)
    };
    let authority = raw.authority.clone().unwrap_or(preset.authority.to_owned());
    let token_url = match (&raw.token_url, login) {
        (Some(url), _) => url.clone(),
        (None, true) => String::new(),
        (None, false) => format!("{authority}/{tenant}/oauth2/v2.0/token"),
    };
    let (ca_file, extra_roots) = roots::extra_roots(p, ctx, &key("ca_file"), raw.ca_file.as_ref());
    let domains = raw.allowed_recipient_domains.as_deref();
    let allowed_recipient_domains =
        recipient_domains(p, &key("allowed_recipient_domains"), domains);
    let credential = match auth {
        Auth::Delegated => (public_client(p, &key, raw), None),
        Auth::ClientCredentials => credential(p, ctx, &table, raw),
    };
    Account {
        name: name.to_owned(),
        provider: raw.provider,
        auth,
        scope: raw
            .scope
            .clone()
            .unwrap_or(raw.provider.scope(auth).to_owned()),
        smtp_host: raw.smtp_host.clone().unwrap_or(preset.smtp_host.to_owned()),
        smtp_port: raw.smtp_port.unwrap_or(preset.smtp_port),
        allowed_recipient_domains,
        mailbox: mailbox.unwrap_or_default(),
        tenant,
        client_id: client_id.unwrap_or_default(),
        client_secret: credential.0.unwrap_or_default(),
        client_certificate: credential.1,
        smtp_username,
        authority,
        token_url,
        ca_file,
        extra_roots,
        settings: raw.settings(),
    }
}

/// What to put in `smtp_username`, also when it is missing.
const SMTP_USERNAME: &str = "set the name of an SMTP Username of the Communication Services \
     resource (Azure portal → the resource → SMTP Usernames), linked to the Entra app \
     whose client secret is given here";

/// Azure Communication Services takes an SMTP Username and the app's client secret with
/// `AUTH LOGIN`: no token is fetched, so the keys that shape a token request would be silently
/// ignored. They are refused instead, as is a certificate (ACS takes only the secret).
fn not_for_login(p: &mut Problems, key: &dyn Fn(&str) -> String, raw: &AccountFile) {
    let set = [
        ("tenant", raw.tenant.is_some()),
        ("client_id", raw.client_id.is_some()),
        ("auth", raw.auth.is_some()),
        ("authority", raw.authority.is_some()),
        ("scope", raw.scope.is_some()),
        ("token_url", raw.token_url.is_some()),
        ("client_certificate", raw.client_certificate.is_some()),
        ("client_key", raw.client_key.is_some()),
    ];
    refuse_set(p, key, &set, |field| {
        format!(
            "is not used with provider = {:?}: Azure Communication Services signs in with \
             smtp_username and the Entra app's client secret (client_secret, \
             client_secret_file or client_secret_env) as the password, without a token; \
             remove {field}",
            raw.provider.name()
        )
    });
}

/// Refuses each key of `set` that the file has, saying `why(key)`.
fn refuse_set(
    p: &mut Problems,
    key: &dyn Fn(&str) -> String,
    set: &[(&str, bool)],
    why: impl Fn(&str) -> String,
) {
    for (field, _) in set.iter().filter(|(_, is_set)| *is_set) {
        p.push(key(field), why(field));
    }
}

/// A provider or sign-in this version cannot do is refused at load, at the key that asked
/// for it, rather than failing at the first message.
fn supported(p: &mut Problems, key: &dyn Fn(&str) -> String, raw: &AccountFile, auth: Auth) {
    if raw.smtp_username.is_some() {
        p.push(
            key("smtp_username"),
            format!(
                "is only used with provider = \"acs\" (Azure Communication Services); provider \
                 {:?} signs in with a token, so remove smtp_username",
                raw.provider.name()
            ),
        );
    }
    if raw.provider.allows(auth) {
        return;
    }
    let why = match raw.provider {
        Provider::Outlook => {
            "a personal Outlook.com account can only be used by its own user's sign-in; use \
             auth = \"delegated\" and run `xoauth-relay login`"
        }
        _ => {
            "High Volume Email sends with the app's own credential; use auth = \
             \"client_credentials\""
        }
    };
    let message = format!(
        "{:?} is not available with provider {:?}: {why}",
        auth.name(),
        raw.provider.name()
    );
    p.push(key("auth"), message);
}

/// A delegated sign-in is a public client (Microsoft identity platform, "Public client and
/// confidential client applications"): it proves nothing with a secret of its own, and Entra
/// refuses a secret sent by one, so a configured secret or certificate is an error.
fn public_client(
    p: &mut Problems,
    key: &dyn Fn(&str) -> String,
    raw: &AccountFile,
) -> Option<Secret<String>> {
    let set = [
        ("client_secret", raw.client_secret.is_some()),
        ("client_secret_file", raw.client_secret_file.is_some()),
        ("client_secret_env", raw.client_secret_env.is_some()),
        ("client_certificate", raw.client_certificate.is_some()),
        ("client_key", raw.client_key.is_some()),
    ];
    refuse_set(p, key, &set, |field| {
        format!(
            "is not used with auth = \"delegated\": a user signs in (xoauth-relay login) \
             through a public client app registration, which has no secret or certificate; \
             remove {field}"
        )
    });
    None
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
    if raw.provider.uses_login() {
        // The certificate keys are refused for it already: only a secret can be a password.
        return (client_secret(p, ctx, table, raw), None);
    }
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
