//! Telling a sender what became of a queued message: a delivery status notification (see
//! `spool::bounce`) sent through the message's own account, from its mailbox, to the envelope
//! sender, since an authenticated client of Exchange can only send as its mailbox. A bounce is
//! never sent for a bounce or an automatic message.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Delivery;
use crate::address::Address;
use crate::error::RelayError;
use crate::logging::Untrusted;
use crate::message::{Envelope, Submission, Submitter};
use crate::reply::Enhanced;
use crate::spool::Meta;
use crate::spool::bounce::{self, Action, Recipient, Report};
use crate::upstream::{Progress, UpstreamError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Given up: refused for good, expired, or bounced by an operator.
    Failed,
    /// Still queued after `warn_after`.
    Delayed,
}

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

/// The status for the report: the upstream's own enhanced code when it gave one, else "delivery
/// time expired" (RFC 3463 X.4.7) in the class of the report.
pub(crate) fn status(kind: Kind, error: Option<&RelayError>) -> Enhanced {
    let upstream = match error {
        Some(RelayError::Upstream(
            UpstreamError::Rejected { reply, .. } | UpstreamError::AuthRejected { reply, .. },
        )) => reply.enhanced,
        _ => None,
    };
    let class = if kind == Kind::Failed { 5 } else { 4 };
    match upstream {
        Some(Enhanced(_, s, d)) => Enhanced(class, s, d),
        None => Enhanced(class, 4, 7),
    }
}

impl Delivery {
    /// Sends the notice about `meta` (whose original is `original`, head only) unless the
    /// sender must not get one; logs what happened either way.
    pub(crate) async fn send_notice(
        &self,
        meta: &Meta,
        original: &Submission,
        kind: Kind,
        status: Enhanced,
        diagnostic: Option<&str>,
    ) {
        let head = original.body().head();
        let sender = original.envelope.mail_from.as_ref();
        if !bounce::may_bounce(sender, head) {
            tracing::info!(queue_id = %meta.id, "no notice sent: the message was a bounce or automatic, or had the null sender");
            return;
        }
        let (Some(sender), Some(route)) = (sender, self.relay.route(&meta.account)) else {
            tracing::warn!(queue_id = %meta.id, account = %meta.account, "no notice sent: the account is no longer configured");
            return;
        };
        let Ok(mailbox) = Address::parse(&route.account.mailbox) else {
            return;
        };
        let settings = self.settings();
        let to = sender.to_string();
        let recipients: Vec<Recipient> = meta
            .rcpts
            .iter()
            .map(|r| Recipient {
                address: r,
                status,
                diagnostic,
            })
            .collect();
        let reason = match kind {
            Kind::Failed => meta.failure.clone().unwrap_or_default(),
            Kind::Delayed => meta.last_error.clone().unwrap_or_default(),
        };
        let report = Report {
            action: match kind {
                Kind::Failed => Action::Failed,
                Kind::Delayed => Action::Delayed,
            },
            reporting_host: &self.hostname,
            remote_mta: Some(&route.account.smtp_host),
            mailbox: &route.account.mailbox,
            to: &to,
            queue_id: &meta.id,
            arrived: at(meta.arrived),
            now: SystemTime::now(),
            will_retry_until: (kind == Kind::Delayed).then(|| at(meta.arrived) + settings.lifetime),
            reason: &reason,
            recipients: &recipients,
            original: head,
            smtputf8: meta.smtputf8,
            message_id_host: &self.hostname,
        };
        let dsn = bounce::build(&report);
        let envelope = Envelope {
            mail_from: Some(mailbox),
            rcpts: vec![sender.clone()],
            smtputf8: meta.smtputf8,
            body_8bitmime: meta.smtputf8,
        };
        let from = Arc::new(Submitter {
            user: meta.user.clone(),
            account: meta.account.clone(),
            allowed_senders: Vec::new(),
            allowed_recipient_domains: Vec::new(),
        });
        let notice = Submission::new(from, envelope, dsn);
        let attempt = self.relay.attempt(&notice, &Progress::default()).await;
        match attempt.result {
            Ok(_) => {
                tracing::info!(queue_id = %meta.id, to = %Untrusted(&to), kind = ?kind, "notice sent to the sender")
            }
            Err(e) => {
                tracing::warn!(queue_id = %meta.id, to = %Untrusted(&to), kind = ?kind, error = %e, "notice to the sender could not be sent; the message stays in failed/")
            }
        }
    }
}
