//! A relay configuration pointed at the stand-ins: one local user, one account whose token
//! endpoint and SMTP host are the fakes, trusting only the throwaway CA. Used by the demo and
//! the tests, which then adjust what they need.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::{FakeTokenEndpoint, FakeUpstream, TestPki};
use crate::config::{
    Account, AccountSettings, Auth, Config, Limits, Listen, PasswordCheck, Pool, Provider,
    SenderRule, Timeouts, TlsMode, User,
};
use crate::secret::Secret;

/// The names and secrets of the one user and the one account.
#[derive(Debug, Clone)]
pub struct Identity<'a> {
    pub account: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    pub mailbox: &'a str,
    pub tenant: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
}

/// Builds the configuration; `listen` is only recorded (the caller binds the listener).
pub fn relay_config(
    pki: &TestPki,
    tokens: &FakeTokenEndpoint,
    upstream: &FakeUpstream,
    who: &Identity<'_>,
    listen: SocketAddr,
) -> Config {
    let account = Account {
        name: who.account.into(),
        mailbox: who.mailbox.into(),
        tenant: who.tenant.into(),
        client_id: who.client_id.into(),
        client_secret: Secret::new(who.client_secret.into()),
        authority: format!("https://{}", tokens.addr()),
        token_url: tokens.url(who.tenant),
        ca_file: None,
        extra_roots: vec![pki.ca_der()],
        smtp_host: "127.0.0.1".into(),
        smtp_port: upstream.port(),
        ..example_account()
    };
    let user = User {
        name: who.user.into(),
        password: Some(PasswordCheck::Plain(Secret::new(who.password.into()))),
        networks: Vec::new(),
        account: who.account.into(),
        allowed_senders: vec![SenderRule::Address(who.mailbox.to_ascii_lowercase())],
    };
    Config {
        listen: Listen {
            smtp: listen,
            smtp_tls: TlsMode::None,
            submissions: None,
            tls_files: None,
            health: None,
            health_public: false,
            status_public: false,
        },
        limits: Limits::default(),
        log: Default::default(),
        timeouts: Timeouts::default(),
        pool: Pool::default(),
        // No state_dir, so no spool: the tests that queue say so.
        delivery: crate::config::Delivery {
            mode: crate::config::DeliveryMode::Sync,
            ..Default::default()
        },
        spool: Default::default(),
        hostname: "relay.stand-in.test".into(),
        users: vec![user],
        accounts: BTreeMap::from([(who.account.to_string(), Arc::new(account))]),
        warnings: Vec::new(),
        state_dir: None,
    }
}

/// An account with placeholder values, for unit tests that need one.
pub fn example_account() -> Account {
    Account {
        name: "contoso".into(),
        provider: Provider::Microsoft365,
        auth: Auth::ClientCredentials,
        scope: crate::config::DEFAULT_SCOPE.into(),
        smtp_host: crate::config::DEFAULT_SMTP_HOST.into(),
        smtp_port: crate::config::DEFAULT_SMTP_PORT,
        allowed_recipient_domains: Vec::new(),
        mailbox: "sender@contoso.com".into(),
        tenant: "contoso.onmicrosoft.com".into(),
        client_id: "11111111-2222-3333-4444-555555555555".into(),
        client_secret: Secret::new("placeholder".into()),
        client_certificate: None,
        smtp_username: None,
        authority: crate::config::DEFAULT_AUTHORITY.into(),
        token_url: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
            .into(),
        ca_file: None,
        extra_roots: Vec::new(),
        settings: AccountSettings::default(),
    }
}
