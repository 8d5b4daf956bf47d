//! Queue IDs: 16 upper-case hex digits, milliseconds since 1970 then a counter, so they sort by
//! arrival, and name the files, the `250 … Queued as` reply, the log lines and the bounce.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A new ID: unique within this process, and across restarts unless the clock went back.
pub(crate) fn new_id() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xFFFF;
    format!("{:012X}{:04X}", ms & 0xFFFF_FFFF_FFFF, n)
}

/// True for what [`new_id`] makes; anything else in the spool is not ours to read.
pub(crate) fn is_id(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_ours_unique_and_sorted() {
        let a = new_id();
        let b = new_id();
        assert!(is_id(&a) && is_id(&b), "{a} {b}");
        assert!(a < b);
        assert!(!is_id("../../etc/passwd") && !is_id("0123456789abcdef"));
    }
}
