//! The configuration loader through its public API: fixtures under `tests/fixtures/config/`,
//! environment overrides (always injected, never the process environment), secrets from
//! files and variables, and where the file is found.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString};
use xoauth_relay::config::{
    self, Config, ConfigError, PasswordCheck, Problem, SenderRule, load, load_str, resolve_path,
    search_paths,
};
use xoauth_relay::testkit::env;

const HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$+ttGNftbK5qlsOrZZlN4pZ3662tamxglmJtZs6203Jo";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn load_ok(name: &str, vars: &[(&str, &str)]) -> Config {
    match load(&fixture(name), &env(vars)) {
        Ok(config) => config,
        Err(e) => panic!("{name} should load:\n{e}"),
    }
}

fn problems_of(result: Result<Config, ConfigError>) -> Vec<Problem> {
    match result {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected Invalid, got {other}"),
        Ok(_) => panic!("expected Invalid, got a Config"),
    }
}

fn problems(name: &str, vars: &[(&str, &str)]) -> Vec<Problem> {
    problems_of(load(&fixture(&format!("invalid/{name}")), &env(vars)))
}

/// Asserts that a problem with exactly `key` exists and its message contains `part`.
fn assert_problem(problems: &[Problem], key: &str, part: &str) {
    let found = problems
        .iter()
        .any(|p| p.key == key && p.message.contains(part));
    assert!(
        found,
        "no problem {key:?} containing {part:?} in:\n{problems:#?}"
    );
}

fn keys(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.key.as_str()).collect()
}

/// A fresh directory for one test, under the system temp dir.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xoauth-relay-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A valid file whose account secret and user password are given by `secret` and `password`
/// (each a full `key = value` line).
fn config_text(password: &str, secret: &str) -> String {
    format!(
        "[[users]]\nname = \"xenocept\"\n{password}\naccount = \"contoso\"\n\n\
         [accounts.contoso]\nmailbox = \"sender@contoso.com\"\n\
         tenant = \"contoso.onmicrosoft.com\"\n\
         client_id = \"11111111-2222-3333-4444-555555555555\"\n{secret}\n"
    )
}

// ---------------------------------------------------------------- valid files

#[test]
fn minimal_file_gets_every_default() {
    let c = load_ok("minimal.toml", &[]);
    assert_eq!(c.listen.smtp.to_string(), config::DEFAULT_SMTP_LISTEN);
    assert_eq!(
        c.listen.health.map(|a| a.to_string()).as_deref(),
        Some(config::DEFAULT_HEALTH_LISTEN)
    );
    let account = &c.accounts["contoso"];
    assert_eq!(account.client_secret_expires, None);
    assert_eq!(
        account.client_secret_warn_days,
        config::DEFAULT_SECRET_WARN_DAYS
    );
    assert_eq!(c.limits.max_message_size, config::DEFAULT_MAX_MESSAGE_SIZE);
    assert_eq!(c.limits.max_recipients, config::DEFAULT_MAX_RECIPIENTS);
    assert_eq!(c.limits.max_line_length, config::DEFAULT_MAX_LINE_LENGTH);
    assert_eq!(c.limits.max_connections, config::DEFAULT_MAX_CONNECTIONS);
    assert_eq!(
        c.limits.max_auth_failures,
        config::DEFAULT_MAX_AUTH_FAILURES
    );
    assert_eq!(
        c.limits.auth_failure_delay,
        config::DEFAULT_AUTH_FAILURE_DELAY
    );
    assert_eq!(c.limits.login_timeout, config::DEFAULT_LOGIN_TIMEOUT);
    let t = &c.timeouts;
    let timeouts = [
        (t.idle, config::DEFAULT_IDLE_TIMEOUT),
        (t.upstream_connect, config::DEFAULT_UPSTREAM_CONNECT),
        (t.upstream_greeting, config::DEFAULT_UPSTREAM_GREETING),
        (t.upstream_command, config::DEFAULT_UPSTREAM_COMMAND),
        (t.upstream_data_start, config::DEFAULT_UPSTREAM_DATA_START),
        (t.upstream_data_block, config::DEFAULT_UPSTREAM_DATA_BLOCK),
        (t.upstream_data_end, config::DEFAULT_UPSTREAM_DATA_END),
        (t.upstream_slot_wait, config::DEFAULT_UPSTREAM_SLOT_WAIT),
        (t.token_connect, config::DEFAULT_TOKEN_CONNECT),
        (t.token_total, config::DEFAULT_TOKEN_TOTAL),
        (t.shutdown_grace, config::DEFAULT_SHUTDOWN_GRACE),
    ];
    for (i, (got, want)) in timeouts.iter().enumerate() {
        assert_eq!(got, want, "timeout #{i}");
    }
    let p = &c.pool;
    assert_eq!(
        (p.idle, p.max_age, p.max_messages),
        (
            config::DEFAULT_POOL_IDLE,
            config::DEFAULT_POOL_MAX_AGE,
            config::DEFAULT_POOL_MAX_MESSAGES
        )
    );
    let machine = gethostname::gethostname().to_string_lossy().into_owned();
    assert!(
        c.hostname == machine || c.hostname == "localhost",
        "{}",
        c.hostname
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let user = &c.users[0];
    assert_eq!(
        (user.name.as_str(), user.account.as_str()),
        ("xenocept", "contoso")
    );
    assert!(matches!(&user.password, Some(PasswordCheck::Argon2(h)) if h == HASH));
    assert_eq!(
        user.allowed_senders,
        [SenderRule::Address("sender@contoso.com".into())]
    );

    let a = &c.accounts["contoso"];
    assert_eq!(a.name, "contoso");
    assert_eq!(a.mailbox, "sender@contoso.com");
    assert_eq!(a.tenant, "contoso.onmicrosoft.com");
    assert_eq!(a.client_id, "11111111-2222-3333-4444-555555555555");
    assert_eq!(a.client_secret.expose(), "fake-secret-for-tests");
    assert_eq!(a.authority, config::DEFAULT_AUTHORITY);
    assert_eq!(
        a.token_url,
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    assert_eq!(a.scope, config::DEFAULT_SCOPE);
    assert_eq!(
        (a.smtp_host.as_str(), a.smtp_port),
        (config::DEFAULT_SMTP_HOST, config::DEFAULT_SMTP_PORT)
    );
    assert_eq!((a.ca_file.as_ref(), a.extra_roots.len()), (None, 0));
    assert_eq!(a.max_connections, config::DEFAULT_ACCOUNT_MAX_CONNECTIONS);
}

#[test]
fn full_file_sets_every_key() {
    let c = load_ok("full.toml", &[("CONTOSO_SECRET", "from-env")]);
    assert_eq!(c.hostname, "relay.example.org");
    assert_eq!(c.listen.smtp.to_string(), "[::1]:2600");
    let l = &c.limits;
    assert_eq!(
        (
            l.max_message_size,
            l.max_recipients,
            l.max_line_length,
            l.max_connections,
            l.max_auth_failures
        ),
        (10 << 20, 50, 1000, 20, 5)
    );
    assert_eq!(l.auth_failure_delay, Duration::from_millis(250));
    assert_eq!(l.login_timeout, Duration::from_secs(90));
    let t = &c.timeouts;
    let secs = |s| Duration::from_secs(s);
    let p = &c.pool;
    assert_eq!(
        (p.idle, p.max_age, p.max_messages),
        (secs(10), secs(120), 7)
    );
    assert_eq!(
        [
            t.idle,
            t.upstream_connect,
            t.upstream_greeting,
            t.upstream_command,
            t.upstream_data_start
        ],
        [secs(120), secs(15), secs(60), secs(90), secs(45)]
    );
    assert_eq!(
        [
            t.upstream_data_block,
            t.upstream_data_end,
            t.upstream_slot_wait,
            t.token_connect,
            t.token_total,
            t.shutdown_grace
        ],
        [
            secs(240),
            secs(720),
            secs(20),
            secs(5),
            secs(20),
            secs(3600)
        ]
    );

    let scanner = &c.users[0];
    assert_eq!(scanner.name, "scanner@office.example");
    assert_eq!(
        scanner.allowed_senders,
        [
            SenderRule::Address("scanner@contoso.com".into()),
            SenderRule::Domain("fabrikam.example".into())
        ]
    );
    assert_eq!(
        c.users[1].allowed_senders,
        [SenderRule::Address("noreply@fabrikam.example".into())]
    );

    let contoso = &c.accounts["contoso"];
    assert_eq!(contoso.client_secret.expose(), "from-env");
    assert_eq!(
        contoso.authority, "https://login.microsoftonline.us",
        "trailing slash trimmed"
    );
    assert_eq!(
        contoso.token_url,
        "https://login.microsoftonline.us/0a1b2c3d-0000-4000-8000-00000000abcd/oauth2/v2.0/token"
    );
    assert_eq!(contoso.scope, "https://outlook.office365.us/.default");
    assert_eq!(
        (contoso.smtp_host.as_str(), contoso.smtp_port),
        ("smtp.office365.us", 25)
    );
    assert_eq!(
        contoso.ca_file.as_deref(),
        Some(fixture("extra-roots.pem").as_path())
    );
    assert_eq!(contoso.extra_roots.len(), 1);
    assert_eq!(contoso.max_connections, 2);

    let fabrikam = &c.accounts["fabrikam"];
    assert_eq!(fabrikam.token_url, "https://127.0.0.1:8443/token");
    assert_eq!(
        (fabrikam.smtp_host.as_str(), fabrikam.smtp_port),
        ("127.0.0.1", 2587)
    );
}

#[test]
fn secrets_never_show_in_debug_output() {
    let text = config_text(
        "password = \"pw-do-not-print\"",
        "client_secret = \"cs-do-not-print\"",
    );
    let c = load_str(&text, Path::new("."), &env(&[])).unwrap_or_else(|e| panic!("{e}"));
    let debug = format!("{c:?}");
    assert!(!debug.contains("do-not-print"), "{debug}");
    assert!(
        debug.contains("client_secret: ***") && debug.contains("Plain(***)"),
        "{debug}"
    );
}

// ---------------------------------------------------------------- the example file

#[test]
fn the_example_file_loads_given_its_secret() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/xoauth-relay.toml");
    let c = match load(&example, &env(&[("CONTOSO_CLIENT_SECRET", "fake")])) {
        Ok(c) => c,
        Err(e) => panic!("the example no longer loads:\n{e}"),
    };
    assert_eq!(c.accounts["contoso"].client_secret.expose(), "fake");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // Without the variable, the secret is the only thing missing.
    let problems = problems_of(load(&example, &env(&[])));
    assert_eq!(keys(&problems), ["accounts.contoso.client_secret_env"]);
}

#[test]
fn the_example_files_env_recipes_work() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/xoauth-relay.toml");
    let vars = env(&[
        ("CONTOSO_CLIENT_SECRET", "fake"),
        ("XOAUTH_RELAY__USERS__0__PASSWORD_HASH", ""),
        ("XOAUTH_RELAY__USERS__0__PASSWORD_ENV", "XENOCEPT_PW"),
        ("XENOCEPT_PW", "pw"),
        (
            "XOAUTH_RELAY__USERS__0__ALLOWED_SENDERS",
            "a@contoso.com,@fabrikam.com",
        ),
        ("XOAUTH_RELAY__TIMEOUTS__IDLE", "10m"),
    ]);
    let c = load(&example, &vars).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(&c.users[0].password, Some(PasswordCheck::Plain(s)) if s.expose() == "pw"));
    assert_eq!(c.users[0].allowed_senders.len(), 2);
    assert_eq!(c.timeouts.idle, Duration::from_secs(600));
}

// ---------------------------------------------------------------- one fixture per error class

#[test]
fn unknown_keys_are_all_reported_with_a_hint() {
    let p = problems("unknown-keys.toml", &[]);
    assert_problem(&p, "listen.smpt", "did you mean smtp?");
    assert_problem(&p, "limits.max_recipents", "did you mean max_recipients?");
    assert_problem(&p, "users[0].acount", "did you mean account?");
    assert_problem(
        &p,
        "accounts.contoso.client_secert",
        "did you mean client_secret?",
    );
}

#[test]
fn a_user_of_a_missing_account_is_told_the_accounts_there_are() {
    let p = problems("unknown-account.toml", &[]);
    assert_eq!(keys(&p), ["users[0].account"]);
    assert_problem(
        &p,
        "users[0].account",
        "there is no [accounts.contso]; the accounts are: contoso, fabrikam",
    );
}

#[test]
fn missing_secrets_name_the_alternatives() {
    let p = problems("missing-secrets.toml", &[]);
    assert_problem(
        &p,
        "accounts.contoso.client_secret",
        "client_secret, client_secret_file or client_secret_env",
    );
    assert_problem(
        &p,
        "users[0].password",
        "password_hash, password, password_file or password_env",
    );
}

#[test]
fn two_alternatives_at_once_are_refused() {
    let p = problems("two-alternatives.toml", &[("CONTOSO_SECRET", "x")]);
    assert_problem(
        &p,
        "users[0].password",
        "password_hash and password are set at the same time",
    );
    assert_problem(
        &p,
        "accounts.contoso.client_secret",
        "client_secret and client_secret_env",
    );
}

#[test]
fn malformed_addresses_are_refused() {
    let p = problems("bad-addresses.toml", &[]);
    assert_problem(
        &p,
        "accounts.contoso.mailbox",
        "\"sender at contoso.com\" is not a valid e-mail address",
    );
    assert_problem(
        &p,
        "users[0].allowed_senders[1]",
        "\"not-an-address\" is not a valid e-mail address",
    );
    assert_problem(
        &p,
        "users[0].allowed_senders[2]",
        "is not @ followed by a domain",
    );
    assert_problem(
        &p,
        "users[0].allowed_senders[3]",
        "is not @ followed by a domain",
    );
    assert_eq!(p.len(), 4, "{p:#?}");
}

#[test]
fn unreadable_files_are_named_with_the_os_error() {
    let p = problems("unreadable-files.toml", &[]);
    let dir = fixture("invalid");
    let password = dir.join("no-such-password.txt");
    assert_problem(
        &p,
        "users[0].password_file",
        &format!("cannot read {}: ", password.display()),
    );
    let secret = dir.join("secrets/no-such-secret.txt");
    assert_problem(
        &p,
        "accounts.contoso.client_secret_file",
        &format!("cannot read {}", secret.display()),
    );
    assert!(p.iter().all(|p| p.message.contains("os error")), "{p:#?}");
}

#[test]
fn unset_or_empty_variables_are_refused() {
    let p = problems("env-unset.toml", &[("XR_TEST_EMPTY", "")]);
    assert_problem(
        &p,
        "users[0].password_env",
        "the environment variable XR_TEST_UNSET is not set",
    );
    assert_problem(
        &p,
        "accounts.contoso.client_secret_env",
        "the environment variable XR_TEST_EMPTY is empty",
    );
}

#[test]
fn unusable_password_hashes_are_refused() {
    let p = problems("bad-hashes.toml", &[]);
    assert_problem(&p, "users[0].password_hash", "is not a PHC hash string");
    assert_problem(
        &p,
        "users[1].password_hash",
        "is a bcrypt hash, but only argon2id, argon2i and argon2d",
    );
    assert_problem(&p, "users[2].password_hash", "is a pbkdf2-sha256 hash");
    assert_problem(&p, "users[3].password_hash", "unusable argon2 parameters");
    assert_problem(
        &p,
        "users[4].password_hash",
        "asks for m=4194304 KiB of memory per login; at most 262144 (256 MiB)",
    );
    assert!(
        p.iter()
            .all(|p| p.message.contains("xoauth-relay hash-password"))
    );
}

#[test]
fn a_listen_address_must_parse() {
    let p = problems("bad-listen.toml", &[]);
    assert_problem(
        &p,
        "listen.smtp",
        "\"localhost:2525\" is not an IP address and port",
    );
}

#[test]
fn a_listen_address_must_be_loopback_without_tls() {
    let p = problems("non-loopback-listen.toml", &[]);
    assert_problem(
        &p,
        "listen.smtp",
        "without TLS the listener only binds loopback addresses such as 127.0.0.1 or ::1",
    );
    // With STARTTLS required it is accepted, with a warning about who can reach it.
    let c = load_ok(
        "invalid/non-loopback-listen.toml",
        &[
            ("XOAUTH_RELAY__LISTEN__SMTP_TLS", "starttls"),
            ("XOAUTH_RELAY__STATE_DIR", "/var/lib/xoauth-relay"),
        ],
    );
    assert_eq!(c.listen.smtp_tls, config::TlsMode::StartTls);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("accepts connections from other machines")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn user_names_are_unique_ignoring_case() {
    let p = problems("duplicate-users.toml", &[]);
    assert_eq!(keys(&p), ["users[1].name"]);
    assert_problem(
        &p,
        "users[1].name",
        "\"Xenocept\" is already the name of users[0]",
    );
}

#[test]
fn zero_limits_are_refused() {
    let p = problems("zero-limits.toml", &[]);
    for key in [
        "limits.max_recipients",
        "limits.max_connections",
        "limits.max_auth_failures",
        "accounts.contoso.max_connections",
    ] {
        assert_problem(&p, key, "must be a whole number of at least 1, found 0");
    }
    for key in [
        "limits.max_message_size",
        "limits.auth_failure_delay",
        "timeouts.idle",
    ] {
        assert_problem(&p, key, "must be more than zero");
    }
    assert_problem(
        &p,
        "limits.max_line_length",
        "must be at least 512, found 100: RFC 5321",
    );
    assert_eq!(p.len(), 8, "{p:#?}");
}

#[test]
fn bad_durations_sizes_and_numbers_are_refused() {
    let p = problems("bad-units.toml", &[]);
    assert_problem(
        &p,
        "limits.max_message_size",
        "\"35XB\" has an unknown unit \"XB\"; use B, KB, MB or GB",
    );
    assert_problem(
        &p,
        "limits.max_recipients",
        "must be a whole number of at least 1, found \"many\"",
    );
    assert_problem(&p, "limits.auth_failure_delay", "found a decimal number");
    assert_problem(
        &p,
        "timeouts.idle",
        "unknown unit \"fortnights\"; use ms, s, m, h or d",
    );
    assert_problem(
        &p,
        "timeouts.token_total",
        "\"-30s\" does not start with a whole number",
    );
    assert_problem(
        &p,
        "accounts.contoso.smtp_port",
        "from 1 to 65535, found 70000",
    );
}

#[test]
fn token_url_and_authority_must_be_https() {
    let p = problems("not-https.toml", &[]);
    assert_problem(&p, "accounts.contoso.authority", "is not an https:// URL");
    assert_problem(&p, "accounts.contoso.token_url", "is not an https:// URL");
}

#[test]
fn users_and_accounts_are_required() {
    let p = problems("no-users-or-accounts.toml", &[]);
    assert_problem(&p, "users", "add a [[users]] table");
    assert_problem(&p, "accounts", "add an [accounts.NAME] table");
    assert_eq!(p.len(), 2);
}

#[test]
fn ca_files_must_exist_and_hold_certificates() {
    let p = problems("ca-files.toml", &[]);
    let missing = fixture("invalid/no-such-roots.pem");
    assert_problem(
        &p,
        "accounts.contoso.ca_file",
        &format!("cannot read {}", missing.display()),
    );
    assert_problem(&p, "accounts.fabrikam.ca_file", "holds no certificate");
}

#[test]
fn multi_tenant_aliases_and_non_guid_client_ids_are_refused() {
    let p = problems("tenant-and-client-id.toml", &[]);
    assert_problem(
        &p,
        "accounts.contoso.tenant",
        "\"common\" is a multi-tenant alias, where client credentials do not work (AADSTS9001023)",
    );
    assert_problem(&p, "accounts.contoso.client_id", "is not a GUID");
    assert!(
        !p.iter().any(|p| p.message.contains("my-app")),
        "client_id is not echoed"
    );
}

#[test]
fn account_names_must_be_lower_case() {
    let p = problems("uppercase-account.toml", &[]);
    assert_eq!(keys(&p), ["accounts.Contoso"]);
    assert_problem(
        &p,
        "accounts.Contoso",
        "rename [accounts.Contoso] to for example [accounts.contoso]",
    );
}

#[test]
fn several_problems_are_reported_together() {
    let p = problems("many-problems.toml", &[]);
    let want = [
        "limits.max_recipents",
        "hostname",
        "listen.smtp",
        "limits.max_recipients",
        "timeouts.idle",
        "accounts.contoso.tenant",
        "accounts.contoso.token_url",
        "accounts.contoso.client_secret",
        "users[0].password",
        "users[0].account",
    ];
    assert_eq!(keys(&p), want);
    let err = load(&fixture("invalid/many-problems.toml"), &env(&[]))
        .err()
        .map(|e| (e.to_string(), format!("{e:?}")));
    let (text, debug) = err.unwrap_or_default();
    let header = format!(
        "invalid configuration in {} (10 problems):",
        fixture("invalid/many-problems.toml").display()
    );
    assert!(text.starts_with(&header), "{text}");
    assert!(
        text.contains("\n  - users[0].account: there is no [accounts.nowhere]"),
        "{text}"
    );
    assert!(
        !text.contains("hunter2") && !debug.contains("hunter2"),
        "a secret leaked:\n{text}\n{debug}"
    );
}

#[test]
fn a_syntax_error_is_one_problem_without_the_secret_line() {
    let p = problems("syntax-error.toml", &[]);
    assert_eq!(keys(&p), ["(file)"]);
    assert_problem(&p, "(file)", "line 3");
    assert!(!p[0].message.contains("hunter2"), "{}", p[0].message);
}

// ---------------------------------------------------------------- environment overrides

#[test]
fn env_supplies_the_client_secret() {
    let c = load_ok(
        "invalid/missing-secrets.toml",
        &[
            ("XOAUTH_RELAY__ACCOUNTS__CONTOSO__CLIENT_SECRET", "from-env"),
            ("XOAUTH_RELAY__USERS__0__PASSWORD_HASH", HASH),
        ],
    );
    assert_eq!(c.accounts["contoso"].client_secret.expose(), "from-env");
    assert!(matches!(
        &c.users[0].password,
        Some(PasswordCheck::Argon2(_))
    ));
}

#[test]
fn env_strings_become_numbers_durations_and_sizes() {
    let c = load_ok(
        "minimal.toml",
        &[
            ("XOAUTH_RELAY__LIMITS__MAX_RECIPIENTS", "20"),
            ("XOAUTH_RELAY__LIMITS__MAX_MESSAGE_SIZE", "10MB"),
            ("XOAUTH_RELAY__TIMEOUTS__IDLE", "90"),
            ("XOAUTH_RELAY__TIMEOUTS__TOKEN_TOTAL", "45s"),
            ("XOAUTH_RELAY__POOL__MAX_MESSAGES", "3"),
            ("XOAUTH_RELAY__LISTEN__SMTP", "127.0.0.1:2600"),
            ("XOAUTH_RELAY__HOSTNAME", "relay.example"),
            ("XOAUTH_RELAY__ACCOUNTS__CONTOSO__SMTP_PORT", "25"),
        ],
    );
    assert_eq!(c.limits.max_recipients, 20);
    assert_eq!(c.limits.max_message_size, 10 << 20);
    assert_eq!(c.timeouts.idle, Duration::from_secs(90));
    assert_eq!(c.timeouts.token_total, Duration::from_secs(45));
    assert_eq!(c.pool.max_messages, 3);
    assert_eq!(c.listen.smtp.to_string(), "127.0.0.1:2600");
    assert_eq!(c.hostname, "relay.example");
    assert_eq!(c.accounts["contoso"].smtp_port, 25);
}

#[test]
fn env_values_are_checked_like_file_values() {
    let p = problems_of(load(
        &fixture("minimal.toml"),
        &env(&[("XOAUTH_RELAY__LIMITS__MAX_RECIPIENTS", "lots")]),
    ));
    assert_problem(&p, "limits.max_recipients", "found \"lots\"");
}

#[test]
fn unknown_env_keys_are_reported_with_the_variable() {
    let p = problems_of(load(
        &fixture("minimal.toml"),
        &env(&[
            ("XOAUTH_RELAY__LISTEN__SMPT", "127.0.0.1:2525"),
            ("XOAUTH_RELAY__LIMIT__MAX_RECIPIENTS", "5"),
            ("XOAUTH_RELAY__USERS__7__PASSWORD", "x"),
        ]),
    ));
    assert_problem(
        &p,
        "listen.smpt",
        "unknown key (set by the environment variable XOAUTH_RELAY__LISTEN__SMPT); did you mean smtp?",
    );
    assert_problem(
        &p,
        "XOAUTH_RELAY__LIMIT__MAX_RECIPIENTS",
        "unknown setting limit.max_recipients",
    );
    assert_problem(
        &p,
        "XOAUTH_RELAY__USERS__7__PASSWORD",
        "there is no [[users]] entry number 7",
    );
    assert_eq!(p.len(), 3, "{p:#?}");
}

#[test]
fn env_overrides_one_field_of_a_users_entry() {
    let text = format!(
        "{}\n[[users]]\nname = \"second\"\npassword_hash = \"{HASH}\"\naccount = \"contoso\"\n",
        config_text(
            &format!("password_hash = \"{HASH}\""),
            "client_secret = \"s\""
        )
    );
    let vars = env(&[
        // Empty removes the file's hash, so the plain password is the only alternative left.
        ("XOAUTH_RELAY__USERS__1__PASSWORD_HASH", ""),
        ("XOAUTH_RELAY__USERS__1__PASSWORD", "plain-from-env"),
        (
            "XOAUTH_RELAY__USERS__1__ALLOWED_SENDERS",
            "a@contoso.com, @fabrikam.example",
        ),
    ]);
    let c = load_str(&text, Path::new("."), &vars).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = c.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        ["xenocept", "second"],
        "the array survives the override"
    );
    assert!(
        matches!(&c.users[0].password, Some(PasswordCheck::Argon2(_))),
        "users[0] untouched"
    );
    assert!(
        matches!(&c.users[1].password, Some(PasswordCheck::Plain(s)) if s.expose() == "plain-from-env")
    );
    assert_eq!(
        c.users[1].allowed_senders,
        [
            SenderRule::Address("a@contoso.com".into()),
            SenderRule::Domain("fabrikam.example".into())
        ]
    );
}

#[test]
fn problems_with_env_values_name_the_variable() {
    let vars = [
        ("XOAUTH_RELAY__LIMITS__MAX_RECIPIENTS", "0"),
        ("XOAUTH_RELAY__USERS__0__PASSWORD", "pw"),
    ];
    let p = problems_of(load(&fixture("minimal.toml"), &env(&vars)));
    assert_problem(
        &p,
        "limits.max_recipients",
        "found \"0\" (set by the environment: XOAUTH_RELAY__LIMITS__MAX_RECIPIENTS)",
    );
    assert_problem(
        &p,
        "users[0].password",
        "(set by the environment: XOAUTH_RELAY__USERS__0__PASSWORD)",
    );
}

#[test]
fn an_empty_env_value_puts_a_setting_back_to_its_default() {
    let c = load_ok(
        "full.toml",
        &[
            ("CONTOSO_SECRET", "x"),
            ("XOAUTH_RELAY__LIMITS__MAX_RECIPIENTS", ""),
        ],
    );
    assert_eq!(c.limits.max_recipients, config::DEFAULT_MAX_RECIPIENTS);
}

#[test]
fn env_can_add_an_account_but_only_lower_case() {
    let vars = [
        (
            "XOAUTH_RELAY__ACCOUNTS__FABRIKAM__MAILBOX",
            "sender@fabrikam.example",
        ),
        (
            "XOAUTH_RELAY__ACCOUNTS__FABRIKAM__TENANT",
            "fabrikam.onmicrosoft.com",
        ),
        (
            "XOAUTH_RELAY__ACCOUNTS__FABRIKAM__CLIENT_ID",
            "11111111-2222-3333-4444-555555555555",
        ),
        ("XOAUTH_RELAY__ACCOUNTS__FABRIKAM__CLIENT_SECRET", "s"),
        ("XOAUTH_RELAY__USERS__0__ACCOUNT", "fabrikam"),
    ];
    let c = load_ok("minimal.toml", &vars);
    assert_eq!(
        c.accounts.keys().collect::<Vec<_>>(),
        ["contoso", "fabrikam"]
    );
    assert_eq!(c.users[0].account, "fabrikam");
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("\"contoso\" is not used")),
        "{:?}",
        c.warnings
    );
}

// ---------------------------------------------------------------- secrets from files and variables

#[test]
fn secret_files_are_relative_to_the_config_dir_and_lose_one_newline() {
    let dir = scratch_dir("secret-files");
    std::fs::create_dir_all(dir.join("secrets")).expect("mkdir");
    std::fs::write(dir.join("user.pw"), "pass word\r\n").expect("write");
    std::fs::write(dir.join("secrets/contoso"), "s3cret\n\n").expect("write");
    let text = config_text(
        "password_file = \"user.pw\"",
        "client_secret_file = \"secrets/contoso\"",
    );
    std::fs::write(dir.join("config.toml"), text).expect("write");
    let c = load(&dir.join("config.toml"), &env(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&c.users[0].password, Some(PasswordCheck::Plain(s)) if s.expose() == "pass word")
    );
    assert_eq!(
        c.accounts["contoso"].client_secret.expose(),
        "s3cret\n",
        "only one newline is trimmed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn empty_secret_files_are_refused() {
    let dir = scratch_dir("empty-secret-file");
    std::fs::write(dir.join("empty"), "\n").expect("write");
    let text = config_text(
        &format!("password_hash = \"{HASH}\""),
        "client_secret_file = \"empty\"",
    );
    let p = problems_of(load_str(&text, &dir, &env(&[])));
    assert_problem(
        &p,
        "accounts.contoso.client_secret_file",
        &format!("the file {} is empty", dir.join("empty").display()),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn env_secrets_are_read_from_the_injected_environment() {
    let text = config_text(
        "password_env = \"XR_USER_PW\"",
        "client_secret_env = \"XR_SECRET\"",
    );
    let vars = env(&[("XR_USER_PW", "pw"), ("XR_SECRET", "cs")]);
    let c = load_str(&text, Path::new("."), &vars).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(&c.users[0].password, Some(PasswordCheck::Plain(s)) if s.expose() == "pw"));
    assert_eq!(c.accounts["contoso"].client_secret.expose(), "cs");
}

#[test]
fn plain_passwords_work_with_a_warning() {
    for (line, source) in [
        ("password = \"pw\"", "password"),
        ("password_env = \"PW\"", "password_env"),
    ] {
        let text = config_text(line, "client_secret = \"s\"");
        let c = load_str(&text, Path::new("."), &env(&[("PW", "pw")]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        let warning = &c.warnings[0];
        assert!(
            warning.contains("\"xenocept\"") && warning.contains(source),
            "{warning}"
        );
        assert!(warning.contains("xoauth-relay hash-password"), "{warning}");
        assert!(!warning.contains("pw\""), "{warning}");
    }
}

#[test]
fn argon2_hashes_made_by_the_crate_are_accepted() {
    let salt = SaltString::from_b64("c29tZXNhbHQ").expect("salt");
    let hash = Argon2::default()
        .hash_password(b"pw", &salt)
        .expect("hash")
        .to_string();
    let text = config_text(
        &format!("password_hash = \"{hash}\""),
        "client_secret = \"s\"",
    );
    let c = load_str(&text, Path::new("."), &env(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(&c.users[0].password, Some(PasswordCheck::Argon2(h)) if *h == hash));

    let broken = hash.replace("$v=19$", "$v=19$x=");
    let text = config_text(
        &format!("password_hash = \"{broken}\""),
        "client_secret = \"s\"",
    );
    let p = problems_of(load_str(&text, Path::new("."), &env(&[])));
    assert_eq!(keys(&p), ["users[0].password_hash"]);
}

// ---------------------------------------------------------------- finding the file

#[test]
fn cli_path_wins_then_the_variable_then_the_search() {
    let dir = scratch_dir("resolve");
    let xdg_file = dir.join("xdg/xoauth-relay/config.toml");
    std::fs::create_dir_all(xdg_file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&xdg_file, "").expect("write");
    let xdg = dir.join("xdg");
    let xdg = xdg.to_str().expect("utf-8 temp dir");
    let cli = Path::new("/from/cli.toml");

    let vars = env(&[
        ("XOAUTH_RELAY_CONFIG", "/from/env.toml"),
        ("XDG_CONFIG_HOME", xdg),
    ]);
    assert_eq!(resolve_path(Some(cli), &vars).ok(), Some(cli.to_path_buf()));
    assert_eq!(
        resolve_path(None, &vars).ok(),
        Some(PathBuf::from("/from/env.toml"))
    );
    let vars = env(&[("XOAUTH_RELAY_CONFIG", ""), ("XDG_CONFIG_HOME", xdg)]);
    assert_eq!(resolve_path(None, &vars).ok(), Some(xdg_file.clone()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nothing_found_lists_where_it_looked() {
    let dir = scratch_dir("not-found");
    let home = dir.to_str().expect("utf-8 temp dir");
    let vars = env(&[("HOME", home)]);
    let searched = search_paths(&vars);
    assert_eq!(searched[0], dir.join(".config/xoauth-relay/config.toml"));
    if searched.iter().any(|p| p.is_file()) {
        return; // this machine has a real /etc/xoauth-relay/config.toml
    }
    match resolve_path(None, &vars) {
        Err(e @ ConfigError::NotFound { .. }) => {
            let text = e.to_string();
            for path in &searched {
                assert!(text.contains(&path.display().to_string()), "{text}");
            }
            assert!(
                text.contains("--config PATH") && text.contains("XOAUTH_RELAY_CONFIG"),
                "{text}"
            );
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreadable_file_is_a_read_error() {
    let missing = fixture("does-not-exist.toml");
    match load(&missing, &env(&[])) {
        Err(ConfigError::Read { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected Read, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn health_listener_and_secret_expiry() {
    let base = std::fs::read_to_string(fixture("minimal.toml")).unwrap();
    let dir = Path::new("/");
    let with = |extra: &str, account: &str| {
        let text = format!(
            "[listen]\n{extra}\n{}\n{account}\n",
            base.trim_start_matches(|c| c != '[')
        );
        load_str(&text, dir, &HashMap::new())
    };
    let c = with(
        "health = \"off\"",
        "client_secret_expires = \"2027-05-01\"\nclient_secret_warn_days = 14",
    )
    .unwrap();
    assert_eq!(c.listen.health, None);
    let account = &c.accounts["contoso"];
    assert_eq!(
        account
            .client_secret_expires
            .map(|d| d.to_string())
            .as_deref(),
        Some("2027-05-01")
    );
    assert_eq!(account.client_secret_warn_days, 14);
    let c = with("health = \"[::1]:9000\"", "").unwrap();
    assert_eq!(c.listen.health.unwrap().to_string(), "[::1]:9000");

    let p = problems_of(with(
        "health = \"0.0.0.0:8025\"",
        "client_secret_expires = \"2027-02-30\"",
    ));
    assert_problem(&p, "listen.health", "is not a loopback address");
    assert_problem(
        &p,
        "accounts.contoso.client_secret_expires",
        "write it as YYYY-MM-DD",
    );
    let p = problems_of(with(
        "health = \"localhost\"",
        "client_secret_warn_days = 0",
    ));
    assert_problem(&p, "listen.health", "is not an IP address and port");
    assert_problem(&p, "accounts.contoso.client_secret_warn_days", "");

    assert!(
        !c.listen.health_public && !c.listen.status_public,
        "closed by default"
    );
    let c = with("health = \"0.0.0.0:8025\"\nhealth_public = true", "").unwrap();
    assert!(c.listen.health_public && !c.listen.status_public);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("answers other machines") && w.contains("(not /status)")),
        "{:?}",
        c.warnings
    );
    let p = problems_of(with("status_public = true", ""));
    assert_problem(&p, "listen.status_public", "needs listen.health_public");
    let c = with("health_public = true\nstatus_public = true", "").unwrap();
    assert!(c.listen.status_public);
}

#[test]
fn log_recipients_full_by_default_or_domain() {
    use xoauth_relay::config::LogRecipients;
    let base = std::fs::read_to_string(fixture("minimal.toml")).unwrap();
    let with = |log: &str| load_str(&format!("{base}\n{log}\n"), Path::new("/"), &HashMap::new());
    assert_eq!(with("").unwrap().log.recipients, LogRecipients::Full);
    let c = with("[log]\nrecipients = \"domain\"").unwrap();
    assert_eq!(c.log.recipients, LogRecipients::Domain);
    let p = problems_of(with("[log]\nrecipients = \"none\""));
    assert_problem(&p, "log.recipients", "is not \"full\" or \"domain\"");
}

#[test]
fn tenant_that_token_url_overrides_is_a_warning() {
    let var = "XOAUTH_RELAY__ACCOUNTS__CONTOSO__TOKEN_URL";
    let other = "https://login.example.test/fabrikam.onmicrosoft.com/oauth2/v2.0/token";
    let c = load_ok("minimal.toml", &[(var, other)]);
    let warning = c
        .warnings
        .iter()
        .find(|w| w.contains("accounts.contoso.tenant"));
    let warning = warning.unwrap_or_else(|| panic!("{:?}", c.warnings));
    assert!(
        warning.contains("\"fabrikam.onmicrosoft.com\""),
        "{warning}"
    );
    assert!(warning.contains("is not used"), "{warning}");
    let same = "https://login.example.test/contoso.onmicrosoft.com/oauth2/v2.0/token";
    let c = load_ok("minimal.toml", &[(var, same)]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn pool_and_pacing_keys_default_set_and_turn_off() {
    let base = std::fs::read_to_string(fixture("minimal.toml")).unwrap();
    let dir = Path::new("/");
    let with = |pool: &str, account: &str| {
        let text = format!(
            "[pool]\n{pool}\n{}\n{account}\n",
            base.trim_start_matches(|c| c != '[')
        );
        load_str(&text, dir, &HashMap::new())
    };
    let c = with("", "").unwrap();
    assert_eq!(c.pool.idle, config::DEFAULT_POOL_IDLE);
    assert_eq!(c.pool.idle, Duration::from_secs(30));
    assert_eq!(c.pool.max_age, Duration::from_secs(300));
    assert_eq!(c.pool.max_messages, config::DEFAULT_POOL_MAX_MESSAGES);
    assert_eq!(c.pool.max_messages, 100);
    let a = &c.accounts["contoso"];
    assert_eq!(a.max_messages_per_minute, 30);
    assert_eq!(a.max_recipients_per_day, 10_000);

    let c = with(
        "idle = \"10s\"\nmax_age = \"1h\"\nmax_messages = 7",
        "max_messages_per_minute = 5\nmax_recipients_per_day = \"250\"",
    )
    .unwrap();
    assert_eq!(
        (c.pool.idle, c.pool.max_age, c.pool.max_messages),
        (Duration::from_secs(10), Duration::from_secs(3600), 7)
    );
    let a = &c.accounts["contoso"];
    assert_eq!(
        (a.max_messages_per_minute, a.max_recipients_per_day),
        (5, 250)
    );

    // 0 turns pacing off (unlike other counts), but not the pool's bounds.
    let c = with(
        "",
        "max_messages_per_minute = 0\nmax_recipients_per_day = 0",
    )
    .unwrap();
    let a = &c.accounts["contoso"];
    assert_eq!(
        (a.max_messages_per_minute, a.max_recipients_per_day),
        (0, 0)
    );
    let p = problems_of(with(
        "idle = \"0s\"\nmax_messages = 0",
        "max_messages_per_minute = -1\nmax_recipients_per_day = 5000000000",
    ));
    assert_problem(&p, "pool.idle", "must be more than zero");
    assert_problem(&p, "pool.max_messages", "of at least 1, found 0");
    assert_problem(
        &p,
        "accounts.contoso.max_messages_per_minute",
        "from 0 to 10000, found -1",
    );
    assert_problem(
        &p,
        "accounts.contoso.max_recipients_per_day",
        "of at least 0, found 5000000000",
    );
    let p = problems_of(with("", "max_messages_per_minute = 10001"));
    assert_problem(
        &p,
        "accounts.contoso.max_messages_per_minute",
        "from 0 to 10000, found 10001",
    );
}

#[test]
fn delivery_and_spool_keys_default_set_and_refuse_nonsense() {
    use xoauth_relay::config::{DeliveryMode, OnAmbiguous};
    let base = std::fs::read_to_string(fixture("minimal.toml")).unwrap();
    let with = |sections: &str, vars: &[(&str, &str)]| {
        let text = format!("{sections}\n{}", base.trim_start_matches(|c| c != '['));
        load_str(&text, Path::new("/"), &env(vars))
    };
    let c = with("", &[]).unwrap();
    let d = &c.delivery;
    assert_eq!(d.mode, DeliveryMode::Hybrid);
    assert_eq!(d.sync_timeout, Duration::from_secs(15));
    assert_eq!(d.retry.len(), 7);
    assert_eq!(d.retry_after(1), Duration::from_secs(60));
    assert_eq!(
        d.retry_after(100),
        Duration::from_secs(3600),
        "the last wait repeats"
    );
    assert_eq!(d.lifetime, Duration::from_secs(5 * 86_400));
    assert_eq!((d.on_ambiguous, d.warn_after), (OnAmbiguous::Retry, None));
    assert_eq!((c.spool.max_size, c.spool.max_messages), (1 << 30, 100_000));
    assert_eq!(
        c.spool_dir(),
        Some(PathBuf::from("/home/relay/.local/state/xoauth-relay/spool"))
    );

    let c = with(
        "[delivery]\nmode = \"queue\"\nsync_timeout = \"5s\"\nretry = [\"30s\", \"2h\"]\n\
         lifetime = \"2d\"\non_ambiguous = \"hold\"\nwarn_after = \"4h\"\n\
         [spool]\ndir = \"/var/spool/xoauth\"\nmax_size = \"10MB\"\n",
        &[
            ("XOAUTH_RELAY__DELIVERY__MODE", "sync"),
            ("XOAUTH_RELAY__SPOOL__MAX_MESSAGES", "12"),
            ("XOAUTH_RELAY__LOG__RECIPIENTS", "domain"),
        ],
    )
    .unwrap();
    let d = &c.delivery;
    assert_eq!(d.mode, DeliveryMode::Sync, "the environment wins");
    assert_eq!(
        d.retry,
        [Duration::from_secs(30), Duration::from_secs(7200)]
    );
    assert_eq!(
        (d.lifetime, d.warn_after),
        (
            Duration::from_secs(2 * 86_400),
            Some(Duration::from_secs(4 * 3600))
        )
    );
    assert_eq!(d.on_ambiguous, OnAmbiguous::Hold);
    assert_eq!(c.spool_dir(), Some(PathBuf::from("/var/spool/xoauth")));
    assert_eq!(c.spool.max_messages, 12);
    assert_eq!(c.log.recipients, config::LogRecipients::Domain);

    let problems = problems_of(with(
        "[delivery]\nmode = \"later\"\nretry = []\non_ambiguous = \"drop\"\n[spool]\ndir = \" \"\n",
        &[],
    ));
    assert_problem(
        &problems,
        "delivery.mode",
        "\"later\" is not one of \"sync\", \"hybrid\", \"queue\"",
    );
    assert_problem(&problems, "delivery.retry", "needs at least one wait");
    assert_problem(&problems, "delivery.on_ambiguous", "\"retry\", \"hold\"");
    assert_problem(&problems, "spool.dir", "must not be empty");

    let mut no_home = env(&[]);
    no_home.remove("HOME");
    let text = format!(
        "[delivery]\nmode = \"queue\"\n{}",
        base.trim_start_matches(|c| c != '[')
    );
    let c = load_str(&text, Path::new("/"), &no_home).unwrap();
    assert_eq!(c.delivery.mode, DeliveryMode::Sync);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("messages cannot be queued")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn login_loads_its_own_account_whatever_the_others_lack() {
    let dir = crate::common::binary::Scratch::new("config-login");
    let path = dir.0.join("relay.toml");
    let text = "[[users]]\nname = \"app\"\npassword_env = \"ONLY_IN_THE_SERVICE\"\naccount = \"work\"\n\n\
         [accounts.work]\nmailbox = \"sender@contoso.com\"\ntenant = \"contoso.example\"\n\
         client_id = \"11111111-2222-3333-4444-555555555555\"\nclient_secret_env = \"ALSO_ONLY_THERE\"\n\n\
         [accounts.home]\nprovider = \"outlook\"\nmailbox = \"someone@outlook.com\"\n\
         client_id = \"11111111-2222-3333-4444-555555555555\"\n";
    std::fs::write(&path, text).unwrap();
    let vars = env(&[]);
    let everything = problems_of(load(&path, &vars));
    assert!(
        everything
            .iter()
            .any(|p| p.key.starts_with("accounts.work")),
        "{everything:#?}"
    );
    let c = config::load_for_account(&path, &vars, "home").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.accounts["home"].mailbox, "someone@outlook.com");
    // Its own problems still count.
    std::fs::write(
        &path,
        text.replace(
            "provider = \"outlook\"\n",
            "provider = \"outlook\"\nclient_secret = \"x\"\n",
        ),
    )
    .unwrap();
    let own = problems_of(config::load_for_account(&path, &vars, "home"));
    assert!(
        own.iter().all(|p| p.key.starts_with("accounts.home")),
        "{own:#?}"
    );
    assert!(!own.is_empty());
}
