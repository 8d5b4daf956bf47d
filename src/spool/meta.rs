//! What the spool keeps beside a message: its envelope, who sent it through which account, and
//! where it stands (attempts, the next one, the last upstream reply, holds), as JSON.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::message::Envelope;

/// Largest metadata file read: an envelope of 500 recipients of 256 octets is ~130 KB.
const MAX_META: u64 = 1 << 20;

/// One queued message's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub id: String,
    /// The upstream account it goes through.
    pub account: String,
    /// The local user who submitted it.
    pub user: String,
    /// `None` for the null sender.
    pub mail_from: Option<String>,
    pub rcpts: Vec<String>,
    #[serde(default)]
    pub body_8bitmime: bool,
    #[serde(default)]
    pub smtputf8: bool,
    /// Octets of the data file.
    pub size: u64,
    /// The `Message-ID` header field, client text.
    #[serde(default)]
    pub message_id: Option<String>,
    /// Unix seconds when it was received.
    pub arrived: u64,
    /// Attempts that counted (throttling and waits for a free slot do not).
    #[serde(default)]
    pub attempts: u32,
    /// Unix seconds of the next attempt.
    pub next_attempt: u64,
    /// Why it was queued rather than delivered at once.
    pub reason: String,
    /// The last attempt's outcome.
    #[serde(default)]
    pub last_error: Option<String>,
    /// A final dot of it went upstream and no verdict came back: it may have been delivered.
    #[serde(default)]
    pub ambiguous: bool,
    #[serde(default)]
    pub hold: Option<Hold>,
    /// An attempt was under way when this was last written: after a crash, its fate upstream
    /// is unknown, like an ambiguous one's.
    #[serde(default)]
    pub in_flight: bool,
    /// The sender was told it is delayed.
    #[serde(default)]
    pub warned: bool,
    /// In `failed/`: why it was given up.
    #[serde(default)]
    pub failure: Option<String>,
}

/// Why a message waits for an operator rather than for its next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// `queue hold`.
    Operator,
    /// Its fate upstream is unknown and `on_ambiguous = "hold"`.
    Ambiguous,
}

impl Meta {
    /// The envelope as received; `None` when a stored address no longer parses (a corrupt file).
    pub fn envelope(&self) -> Option<Envelope> {
        let mail_from = match &self.mail_from {
            Some(a) => Some(Address::parse(a).ok()?),
            None => None,
        };
        let rcpts = self
            .rcpts
            .iter()
            .map(|r| Address::parse(r).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(Envelope {
            mail_from,
            rcpts,
            body_8bitmime: self.body_8bitmime,
            smtputf8: self.smtputf8,
        })
    }

    /// `queued`, `held` or `failed`, as `/status`, the metrics and `queue list` name it.
    pub fn state(&self) -> &'static str {
        match (&self.failure, &self.hold) {
            (Some(_), _) => "failed",
            (None, Some(_)) => "held",
            (None, None) => "queued",
        }
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    pub(crate) fn read(path: &Path) -> io::Result<Meta> {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_META)
            .read_to_end(&mut bytes)?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}
