//! Per-address limits: how many connections one client address may hold, and a lockout for an
//! address that keeps failing AUTH (`421 4.7.0` until the cool-down ends). Memory is bounded:
//! an address is tracked only while it has connections or recent failures, and the table is
//! pruned when it grows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Above this many tracked addresses, stale entries are pruned before adding another.
const PRUNE_AT: usize = 10_000;

#[derive(Debug, Default)]
struct Entry {
    connections: usize,
    failures: u32,
    window_start: Option<Instant>,
    locked_until: Option<Instant>,
}

impl Entry {
    fn is_stale(&self, now: Instant, window: Duration) -> bool {
        self.connections == 0
            && self.locked_until.is_none_or(|t| t <= now)
            && self.window_start.is_none_or(|t| now >= t + window)
    }
}

/// Why a connection is refused at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    LockedOut,
    TooManyConnections,
}

/// After a failed AUTH: how many failures this address has, and whether it is now locked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub failures: u32,
    pub locked_out: bool,
}

pub struct IpGuard {
    entries: Mutex<HashMap<IpAddr, Entry>>,
    max_connections: usize,
    max_failures: u32,
    lockout: Duration,
}

/// A connection slot of one address, released on drop.
pub struct Permit {
    guard: Arc<IpGuard>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut entries = self.guard.lock();
        if let Some(e) = entries.get_mut(&self.ip) {
            e.connections = e.connections.saturating_sub(1);
        }
    }
}

impl IpGuard {
    pub fn new(max_connections: usize, max_failures: u32, lockout: Duration) -> Arc<Self> {
        Arc::new(Self {
            entries: Mutex::new(HashMap::new()),
            max_connections,
            max_failures,
            lockout,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        // Counters only; a panic elsewhere cannot leave them meaningfully inconsistent.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets a new connection from `ip` in, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let ip = ip.to_canonical();
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= PRUNE_AT && !entries.contains_key(&ip) {
            entries.retain(|_, e| !e.is_stale(now, self.lockout));
        }
        let entry = entries.entry(ip).or_default();
        if entry.locked_until.is_some_and(|t| now < t) {
            return Err(Refusal::LockedOut);
        }
        if entry.connections >= self.max_connections {
            return Err(Refusal::TooManyConnections);
        }
        entry.connections += 1;
        Ok(Permit {
            guard: self.clone(),
            ip,
        })
    }

    /// Records a failed AUTH from `ip`; failures count within one lockout-long window.
    pub fn auth_failed(&self, ip: IpAddr) -> Failure {
        let now = Instant::now();
        let mut entries = self.lock();
        let entry = entries.entry(ip.to_canonical()).or_default();
        if entry.window_start.is_none_or(|t| now >= t + self.lockout) {
            entry.window_start = Some(now);
            entry.failures = 0;
        }
        entry.failures += 1;
        let failures = entry.failures;
        let locked_out = failures >= self.max_failures;
        if locked_out {
            entry.locked_until = Some(now + self.lockout);
            entry.failures = 0;
            entry.window_start = None;
        }
        Failure {
            failures,
            locked_out,
        }
    }

    /// A successful AUTH clears the address's failures.
    pub fn auth_succeeded(&self, ip: IpAddr) {
        if let Some(e) = self.lock().get_mut(&ip.to_canonical()) {
            e.failures = 0;
            e.window_start = None;
        }
    }

    /// Addresses currently tracked (for tests and status).
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
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
            g.auth_failed(ip(1)),
            Failure {
                failures: 1,
                locked_out: false
            }
        );
        assert_eq!(g.auth_failed(ip(1)).failures, 2);
        assert!(g.auth_failed(ip(1)).locked_out);
        assert_eq!(g.admit(ip(1)).err(), Some(Refusal::LockedOut));
        tokio::time::advance(Duration::from_secs(899)).await;
        assert_eq!(g.admit(ip(1)).err(), Some(Refusal::LockedOut));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(g.admit(ip(1)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_age_out_and_success_clears_them() {
        let g = IpGuard::new(10, 3, Duration::from_secs(60));
        g.auth_failed(ip(1));
        g.auth_failed(ip(1));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(g.auth_failed(ip(1)).failures, 1, "the window restarted");
        g.auth_failed(ip(1));
        g.auth_succeeded(ip(1));
        assert_eq!(g.auth_failed(ip(1)).failures, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn table_is_pruned() {
        let g = IpGuard::new(10, 3, Duration::from_secs(60));
        for i in 0..PRUNE_AT as u32 + 50 {
            g.auth_failed(IpAddr::from(i.to_be_bytes()));
        }
        tokio::time::advance(Duration::from_secs(61)).await;
        drop(g.admit(ip(9)).unwrap());
        assert!(g.tracked() < 100, "{}", g.tracked());
    }
}
