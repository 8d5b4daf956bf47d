//! `[delivery]` and `[spool]`: when a `250` waits for Microsoft and when it means "on disk",
//! how queued messages are retried, and where the queue lives.

use std::time::Duration;

use super::values;

settings! {
    /// `[delivery]`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Delivery {
        /// `sync`, `hybrid` or `queue`.
        mode: DeliveryMode = DeliveryMode::Hybrid;
        /// Hybrid: the longest a client waits at its final dot for an attempt whose own final
        /// dot has not gone upstream yet; then the message is queued instead.
        // Well inside the client's own wait for the final reply (RFC 5321 §4.5.3.2.6: 10
        // minutes), short enough for programs with a 30 s timeout.
        sync_timeout: Duration = super::seconds(15) => "values::duration";
        /// Waits between attempts; the last one repeats.
        // Upstream blips (throttling, a token refresh) are short: early retries come soon, then
        // hourly, as Stalwart and Postfix do.
        retry: Vec<Duration> = vec![
            super::minutes(1), super::minutes(2), super::minutes(5), super::minutes(10),
            super::minutes(20), super::minutes(30), super::minutes(60),
        ] => "values::durations";
        /// A message still undelivered this long after it arrived is bounced.
        // RFC 5321 §4.5.4.1: give up after at least 4–5 days.
        lifetime: Duration = super::days(5) => "values::duration";
        /// A message whose final dot went upstream but whose verdict never came.
        on_ambiguous: OnAmbiguous = OnAmbiguous::Retry;
        /// Tell the sender once that a message is still queued after this long (off when unset).
        // Off, like Postfix's delay_warning_time: most senders here are programs.
        warn_after: Option<Duration> = None => "values::optional_duration";
        /// `/readyz` warns when a message has waited longer than this.
        warn_queue_age: Duration = super::minutes(30) => "values::duration";
    }
}

settings! {
    /// `[spool]`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Spool {
        /// The queue's directory; relative to `state_dir`.
        dir: String = "spool".to_string();
        /// Messages being received and queued together; beyond, new ones get `452 4.3.1`.
        max_size: usize = 1 << 30 => "values::size";
        /// Messages queued at once; beyond, new ones get `452 4.3.1` (bounds the index in
        /// memory, whatever the messages' sizes).
        // A day of 30 messages a minute for 2 mailboxes: far more than one relay should hold.
        max_messages: usize = 100_000 => "values::count";
    }
}

/// `delivery.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeliveryMode {
    /// The client gets Microsoft's verdict; a temporary failure is its `4xx` to retry.
    Sync,
    /// Microsoft's verdict when it comes in time, else the message is queued.
    #[default]
    Hybrid,
    /// Queued first, delivered in the background.
    Queue,
}

/// `delivery.on_ambiguous`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnAmbiguous {
    /// Send it again: at least once beats never.
    #[default]
    Retry,
    /// Keep it for an operator to release or delete.
    Hold,
}

impl DeliveryMode {
    pub const ALL: [DeliveryMode; 3] = [Self::Sync, Self::Hybrid, Self::Queue];

    pub fn name(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Hybrid => "hybrid",
            Self::Queue => "queue",
        }
    }
}

impl OnAmbiguous {
    pub const ALL: [OnAmbiguous; 2] = [Self::Retry, Self::Hold];

    pub fn name(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Hold => "hold",
        }
    }
}

impl Delivery {
    /// The wait before attempt `n + 1` after `n` attempts (`n` ≥ 1); the last value repeats.
    pub fn retry_after(&self, attempts: u32) -> Duration {
        let i = (attempts.max(1) - 1) as usize;
        self.retry
            .get(i)
            .or(self.retry.last())
            .copied()
            .unwrap_or(super::minutes(60))
    }
}
