//! Delivery modes: what a client's final dot waits for. `sync` passes Microsoft's verdict on,
//! `hybrid` does too when it comes within `sync_timeout` and is final, and otherwise commits the
//! message to the spool and answers `250 … Queued as`; `queue` commits first. The retry worker
//! (`worker`) then sends queued messages through the same relay, pool and pacing.

mod classify;
mod control;
mod notice;
mod queue;
mod recovery;
mod worker;

use std::sync::Arc;

use crate::BoxFuture;
use crate::config::{Delivery as Settings, DeliveryMode, OnAmbiguous};
use crate::logging::Untrusted;
use crate::message::{Body, Submission, Submit};
use crate::pacing::Clock;
use crate::relay::{Attempt, Relay};
use crate::reply::{self, Enhanced, Reply};
use crate::spool::{Hold, Meta, Spool, write_out};
use crate::swap::Swap;
use crate::upstream::Progress;

pub(crate) use queue::{AccountQueue, Queue};

/// The `Submit` the listener hands messages to.
pub(crate) struct Delivery {
    relay: Arc<Relay>,
    /// `None` only with `mode = "sync"` and no state directory.
    spool: Option<Arc<Spool>>,
    settings: Swap<Settings>,
    pub(crate) queue: Arc<Queue>,
    /// Our host name, for bounces.
    hostname: String,
    blocked: recovery::BlockedAccounts,
    /// Unix time on tokio's clock, so tests can move it.
    clock: Clock,
    /// `spool.max_messages`.
    max_messages: usize,
}

impl Delivery {
    pub(crate) fn new(
        relay: Arc<Relay>,
        spool: Option<Arc<Spool>>,
        settings: Settings,
        max_messages: usize,
        hostname: String,
    ) -> Self {
        Self {
            relay,
            spool,
            settings: Swap::new(Arc::new(settings)),
            queue: Arc::new(Queue::default()),
            hostname,
            blocked: Default::default(),
            clock: Clock::system(),
            max_messages,
        }
    }

    /// Puts the messages found in the spool at start-up in the queue (see [`restore`]).
    pub(crate) fn restore(&self, restored: Restored) {
        for (account, n) in restored.failed {
            (0..n).for_each(|_| self.queue.failed(&account));
        }
        for _ in 0..restored.interrupted {
            Queue::count(&self.queue.counters.ambiguous);
        }
        for meta in restored.queued {
            self.queue.put(meta);
        }
    }

    /// New `[delivery]` settings (a reload); the next message and attempt use them.
    pub(crate) fn retune(&self, settings: Settings) {
        self.settings.store(Arc::new(settings));
    }

    pub(crate) fn settings(&self) -> Arc<Settings> {
        self.settings.load()
    }

    /// Runs `work` on the spool on tokio's blocking threads (its file writes and fsyncs).
    async fn on_spool<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Spool) -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let Some(spool) = self.spool.clone() else {
            return Err(std::io::Error::other("no spool"));
        };
        tokio::task::spawn_blocking(move || work(&spool))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// Unix seconds on the queue's clock (tokio's, so a paused test moves it).
    pub(crate) fn now_unix(&self) -> u64 {
        self.clock.now_unix()
    }

    pub(crate) fn spool(&self) -> Option<&Arc<Spool>> {
        self.spool.as_ref()
    }

    async fn submit_message(&self, message: &Submission) -> Reply {
        let settings = self.settings.load();
        if self.spool.is_none() || settings.mode == DeliveryMode::Sync {
            return self.sync(message).await;
        }
        match settings.mode {
            DeliveryMode::Queue => {
                let why = "delivery.mode is \"queue\"";
                self.enqueue(message, why.into(), None, self.clock.now_unix())
                    .await
            }
            _ => self.hybrid(message, &settings).await,
        }
    }

    async fn sync(&self, message: &Submission) -> Reply {
        let attempt = self.relay.attempt(message, &Progress::default()).await;
        self.relay.log_attempt(message, &attempt, None);
        attempt.reply
    }

    /// Tries now; a final verdict in time goes to the client, anything else is queued. An
    /// attempt still short of its final dot at `sync_timeout` is abandoned (Microsoft never
    /// gets the whole message); one past it is waited for, since its fate is then unknown.
    async fn hybrid(&self, message: &Submission, settings: &Settings) -> Reply {
        let progress = Progress::default();
        let mut attempt = Box::pin(self.relay.attempt(message, &progress));
        let attempt = match tokio::time::timeout(settings.sync_timeout, &mut attempt).await {
            Ok(done) => done,
            Err(_) if progress.final_dot_was_sent() => attempt.await,
            Err(_) => {
                drop(attempt);
                let why = format!(
                    "no verdict within sync_timeout ({} s)",
                    settings.sync_timeout.as_secs_f32()
                );
                let next = self.clock.now_unix() + settings.retry_after(1).as_secs();
                return self.enqueue(message, why, None, next).await;
            }
        };
        if !classify::queue_after_sync(&attempt.result) {
            self.relay.log_attempt(message, &attempt, None);
            return attempt.reply;
        }
        let why = match &attempt.result {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        };
        let now = self.clock.now_unix();
        let next = worker::next_attempt(&classify::next(&attempt.result), settings, 1, now);
        self.enqueue(message, why, Some(&attempt), next).await
    }

    /// Commits `message` to the queue and answers `250 … Queued as`, or `452` if it cannot.
    async fn enqueue(
        &self,
        message: &Submission,
        why: String,
        attempt: Option<&Attempt>,
        next_attempt: u64,
    ) -> Reply {
        let Some(spool) = &self.spool else {
            return attempt.map_or(reply::SPOOL_FAILED, |a| a.reply.clone());
        };
        if self.queue.len() >= self.max_messages {
            let user = &message.submitter.user;
            tracing::error!(user = %Untrusted(user), queued = self.queue.len(), "message not queued: the queue holds spool.max_messages already (452 to the client)");
            return reply::SPOOL_FULL;
        }
        let written;
        let file = match message.body() {
            Body::File(file) => file,
            Body::Memory(content) => match write_out(spool.clone(), content).await {
                Ok(file) => {
                    written = file;
                    &written
                }
                Err(why) => {
                    let user = &message.submitter.user;
                    tracing::error!(user = %Untrusted(user), reason = %why, "message could not be queued (452 to the client)");
                    return why.reply();
                }
            },
        };
        let id = file
            .path()
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let meta = self.record(message, id.clone(), why, attempt, next_attempt);
        let (path, staged) = (file.path().to_path_buf(), meta.clone());
        if let Err(e) = self.on_spool(move |s| s.commit(&path, &staged)).await {
            let user = &message.submitter.user;
            tracing::error!(user = %Untrusted(user), id, error = %e, "message could not be queued (452 to the client)");
            return reply::SPOOL_FAILED;
        }
        Queue::count(&self.queue.counters.queued);
        if attempt.is_some_and(|a| classify::next(&a.result) == classify::Next::AccountProblem) {
            self.block(&message.submitter.account);
            let account = &message.submitter.account;
            self.queue.defer_account(account, meta.next_attempt);
        }
        if meta.ambiguous {
            Queue::count(&self.queue.counters.ambiguous);
        }
        self.log_queued(message, &meta, attempt);
        self.queue.put(meta);
        // Why is for the log and `queue list`: the client learns only that the relay owns it now.
        Reply::with_text(
            250,
            Enhanced(2, 0, 0),
            format!("Queued as {id}; the relay will deliver it"),
        )
    }

    fn record(
        &self,
        message: &Submission,
        id: String,
        why: String,
        attempt: Option<&Attempt>,
        next_attempt: u64,
    ) -> Meta {
        let envelope = &message.envelope;
        let ambiguous = attempt.is_some_and(|a| classify::ambiguous(&a.result));
        let counted = attempt.is_some_and(|a| {
            matches!(
                classify::next(&a.result),
                classify::Next::Retry { counts: true, .. } | classify::Next::AccountProblem
            )
        });
        let hold = (ambiguous && self.settings.load().on_ambiguous == OnAmbiguous::Hold)
            .then_some(Hold::Ambiguous);
        Meta {
            id,
            account: message.submitter.account.clone(),
            user: message.submitter.user.clone(),
            mail_from: envelope.mail_from.as_ref().map(|a| a.to_string()),
            rcpts: envelope.rcpts.iter().map(|a| a.to_string()).collect(),
            body_8bitmime: envelope.body_8bitmime,
            smtputf8: envelope.smtputf8,
            size: message.body().len(),
            message_id: message.message_id(),
            arrived: self.clock.now_unix(),
            attempts: u32::from(counted),
            next_attempt,
            reason: why.clone(),
            last_error: attempt.map(|_| why),
            ambiguous,
            hold,
            in_flight: false,
            warned: false,
            failure: None,
        }
    }

    fn log_queued(&self, message: &Submission, meta: &Meta, attempt: Option<&Attempt>) {
        match attempt {
            Some(attempt) => self.relay.log_attempt(message, attempt, Some(&meta.id)),
            None => {
                let who = &message.submitter;
                let message_id = meta
                    .message_id
                    .as_deref()
                    .map(|m| tracing::field::display(Untrusted(m)));
                tracing::info!(user = %who.user, account = %who.account, queue_id = %meta.id, message_id, rcpts = meta.rcpts.len(), size = meta.size, reason = %meta.reason, "message queued for a later attempt");
            }
        }
        if meta.ambiguous {
            tracing::warn!(queue_id = %meta.id, held = meta.hold.is_some(), "no verdict after the final dot: Microsoft may have the message; a retry may deliver it twice");
        }
    }
}

impl Submit for Delivery {
    fn submit<'a>(&'a self, message: &'a Submission) -> BoxFuture<'a, Reply> {
        Box::pin(self.submit_message(message))
    }
}

/// What start-up found in the spool, ready for the queue.
pub(crate) struct Restored {
    pub(crate) queued: Vec<Meta>,
    /// Of those, the ones whose attempt was under way when the relay stopped (now ambiguous).
    pub(crate) interrupted: u64,
    pub(crate) failed: std::collections::HashMap<String, u64>,
}

/// Opens the spool (blocking: run it off the async threads) and readies what it holds. A
/// message whose attempt was under way when the relay stopped may have reached Microsoft: it
/// is marked ambiguous, counted and logged like one whose verdict was lost.
pub(crate) fn restore(
    root: &std::path::Path,
    max_size: u64,
    on_ambiguous: OnAmbiguous,
) -> std::io::Result<(Spool, Restored)> {
    let (spool, found) = Spool::open(root, max_size)?;
    if found.discarded > 0 {
        tracing::info!(
            files = found.discarded,
            "removed messages that were being received when the relay stopped (their clients never got a 250)"
        );
    }
    for id in &found.corrupt {
        tracing::error!(queue_id = %id, "queued message unreadable; moved to failed/");
    }
    let mut queued = Vec::with_capacity(found.queued.len());
    let mut interrupted = 0;
    for mut meta in found.queued {
        if meta.in_flight {
            interrupted += 1;
            meta.in_flight = false;
            meta.ambiguous = true;
            if on_ambiguous == OnAmbiguous::Hold {
                meta.hold = Some(Hold::Ambiguous);
            }
            let message_id = meta.message_id.as_deref().map(Untrusted);
            tracing::warn!(queue_id = %meta.id, message_id = message_id.map(tracing::field::display), held = meta.hold.is_some(), "an attempt was under way when the relay stopped: Microsoft may have the message; a retry may deliver it twice");
            spool.update(&meta)?;
        } else if meta.ambiguous {
            // Said again at each start: the line that said it first may have been lost with
            // the process that wrote it.
            let message_id = meta.message_id.as_deref().map(Untrusted);
            tracing::warn!(queue_id = %meta.id, message_id = message_id.map(tracing::field::display), held = meta.hold.is_some(), "queued message whose verdict was lost earlier: Microsoft may have the message; a retry may deliver it twice");
        }
        queued.push(meta);
    }
    let mut failed = std::collections::HashMap::new();
    for meta in spool.failed() {
        *failed.entry(meta.account).or_default() += 1;
    }
    if !queued.is_empty() {
        tracing::info!(
            messages = queued.len(),
            "queued messages found in the spool; delivering them"
        );
    }
    Ok((
        spool,
        Restored {
            queued,
            interrupted,
            failed,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spool holding one message whose attempt was under way.
    fn interrupted(name: &str) -> std::path::PathBuf {
        let root =
            std::env::temp_dir().join(format!("xoauth-restore-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (spool, _) = Spool::open(&root, 1 << 20).unwrap();
        let id = crate::spool::new_id();
        let data = spool.tmp_dir().join(format!("{id}.msg"));
        std::fs::write(&data, b"x").unwrap();
        let meta: Meta = serde_json::from_value(serde_json::json!({
            "id": id, "account": "a", "user": "u", "mail_from": null, "rcpts": ["r@example.net"],
            "size": 1, "arrived": 1, "next_attempt": 1, "reason": "test", "in_flight": true,
        }))
        .unwrap();
        spool.commit(&data, &meta).unwrap();
        root
    }

    #[test]
    fn an_attempt_under_way_at_a_stop_is_ambiguous_at_the_next_start() {
        for (on, hold) in [
            (OnAmbiguous::Retry, None),
            (OnAmbiguous::Hold, Some(Hold::Ambiguous)),
        ] {
            let root = interrupted(on.name());
            let (_, restored) = restore(&root, 1 << 20, on).unwrap();
            assert_eq!(restored.interrupted, 1);
            let m = &restored.queued[0];
            assert!(m.ambiguous && !m.in_flight, "{m:?}");
            assert_eq!(m.hold, hold, "{m:?}");
            // Written back: the start after this one finds no attempt under way.
            let (_, again) = restore(&root, 1 << 20, on).unwrap();
            assert_eq!(again.interrupted, 0);
            assert!(again.queued[0].ambiguous);
            std::fs::remove_dir_all(&root).unwrap();
        }
    }
}
