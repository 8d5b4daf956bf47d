//! Per-address limits: how many connections one client address may hold, and a budget of
//! failed logins: a guess is counted when its check starts (so parallel connections cannot
//! start more checks than the budget), and once the budget is spent the address is locked out
//! (`421 4.7.0` until the cool-down ends), new connections and open ones alike. Memory is
//! bounded: an address is tracked only while it has connections, checks or recent failures, and
//! the tables are pruned when they grow.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Above this many tracked addresses (or login keys), stale entries are pruned before adding
/// another.
const PRUNE_AT: usize = 10_000;

/// At most this much of a user name goes into a login key: a configured name is shorter, and
/// longer unknown names sharing one budget harms no one.
const KEY_NAME_MAX: usize = 64;

/// Whose failed logins share one budget: a user name at a client address, or (for names no
/// user has, from a remote address) the address alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct LoginKey {
    ip: IpAddr,
    /// Lowercase, at most [`KEY_NAME_MAX`] bytes; `None` for the whole address.
    user: Option<String>,
}

impl LoginKey {
    pub(crate) fn address(ip: IpAddr) -> Self {
        Self {
            ip: ip.to_canonical(),
            user: None,
        }
    }

    /// The budget a login attempt as `user` from `ip` counts against. Counting per user name
    /// means one program with a stale password locks out only itself, not every program on
    /// `127.0.0.1` (or behind one NAT address); a known name's budget still caps the guesses
    /// at its password. Guessing names that no user has, from a remote address, is counted
    /// per address, so scanning names does not buy more guesses. On loopback every name is
    /// its own key: whoever guesses there is already on the machine, and a program with a
    /// mistyped name must not shut the others out.
    pub(crate) fn for_login(ip: IpAddr, user: &str, known: bool) -> Self {
        let ip = ip.to_canonical();
        if !known && !ip.is_loopback() {
            return Self::address(ip);
        }
        let mut name = user.to_lowercase();
        if name.len() > KEY_NAME_MAX {
            let mut end = KEY_NAME_MAX;
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            name.truncate(end);
        }
        Self {
            ip,
            user: Some(name),
        }
    }
}

impl LoginKey {
    pub(crate) fn is_per_user(&self) -> bool {
        self.user.is_some()
    }
}

/// A lockout in force, for `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lockout {
    pub(crate) address: IpAddr,
    /// `None` when the whole address is locked out.
    pub(crate) user: Option<String>,
    pub(crate) remaining: Duration,
    pub(crate) failures: u32,
}

#[derive(Debug, Default)]
struct Budget {
    failures: u32,
    /// Checks started and not finished; they count against the budget already.
    in_flight: u32,
    window_start: Option<Instant>,
    locked_until: Option<Instant>,
    /// The failures that caused the lockout in force.
    failures_at_lockout: u32,
}

impl Budget {
    fn is_locked(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|t| now < t)
    }

    fn is_stale(&self, now: Instant, window: Duration) -> bool {
        self.in_flight == 0
            && !self.is_locked(now)
            && self.window_start.is_none_or(|t| now >= t + window)
    }

    /// Failures count within one lockout-long window.
    fn roll_window(&mut self, now: Instant, window: Duration) {
        if self.window_start.is_none_or(|t| now >= t + window) {
            self.window_start = Some(now);
            self.failures = 0;
        }
    }
}

#[derive(Default)]
struct Tables {
    connections: HashMap<IpAddr, usize>,
    logins: HashMap<LoginKey, Budget>,
}

/// Why a connection is refused at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    LockedOut,
    TooManyConnections,
}

/// The key is locked out: no check may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockedOut;

/// After a failed AUTH: how many failures this key has, and whether it is now locked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) failures: u32,
    pub(crate) locked_out: bool,
}

pub(crate) struct IpGuard {
    tables: Mutex<Tables>,
    /// Wakes checks waiting for budget whenever a check in flight ends.
    finished: Notify,
    max_connections: usize,
    max_failures: u32,
    lockout: Duration,
}

/// A connection slot of one address, released on drop.
pub(crate) struct Permit {
    guard: Arc<IpGuard>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut tables = self.guard.lock();
        if let Some(n) = tables.connections.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                tables.connections.remove(&self.ip);
            }
        }
    }
}

/// One guess counted against its key's budget. Say how it ended with [`Guess::failed`] or
/// [`Guess::succeeded`]; dropped without either (the check could not run), it is given back.
pub(crate) struct Guess {
    guard: Arc<IpGuard>,
    key: LoginKey,
}

impl Guess {
    /// The password was wrong: the guess becomes a failure, which may lock the key out.
    pub(crate) fn failed(self) -> Failure {
        let guard = &self.guard;
        let now = Instant::now();
        let mut tables = guard.lock();
        let budget = tables.logins.entry(self.key.clone()).or_default();
        budget.roll_window(now, guard.lockout);
        budget.failures += 1;
        let failures = budget.failures;
        let locked_out = failures >= guard.max_failures;
        if locked_out {
            budget.locked_until = Some(now + guard.lockout);
            budget.failures_at_lockout = failures;
            budget.failures = 0;
            budget.window_start = None;
        }
        Failure {
            failures,
            locked_out,
        }
    }

    /// A successful AUTH clears the key's failures.
    pub(crate) fn succeeded(self) {
        if let Some(b) = self.guard.lock().logins.get_mut(&self.key) {
            b.failures = 0;
            b.window_start = None;
        }
    }
}

impl Drop for Guess {
    fn drop(&mut self) {
        if let Some(b) = self.guard.lock().logins.get_mut(&self.key) {
            b.in_flight = b.in_flight.saturating_sub(1);
        }
        self.guard.finished.notify_waiters();
    }
}

enum Reserve {
    Granted,
    LockedOut,
    /// The budget is taken by checks in flight; one of them may give it back.
    Wait,
}

impl IpGuard {
    pub(crate) fn new(max_connections: usize, max_failures: u32, lockout: Duration) -> Arc<Self> {
        Arc::new(Self {
            tables: Mutex::new(Tables::default()),
            finished: Notify::new(),
            max_connections,
            max_failures: max_failures.max(1),
            lockout,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // Counters only; a panic elsewhere cannot leave them meaningfully inconsistent.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets a new connection from `ip` in, or says why not.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let ip = ip.to_canonical();
        let now = Instant::now();
        let mut tables = self.lock();
        let locked = tables.logins.get(&LoginKey::address(ip));
        if locked.is_some_and(|b| b.is_locked(now)) {
            return Err(Refusal::LockedOut);
        }
        let connections = tables.connections.entry(ip).or_default();
        if *connections >= self.max_connections {
            return Err(Refusal::TooManyConnections);
        }
        *connections += 1;
        Ok(Permit {
            guard: self.clone(),
            ip,
        })
    }

    /// Counts a guess for `key` before its check starts, waiting while checks in flight hold
    /// the rest of the budget; `LockedOut` when the key is (or becomes) locked out.
    pub(crate) async fn reserve(self: &Arc<Self>, key: LoginKey) -> Result<Guess, LockedOut> {
        loop {
            // Registered before looking, so a check ending in between still wakes us.
            let finished = self.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            match self.try_reserve(&key) {
                Reserve::Granted => {
                    let guard = self.clone();
                    return Ok(Guess { guard, key });
                }
                Reserve::LockedOut => return Err(LockedOut),
                Reserve::Wait => finished.await,
            }
        }
    }

    fn try_reserve(&self, key: &LoginKey) -> Reserve {
        let now = Instant::now();
        let mut tables = self.lock();
        if tables.logins.len() >= PRUNE_AT && !tables.logins.contains_key(key) {
            tables.logins.retain(|_, b| !b.is_stale(now, self.lockout));
            if tables.logins.len() >= PRUNE_AT {
                evict_oldest(&mut tables.logins);
            }
        }
        let budget = tables.logins.entry(key.clone()).or_default();
        if budget.is_locked(now) {
            return Reserve::LockedOut;
        }
        budget.roll_window(now, self.lockout);
        if budget.in_flight > 0 && budget.failures + budget.in_flight >= self.max_failures {
            return Reserve::Wait;
        }
        budget.in_flight += 1;
        Reserve::Granted
    }

    pub(crate) fn lockout_duration(&self) -> Duration {
        self.lockout
    }

    /// The lockouts in force, longest remaining first.
    pub(crate) fn lockouts(&self) -> Vec<Lockout> {
        let now = Instant::now();
        let tables = self.lock();
        let mut all: Vec<Lockout> = tables
            .logins
            .iter()
            .filter_map(|(key, b)| {
                let until = b.locked_until.filter(|t| now < *t)?;
                Some(Lockout {
                    address: key.ip,
                    user: key.user.clone(),
                    remaining: until - now,
                    failures: b.failures_at_lockout,
                })
            })
            .collect();
        all.sort_by_key(|l| std::cmp::Reverse(l.remaining));
        all
    }

    /// Ends every lockout now (an operator's SIGHUP); returns how many there were. Failures
    /// counted towards a lockout are forgotten too, so the next one needs a full budget.
    pub(crate) fn clear_lockouts(&self) -> usize {
        let now = Instant::now();
        let mut tables = self.lock();
        let mut cleared = 0;
        for b in tables.logins.values_mut() {
            if b.is_locked(now) {
                cleared += 1;
            }
            b.locked_until = None;
            b.failures = 0;
            b.window_start = None;
        }
        tables.logins.retain(|_, b| b.in_flight > 0);
        cleared
    }

    /// Addresses and login keys currently tracked.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        let tables = self.lock();
        tables.connections.len() + tables.logins.len()
    }
}

/// Makes room in a table full of live entries (many addresses locked out at once): drops the
/// entry whose lockout or window ends first, so the table never grows past its bound.
fn evict_oldest(logins: &mut HashMap<LoginKey, Budget>) {
    let oldest = logins
        .iter()
        .filter(|(_, b)| b.in_flight == 0)
        .min_by_key(|(_, b)| b.locked_until.or(b.window_start))
        .map(|(k, _)| k.clone());
    if let Some(k) = oldest {
        logins.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    fn key(last: u8) -> LoginKey {
        LoginKey::address(ip(last))
    }

    async fn fail(g: &Arc<IpGuard>, k: LoginKey) -> Failure {
        g.reserve(k).await.expect("not locked out").failed()
    }

    #[tokio::test(start_paused = true)]
    async fn connection_cap_per_address() {
        let g = IpGuard::new(2, 5, Duration::from_secs(60));
        let a = g.admit(ip(1)).unwrap();
        let _b = g.admit(ip(1)).unwrap();
        assert_eq!(g.admit(ip(1)).err(), Some(Refusal::TooManyConnections));
        assert!(g.admit(ip(2)).is_ok(), "other addresses are not affected");
        drop(a);
        let _c = g.admit(ip(1)).unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            g.admit(mapped).err(),
            Some(Refusal::TooManyConnections),
            "IPv4-mapped is the same address"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn lockout_after_failures_then_cool_down() {
        let g = IpGuard::new(10, 3, Duration::from_secs(900));
        assert_eq!(
            fail(&g, key(1)).await,
            Failure {
                failures: 1,
                locked_out: false
            }
        );
        assert_eq!(fail(&g, key(1)).await.failures, 2);
        assert!(fail(&g, key(1)).await.locked_out);
        assert_eq!(g.admit(ip(1)).err(), Some(Refusal::LockedOut));
        assert_eq!(g.reserve(key(1)).await.err(), Some(LockedOut));
        tokio::time::advance(Duration::from_secs(899)).await;
        assert_eq!(g.admit(ip(1)).err(), Some(Refusal::LockedOut));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(g.admit(ip(1)).is_ok());
        assert!(g.reserve(key(1)).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_age_out_and_success_clears_them() {
        let g = IpGuard::new(10, 3, Duration::from_secs(60));
        fail(&g, key(1)).await;
        fail(&g, key(1)).await;
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(fail(&g, key(1)).await.failures, 1, "the window restarted");
        fail(&g, key(1)).await;
        g.reserve(key(1)).await.unwrap().succeeded();
        assert_eq!(fail(&g, key(1)).await.failures, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn guesses_in_flight_hold_the_budget() {
        let g = IpGuard::new(10, 3, Duration::from_secs(900));
        let held: Vec<Guess> = vec![
            g.reserve(key(1)).await.unwrap(),
            g.reserve(key(1)).await.unwrap(),
            g.reserve(key(1)).await.unwrap(),
        ];
        let fourth = tokio::spawn({
            let g = g.clone();
            async move { g.reserve(key(1)).await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert!(
            !fourth.is_finished(),
            "waits while three checks are in flight"
        );
        assert!(
            g.reserve(key(2)).await.is_ok(),
            "other keys are not affected"
        );
        for guess in held {
            guess.failed();
        }
        assert_eq!(fourth.await.unwrap(), Err(LockedOut));
    }

    #[tokio::test(start_paused = true)]
    async fn a_guess_that_could_not_run_is_given_back() {
        let g = IpGuard::new(10, 1, Duration::from_secs(900));
        drop(g.reserve(key(1)).await.unwrap());
        let again = tokio::time::timeout(Duration::from_secs(1), g.reserve(key(1)));
        assert!(again.await.expect("not waiting").is_ok());
    }

    #[test]
    fn keys_per_user_on_loopback_and_for_known_names() {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let remote = ip(1);
        let per_user = LoginKey::for_login(loopback, "Printer", true);
        assert!(per_user.is_per_user());
        assert_eq!(per_user, LoginKey::for_login(loopback, "printer", true));
        assert_ne!(per_user, LoginKey::for_login(loopback, "scanner", true));
        assert!(LoginKey::for_login(loopback, "nobody", false).is_per_user());
        assert!(LoginKey::for_login(remote, "printer", true).is_per_user());
        assert_eq!(
            LoginKey::for_login(remote, "nobody", false),
            LoginKey::address(remote),
            "guessing names from a remote address counts per address"
        );
        let long = "é".repeat(100);
        let key = LoginKey::for_login(loopback, &long, false);
        assert!(key.user.unwrap().len() <= KEY_NAME_MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn lockouts_are_listed_and_cleared() {
        let g = IpGuard::new(10, 2, Duration::from_secs(900));
        let printer = LoginKey::for_login(ip(1), "printer", true);
        fail(&g, printer.clone()).await;
        fail(&g, printer.clone()).await;
        fail(&g, key(2)).await;
        let listed = g.lockouts();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].user.as_deref(), Some("printer"));
        assert_eq!(listed[0].failures, 2);
        assert_eq!(listed[0].remaining, Duration::from_secs(900));
        assert!(
            g.admit(ip(1)).is_ok(),
            "a user's lockout does not close the door"
        );
        assert_eq!(g.reserve(printer.clone()).await.err(), Some(LockedOut));
        assert_eq!(g.clear_lockouts(), 1);
        assert!(g.lockouts().is_empty());
        assert!(g.reserve(printer).await.is_ok());
        assert_eq!(
            fail(&g, key(2)).await.failures,
            1,
            "failures were forgotten too"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_table_full_of_lockouts_stays_bounded() {
        let g = IpGuard::new(10, 1, Duration::from_secs(900));
        for i in 0..PRUNE_AT as u32 + 50 {
            fail(&g, LoginKey::address(IpAddr::from(i.to_be_bytes()))).await;
        }
        assert!(g.tracked() <= PRUNE_AT, "{}", g.tracked());
    }

    #[tokio::test(start_paused = true)]
    async fn table_is_pruned() {
        let g = IpGuard::new(10, 3, Duration::from_secs(60));
        for i in 0..PRUNE_AT as u32 + 50 {
            fail(&g, LoginKey::address(IpAddr::from(i.to_be_bytes()))).await;
        }
        tokio::time::advance(Duration::from_secs(61)).await;
        fail(&g, key(9)).await;
        drop(g.admit(ip(9)).unwrap());
        assert!(g.tracked() < 100, "{}", g.tracked());
    }
}
