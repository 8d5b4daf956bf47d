//! Account kinds through the loader: `provider` presets and their overrides, `auth`, the
//! kinds this version refuses at load, and `allowed_recipient_domains`.

use std::path::Path;

use xoauth_relay::config::{self, Auth, Config, ConfigError, Problem, Provider, load_str};
use xoauth_relay::testkit::env;

/// A valid file with one user and one account whose table also has `extra` (key lines).
fn with_account(extra: &str) -> String {
    format!(
        "[[users]]\nname = \"app\"\npassword = \"pw\"\naccount = \"a\"\n\n\
         [accounts.a]\nmailbox = \"sender@contoso.com\"\n\
         client_id = \"11111111-2222-3333-4444-555555555555\"\n\
         client_secret = \"s\"\n{extra}\n"
    )
}

fn load(extra: &str) -> Result<Config, ConfigError> {
    load_str(&with_account(extra), Path::new("."), &env(&[]))
}

fn loaded(extra: &str) -> Config {
    load(extra).unwrap_or_else(|e| panic!("should load:\n{e}"))
}

fn problems(extra: &str) -> Vec<Problem> {
    match load(extra) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected Invalid, got {other}"),
        Ok(_) => panic!("expected Invalid, got a Config"),
    }
}

fn assert_problem(problems: &[Problem], key: &str, parts: &[&str]) {
    let found = problems
        .iter()
        .any(|p| p.key == key && parts.iter().all(|part| p.message.contains(part)));
    assert!(
        found,
        "no problem {key:?} with {parts:?} in:\n{problems:#?}"
    );
}

const TENANT: &str = "tenant = \"contoso.onmicrosoft.com\"";

#[test]
fn microsoft365_is_the_default_and_keeps_todays_endpoints() {
    let c = loaded(TENANT);
    let a = &c.accounts["a"];
    assert_eq!(
        (a.provider, a.auth),
        (Provider::Microsoft365, Auth::ClientCredentials)
    );
    assert_eq!(
        (a.smtp_host.as_str(), a.smtp_port),
        ("smtp.office365.com", 587)
    );
    assert_eq!(a.scope, "https://outlook.office365.com/.default");
    assert_eq!(
        a.token_url,
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    let explicit = loaded(&format!("{TENANT}\nprovider = \"microsoft365\""));
    assert_eq!(explicit.accounts["a"], c.accounts["a"]);
}

#[test]
fn hve_presets_its_host_and_sends_as_an_app() {
    let c = loaded(&format!("{TENANT}\nprovider = \"hve\""));
    let a = &c.accounts["a"];
    assert_eq!(
        (a.provider, a.auth),
        (Provider::Hve, Auth::ClientCredentials)
    );
    assert_eq!(
        (a.smtp_host.as_str(), a.smtp_port),
        ("smtp.hve.mx.microsoft", 587)
    );
    assert_eq!(a.scope, config::DEFAULT_SCOPE);
}

#[test]
fn every_preset_default_can_be_overridden() {
    let c = loaded(&format!(
        "{TENANT}\nprovider = \"HVE\"\nsmtp_host = \"smtp-hve.office365.com\"\nsmtp_port = 25\n\
         scope = \"https://outlook.office.com/.default\"\n\
         authority = \"https://login.microsoftonline.us/\""
    ));
    let a = &c.accounts["a"];
    assert_eq!(
        (a.smtp_host.as_str(), a.smtp_port),
        ("smtp-hve.office365.com", 25)
    );
    assert_eq!(a.scope, "https://outlook.office.com/.default");
    assert_eq!(
        a.token_url,
        "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
}

#[test]
fn outlook_presets_consumers_and_is_refused_while_it_signs_in_delegated() {
    let p = problems("provider = \"outlook\"");
    assert_problem(
        &p,
        "accounts.a.auth",
        &[
            "provider \"outlook\"",
            "\"delegated\"",
            "not in this relay version yet",
        ],
    );
    assert!(
        !p.iter().any(|p| p.key == "accounts.a.tenant"),
        "outlook needs no tenant: {p:#?}"
    );
    // With the default overridden, the preset's endpoints stand.
    let c = loaded("provider = \"outlook\"\nauth = \"client_credentials\"");
    let a = &c.accounts["a"];
    assert_eq!(
        (a.smtp_host.as_str(), a.smtp_port),
        ("smtp-mail.outlook.com", 587)
    );
    assert_eq!(
        a.scope,
        "https://outlook.office.com/SMTP.Send offline_access"
    );
    assert_eq!(
        a.token_url,
        "https://login.microsoftonline.com/consumers/oauth2/v2.0/token"
    );
}

#[test]
fn delegated_sign_in_is_refused_at_the_auth_key() {
    let p = problems(&format!("{TENANT}\nauth = \"delegated\""));
    assert_problem(
        &p,
        "accounts.a.auth",
        &["\"delegated\"", "not in this relay version yet"],
    );
    assert_eq!(p.len(), 1, "{p:#?}");
}

#[test]
fn acs_is_refused_at_the_provider_key() {
    let p = problems(&format!("{TENANT}\nprovider = \"acs\""));
    assert_problem(&p, "accounts.a.provider", &["AUTH LOGIN", "cannot do yet"]);
}

#[test]
fn unknown_kinds_list_the_known_ones() {
    let p = problems(&format!(
        "{TENANT}\nprovider = \"gmail\"\nauth = \"password\""
    ));
    assert_problem(
        &p,
        "accounts.a.provider",
        &["\"gmail\" is not one of \"microsoft365\", \"outlook\", \"hve\", \"acs\""],
    );
    assert_problem(
        &p,
        "accounts.a.auth",
        &["\"password\" is not one of \"client_credentials\", \"delegated\""],
    );
}

#[test]
fn the_environment_can_choose_the_provider() {
    let vars = env(&[("XOAUTH_RELAY__ACCOUNTS__A__PROVIDER", "hve")]);
    let text = with_account(TENANT);
    let c = load_str(&text, Path::new("."), &vars).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.accounts["a"].smtp_host, "smtp.hve.mx.microsoft");
}

#[test]
fn recipient_domains_are_kept_lower_case_without_the_at() {
    let c = loaded(&format!(
        "{TENANT}\nallowed_recipient_domains = [\"Contoso.com\", \"@fabrikam.com\"]"
    ));
    assert_eq!(
        c.accounts["a"].allowed_recipient_domains,
        ["contoso.com", "fabrikam.com"]
    );
    assert!(
        loaded(TENANT).accounts["a"]
            .allowed_recipient_domains
            .is_empty()
    );
}

#[test]
fn recipient_domains_must_be_domains_and_not_none() {
    let p = problems(&format!(
        "{TENANT}\nallowed_recipient_domains = [\"contoso\", \"a b.com\"]"
    ));
    assert_problem(
        &p,
        "accounts.a.allowed_recipient_domains",
        &["\"contoso\" is not a domain"],
    );
    assert_problem(
        &p,
        "accounts.a.allowed_recipient_domains",
        &["\"a b.com\" is not a domain"],
    );
    let p = problems(&format!("{TENANT}\nallowed_recipient_domains = []"));
    assert_problem(
        &p,
        "accounts.a.allowed_recipient_domains",
        &["would refuse every recipient"],
    );
}
