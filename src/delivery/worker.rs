//! The retry worker: takes due messages from the queue (at most the account's
//! `max_connections` at once), sends each through the same relay as a client's message, and
//! decides from the result (see `classify`) whether it is done, retried, bounced or waits for
//! its account. Every change of state is written to the spool before anything else happens.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::classify::{self, Next, Wait};
use super::{Delivery, Queue};
use crate::config::{Delivery as Settings, OnAmbiguous};
use crate::logging::Untrusted;
use crate::message::{Body, BodyFile, MAX_HEADER_SCAN, Submission, Submitter};
use crate::relay::Attempt;
use crate::spool::{Hold, Meta};
use crate::upstream::Progress;

/// Longest the worker sleeps without looking: it also notices accounts that recovered.
const POLL: Duration = Duration::from_secs(1);

/// Unix seconds of the next attempt after `next`, `attempts` counted so far (±10 % jitter on
/// the schedule, so messages queued together do not retry together).
pub(crate) fn next_attempt(next: &Next, settings: &Settings, attempts: u32, now: u64) -> u64 {
    let scheduled = settings.retry_after(attempts);
    let wait = match next {
        Next::Retry {
            wait: Wait::Short(d),
            ..
        } => (*d).min(scheduled),
        Next::Retry {
            wait: Wait::Exactly(d),
            ..
        } => *d,
        _ => jitter(scheduled),
    };
    now + wait.as_secs().max(1)
}

fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .elapsed()
            .map_or(0, |e| e.as_nanos()),
    );
    let spread = d.as_millis() as u64 / 10;
    if spread == 0 {
        return d;
    }
    let offset = h.finish() % (2 * spread + 1);
    Duration::from_millis((d.as_millis() as u64 + offset).saturating_sub(spread))
}

impl Delivery {
    /// Runs until `shutdown`; attempts in flight then finish (the tracker says when).
    pub(crate) async fn work(self: Arc<Self>, shutdown: CancellationToken, tracker: TaskTracker) {
        loop {
            self.check_recoveries();
            let now = self.clock.now_unix();
            let (due, next) = self
                .queue
                .take_due(now, |account| self.connections(account));
            for meta in due {
                let this = self.clone();
                tracker.spawn(async move { this.retry(meta).await });
            }
            let wait = next
                .map(|at| Duration::from_secs(at.saturating_sub(self.clock.now_unix())))
                .unwrap_or(POLL)
                .min(POLL);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.queue.wake.notified() => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// How many of `account`'s messages may be retried at once: one per connection it may open.
    fn connections(&self, account: &str) -> usize {
        self.relay
            .route(account)
            .map_or(1, |r| r.account.max_connections.max(1))
    }

    /// One attempt at a queued message.
    async fn retry(&self, mut meta: Meta) {
        meta.in_flight = true;
        if let Err(e) = self.write(&meta).await {
            tracing::error!(queue_id = %meta.id, error = %e, "cannot update the queued message; trying later");
            meta.in_flight = false;
            meta.next_attempt = self.clock.now_unix() + POLL.as_secs() * 30;
            return self.queue.put(meta);
        }
        let Some(message) = self.load(&meta).await else {
            return self
                .give_up(meta, "its queue files cannot be read".into(), None)
                .await;
        };
        let progress = Progress::default();
        let attempt = self.relay.attempt(&message, &progress).await;
        self.relay.explain_attempt(&message, &attempt);
        Queue::count(&self.queue.counters.retries);
        self.after(meta, &message, attempt).await;
    }

    async fn after(&self, mut meta: Meta, message: &Submission, attempt: Attempt) {
        let settings = self.settings();
        let next = classify::next(&attempt.result);
        meta.in_flight = false;
        match &next {
            Next::Delivered => return self.delivered(meta, &attempt).await,
            Next::Bounce(why) => {
                let why = format!("refused by Microsoft 365: {why}");
                return self.give_up(meta, why, Some(&attempt)).await;
            }
            Next::Retry { counts, .. } => meta.attempts += u32::from(*counts),
            Next::AccountProblem => {
                meta.attempts += 1;
                self.block(&meta.account);
            }
        }
        meta.last_error = attempt.result.as_ref().err().map(|e| e.to_string());
        let now = self.clock.now_unix();
        meta.next_attempt = next_attempt(&next, &settings, meta.attempts, now);
        if classify::ambiguous(&attempt.result) {
            self.mark_ambiguous(&mut meta, &settings);
        }
        if next == Next::AccountProblem {
            self.queue.defer_account(&meta.account, meta.next_attempt);
        }
        let age = now.saturating_sub(meta.arrived);
        if age > settings.lifetime.as_secs() {
            let why = format!(
                "still not accepted after {} h (delivery.lifetime); last error: {}",
                age / 3600,
                meta.last_error.as_deref().unwrap_or("none")
            );
            return self.give_up(meta, why, Some(&attempt)).await;
        }
        let warn = settings
            .warn_after
            .is_some_and(|after| !meta.warned && age >= after.as_secs());
        meta.warned |= warn;
        let in_secs = meta.next_attempt.saturating_sub(now);
        tracing::warn!(queue_id = %meta.id, account = %meta.account, attempts = meta.attempts, error = %Untrusted(meta.last_error.as_deref().unwrap_or("")), next_in_s = in_secs, "queued message not delivered yet; will retry");
        // Written before the notice goes, so a crash in between cannot send it twice.
        if let Err(e) = self.write(&meta).await {
            tracing::error!(queue_id = %meta.id, error = %e, "cannot update the queued message");
        }
        if warn {
            self.warn_delayed(&meta, message).await;
        }
        self.queue.put(meta);
    }

    /// The one delay notice (`delivery.warn_after`).
    async fn warn_delayed(&self, meta: &Meta, message: &Submission) {
        let kind = super::notice::Kind::Delayed;
        let status = super::notice::status(kind, None);
        let last = meta.last_error.as_deref();
        self.send_notice(meta, message, kind, status, last).await;
    }

    fn mark_ambiguous(&self, meta: &mut Meta, settings: &Settings) {
        meta.ambiguous = true;
        Queue::count(&self.queue.counters.ambiguous);
        let hold = settings.on_ambiguous == OnAmbiguous::Hold;
        if hold {
            meta.hold = Some(Hold::Ambiguous);
        }
        let message_id = meta.message_id.as_deref().map(Untrusted);
        tracing::warn!(queue_id = %meta.id, message_id = message_id.map(tracing::field::display), held = hold, "no verdict after the final dot: Microsoft may have the message; a retry may deliver it twice");
    }

    /// Forgets the message first (the spool entry goes before anything else happens, so a
    /// crash now cannot send it again), then logs.
    async fn delivered(&self, meta: Meta, attempt: &Attempt) {
        if let Err(e) = self.remove(&meta).await {
            tracing::error!(queue_id = %meta.id, error = %e, "delivered, but its queue entry could not be removed");
        }
        self.queue.remove(&meta.id);
        Queue::count(&self.queue.counters.delivered);
        let upstream = match &attempt.result {
            Ok(d) => d.reply.to_string(),
            Err(_) => String::new(),
        };
        tracing::info!(queue_id = %meta.id, account = %meta.account, user = %meta.user, rcpts = meta.rcpts.len(), size = meta.size, attempts = meta.attempts + 1, ambiguous = meta.ambiguous, upstream = %upstream, "queued message delivered");
    }

    /// Moves the message to `failed/` (the copy an operator always gets), then tells the
    /// sender with a bounce unless that would answer a bounce.
    pub(crate) async fn give_up(&self, mut meta: Meta, why: String, attempt: Option<&Attempt>) {
        meta.failure = Some(why.clone());
        meta.in_flight = false;
        let failed = meta.clone();
        let moved = self
            .on_spool(move |s| s.fail(&failed).map(|()| s.failed_data(&failed.id)))
            .await;
        self.queue.remove(&meta.id);
        self.queue.failed(&meta.account);
        Queue::count(&self.queue.counters.bounced);
        tracing::error!(queue_id = %meta.id, account = %meta.account, user = %meta.user, rcpts = meta.rcpts.len(), reason = %Untrusted(&why), "queued message given up; a copy is kept in the spool's failed/ directory");
        let head = match &moved {
            Ok(path) => read_head(path.clone()).await.unwrap_or_default(),
            Err(e) => {
                tracing::error!(queue_id = %meta.id, error = %e, "could not move the message to failed/");
                Vec::new()
            }
        };
        let error = attempt.and_then(|a| a.result.as_ref().err());
        let status = super::notice::status(super::notice::Kind::Failed, error);
        let diagnostic = error.map(upstream_reply);
        let original = Submission::new(submitter(&meta), meta.envelope().unwrap_or_default(), head);
        let kind = super::notice::Kind::Failed;
        self.send_notice(&meta, &original, kind, status, diagnostic.as_deref())
            .await;
    }

    async fn load(&self, meta: &Meta) -> Option<Submission> {
        let envelope = meta.envelope()?;
        let path = self.spool.as_ref()?.data_path(&meta.id);
        let head = read_head(path.clone()).await?;
        let body = Body::File(BodyFile::queued(path, meta.size, head));
        Some(Submission::new(submitter(meta), envelope, body))
    }

    pub(super) async fn write(&self, meta: &Meta) -> std::io::Result<()> {
        let meta = meta.clone();
        self.on_spool(move |s| s.update(&meta)).await
    }

    pub(crate) async fn remove(&self, meta: &Meta) -> std::io::Result<()> {
        let meta = meta.clone();
        self.on_spool(move |s| s.remove(&meta)).await
    }
}

/// The upstream's reply as received when it refused, for `Diagnostic-Code`; else the error.
fn upstream_reply(error: &crate::error::RelayError) -> String {
    use crate::upstream::UpstreamError;
    match error {
        crate::error::RelayError::Upstream(
            UpstreamError::Rejected { reply, .. } | UpstreamError::AuthRejected { reply, .. },
        ) => reply.to_string(),
        other => other.to_string(),
    }
}

/// Who the queued message is from, as the relay needs it (the sender was checked when it
/// was received).
fn submitter(meta: &Meta) -> Arc<Submitter> {
    Arc::new(Submitter {
        user: meta.user.clone(),
        account: meta.account.clone(),
        allowed_senders: Vec::new(),
        allowed_recipient_domains: Vec::new(),
    })
}

/// The first octets of a message file, enough for its header.
async fn read_head(path: std::path::PathBuf) -> Option<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut head = Vec::with_capacity(MAX_HEADER_SCAN);
        std::fs::File::open(path)
            .ok()?
            .take(MAX_HEADER_SCAN as u64)
            .read_to_end(&mut head)
            .ok()?;
        Some(head)
    })
    .await
    .ok()
    .flatten()
}
