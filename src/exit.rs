//! Exit codes of the commands, from BSD's sysexits.h, so service managers and scripts can tell
//! a configuration error (not worth restarting) from a crash.

/// A check or the demo failed.
pub(crate) const FAILURE: u8 = 1;
/// Bad command-line usage.
pub(crate) const EX_USAGE: u8 = 64;
/// A service it needs is not there (`queue hold` and the like when the relay is not running).
pub(crate) const EX_UNAVAILABLE: u8 = 69;
/// An internal error.
pub(crate) const EX_SOFTWARE: u8 = 70;
/// The system refused something (cannot listen, no binary path).
pub(crate) const EX_OSERR: u8 = 71;
/// An output file cannot be created (or, here, replaced or removed).
pub(crate) const EX_CANTCREAT: u8 = 73;
/// The configuration is invalid.
pub(crate) const EX_CONFIG: u8 = 78;
