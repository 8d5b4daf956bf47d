//! Exchange Online's pace per mailbox, kept by the relay before any upstream work: at most
//! `max_messages_per_minute` messages in any rolling minute (the next waits for its slot) and
//! at most `max_recipients_per_day` recipients of accepted messages in any rolling 24 hours
//! (the next message that would pass it is refused with the time it fits again).
//!
//! Times come from tokio's clock, so tests run on the paused one; the recipient count is also
//! filed by Unix minute, so that it can be kept in `state_dir` across a restart.

mod budget;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use self::budget::{Budget, Full, StateFile};
use crate::reply::{Enhanced, Reply};
use crate::stats::AccountStats;

const MINUTE: Duration = Duration::from_secs(60);

/// Unix time read from tokio's clock: fixed at creation, then moved on by tokio's `Instant`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    unix: u64,
    at: Instant,
}

impl Clock {
    pub(crate) fn system() -> Self {
        Self::starting_at(crate::dates::now_unix())
    }

    /// A clock that reads `unix` now (tests pick the day).
    pub(crate) fn starting_at(unix: u64) -> Self {
        Self {
            unix,
            at: Instant::now(),
        }
    }

    pub(crate) fn now_unix(&self) -> u64 {
        self.unix + self.at.elapsed().as_secs()
    }

    fn minute(&self) -> u64 {
        self.now_unix() / 60
    }
}

/// The two limits; `0` turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) messages_per_minute: u32,
    pub(crate) recipients_per_day: u32,
}

/// The send times of the last `limit` messages (some may lie ahead: reserved slots).
#[derive(Debug, Default)]
struct Window {
    limit: usize,
    sent: VecDeque<Instant>,
}

impl Window {
    /// Reserves the next slot, unless it lies after `latest`; either way says when it is.
    fn reserve(&mut self, now: Instant, latest: Instant) -> Result<Instant, Instant> {
        while self.sent.front().is_some_and(|t| *t + MINUTE <= now) {
            self.sent.pop_front();
        }
        let len = self.sent.len();
        let slot = match len.checked_sub(self.limit) {
            Some(over) => self.sent[over] + MINUTE,
            None => now,
        };
        let slot = slot.max(self.sent.back().copied().unwrap_or(now));
        if slot > latest {
            return Err(slot);
        }
        while self.sent.len() >= self.limit {
            self.sent.pop_front();
        }
        self.sent.push_back(slot);
        Ok(slot)
    }
}

/// A message let through: the recipients it reserved, to settle once its outcome is known.
#[derive(Debug)]
#[must_use = "settle the reservation with the message's outcome"]
pub(crate) struct Ticket {
    recipients: u64,
}

/// One account's pace; kept across reloads of the account (see `retune`).
pub(crate) struct Pacer {
    account: String,
    slot_wait: Duration,
    clock: Clock,
    window: Mutex<Window>,
    budget: Mutex<Budget>,
    file: Option<StateFile>,
    /// One write at a time, each of the newest count.
    writing: tokio::sync::Mutex<()>,
    stats: Arc<AccountStats>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counts only; a panic elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pacer {
    /// With `state_dir`, the recipient count is read from there (a missing, unreadable or
    /// corrupt file starts it empty, with a warning) and written back after each message.
    pub(crate) fn new(
        account: &str,
        limits: Limits,
        slot_wait: Duration,
        state_dir: Option<&Path>,
        clock: Clock,
        stats: Arc<AccountStats>,
    ) -> Self {
        let file = state_dir.map(|dir| StateFile::for_account(dir, account));
        let limit = u64::from(limits.recipients_per_day);
        let budget = match &file {
            Some(file) if limit > 0 => read_budget(account, file, limit, clock.minute()),
            _ => Budget::new(limit),
        };
        let pacer = Self {
            account: account.to_owned(),
            slot_wait,
            clock,
            window: Mutex::new(Window {
                limit: limits.messages_per_minute as usize,
                sent: VecDeque::new(),
            }),
            budget: Mutex::new(budget),
            file,
            writing: tokio::sync::Mutex::new(()),
            stats,
        };
        pacer.show_used();
        pacer
    }

    /// Both limits off, with no state file: for `check`, whose test messages go around the
    /// relay, and for tests that build a route by hand.
    pub(crate) fn unlimited(stats: Arc<AccountStats>) -> Self {
        let off = Limits {
            messages_per_minute: 0,
            recipients_per_day: 0,
        };
        Self::new("test", off, MINUTE, None, Clock::system(), stats)
    }

    /// New limits after a reload; what was sent so far still counts.
    pub(crate) fn retune(&self, limits: Limits) {
        lock(&self.window).limit = limits.messages_per_minute as usize;
        lock(&self.budget).limit = u64::from(limits.recipients_per_day);
        self.show_used();
    }

    /// Before any upstream work: reserves the message's recipients and waits for its slot, or
    /// refuses it with the reply for the client.
    pub(crate) async fn admit(&self, recipients: usize) -> Result<Ticket, Reply> {
        let recipients = recipients as u64;
        let ticket = self.reserve_recipients(recipients)?;
        let Some(slot) = self.reserve_slot() else {
            return Ok(ticket);
        };
        match slot {
            Ok(at) if at > Instant::now() => {
                self.stats.pacing_waits.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep_until(at).await;
                Ok(ticket)
            }
            Ok(_) => Ok(ticket),
            Err(at) => {
                self.settle_budget(&ticket, false);
                self.stats.pacing_refusals.fetch_add(1, Ordering::Relaxed);
                let limit = lock(&self.window).limit;
                Err(rate_refusal(
                    limit,
                    at.saturating_duration_since(Instant::now()),
                ))
            }
        }
    }

    /// After the upstream's verdict: `counted` when the message may have reached Microsoft
    /// (Exchange counts the recipients of submitted messages); the count is then saved.
    pub(crate) async fn settle(&self, ticket: Ticket, counted: bool) {
        if self.settle_budget(&ticket, counted) && counted {
            self.save().await;
        }
    }

    /// An attempt given up before anything went upstream: its recipients are not counted.
    pub(crate) fn release(&self, ticket: Ticket) {
        self.settle_budget(&ticket, false);
    }

    /// Recipients counted in the last 24 hours.
    pub(crate) fn recipients_last_24h(&self) -> u64 {
        lock(&self.budget).used(self.clock.minute())
    }

    fn reserve_recipients(&self, n: u64) -> Result<Ticket, Reply> {
        let mut budget = lock(&self.budget);
        if budget.limit == 0 {
            return Ok(Ticket { recipients: 0 });
        }
        let limit = budget.limit;
        match budget.reserve(self.clock.minute(), n) {
            Ok(()) => Ok(Ticket { recipients: n }),
            Err(full) => {
                drop(budget);
                self.stats.pacing_refusals.fetch_add(1, Ordering::Relaxed);
                Err(budget_refusal(limit, n, full, self.clock.now_unix()))
            }
        }
    }

    /// `None` when the rate is not limited.
    fn reserve_slot(&self) -> Option<Result<Instant, Instant>> {
        let mut window = lock(&self.window);
        if window.limit == 0 {
            return None;
        }
        let now = Instant::now();
        Some(window.reserve(now, now + self.slot_wait))
    }

    /// True when there was a reservation to settle.
    fn settle_budget(&self, ticket: &Ticket, counted: bool) -> bool {
        if ticket.recipients == 0 {
            return false;
        }
        let minute = self.clock.minute();
        lock(&self.budget).settle(minute, ticket.recipients, counted);
        self.show_used();
        true
    }

    fn show_used(&self) {
        let used = self.recipients_last_24h();
        self.stats.recipients_24h.store(used, Ordering::Relaxed);
    }

    async fn save(&self) {
        let Some(file) = self.file.clone() else {
            return;
        };
        let _one = self.writing.lock().await;
        let text = lock(&self.budget).to_text();
        let written = tokio::task::spawn_blocking(move || file.write(&text)).await;
        let error = match written {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        let path = self.file.as_ref().map(|f| f.0.display().to_string());
        tracing::warn!(account = %self.account, path = ?path, %error, "cannot save the recipient count; it is kept in memory and a restart would start it from zero");
    }
}

fn read_budget(account: &str, file: &StateFile, limit: u64, minute: u64) -> Budget {
    let problem = match file.read() {
        Ok(None) => return Budget::new(limit),
        Ok(Some(text)) => match Budget::from_text(limit, &text, minute) {
            Ok(budget) => return budget,
            Err(problem) => problem,
        },
        Err(e) => e.to_string(),
    };
    tracing::warn!(account, path = %file.0.display(), %problem, "cannot read the saved recipient count; starting from zero (the file is replaced after the next message)");
    Budget::new(limit)
}

/// Exchange would delay the message itself; the relay waits instead, and past the slot wait
/// lets the client retry rather than hold its connection longer.
fn rate_refusal(limit: usize, wait: Duration) -> Reply {
    Reply::with_text(
        451,
        Enhanced(4, 7, 0),
        format!(
            "Sending rate limit reached: this account sends at most {limit} messages a minute \
             (max_messages_per_minute); next free slot in {} s, try again later",
            wait.as_secs().max(1)
        ),
    )
}

/// In place of Exchange's `554 5.2.0 SubmissionQuotaExceeded` after the data: a temporary
/// refusal saying when the message fits, or a permanent one if it never can.
fn budget_refusal(limit: u64, n: u64, full: Full, now_unix: u64) -> Reply {
    match full {
        Full::Never => Reply::with_text(
            552,
            Enhanced(5, 5, 3),
            format!(
                "This message has {n} recipients, more than this account may send to in 24 hours \
                 ({limit}, max_recipients_per_day); split it"
            ),
        ),
        Full::Until(at) => Reply::with_text(
            452,
            Enhanced(4, 5, 3),
            format!(
                "Daily recipient limit reached: this account sends to at most {limit} recipients \
                 in 24 hours (max_recipients_per_day); room for these {n} from {} (in {} min), \
                 try again then",
                crate::dates::utc_timestamp(at),
                at.saturating_sub(now_unix).div_ceil(60)
            ),
        ),
    }
}
