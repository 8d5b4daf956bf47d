//! xoauth-relay: a local SMTP submission relay that sends through Microsoft 365 with SASL
//! XOAUTH2 and OAuth2 client-credentials tokens.
//!
//! The data path, and the module for each step:
//!
//! ```text
//! client ─AUTH PLAIN/LOGIN─▶ smtp::listener ─▶ smtp::conn ─▶ smtp::session (sans-I/O)
//!                                                   │ auth (local users → Submitter)
//!                                                   ▼ message::Submit (data in spool/tmp)
//!                   delivery (hybrid: now, or spool/queue + retry worker)
//!                                                   ▼
//!                                 relay ─▶ upstream (STARTTLS, XOAUTH2) ─▶ Microsoft 365
//!                                                   ▲
//!                                  oauth::cache ◀── oauth::client_credentials
//! ```
//!
//! The modules in layers; each only uses the ones below it (a test in `layout.rs` fails on an
//! import cycle between top-level modules):
//!
//! 1. Shared values, using nothing else of the crate's but each other: [`address`] (mailbox
//!    addresses and the MAIL FROM / RCPT TO arguments, parsed strictly and written back as valid
//!    paths), [`reply`] (SMTP replies and the named ones), [`secret`] (`Secret<T>`, which prints
//!    `***`), [`dates`], [`swap`] (values a reload replaces), [`exit`] (exit codes),
//!    [`logging`] (log output; `Untrusted` for values from clients), [`tls`] (the one rustls
//!    configuration), [`stats`] (counters and last events), [`config`] (the typed, validated
//!    configuration and its loader), and [`message`] (the submitter, the envelope, the
//!    submission and the `Submit` seam).
//! 2. The protocol and its parts: [`smtp`] (the client-facing side: SASL, line framing, the
//!    DATA receiver, the sans-I/O session, the connection driver and the accept loop), [`auth`]
//!    (local users and the bounded pool of password checks), [`oauth`] (access tokens: the
//!    client-credentials request, a single-flight cache, claims), [`upstream`] (the SMTP
//!    client towards Microsoft 365, behind the `Upstream` trait), [`error`] (failure classes,
//!    the one reply mapping, and `error::explain`, the plain-words fixes), [`expiry`] (client
//!    secret expiry warnings), [`notify`] (`sd_notify`).
//! 3. [`pacing`]: Exchange's per-mailbox message rate and daily recipients, kept before
//!    sending; [`spool`]: the durable queue on disk (commit, recovery, records, bounces, the
//!    control socket); [`relay`]: token → upstream delivery, retry on a refused cached token,
//!    one log line per message; [`delivery`]: the modes (sync, hybrid, queue) and the retry
//!    worker over the spool; [`probe`]: proving each account can send without mail (connect,
//!    STARTTLS, XOAUTH2, QUIT) at start-up and while it fails; [`health`]: `/healthz`,
//!    `/readyz`, `/status`, `/metrics` on loopback.
//! 4. [`daemon`]: the one composition root: builds everything from a `Config`, runs, reloads,
//!    drains.
//! 5. The commands: [`cli`], [`check`], [`demo`], [`service`] (`service install|uninstall`,
//!    the systemd units and launchd plists); [`testkit`]: in-process stand-ins for Microsoft
//!    365, for `demo` and the tests.

pub mod address;
pub mod auth;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dates;
pub(crate) mod delivery;
pub(crate) mod demo;
pub(crate) mod error;
pub(crate) mod exit;
pub(crate) mod expiry;
pub(crate) mod health;
pub(crate) mod logging;
pub mod login;
pub mod message;
pub(crate) mod notify;
pub(crate) mod oauth;
pub(crate) mod pacing;
pub(crate) mod probe;
pub(crate) mod relay;
pub mod reply;
pub mod secret;
pub mod service;
pub mod smtp;
pub(crate) mod spool;
pub(crate) mod stats;
pub(crate) mod swap;
pub mod testkit;
pub mod tls;
pub mod upstream;

#[cfg(test)]
mod layout;

/// A boxed future, for the object-safe traits at the seams (token source, upstream, submit).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
