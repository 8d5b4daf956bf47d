//! Accounts whose queued messages wait for the operator (a wrong secret, missing consent,
//! SMTP AUTH disabled), and noticing that they recovered: the route was replaced by a reload,
//! a probe or a delivery proved the account, or a token was fetched since. Their messages are
//! then due at once instead of at their next scheduled attempt.

use std::collections::HashMap;
use std::sync::Arc;

use super::Delivery;
use crate::relay::Route;

/// When an account was found needing its operator, and on which route.
pub(super) struct Blocked {
    route: usize,
    since: u64,
}

fn address(route: &Arc<Route>) -> usize {
    Arc::as_ptr(route) as usize
}

impl Delivery {
    /// A queued message of `account` failed for a reason only its operator can fix.
    pub(super) fn block(&self, account: &str) {
        let Some(route) = self.relay.route(account) else {
            return;
        };
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        blocked.entry(account.to_string()).or_insert_with(|| {
            tracing::warn!(account, "queued messages of this account wait until it can send again (fix the problem explained above; a reload retries them at once)");
            Blocked {
                route: address(&route),
                since: self.clock.now_unix(),
            }
        });
    }

    /// Makes the messages of every account that recovered due now.
    pub(super) fn check_recoveries(&self) {
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        if blocked.is_empty() {
            return;
        }
        let recovered: Vec<String> = blocked
            .iter()
            .filter(|(account, b)| self.recovered(account, b))
            .map(|(account, _)| account.clone())
            .collect();
        for account in recovered {
            blocked.remove(&account);
            let n = self.queue.due_now(Some(&account), self.clock.now_unix());
            tracing::info!(
                account,
                messages = n,
                "account can send again; retrying its queued messages now"
            );
        }
    }

    fn recovered(&self, account: &str, b: &Blocked) -> bool {
        let Some(route) = self.relay.route(account) else {
            return false;
        };
        if address(&route) != b.route {
            return true;
        }
        let token_since = route
            .stats
            .last_token()
            .is_some_and(|t| t.error.is_none() && t.at_unix > b.since);
        token_since || route.stats.current_config_problem().is_none()
    }
}

pub(super) type BlockedAccounts = std::sync::Mutex<HashMap<String, Blocked>>;
