//! The client-facing SMTP side: replies, SASL decoding, line framing, the sans-I/O session and
//! (in `conn`/`listener`) the tokio driver around it.

pub mod line;
pub mod reply;
pub mod sasl;
pub mod session;
