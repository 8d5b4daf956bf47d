//! `check`'s line about the queue: the delivery mode, where the spool is, that the relay can
//! write there, and what waits in it (from the files, so it works with or without a daemon).

use std::io::Write;

use super::Report;
use crate::config::{Config, DeliveryMode};
use crate::spool;

pub(super) fn check<W: Write>(config: &Config, report: &mut Report<'_, W>) {
    let mode = config.delivery.mode;
    let Some(dir) = config.spool_dir().filter(|_| mode != DeliveryMode::Sync) else {
        report
            .ok("delivery: sync (your program gets Microsoft's verdict and retries a 4xx itself)");
        return;
    };
    if let Err(e) = writable(&dir) {
        report.fail(&format!(
            "delivery: {}: the spool {} is not writable for this user: {e}",
            mode.name(),
            dir.display()
        ));
        return;
    }
    let queued = spool::read_queue(&dir);
    let held = queued.iter().filter(|m| m.hold.is_some()).count();
    let failed = spool::read_failed(&dir).len();
    report.ok(&format!(
        "delivery: {}; spool {}: {} queued ({held} held), {failed} given up (in failed/)",
        mode.name(),
        dir.display(),
        queued.len()
    ));
    if held > 0 || failed > 0 {
        report.line(
            "  see them with `xoauth-relay queue list`; given-up messages are kept in failed/",
        );
    }
}

/// Creates the spool directory if needed and a file in it, then removes the file.
fn writable(dir: &std::path::Path) -> std::io::Result<()> {
    spool::create_private_dir(dir)?;
    let probe = dir.join(format!(".check-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}
