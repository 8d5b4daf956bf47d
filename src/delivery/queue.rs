//! The in-memory index of the queue, rebuilt from the spool at start-up: which message is due
//! when, which are running, held or waiting for their account, and the counts `/status` and
//! `/metrics` show. The files are the truth; this only orders them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::spool::Meta;

/// One message of the queue.
struct Entry {
    meta: Meta,
    running: bool,
}

/// Per account, what `/status` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct AccountQueue {
    pub(crate) queued: u64,
    pub(crate) held: u64,
    pub(crate) failed: u64,
    /// Unix seconds of the oldest message still queued or held.
    pub(crate) oldest_arrived: Option<u64>,
    /// Unix seconds of the next attempt.
    pub(crate) next_attempt: Option<u64>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) queued: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) bounced: AtomicU64,
    pub(crate) ambiguous: AtomicU64,
    pub(crate) deleted: AtomicU64,
}

#[derive(Default)]
pub(crate) struct Queue {
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Messages in `failed/` per account.
    failed: Mutex<HashMap<String, u64>>,
    pub(crate) wake: Notify,
    pub(crate) counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Queue {
    /// Adds (or replaces) a message that is not running, and wakes the worker.
    pub(crate) fn put(&self, meta: Meta) {
        let id = meta.id.clone();
        lock(&self.entries).insert(
            id,
            Entry {
                meta,
                running: false,
            },
        );
        self.wake.notify_one();
    }

    /// Messages queued or held.
    pub(crate) fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    pub(crate) fn remove(&self, id: &str) -> Option<Meta> {
        lock(&self.entries).remove(id).map(|e| e.meta)
    }

    pub(crate) fn failed(&self, account: &str) {
        *lock(&self.failed).entry(account.to_string()).or_default() += 1;
    }

    /// A copy of a message's record.
    pub(crate) fn get(&self, id: &str) -> Option<Meta> {
        lock(&self.entries).get(id).map(|e| e.meta.clone())
    }

    /// Every record, oldest first.
    pub(crate) fn all(&self) -> Vec<Meta> {
        lock(&self.entries)
            .values()
            .map(|e| e.meta.clone())
            .collect()
    }

    pub(crate) fn is_running(&self, id: &str) -> bool {
        lock(&self.entries).get(id).is_some_and(|e| e.running)
    }

    /// Takes a message that is not running for a change (marked running, so the worker leaves
    /// it alone until it is [`put`](Queue::put) back); `None` when it is unknown or running.
    pub(crate) fn checkout(&self, id: &str) -> Option<Meta> {
        let mut entries = lock(&self.entries);
        let entry = entries.get_mut(id).filter(|e| !e.running)?;
        entry.running = true;
        Some(entry.meta.clone())
    }

    /// Puts off every waiting message of `account` until at least `until`: while the account
    /// cannot send, one message at a time finds out when it can (as Postfix treats a dead
    /// destination), instead of every queued message asking for a token.
    pub(crate) fn defer_account(&self, account: &str, until: u64) {
        for e in lock(&self.entries).values_mut() {
            if e.meta.account == account && !e.running && e.meta.next_attempt < until {
                e.meta.next_attempt = until;
            }
        }
    }

    /// Makes every waiting message of `account` (or of all accounts) due now; returns how many.
    pub(crate) fn due_now(&self, account: Option<&str>, now: u64) -> usize {
        let mut n = 0;
        for e in lock(&self.entries).values_mut() {
            let matches = account.is_none_or(|a| e.meta.account == a);
            if matches && !e.running && e.meta.hold.is_none() && e.meta.next_attempt > now {
                e.meta.next_attempt = now;
                n += 1;
            }
        }
        self.wake.notify_one();
        n
    }

    /// Marks as running and returns the messages due at `now`, at most `limit(account)` running
    /// per account, and the time of the next one not yet due.
    pub(crate) fn take_due(
        &self,
        now: u64,
        limit: impl Fn(&str) -> usize,
    ) -> (Vec<Meta>, Option<u64>) {
        let mut entries = lock(&self.entries);
        let mut running: HashMap<String, usize> = HashMap::new();
        for e in entries.values().filter(|e| e.running) {
            *running.entry(e.meta.account.clone()).or_default() += 1;
        }
        let mut due = Vec::new();
        let mut next: Option<u64> = None;
        for e in entries.values_mut() {
            if e.running || e.meta.hold.is_some() {
                continue;
            }
            if e.meta.next_attempt > now {
                next = Some(next.map_or(e.meta.next_attempt, |n| n.min(e.meta.next_attempt)));
                continue;
            }
            let n = running.entry(e.meta.account.clone()).or_default();
            if *n < limit(&e.meta.account) {
                *n += 1;
                e.running = true;
                due.push(e.meta.clone());
            }
        }
        (due, next)
    }

    /// Per account: queued, held, failed, the oldest, the next attempt.
    pub(crate) fn summary(&self) -> BTreeMap<String, AccountQueue> {
        let mut out: BTreeMap<String, AccountQueue> = BTreeMap::new();
        for e in lock(&self.entries).values() {
            let q = out.entry(e.meta.account.clone()).or_default();
            match e.meta.hold {
                Some(_) => q.held += 1,
                None => {
                    q.queued += 1;
                    let at = e.meta.next_attempt;
                    q.next_attempt = Some(q.next_attempt.map_or(at, |n| n.min(at)));
                }
            }
            let arrived = e.meta.arrived;
            q.oldest_arrived = Some(q.oldest_arrived.map_or(arrived, |o| o.min(arrived)));
        }
        for (account, n) in lock(&self.failed).iter() {
            out.entry(account.clone()).or_default().failed = *n;
        }
        out
    }

    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, account: &str, next_attempt: u64) -> Meta {
        serde_json::from_value(serde_json::json!({
            "id": id, "account": account, "user": "u", "mail_from": null, "rcpts": [],
            "size": 1, "arrived": 1, "next_attempt": next_attempt, "reason": "test",
        }))
        .unwrap()
    }

    #[test]
    fn an_account_that_cannot_send_is_tried_with_one_message_per_wait() {
        let q = Queue::default();
        q.put(meta("0000000000000001", "a", 10));
        q.put(meta("0000000000000002", "a", 10));
        q.put(meta("0000000000000003", "b", 10));
        let limit = |_: &str| 1;
        let (due, _) = q.take_due(10, limit);
        let ids: Vec<_> = due.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            ["0000000000000001", "0000000000000003"],
            "one per account at once"
        );
        // The one of `a` failed for a reason only the operator can fix: the others of `a` wait
        // as long as it does, `b` is not affected.
        q.defer_account("a", 70);
        let mut failed = due[0].clone();
        failed.next_attempt = 70;
        q.put(failed);
        let (due, next) = q.take_due(11, limit);
        assert!(due.is_empty(), "{due:?}");
        assert_eq!(next, Some(70));
        assert_eq!(
            q.due_now(Some("a"), 12),
            2,
            "recovery makes them due at once"
        );
        assert_eq!(q.take_due(12, |_| 5).0.len(), 2);
    }
}
