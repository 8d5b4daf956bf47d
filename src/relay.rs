//! The relay: for one submitted message, get the account's token, deliver upstream, retry
//! once with a new token when Exchange refuses a cached one, turn the outcome into the client's
//! reply, and log one line per message (plus a plain-words explanation of a known failure the
//! first time it happens).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::BoxFuture;
use crate::address::Address;
use crate::config::{Account, LogRecipients};
use crate::error::explain::{Explanation, TOKEN_REJECTED, explain, explain_for, explain_reply};
use crate::error::{Class, RelayError, reply_for};
use crate::logging::{List, Untrusted};
use crate::message::{Submission, Submit};
use crate::oauth::TokenCache;
use crate::pacing::Pacer;
use crate::reply::Reply;
use crate::stats::{AccountStats, Evidence, Outcome};
use crate::swap::Swap;
use crate::upstream::{Delivered, Phase, Progress, Upstream, UpstreamError};

/// What one attempt did: the result, the reply it makes for a client, and when it began.
pub(crate) struct Attempt {
    pub(crate) result: Result<Delivered, RelayError>,
    pub(crate) reply: Reply,
    pub(crate) started: Instant,
}

/// One upstream account: its settings, tokens, transport and statistics.
pub(crate) struct Route {
    pub(crate) account: Arc<Account>,
    pub(crate) tokens: Arc<TokenCache>,
    pub(crate) upstream: Arc<dyn Upstream>,
    pub(crate) stats: Arc<AccountStats>,
    pub(crate) pacer: Arc<Pacer>,
}

/// A pacing ticket whose attempt may be abandoned (hybrid delivery gives up on a slow one
/// before its final dot): dropped unsettled, its recipients are given back.
struct Unsettled<'a> {
    pacer: &'a Pacer,
    ticket: Option<crate::pacing::Ticket>,
}

impl Drop for Unsettled<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.pacer.release(ticket);
        }
    }
}

/// The routes by account name.
type Routes = HashMap<String, Arc<Route>>;

/// One for the life of the process; a reload replaces its routes, and a message in flight
/// finishes on the routes it started with.
pub(crate) struct Relay {
    routes: Swap<Routes>,
    /// The explanation last logged per account, so a recurring failure is explained once and
    /// then only mentioned, until a success clears it.
    explained: Mutex<HashMap<String, &'static str>>,
    /// `log.recipients = "domain"`: the per-message line shows only the recipients' domains.
    recipient_domains_only: AtomicBool,
}

impl Relay {
    pub(crate) fn new(routes: impl IntoIterator<Item = Arc<Route>>) -> Self {
        Self {
            routes: Swap::new(Arc::new(by_name(routes))),
            explained: Mutex::new(HashMap::new()),
            recipient_domains_only: AtomicBool::new(false),
        }
    }

    /// How the per-message line shows recipients; a reload may change it.
    pub(crate) fn log_recipients(&self, detail: LogRecipients) {
        let domains = detail == LogRecipients::Domain;
        self.recipient_domains_only
            .store(domains, Ordering::Relaxed);
    }

    /// Puts `routes` in place of the current ones (a reload).
    pub(crate) fn replace(&self, routes: impl IntoIterator<Item = Arc<Route>>) {
        self.routes.store(Arc::new(by_name(routes)));
    }

    /// All routes.
    pub(crate) fn routes(&self) -> Vec<Arc<Route>> {
        self.routes.load().values().cloned().collect()
    }

    /// Delivers `message` through `route`, all recipients or none.
    async fn deliver(
        &self,
        route: Option<&Route>,
        message: &Submission,
        progress: &Progress,
    ) -> Result<Delivered, RelayError> {
        let account = &message.submitter.account;
        let route = route.ok_or_else(|| RelayError::NoRoute(account.clone()))?;
        let issued = route.tokens.get().await?;
        let first = route
            .upstream
            .deliver(&issued.token, &message.envelope, message.body(), progress)
            .await;
        match first {
            // A password (AUTH LOGIN) is not a token: a new one cannot cure its refusal.
            Err(UpstreamError::AuthRejected {
                mechanism: crate::upstream::Mechanism::Xoauth2,
                reply,
                ..
            }) if !issued.fresh && token_may_be_stale(&reply) => {
                tracing::info!(account = %account, upstream = %reply, "cached token refused; fetching a new one and retrying once");
                route.tokens.invalidate(&issued.token).await;
                let again = route.tokens.get().await?;
                Ok(route
                    .upstream
                    .deliver(&again.token, &message.envelope, message.body(), progress)
                    .await?)
            }
            other => Ok(other?),
        }
    }

    /// The account's route.
    pub(crate) fn route(&self, account: &str) -> Option<Arc<Route>> {
        self.routes.load().get(account).cloned()
    }

    /// One attempt at delivering `message`: pacing, token, upstream, counted in the account's
    /// statistics but not logged (the caller knows what becomes of the message).
    pub(crate) async fn attempt(&self, message: &Submission, progress: &Progress) -> Attempt {
        let started = Instant::now();
        let route = self.route(&message.submitter.account);
        let result = match &route {
            Some(r) => match r.pacer.admit(message.envelope.rcpts.len()).await {
                Ok(ticket) => {
                    let mut unsettled = Unsettled {
                        pacer: &r.pacer,
                        ticket: Some(ticket),
                    };
                    let result = self.deliver(Some(r), message, progress).await;
                    if let Some(ticket) = unsettled.ticket.take() {
                        r.pacer.settle(ticket, may_have_arrived(&result)).await;
                    }
                    result
                }
                Err(refusal) => Err(RelayError::Paced(refusal)),
            },
            None => self.deliver(None, message, progress).await,
        };
        let reply = reply_for(&result);
        if let Some(route) = &route {
            record(&route.stats, message, &result, &reply, started.elapsed());
        }
        Attempt {
            result,
            reply,
            started,
        }
    }

    /// The one line for what became of a message after an attempt (`queued`: it was kept in
    /// the spool under that ID instead of getting the attempt's reply).
    pub(crate) fn log_attempt(
        &self,
        message: &Submission,
        attempt: &Attempt,
        queued: Option<&str>,
    ) {
        let route = self.route(&message.submitter.account);
        let account = route.as_deref().map(|r| &*r.account);
        self.log(message, account, attempt, queued);
    }

    async fn submit_and_log(&self, message: &Submission) -> Reply {
        let attempt = self.attempt(message, &Progress::default()).await;
        self.log_attempt(message, &attempt, None);
        attempt.reply
    }

    fn log(
        &self,
        message: &Submission,
        account: Option<&Account>,
        attempt: &Attempt,
        queued: Option<&str>,
    ) {
        let (result, reply, started) = (&attempt.result, &attempt.reply, attempt.started);
        let mailbox = account.map_or("?", |a| a.mailbox.as_str());
        let who = &message.submitter;
        let ms = started.elapsed().as_millis() as u64;
        let sender = message.envelope.mail_from.as_ref().map(Address::to_string);
        let sender = sender.as_deref().unwrap_or("<>");
        let (rcpts, size) = (message.envelope.rcpts.len(), message.body().len());
        let queued = queued.map(|id| tracing::field::display(Untrusted(id)));
        let to = self.recipients(message);
        let id = message.message_id();
        let message_id = id.as_deref().map(|m| tracing::field::display(Untrusted(m)));
        match result {
            Ok(d) => {
                self.forget(&who.account);
                let queued = queue_id(&d.reply).map(|q| tracing::field::display(Untrusted(q)));
                let session = if d.reused { "reused" } else { "new" };
                tracing::info!(user = %who.user, mailbox, sender = %Untrusted(sender), to = ?to, rcpts, size, message_id, upstream_id = queued, upstream = %d.reply, session, ms, "message delivered");
            }
            Err(e) => {
                let level_error = e.class() == Class::Misconfigured;
                if queued.is_some() {
                    tracing::warn!(user = %who.user, mailbox, sender = %Untrusted(sender), to = ?to, rcpts, size, message_id, queue_id = queued, error = %e, ms, "message queued for a later attempt");
                } else if level_error {
                    tracing::error!(user = %who.user, mailbox, sender = %Untrusted(sender), to = ?to, rcpts, size, message_id, error = %e, reply = %reply, ms, "message not delivered");
                } else {
                    tracing::warn!(user = %who.user, mailbox, sender = %Untrusted(sender), to = ?to, rcpts, size, message_id, error = %e, reply = %reply, ms, "message not delivered");
                }
                self.explain_failure(&who.account, account, e);
            }
        }
    }

    /// The plain-words explanation of a known failure, the first time it happens.
    fn explain_failure(&self, name: &str, account: Option<&Account>, e: &RelayError) {
        let x = match account {
            Some(a) => explain_for(e, a),
            None => explain(e),
        };
        if let Some(x) = x {
            self.explain_once(name, account, x);
        }
    }

    /// For an attempt at a queued message, which logs its own line: the explanation of a
    /// failure, or forgetting the last one after a success.
    pub(crate) fn explain_attempt(&self, message: &Submission, attempt: &Attempt) {
        let name = &message.submitter.account;
        match &attempt.result {
            Ok(_) => self.forget(name),
            Err(e) => {
                let route = self.route(name);
                self.explain_failure(name, route.as_deref().map(|r| &*r.account), e);
            }
        }
    }

    /// The recipients for the log line, as addresses or (for privacy) only their domains.
    fn recipients(&self, message: &Submission) -> List {
        let rcpts = &message.envelope.rcpts;
        if self.recipient_domains_only.load(Ordering::Relaxed) {
            let mut domains: Vec<&str> = rcpts.iter().map(Address::domain).collect();
            domains.sort_unstable();
            domains.dedup();
            List::new(domains)
        } else {
            List::new(rcpts.iter().map(Address::to_string))
        }
    }

    fn explain_once(&self, account: &str, settings: Option<&Account>, x: Explanation) {
        let mut seen = self.explained.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get(account) == Some(&x.key) {
            tracing::info!(
                account,
                problem = x.key,
                "same problem as explained earlier"
            );
            return;
        }
        seen.insert(account.to_string(), x.key);
        let mailbox = settings.map_or("?", |a| a.mailbox.as_str());
        let fix = settings.map_or_else(|| x.fix.to_string(), |a| x.fix_for(a));
        tracing::error!(
            account,
            mailbox,
            problem = x.what,
            fix = %fix,
            "what went wrong and how to fix it"
        );
    }

    fn forget(&self, account: &str) {
        self.explained
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account);
    }
}

fn by_name(routes: impl IntoIterator<Item = Arc<Route>>) -> Routes {
    routes
        .into_iter()
        .map(|r| (r.account.name.clone(), r))
        .collect()
}

/// The upstream's id for the accepted message: the first `<…>` in its reply, where Exchange puts
/// it (`250 2.6.0 <id@host> [InternalId=…] Queued mail for delivery`); what to search for in
/// the message trace.
fn queue_id(reply: &crate::upstream::UpstreamReply) -> Option<&str> {
    let text = reply.text.as_str();
    let start = text.find('<')?;
    let len = text[start..].find('>')?;
    let id = &text[start..=start + len];
    (id.len() > 2).then_some(id)
}

/// A refusal a new token may cure: a permanent one that is about the token (`535 5.7.3` or an
/// unexplained 535), not "SMTP AUTH is disabled" (5.7.139), which no token changes.
fn token_may_be_stale(reply: &crate::upstream::UpstreamReply) -> bool {
    !reply.is_transient() && explain_reply(Phase::Auth, reply).is_none_or(|x| x == TOKEN_REJECTED)
}

/// Exchange counts the recipients of what it accepted; a message whose verdict was lost
/// after its final dot may have been accepted, so it counts too.
fn may_have_arrived(result: &Result<Delivered, RelayError>) -> bool {
    matches!(
        result,
        Ok(_)
            | Err(RelayError::Upstream(
                UpstreamError::Timeout {
                    phase: Phase::DataEnd,
                    ..
                } | UpstreamError::Io {
                    phase: Phase::DataEnd,
                    ..
                }
            ))
    )
}

/// Counts the outcome in the account's statistics.
fn record(
    stats: &AccountStats,
    message: &Submission,
    result: &Result<Delivered, RelayError>,
    reply: &Reply,
    took: std::time::Duration,
) {
    stats.durations.observe(took);
    stats.delivered(reply.to_string());
    match result {
        Ok(d) => {
            stats.count(Outcome::Delivered);
            stats.session_used(d.reused);
            stats.upstream_reply(d.reply.code);
            stats
                .bytes_relayed
                .fetch_add(message.body().len(), Ordering::Relaxed);
            if stats.proven(Evidence::Delivery) {
                let account = &message.submitter.account;
                tracing::info!(%account, "account can send again: a message was delivered");
            }
        }
        Err(e) => {
            if let RelayError::Upstream(
                UpstreamError::AuthRejected { reply, .. } | UpstreamError::Rejected { reply, .. },
            ) = e
            {
                stats.upstream_reply(reply.code);
            }
            match e.class() {
                _ if matches!(e, RelayError::Paced(_)) => {
                    let outcome = match reply.is_transient() {
                        true => Outcome::TemporaryFailure,
                        false => Outcome::RejectedLocally,
                    };
                    stats.count(outcome);
                }
                Class::Permanent => {
                    stats.count(Outcome::RejectedUpstream);
                    stats.clear_problem();
                }
                Class::Transient => stats.count(Outcome::TemporaryFailure),
                Class::Misconfigured => {
                    stats.count(Outcome::TemporaryFailure);
                    let what = explain(e).map_or_else(|| e.to_string(), |x| x.what.to_string());
                    stats.problem(Evidence::Delivery, what);
                }
            }
        }
    }
}

impl Submit for Relay {
    fn submit<'a>(&'a self, message: &'a Submission) -> BoxFuture<'a, Reply> {
        Box::pin(self.submit_and_log(message))
    }
}
