//! In-process stand-ins for Microsoft 365, for `xoauth-relay demo` and the tests.
//!
//! Everything binds `127.0.0.1:0` and never touches the real network:
//! - [`TestPki`]: a throw-away CA and a `localhost`/`127.0.0.1` server certificate.
//! - [`FakeTokenEndpoint`]: HTTPS `POST /{tenant}/oauth2/v2.0/token` (client credentials, and a
//!   user's refresh-token, authorization-code and device-code grants with `/authorize` and
//!   `/devicecode`), with Entra's JSON errors and switchable failure modes ([`TokenMode`]).
//! - [`FakeUpstream`]: SMTP like `smtp.office365.com:587`: STARTTLS, `AUTH XOAUTH2` (both
//!   forms), MAIL/RCPT/DATA, scripted failures ([`Script`]) and a record of what arrived.
//! - [`SmtpClient`]: a line-level SMTP client, independent of the relay's parsers.
//! - [`relay_config`]: a relay configuration pointed at the stand-ins.
//! - [`TokenRegistry`]: the tokens issued by the endpoint, which the upstream accepts until
//!   they are revoked or expire.
//!
//! Each fake stops (and closes all its connections) when its value is dropped.

mod aad;
mod assertion_check;
pub mod client_cert;
mod delegated;
pub mod pki;
pub mod relay_config;
mod server_task;
pub mod smtp_client;
pub mod smtp_server;
mod smtp_session;
mod smtp_wire;
pub mod token_endpoint;
pub mod tokens;

pub use aad::{AadError, TokenMode};
pub use pki::{PkiError, TestPki};
pub use relay_config::{Identity, relay_config};
pub use smtp_client::SmtpClient;
pub use smtp_server::{FakeUpstream, Phase, Received, Script};
pub use token_endpoint::{DEFAULT_SCOPE, FakeTokenEndpoint, TokenRequest};
pub use tokens::{SMTP_SCOPE, TokenGrant, TokenInfo, TokenRegistry};

/// An environment for code that takes one as a map instead of reading the process's, so tests
/// never change (or race on) the real one.
pub fn env(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    let mut env: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Every real account has a home, hence a state directory, so the default delivery mode can
    // queue; tests of a machine without one remove it.
    env.entry("HOME".into())
        .or_insert_with(|| "/home/relay".into());
    env
}

/// Installs rustls' ring provider as the process default unless one is installed already.
///
/// The fakes never need it (they pass the provider explicitly); it is for test clients such as
/// reqwest with `rustls-no-provider`, which looks the default up when a client is built.
pub fn init_crypto() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another thread installing one is fine: either provider works.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
