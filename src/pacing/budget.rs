//! The rolling 24-hour recipient count of one account: one bucket per minute (at most 1,440),
//! its text form for the state file, and the file itself, replaced atomically.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Minutes in the rolling window.
pub(crate) const DAY_MINUTES: u64 = 24 * 60;

/// The first line of the state file, so that a file of another kind is not read as counts.
pub(crate) const HEADER: &str = "xoauth-relay recipients per minute v1";

/// Why a message does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// It has more recipients than the whole limit: it never fits.
    Never,
    /// Enough room for it from this Unix time on.
    Until(u64),
}

/// Recipients of accepted messages by the Unix minute they were counted in, oldest first, plus
/// those of messages in flight (reserved, not yet counted).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Budget {
    pub(crate) limit: u64,
    minutes: VecDeque<(u64, u64)>,
    total: u64,
    pending: u64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Recipients counted in the 24 hours up to `minute`.
    pub(crate) fn used(&mut self, minute: u64) -> u64 {
        self.expire(minute);
        self.total
    }

    /// Reserves `n` recipients for a message in flight, or says when they would fit.
    pub(crate) fn reserve(&mut self, minute: u64, n: u64) -> Result<(), Full> {
        self.expire(minute);
        if n > self.limit {
            return Err(Full::Never);
        }
        let over = (self.total + self.pending + n).saturating_sub(self.limit);
        if over == 0 {
            self.pending += n;
            return Ok(());
        }
        // The oldest buckets leave the window first; messages in flight may give theirs back
        // sooner, but that cannot be promised.
        let mut freed = 0;
        for &(at, count) in &self.minutes {
            freed += count;
            if freed >= over {
                return Err(Full::Until((at + DAY_MINUTES) * 60));
            }
        }
        Err(Full::Until((minute + 1) * 60))
    }

    /// Ends a reservation: counted if the message may have reached Microsoft, else given back.
    pub(crate) fn settle(&mut self, minute: u64, n: u64, counted: bool) {
        self.pending = self.pending.saturating_sub(n);
        if counted {
            self.add(minute, n);
        }
    }

    /// A clock that went back files the count under the newest minute, so the buckets stay in
    /// order and at most one per minute of the window.
    fn add(&mut self, minute: u64, n: u64) {
        match self.minutes.back_mut() {
            Some((at, count)) if *at >= minute => *count = count.saturating_add(n),
            _ => self.minutes.push_back((minute, n)),
        }
        self.total = self.total.saturating_add(n);
    }

    fn expire(&mut self, minute: u64) {
        while let Some(&(at, count)) = self.minutes.front() {
            if at + DAY_MINUTES > minute {
                break;
            }
            self.minutes.pop_front();
            self.total -= count;
        }
    }

    /// The counted buckets as the state file holds them.
    pub(crate) fn to_text(&self) -> String {
        let mut text = format!("{HEADER}\n");
        for (at, count) in &self.minutes {
            text.push_str(&format!("{at} {count}\n"));
        }
        text
    }

    /// Reads a state file's text, as of `minute`: buckets from the future (the clock went
    /// back since) count as now.
    pub(crate) fn from_text(limit: u64, text: &str, minute: u64) -> Result<Self, String> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(format!("the first line is not {HEADER:?}"));
        }
        let mut budget = Budget::new(limit);
        for (i, line) in lines.enumerate() {
            let parsed = line
                .split_once(' ')
                .and_then(|(at, count)| Some((at.parse::<u64>().ok()?, count.parse().ok()?)));
            let Some((at, count)) = parsed else {
                return Err(format!("line {} is not \"<minute> <count>\"", i + 2));
            };
            if at + DAY_MINUTES > minute {
                budget.add(at.min(minute), count);
            }
        }
        Ok(budget)
    }
}

/// Where one account's count is kept.
#[derive(Debug, Clone)]
pub(crate) struct StateFile(pub(crate) PathBuf);

impl StateFile {
    /// `<state_dir>/pacing/<account>.recipients`; account names are `[a-z0-9_-]`, safe as a
    /// file name.
    pub(crate) fn for_account(state_dir: &Path, account: &str) -> Self {
        Self(
            state_dir
                .join("pacing")
                .join(format!("{account}.recipients")),
        )
    }

    /// `None` when there is no file yet.
    pub(crate) fn read(&self) -> std::io::Result<Option<String>> {
        match std::fs::read_to_string(&self.0) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Written to a temporary file and renamed over the old one, so a crash leaves the old
    /// count or the new one, never half of one.
    pub(crate) fn write(&self, text: &str) -> std::io::Result<()> {
        let dir = self.0.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let temp = self.0.with_extension("recipients.tmp");
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, &self.0)
    }
}
