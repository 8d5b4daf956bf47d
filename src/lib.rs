//! xoauth-relay: a local SMTP submission relay that sends through Microsoft 365 with SASL
//! XOAUTH2 and OAuth2 client-credentials tokens.
//!
//! The data path, and the module for each step:
//!
//! ```text
//! client ─AUTH PLAIN/LOGIN─▶ smtp::listener ─▶ smtp::conn ─▶ smtp::session (sans-I/O)
//!                                                   │ auth (local users → Submitter)
//!                                                   ▼
//!                                 relay (Submit) ─▶ upstream (STARTTLS, XOAUTH2) ─▶ Microsoft 365
//!                                                   ▲
//!                                  oauth::cache ◀── oauth::client_credentials
//! ```
//!
//! - [`address`]: mailbox addresses and the MAIL FROM / RCPT TO arguments, parsed strictly
//!   and written back as valid paths.
//! - [`config`]: the typed, validated configuration and its loader (TOML + environment).
//! - [`smtp`]: the client-facing side: replies, SASL, line framing, the session state machine,
//!   the connection driver and the accept loop.
//! - [`auth`]: local users and password checks.
//! - [`relay`]: token → upstream delivery, retry on a refused cached token, one log line per
//!   message; [`error`] classifies failures and maps them to the client's reply; [`explain`]
//!   says in plain words what a known failure means and how to fix it.
//! - [`oauth`]: access tokens: the client-credentials request, a single-flight cache, claims.
//! - [`upstream`]: the SMTP client towards Microsoft 365, behind the `Upstream` trait.
//! - [`tls`]: the one TLS client configuration (rustls + ring, built-in roots + `ca_file`).
//! - [`daemon`]: the composition root: builds everything from a `Config`, runs, drains.
//! - [`cli`], [`check`], [`demo`], [`logging`]: the commands and their output.
//! - [`health`]: `/healthz`, `/readyz`, `/status`, `/metrics` on loopback; [`expiry`]: client
//!   secret expiry warnings.
//! - [`stats`]: counters and last events for `/status`, `/readyz` and `/metrics`.
//! - [`notify`]: `sd_notify` (ready, watchdog, stopping) for systemd's `Type=notify`;
//!   [`service`]: `service install|uninstall`, the systemd units and launchd plists.
//! - [`testkit`]: in-process stand-ins for Microsoft 365, for `demo` and the tests.
//! - [`secret`]: `Secret<T>`, a value that prints `***`; [`dates`]: calendar dates;
//!   [`swap`]: values a reload replaces.

pub mod address;
pub mod auth;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dates;
pub mod demo;
pub mod error;
pub mod expiry;
pub mod explain;
pub mod health;
pub mod logging;
pub mod notify;
pub mod oauth;
pub mod relay;
pub mod secret;
pub mod service;
pub mod smtp;
pub mod stats;
pub mod swap;
pub mod testkit;
pub mod tls;
pub mod upstream;

/// A boxed future, for the object-safe traits at the seams (token source, upstream, submit).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
