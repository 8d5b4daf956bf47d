//! xoauth-relay: a local SMTP submission relay that sends through Microsoft 365 with SASL
//! XOAUTH2 and OAuth2 client-credentials tokens.
//!
//! The map of the crate:
//! - [`config`]: the typed, validated configuration and its loader (TOML + environment).
//! - [`secret`]: `Secret<T>`, a value that prints `***`.
//! - [`testkit`]: in-process stand-ins for Microsoft 365 (token endpoint, SMTP with STARTTLS),
//!   used by `xoauth-relay demo` and by the tests.

pub mod auth;
pub mod config;
pub mod oauth;
pub mod secret;
pub mod smtp;
pub mod testkit;
pub mod tls;

/// A boxed future, for the object-safe traits at the seams (token source, upstream).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
pub mod check;
pub mod cli;
pub mod daemon;
pub mod demo;
pub mod error;
pub mod explain;
pub mod logging;
pub mod relay;
pub mod upstream;
