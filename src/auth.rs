//! Local users: checks an AUTH username and password and says which account the user sends
//! through and as whom (`Submitter`).
//!
//! Passwords are checked with argon2 (a `password_hash`) or in constant time against an HMAC of a
//! plain `password`. A correct password is then remembered as an HMAC under a key made at start,
//! so a client that logs in for every message pays the argon2 cost once, not per message; a
//! wrong password always takes the slow path.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use ring::hmac;
use ring::rand::SystemRandom;

use crate::address::Address;
use crate::config::{Config, Network, PasswordCheck, SenderRule};

/// An authenticated local user, as the session and the relay see it.
#[derive(Debug)]
pub struct Submitter {
    pub user: String,
    /// Name of the upstream account.
    pub account: String,
    pub allowed_senders: Vec<SenderRule>,
}

impl Submitter {
    /// True when this user may use `from` as MAIL FROM (`None`, the null sender, never).
    pub fn may_send_as(&self, from: Option<&Address>) -> bool {
        from.is_some_and(|a| self.allowed_senders.iter().any(|rule| rule.allows(a)))
    }

    /// The allow-list as people write it, for replies and logs.
    pub fn allowed_list(&self) -> String {
        let rules: Vec<String> = self.allowed_senders.iter().map(|r| r.to_string()).collect();
        rules.join(", ")
    }
}

enum Check {
    Argon2(String),
    Hmac(hmac::Tag),
    /// A device known only by its network address: AUTH as this user always fails.
    Nothing,
}

struct Entry {
    submitter: Arc<Submitter>,
    check: Check,
    /// HMAC of the last password that passed `check`.
    verified: Mutex<Option<hmac::Tag>>,
}

/// All local users, built once from the configuration.
pub struct Users {
    by_name: HashMap<String, Entry>,
    /// Users with `networks`, in configuration order: the first match wins.
    trusted: Vec<(Vec<Network>, Arc<Submitter>)>,
    key: hmac::Key,
}

/// A syntactically valid argon2id hash of a random string, checked when the user does not
/// exist so that a wrong username costs as much time as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZHVtbXlzYWx0ZHVtbXk$0m4H3Vb7vQ0fQm0mX1yJmC3ZbXzF1n7mJYl5x2bIuQ0";

impl Users {
    /// Builds the user table. The HMAC key is fresh per process and never leaves memory.
    pub fn from_config(config: &Config) -> Self {
        let key = hmac_key();
        let mut trusted = Vec::new();
        let mut by_name = HashMap::new();
        for u in &config.users {
            let check = match &u.password {
                Some(PasswordCheck::Argon2(phc)) => Check::Argon2(phc.clone()),
                Some(PasswordCheck::Plain(pw)) => {
                    Check::Hmac(hmac::sign(&key, pw.expose().as_bytes()))
                }
                None => Check::Nothing,
            };
            let submitter = Arc::new(Submitter {
                user: u.name.clone(),
                account: u.account.clone(),
                allowed_senders: u.allowed_senders.clone(),
            });
            if !u.networks.is_empty() {
                trusted.push((u.networks.clone(), submitter.clone()));
            }
            let entry = Entry {
                submitter,
                check,
                verified: Mutex::new(None),
            };
            by_name.insert(u.name.clone(), entry);
        }
        Self {
            by_name,
            trusted,
            key,
        }
    }

    /// The user a client at `ip` is without AUTH, if its address is in some user's `networks`.
    pub fn trusted_for(&self, ip: IpAddr) -> Option<Arc<Submitter>> {
        let found = self
            .trusted
            .iter()
            .find(|(nets, _)| nets.iter().any(|n| n.contains(ip)));
        found.map(|(_, submitter)| submitter.clone())
    }

    /// Checks a username and password. May run argon2, so call it off the async threads
    /// (`spawn_blocking`).
    pub fn verify(&self, username: &str, password: &str) -> Option<Arc<Submitter>> {
        let Some(entry) = self.by_name.get(username) else {
            argon2_matches(DUMMY_HASH, password);
            return None;
        };
        if self.remembered(entry, password) {
            return Some(entry.submitter.clone());
        }
        let ok = match &entry.check {
            Check::Argon2(phc) => argon2_matches(phc, password),
            Check::Hmac(tag) => hmac::verify(&self.key, password.as_bytes(), tag.as_ref()).is_ok(),
            Check::Nothing => {
                // Same cost as a wrong password, so this user's existence does not show.
                argon2_matches(DUMMY_HASH, password);
                false
            }
        };
        if !ok {
            return None;
        }
        let tag = hmac::sign(&self.key, password.as_bytes());
        *entry.verified.lock().unwrap_or_else(|e| e.into_inner()) = Some(tag);
        Some(entry.submitter.clone())
    }

    fn remembered(&self, entry: &Entry, password: &str) -> bool {
        let guard = entry.verified.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .is_some_and(|tag| hmac::verify(&self.key, password.as_bytes(), tag.as_ref()).is_ok())
    }
}

fn hmac_key() -> hmac::Key {
    // SystemRandom only fails when the OS has no entropy source at all; then no secure
    // operation is possible and refusing to start is right.
    hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
        .expect("the operating system random number generator is unavailable")
}

fn argon2_matches(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Delay before answering the `failures`-th failed AUTH (1-based): doubles each time, capped.
pub fn failure_delay(base: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(5);
    (base * factor).min(Duration::from_secs(30))
}

/// Makes a `password_hash` value for the configuration (argon2id, default parameters).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::PasswordHasher;
    use argon2::password_hash::SaltString;
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut salt)
        .map_err(|_| argon2::password_hash::Error::Crypto)?;
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_delay_grows_and_is_capped() {
        let base = Duration::from_secs(1);
        let got: Vec<u64> = (1..=8).map(|n| failure_delay(base, n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn hash_then_verify() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(argon2_matches(&phc, "correct horse"));
        assert!(!argon2_matches(&phc, "wrong"));
        assert!(!argon2_matches("not a hash", "x"));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
