//! Local users: checks an AUTH username and password and says which account the user sends
//! through and as whom (`Submitter`).
//!
//! Passwords are checked with argon2 (a `password_hash`) or in constant time against an HMAC of a
//! plain `password`. A correct password is then remembered as an HMAC under a key made at start,
//! so a client that logs in for every message pays the argon2 cost once, not per message. Every
//! failed check costs one argon2 evaluation in the shared [`Argon2Pool`], whether the user
//! exists or not and whatever kind of password it has, so failures cannot tell users apart.
//! User names match ignoring case, as the configuration refuses names differing only in case.

mod pool;

pub(crate) use pool::Argon2Pool;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::Argon2;
use ring::hmac;
use ring::rand::SystemRandom;

use crate::config::{Config, Network, PasswordCheck};
use crate::message::Submitter;
use crate::secret::Secret;

/// The result of [`Users::check`].
#[derive(Debug)]
pub(crate) enum Checked {
    Accepted(Arc<Submitter>),
    Rejected,
    /// Too many checks are waiting for the argon2 workers; the client should retry later.
    Busy,
}

enum Check {
    Argon2(Arc<str>),
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
pub(crate) struct Users {
    /// Keyed by the lowercase name.
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
    pub(crate) fn from_config(config: &Config) -> Self {
        let key = hmac_key();
        let mut trusted = Vec::new();
        let mut by_name = HashMap::new();
        for u in &config.users {
            let check = match &u.password {
                Some(PasswordCheck::Argon2(phc)) => Check::Argon2(phc.as_str().into()),
                Some(PasswordCheck::Plain(pw)) => {
                    Check::Hmac(hmac::sign(&key, pw.expose().as_bytes()))
                }
                None => Check::Nothing,
            };
            let submitter = Arc::new(Submitter {
                user: u.name.clone(),
                account: u.account.clone(),
                allowed_senders: u.allowed_senders.clone(),
                allowed_recipient_domains: config
                    .accounts
                    .get(&u.account)
                    .map(|a| a.allowed_recipient_domains.clone())
                    .unwrap_or_default(),
            });
            if !u.networks.is_empty() {
                trusted.push((u.networks.clone(), submitter.clone()));
            }
            let entry = Entry {
                submitter,
                check,
                verified: Mutex::new(None),
            };
            by_name.insert(u.name.to_lowercase(), entry);
        }
        Self {
            by_name,
            trusted,
            key,
        }
    }

    /// True when a user of that name (ignoring case) is configured.
    pub(crate) fn knows(&self, username: &str) -> bool {
        self.by_name.contains_key(&username.to_lowercase())
    }

    /// The user a client at `ip` is without AUTH, if its address is in some user's `networks`.
    pub(crate) fn trusted_for(&self, ip: IpAddr) -> Option<Arc<Submitter>> {
        let found = self
            .trusted
            .iter()
            .find(|(nets, _)| nets.iter().any(|n| n.contains(ip)));
        found.map(|(_, submitter)| submitter.clone())
    }

    /// Checks a username and password. A remembered or plain password that is right is
    /// answered at once; anything else runs exactly one argon2 evaluation in `pool` (the dummy
    /// hash when there is no argon2 hash to check).
    pub(crate) async fn check(
        &self,
        pool: &Arc<Argon2Pool>,
        username: &str,
        password: &Secret<String>,
    ) -> Checked {
        let entry = self.by_name.get(&username.to_lowercase());
        if let Some(entry) = entry.filter(|e| self.known_right(e, password.expose())) {
            return Checked::Accepted(entry.submitter.clone());
        }
        let Ok(ticket) = pool.admit() else {
            return Checked::Busy;
        };
        let (hash, real) = match entry.map(|e| &e.check) {
            Some(Check::Argon2(phc)) => (phc.clone(), true),
            _ => (DUMMY_HASH.into(), false),
        };
        let right = ticket.verify(hash, password.clone()).await;
        match entry {
            Some(entry) if right && real => {
                self.remember(entry, password.expose());
                Checked::Accepted(entry.submitter.clone())
            }
            _ => Checked::Rejected,
        }
    }

    /// True for a password remembered from an earlier login, or the right plain password.
    fn known_right(&self, entry: &Entry, password: &str) -> bool {
        let plain = match &entry.check {
            Check::Hmac(tag) => hmac::verify(&self.key, password.as_bytes(), tag.as_ref()).is_ok(),
            Check::Argon2(_) | Check::Nothing => false,
        };
        plain || self.remembered(entry, password)
    }

    fn remember(&self, entry: &Entry, password: &str) {
        let tag = hmac::sign(&self.key, password.as_bytes());
        *entry.verified.lock().unwrap_or_else(|e| e.into_inner()) = Some(tag);
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

/// Delay before answering the `failures`-th failed AUTH (1-based): doubles each time, capped.
pub(crate) fn failure_delay(base: Duration, failures: u32) -> Duration {
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

/// `hash-password --verify`: whether `password` matches the `password_hash` value `phc`; an
/// error when `phc` is not an argon2 PHC string.
pub fn verify_password(password: &str, phc: &str) -> Result<bool, String> {
    use argon2::{PasswordHash, PasswordVerifier};
    let hash = PasswordHash::new(phc.trim())
        .map_err(|e| format!("not a password_hash value (expected \"$argon2id$v=19$...\"): {e}"))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok())
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
        use argon2::{PasswordHash, PasswordVerifier};
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        let parsed = PasswordHash::new(&phc).unwrap();
        let argon2 = Argon2::default();
        assert!(argon2.verify_password(b"correct horse", &parsed).is_ok());
        assert!(argon2.verify_password(b"wrong", &parsed).is_err());
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    fn user(name: &str, check: Check) -> (String, Entry) {
        let submitter = Arc::new(Submitter {
            user: name.into(),
            account: "contoso".into(),
            allowed_senders: Vec::new(),
            allowed_recipient_domains: Vec::new(),
        });
        let entry = Entry {
            submitter,
            check,
            verified: Mutex::new(None),
        };
        (name.to_lowercase(), entry)
    }

    /// An argon2 user, a plain-password user and a device known only by its address.
    fn users(phc: &str) -> Users {
        let key = hmac_key();
        let plain = Check::Hmac(hmac::sign(&key, b"plain-pw"));
        let by_name = [
            user("Argon@Contoso.example", Check::Argon2(phc.into())),
            user("plain", plain),
            user("printer", Check::Nothing),
        ];
        Users {
            by_name: by_name.into_iter().collect(),
            trusted: Vec::new(),
            key,
        }
    }

    fn pw(text: &str) -> Secret<String> {
        Secret::new(text.into())
    }

    #[tokio::test]
    async fn every_failure_costs_one_argon2_evaluation() {
        let users = users(&pool::tests::cheap_hash("argon-pw"));
        let pool = Argon2Pool::new(1, 10);
        for name in ["nobody", "plain", "argon@contoso.example", "printer"] {
            let before = pool.evaluations();
            let checked = users.check(&pool, name, &pw("wrong")).await;
            assert!(matches!(checked, Checked::Rejected), "{name}: {checked:?}");
            assert_eq!(pool.evaluations() - before, 1, "{name}");
        }
    }

    #[tokio::test]
    async fn right_passwords_and_the_fast_path() {
        let users = users(&pool::tests::cheap_hash("argon-pw"));
        let pool = Argon2Pool::new(1, 10);
        let plain = users.check(&pool, "plain", &pw("plain-pw")).await;
        assert!(matches!(plain, Checked::Accepted(s) if s.user == "plain"));
        assert_eq!(pool.evaluations(), 0, "a plain password needs no argon2");
        let right = pw("argon-pw");
        for _ in 0..2 {
            let argon = users.check(&pool, "argon@contoso.example", &right).await;
            assert!(matches!(argon, Checked::Accepted(_)));
        }
        assert_eq!(pool.evaluations(), 1, "the second login is remembered");
    }

    #[tokio::test]
    async fn user_names_match_ignoring_case() {
        let users = users(&pool::tests::cheap_hash("argon-pw"));
        let pool = Argon2Pool::new(1, 10);
        for name in ["ARGON@contoso.EXAMPLE", "Argon@Contoso.example"] {
            let checked = users.check(&pool, name, &pw("argon-pw")).await;
            let Checked::Accepted(s) = checked else {
                panic!("{name}: {checked:?}");
            };
            assert_eq!(s.user, "Argon@Contoso.example", "the configured spelling");
        }
        let plain = users.check(&pool, "PLAIN", &pw("plain-pw")).await;
        assert!(matches!(plain, Checked::Accepted(_)));
    }

    #[tokio::test]
    async fn a_full_queue_is_busy() {
        let users = users(&pool::tests::cheap_hash("argon-pw"));
        let pool = Argon2Pool::new(1, 0);
        let _held = pool.admit().unwrap();
        let checked = users.check(&pool, "plain", &pw("wrong")).await;
        assert!(matches!(checked, Checked::Busy), "{checked:?}");
    }
}
