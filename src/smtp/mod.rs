//! The client-facing SMTP side: SASL decoding, line framing, the DATA receiver, the sans-I/O session,
//! and the tokio driver (`conn`) and accept loop (`listener`) around it.

pub(crate) mod conn;
pub mod data;
pub(crate) mod guard;
pub(crate) mod line;
pub(crate) mod listener;
pub mod sasl;
pub mod session;
pub(crate) mod stream;
