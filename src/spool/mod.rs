//! The durable spool.

pub(crate) mod bounce;
