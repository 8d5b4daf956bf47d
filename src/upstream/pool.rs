//! The idle sessions of one account: authenticated upstream conversations kept open between
//! messages, each still holding its connection slot, and the sweeper that closes them once they
//! are no longer known good (idle too long, too old, or their token near its end).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::Conversation;
use crate::config::Pool as Settings;

/// How long all QUITs of a pool that is being closed may take together.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// The idle list of one account; never longer than its `max_connections`, since every entry
/// holds one of its slots.
pub(crate) struct Pool {
    settings: Settings,
    idle: Mutex<Vec<Conversation>>,
    /// A session went back to idle: wakes one message waiting for a session.
    pub(super) returned: Notify,
    /// A session went back to idle: the sweeper looks at its deadline.
    added: Notify,
    /// No session is kept any more (shutdown, or the account was reloaded).
    closed: AtomicBool,
    sweeper: AtomicBool,
    stop: CancellationToken,
}

impl Pool {
    pub(crate) fn new(settings: Settings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            idle: Mutex::new(Vec::new()),
            returned: Notify::new(),
            added: Notify::new(),
            closed: AtomicBool::new(false),
            sweeper: AtomicBool::new(false),
            stop: CancellationToken::new(),
        })
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Conversation>> {
        // Only pushes and pops happen under the lock; a panic cannot leave the list torn.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sessions idle now.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle().len()
    }

    /// When `c`, idle since its last use, stops being known good.
    fn deadline(&self, c: &Conversation) -> Instant {
        (c.last_used + self.settings.idle)
            .min(c.opened + self.settings.max_age)
            .min(c.token_good_until)
    }

    /// The most recently used idle session that is still known good; the stale ones are
    /// closed on the way.
    pub(crate) fn take(&self) -> Option<Conversation> {
        let now = Instant::now();
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle();
            let mut found = None;
            while let Some(c) = idle.pop() {
                if self.deadline(&c) > now {
                    found = Some(c);
                    break;
                }
                stale.push(c);
            }
            found
        };
        stale
            .into_iter()
            .for_each(Conversation::close_in_background);
        found.map(|mut c| {
            c.reused = true;
            c
        })
    }

    /// Keeps `c` for the next message if it may carry one more, else says QUIT.
    pub(crate) fn give_back(self: &Arc<Self>, c: Conversation) {
        let keep = !self.closed.load(Ordering::Acquire)
            && c.messages < self.settings.max_messages
            && self.deadline(&c) > Instant::now();
        if !keep {
            c.close_in_background();
            return;
        }
        self.idle().push(c);
        if self.closed.load(Ordering::Acquire) {
            // Closed while it was being put back: the closing has already emptied the list.
            self.drain()
                .into_iter()
                .for_each(Conversation::close_in_background);
            return;
        }
        self.returned.notify_one();
        self.added.notify_one();
        if !self.sweeper.swap(true, Ordering::AcqRel) {
            tokio::spawn(sweep(self.clone()));
        }
    }

    fn drain(&self) -> Vec<Conversation> {
        std::mem::take(&mut *self.idle())
    }

    /// Closes the stale sessions; when the next one goes stale.
    fn close_stale(&self) -> Option<Instant> {
        let now = Instant::now();
        let stale: Vec<Conversation> = {
            let mut idle = self.idle();
            let (keep, stale) = idle.drain(..).partition(|c| self.deadline(c) > now);
            *idle = keep;
            stale
        };
        stale
            .into_iter()
            .for_each(Conversation::close_in_background);
        self.idle().iter().map(|c| self.deadline(c)).min()
    }

    /// From now on no session is kept; the idle ones say QUIT (waiting at most [`CLOSE_WAIT`]
    /// for all of them), and a session in use says QUIT when its message is done.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.stop.cancel();
        let mut quits = tokio::task::JoinSet::new();
        for c in self.drain() {
            quits.spawn(c.quit());
        }
        let all = async { while quits.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(CLOSE_WAIT, all).await;
    }

    /// Ends the sweeper without waiting for QUITs (the upstream is being dropped).
    pub(crate) fn stop_sweeping(&self) {
        self.stop.cancel();
    }
}

/// Closes idle sessions as their deadlines pass, so none stays open on an idle relay.
async fn sweep(pool: Arc<Pool>) {
    loop {
        let added = pool.added.notified();
        tokio::pin!(added);
        added.as_mut().enable();
        let next = pool.close_stale();
        let due = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = pool.stop.cancelled() => return,
            _ = added => {}
            _ = due => {}
        }
    }
}
