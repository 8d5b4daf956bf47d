//! The client-facing SMTP side: replies, SASL decoding, line framing, the sans-I/O session,
//! and the tokio driver (`conn`) and accept loop (`listener`) around it.

pub mod conn;
pub mod data;
pub mod guard;
pub mod line;
pub mod listener;
pub mod sasl;
pub mod session;
pub mod stream;
