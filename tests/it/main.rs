//! The integration tests, one module per area, in one test binary: each binary links the
//! whole crate and its dependencies again, so one binary instead of eighteen is most of what
//! `cargo test` spends building. Tests that install a process-global log subscriber
//! (`tests/relay_logs.rs`, `tests/listener_key.rs`) stay in binaries of their own.

#[path = "../common/mod.rs"]
mod common;

mod check;
mod cli;
mod config;
mod credentials;
mod e2e_smtplib;
mod health;
mod logins;
mod network;
mod notify;
mod properties;
mod relay_delivery;
mod relay_listener;
mod relay_tokens;
mod relay_upstream;
mod reload;
mod service;
mod testkit;
mod upstream_tls;
