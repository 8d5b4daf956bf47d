//! The integration tests, one module per area, in one test binary: every test binary compiles
//! the shared harness and links the crate and all its dependencies on its own, and separate
//! binaries run one after another, so one binary builds and runs about a quarter faster than
//! eighteen. Tests that install a process-global log subscriber (`tests/relay_logs.rs`,
//! `tests/listener_key.rs`) stay in binaries of their own.

#[path = "../common/mod.rs"]
mod common;

mod account_kinds;
mod acs;
mod check;
mod cli;
mod config;
mod crash;
mod credentials;
mod delegated;
mod e2e_delegated;
mod e2e_kinds;
mod e2e_smtplib;
mod health;
mod hve;
mod log_lines;
mod logins;
mod network;
mod notify;
mod pool;
mod properties;
mod queue;
mod queue_cli;
mod queue_live;
mod relay_delivery;
mod relay_listener;
mod relay_tokens;
mod relay_upstream;
mod reload;
mod service;
mod testkit;
mod upstream_tls;
