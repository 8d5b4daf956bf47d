//! Delivery status notifications (RFC 3464) for messages the relay gives up on.
//! (Placeholder until the builder lands; see the `dsn` branch.)
use std::time::SystemTime;

use crate::address::Address;
use crate::reply::Enhanced;

pub(crate) enum Action {
    Failed,
    Delayed,
}
pub(crate) struct Recipient<'a> {
    pub address: &'a str,
    pub status: Enhanced,
    pub diagnostic: Option<&'a str>,
}
pub(crate) struct Report<'a> {
    pub action: Action,
    pub reporting_host: &'a str,
    pub remote_mta: Option<&'a str>,
    pub mailbox: &'a str,
    pub to: &'a str,
    pub queue_id: &'a str,
    pub arrived: SystemTime,
    pub now: SystemTime,
    pub will_retry_until: Option<SystemTime>,
    pub reason: &'a str,
    pub recipients: &'a [Recipient<'a>],
    pub original: &'a [u8],
    pub smtputf8: bool,
    pub message_id_host: &'a str,
}
pub(crate) fn build(_r: &Report) -> Vec<u8> {
    Vec::new()
}
pub(crate) fn may_bounce(mail_from: Option<&Address>, _original: &[u8]) -> bool {
    mail_from.is_some()
}
