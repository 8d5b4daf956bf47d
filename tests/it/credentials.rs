//! systemd credentials: a relative `*_file` path is looked up first in `$CREDENTIALS_DIRECTORY`
//! (`LoadCredential=`), then in the configuration file's directory. The environment is
//! injected, as everywhere in the loader.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use xoauth_relay::config::{Config, PasswordCheck, load};
use xoauth_relay::testkit::env;

/// A fresh directory for one test, under the system temp dir.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xoauth-relay-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A configuration in `dir` whose secret and password come from relative `*_file` paths.
fn write_config(dir: &Path) -> PathBuf {
    let text = "[[users]]\nname = \"xenocept\"\npassword_file = \"user.password\"\n\
                account = \"contoso\"\n\n[accounts.contoso]\nmailbox = \"sender@contoso.com\"\n\
                tenant = \"contoso.onmicrosoft.com\"\n\
                client_id = \"11111111-2222-3333-4444-555555555555\"\n\
                client_secret_file = \"contoso.secret\"\n";
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn load_with(config: &Path, vars: &[(&str, &Path)]) -> Config {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.display().to_string()))
        .collect();
    match load(config, &env) {
        Ok(config) => config,
        Err(e) => panic!("should load:\n{e}"),
    }
}

fn secret(config: &Config) -> &str {
    config.accounts["contoso"].client_secret.expose()
}

fn password(config: &Config) -> &str {
    match &config.users[0].password {
        Some(PasswordCheck::Plain(p)) => p.expose(),
        _ => panic!("expected a plain password"),
    }
}

#[test]
fn credentials_directory_comes_first() {
    let dir = scratch_dir("creds-first");
    let creds = dir.join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    let config = write_config(&dir);
    std::fs::write(dir.join("contoso.secret"), "from-config-dir\n").unwrap();
    std::fs::write(dir.join("user.password"), "pw-from-config-dir\n").unwrap();
    std::fs::write(creds.join("contoso.secret"), "from-credential\n").unwrap();

    let loaded = load_with(&config, &[("CREDENTIALS_DIRECTORY", &creds)]);
    assert_eq!(secret(&loaded), "from-credential");
    // Not in the credentials directory: the config file's directory, as without systemd.
    assert_eq!(password(&loaded), "pw-from-config-dir");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_credentials_directory_the_config_dir_is_used() {
    let dir = scratch_dir("creds-unset");
    let config = write_config(&dir);
    std::fs::write(dir.join("contoso.secret"), "from-config-dir\n").unwrap();
    std::fs::write(dir.join("user.password"), "pw\n").unwrap();
    assert_eq!(secret(&load_with(&config, &[])), "from-config-dir");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_credential_reports_the_config_dir_path() {
    let dir = scratch_dir("creds-missing");
    let creds = dir.join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    let config = write_config(&dir);
    std::fs::write(dir.join("user.password"), "pw\n").unwrap();
    let env = env(&[("CREDENTIALS_DIRECTORY", &creds.display().to_string())]);
    let message = match load(&config, &env) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("the secret file exists nowhere"),
    };
    let expected = dir.join("contoso.secret");
    assert!(
        message.contains(&expected.display().to_string()),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ca_file_is_a_credential_too() {
    let dir = scratch_dir("creds-ca");
    let creds = dir.join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    xoauth_relay::testkit::init_crypto();
    let pki = xoauth_relay::testkit::TestPki::new().expect("test PKI");
    std::fs::write(creds.join("ca.pem"), pki.ca_pem()).unwrap();
    std::fs::write(dir.join("contoso.secret"), "s\n").unwrap();
    std::fs::write(dir.join("user.password"), "pw\n").unwrap();
    let config = write_config(&dir);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("ca_file = \"ca.pem\"\n");
    std::fs::write(&config, text).unwrap();

    let loaded = load_with(&config, &[("CREDENTIALS_DIRECTORY", &creds)]);
    let account = &loaded.accounts["contoso"];
    assert_eq!(
        account.ca_file.as_deref(),
        Some(creds.join("ca.pem").as_path())
    );
    assert_eq!(account.extra_roots.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
