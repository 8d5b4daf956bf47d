//! Account kinds through the loader: `provider` presets and their overrides, `auth`
//! (delegated sign-in and what it refuses), and `allowed_recipient_domains`.

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

/// A delegated account: a mailbox and a public client's id, no secret, then `extra`.
fn delegated(extra: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let text = format!(
        "[[users]]\nname = \"app\"\npassword = \"pw\"\naccount = \"a\"\n\n\
         [accounts.a]\nmailbox = \"someone@outlook.com\"\n\
         client_id = \"11111111-2222-3333-4444-555555555555\"\n{extra}\n"
    );
    load_str(&text, Path::new("."), &env(vars))
}

fn delegated_problems(extra: &str, vars: &[(&str, &str)]) -> Vec<Problem> {
    match delegated(extra, vars) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected Invalid, got {other}"),
        Ok(_) => panic!("expected Invalid, got a Config"),
    }
}

#[test]
fn outlook_presets_consumers_and_signs_in_delegated() {
    let c = delegated("provider = \"outlook\"", &[]).unwrap_or_else(|e| panic!("{e}"));
    let a = &c.accounts["a"];
    assert_eq!((a.provider, a.auth), (Provider::Outlook, Auth::Delegated));
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
    assert!(a.client_secret.expose().is_empty());
}

#[test]
fn delegated_microsoft365_signs_in_at_the_tenant_with_the_users_scope() {
    let c = delegated(&format!("{TENANT}\nauth = \"delegated\""), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let a = &c.accounts["a"];
    assert_eq!(
        (a.provider, a.auth),
        (Provider::Microsoft365, Auth::Delegated)
    );
    assert_eq!(
        a.scope,
        "https://outlook.office365.com/SMTP.Send offline_access"
    );
    assert_eq!(
        a.token_url,
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    assert_eq!(a.smtp_host, "smtp.office365.com");
    // A tenant is still needed: a work account signs in at its own.
    let p = delegated_problems("auth = \"delegated\"", &[]);
    assert_problem(&p, "accounts.a.tenant", &["is missing"]);
}

#[test]
fn a_delegated_account_refuses_a_secret_or_certificate() {
    // The shared template has client_secret = "s".
    let p = problems("provider = \"outlook\"");
    assert_problem(
        &p,
        "accounts.a.client_secret",
        &[
            "is not used with auth = \"delegated\"",
            "public client",
            "remove client_secret",
        ],
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    let p = delegated_problems(
        "provider = \"outlook\"\nclient_certificate = \"a.pem\"\nclient_key = \"a.key\"",
        &[],
    );
    assert_problem(&p, "accounts.a.client_certificate", &["public client"]);
    assert_problem(&p, "accounts.a.client_key", &["public client"]);
}

#[test]
fn delegated_sign_in_needs_a_state_dir_and_a_provider_that_takes_it() {
    let text = "[[users]]\nname = \"app\"\npassword = \"pw\"\naccount = \"a\"\n\n\
         [accounts.a]\nprovider = \"outlook\"\nmailbox = \"someone@outlook.com\"\n\
         client_id = \"11111111-2222-3333-4444-555555555555\"\n\n[delivery]\nmode = \"sync\"\n";
    let mut vars = env(&[]);
    vars.remove("HOME");
    let p = match load_str(text, Path::new("."), &vars) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected Invalid, got {:?}", other.map(|_| ())),
    };
    assert_problem(&p, "state_dir", &["accounts.a", "refresh token"]);
    let p = delegated_problems(
        &format!("{TENANT}\nprovider = \"hve\"\nauth = \"delegated\""),
        &[],
    );
    assert_problem(
        &p,
        "accounts.a.auth",
        &["\"delegated\" is not available with provider \"hve\""],
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    let p = delegated_problems("provider = \"outlook\"\nauth = \"client_credentials\"", &[]);
    assert_problem(
        &p,
        "accounts.a.auth",
        &[
            "\"client_credentials\" is not available with provider \"outlook\"",
            "xoauth-relay login",
        ],
    );
}

/// An ACS account: only the mailbox, the SMTP Username and the secret, then `extra`.
fn acs(extra: &str) -> Result<Config, ConfigError> {
    let text = format!(
        "[[users]]\nname = \"app\"\npassword = \"pw\"\naccount = \"a\"\n\n\
         [accounts.a]\nprovider = \"acs\"\nmailbox = \"sender@contoso.com\"\n{extra}\n"
    );
    load_str(&text, Path::new("."), &env(&[]))
}

fn acs_problems(extra: &str) -> Vec<Problem> {
    match acs(extra) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected Invalid, got {other}"),
        Ok(_) => panic!("expected Invalid, got a Config"),
    }
}

#[test]
fn acs_needs_only_the_smtp_username_and_the_secret() {
    let c = acs("smtp_username = \"relay-user\"\nclient_secret = \"s\"")
        .unwrap_or_else(|e| panic!("should load:\n{e}"));
    let a = &c.accounts["a"];
    assert_eq!(a.provider, Provider::Acs);
    assert_eq!(
        (a.smtp_host.as_str(), a.smtp_port),
        ("smtp.azurecomm.net", 587)
    );
    assert_eq!(a.smtp_username.as_deref(), Some("relay-user"));
    assert_eq!(a.client_secret.expose(), "s");
    assert_eq!(a.mailbox, "sender@contoso.com");
}

#[test]
fn acs_without_username_or_secret_says_what_to_set() {
    let p = acs_problems("");
    assert_problem(
        &p,
        "accounts.a.smtp_username",
        &["is missing", "SMTP Usernames"],
    );
    assert_problem(&p, "accounts.a.client_secret", &["is missing"]);
    assert!(
        !p.iter().any(|p| p.message.contains("client_certificate")),
        "{p:#?}"
    );
    assert!(
        !p.iter()
            .any(|p| p.key == "accounts.a.tenant" || p.key == "accounts.a.client_id"),
        "{p:#?}"
    );
}

#[test]
fn acs_refuses_the_token_keys() {
    let p = acs_problems(&format!(
        "smtp_username = \"u\"\nclient_secret = \"s\"\n{TENANT}\n\
         client_id = \"11111111-2222-3333-4444-555555555555\"\nauth = \"client_credentials\"\n\
         scope = \"https://outlook.office365.com/.default\"\n\
         token_url = \"https://login.example/t\"\nclient_certificate = \"a.pem\""
    ));
    for key in [
        "tenant",
        "client_id",
        "auth",
        "scope",
        "token_url",
        "client_certificate",
    ] {
        assert_problem(
            &p,
            &format!("accounts.a.{key}"),
            &["is not used with provider = \"acs\"", "smtp_username"],
        );
    }
}

#[test]
fn smtp_username_is_refused_outside_acs() {
    let p = problems(&format!("{TENANT}\nsmtp_username = \"u\""));
    assert_problem(
        &p,
        "accounts.a.smtp_username",
        &["only used with provider = \"acs\""],
    );
    assert_eq!(p.len(), 1, "{p:#?}");
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

// ------------------------------------------------------- certificate credentials

mod certificate {
    use std::path::{Path, PathBuf};

    use xoauth_relay::config::{ConfigError, Problem, load};
    use xoauth_relay::testkit::client_cert::{
        APP_CERT_PEM, APP_KEY_PEM, APP_KEY_PKCS1_PEM, OTHER_CERT_PEM, OTHER_KEY_PEM,
    };
    use xoauth_relay::testkit::env;

    use super::assert_problem;

    /// A fresh directory holding the fixture certificates and a config with `credential`.
    fn setup(test: &str, credential: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("xoauth-relay-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        for (name, pem) in [
            ("app.pem", APP_CERT_PEM),
            ("app.key", APP_KEY_PEM),
            ("app-pkcs1.key", APP_KEY_PKCS1_PEM),
            ("other.pem", OTHER_CERT_PEM),
            ("other.key", OTHER_KEY_PEM),
        ] {
            std::fs::write(dir.join(name), pem).expect("write fixture");
        }
        let text = format!(
            "[[users]]\nname = \"app\"\npassword = \"pw\"\naccount = \"a\"\n\n\
             [accounts.a]\nmailbox = \"sender@contoso.com\"\ntenant = \"contoso.onmicrosoft.com\"\n\
             client_id = \"11111111-2222-3333-4444-555555555555\"\n{credential}\n"
        );
        let path = dir.join("config.toml");
        std::fs::write(&path, text).expect("write config");
        (dir, path)
    }

    fn problems(path: &Path, vars: &[(&str, &str)]) -> Vec<Problem> {
        match load(path, &env(vars)) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            Err(other) => panic!("expected Invalid, got {other}"),
            Ok(_) => panic!("expected Invalid, got a Config"),
        }
    }

    #[test]
    fn a_certificate_and_its_key_replace_the_secret() {
        for key in ["app.key", "app-pkcs1.key"] {
            let credential = format!("client_certificate = \"app.pem\"\nclient_key = \"{key}\"");
            let (dir, path) = setup("cert-ok", &credential);
            let c = load(&path, &env(&[])).unwrap_or_else(|e| panic!("{key}: {e}"));
            let a = &c.accounts["a"];
            let cert = a
                .client_certificate
                .as_ref()
                .expect("certificate credential");
            assert_eq!(cert.path, dir.join("app.pem"));
            assert_eq!(cert.thumbprint_s256.len(), 43, "base64url of 32 bytes");
            assert!(cert.not_after.is_some());
            assert!(a.client_secret.expose().is_empty());
            let debug = format!("{a:?}");
            assert!(
                debug.contains("key: \"***\"") && !debug.contains("PRIVATE"),
                "{debug}"
            );
        }
    }

    #[test]
    fn relative_paths_are_taken_from_credentials_directory_first() {
        let (dir, path) = setup(
            "cert-creds",
            "client_certificate = \"app.pem\"\nclient_key = \"app.key\"",
        );
        let creds = dir.join("creds");
        std::fs::create_dir_all(&creds).unwrap();
        std::fs::write(creds.join("app.pem"), OTHER_CERT_PEM).unwrap();
        std::fs::write(creds.join("app.key"), OTHER_KEY_PEM).unwrap();
        let vars = [("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())];
        let c = load(&path, &env(&vars)).unwrap_or_else(|e| panic!("{e}"));
        let cert = c.accounts["a"].client_certificate.clone().unwrap();
        assert_eq!(cert.path, creds.join("app.pem"));
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (_, path) = setup(
            "cert-mismatch",
            "client_certificate = \"app.pem\"\nclient_key = \"other.key\"",
        );
        let p = problems(&path, &[]);
        assert_problem(
            &p,
            "accounts.a.client_key",
            &["does not belong to this certificate"],
        );
    }

    #[test]
    fn secret_and_certificate_are_exclusive_and_come_in_pairs() {
        let both =
            "client_secret = \"s\"\nclient_certificate = \"app.pem\"\nclient_key = \"app.key\"";
        let (_, path) = setup("cert-both", both);
        assert_problem(
            &problems(&path, &[]),
            "accounts.a.client_secret",
            &["client_secret and client_certificate are set at the same time"],
        );
        let (_, path) = setup("cert-none", "");
        assert_problem(
            &problems(&path, &[]),
            "accounts.a.client_secret",
            &[
                "is missing; set one of client_secret, client_secret_file or client_secret_env, or client_certificate and client_key",
            ],
        );
        let (_, path) = setup("cert-no-key", "client_certificate = \"app.pem\"");
        assert_problem(
            &problems(&path, &[]),
            "accounts.a.client_key",
            &["is missing"],
        );
        let (_, path) = setup("cert-no-cert", "client_key = \"app.key\"");
        assert_problem(
            &problems(&path, &[]),
            "accounts.a.client_certificate",
            &["is missing"],
        );
    }

    #[test]
    fn unreadable_or_wrong_files_are_named_without_their_content() {
        let swapped = "client_certificate = \"app.key\"\nclient_key = \"app.pem\"";
        let (_, path) = setup("cert-swapped", swapped);
        let p = problems(&path, &[]);
        assert_problem(
            &p,
            "accounts.a.client_certificate",
            &["holds no certificate"],
        );
        assert_problem(&p, "accounts.a.client_key", &["holds no PEM private key"]);
        assert!(!format!("{p:?}").contains("MII"), "no PEM content: {p:?}");
        let (_, path) = setup(
            "cert-missing",
            "client_certificate = \"nope.pem\"\nclient_key = \"app.key\"",
        );
        assert_problem(
            &problems(&path, &[]),
            "accounts.a.client_certificate",
            &["cannot read", "nope.pem"],
        );
    }
}
