//! `xoauth-relay login ACCOUNT`: a user signs in once for a delegated account, in a browser
//! (authorization code with PKCE) or with a code on another device (`--device`), and the
//! refresh token is stored where the relay reads it.

use std::io::Write;
use std::path::PathBuf;

use crate::config::{Auth, Config};
use crate::oauth::delegated::store::{self, TokenStore};
use crate::oauth::delegated::{Endpoint, browser, device};

/// How the user signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Print the sign-in address and, when `open`, also hand it to the desktop's browser.
    Browser { open: bool },
    /// The device-code flow: a URL and a code to enter on any device.
    Device,
}

/// Signs `account` in and returns where its refresh token now is; the error is the words to
/// show the user.
pub async fn run(
    config: &Config,
    account: &str,
    method: Method,
    out: &mut dyn Write,
) -> Result<PathBuf, String> {
    let Some(account) = config.accounts.get(account) else {
        let known: Vec<&str> = config.accounts.keys().map(String::as_str).collect();
        return Err(format!(
            "there is no account {account:?} in the configuration (accounts: {})",
            known.join(", ")
        ));
    };
    if account.auth != Auth::Delegated {
        return Err(format!(
            "account {} sends as an app (auth = {:?}) and needs no sign-in; login is for \
             accounts with auth = \"delegated\"",
            account.name,
            account.auth.name()
        ));
    }
    let Some(state_dir) = &config.state_dir else {
        return Err("no state_dir to keep the sign-in in: set state_dir".into());
    };
    let tls = crate::tls::client_config(&account.extra_roots)
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let endpoint = Endpoint::new(account, tls, &config.timeouts)
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
    let store = TokenStore::new(state_dir, &account.name);
    let signed_in = match method {
        Method::Device => device::sign_in(&endpoint, &store, out).await,
        Method::Browser { open } => {
            let opener = |url: &str| {
                if open {
                    open_browser(url);
                }
            };
            browser::sign_in(&endpoint, &store, &account.mailbox, out, &opener).await
        }
    };
    signed_in.map_err(|e| e.to_string())?;
    Ok(store::path_for(state_dir, &account.name))
}

/// Hands `url` to the desktop (`open` on macOS, `xdg-open` elsewhere); without one the
/// printed address is enough, so a failure is ignored.
fn open_browser(url: &str) {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let _ = std::process::Command::new(program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}
