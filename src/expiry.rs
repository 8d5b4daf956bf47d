//! Credential expiry: from `client_secret_warn_days` before `client_secret_expires` (or, for a
//! certificate credential, the certificate's `notAfter`) the relay logs a warning once a day and
//! shows it in `/status` and `/readyz`, so a credential never expires by surprise (Entra
//! secrets last at most two years, and nobody remembers the date).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Account;
use crate::dates::Day;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The warning for `account` on `today`, or `None` while the date is far (or unknown). For a
/// certificate credential the date is the certificate's own `notAfter`.
pub(crate) fn warning(account: &Account, today: Day) -> Option<String> {
    let (expires, what, fix) = match &account.client_certificate {
        Some(certificate) => (
            certificate.not_after?,
            format!("the client certificate ({})", certificate.path.display()),
            "make a new certificate, upload it in Entra (App registrations > Certificates & \
             secrets > Certificates), point client_certificate and client_key at it and reload",
        ),
        None => (
            account.client_secret_expires?,
            "the client secret".to_owned(),
            "create a new secret in Entra (App registrations > Certificates & secrets), put its \
             value in the configuration, update client_secret_expires and reload",
        ),
    };
    let left = expires.0 - today.0;
    if left >= i64::from(account.client_secret_warn_days) {
        return None;
    }
    let when = match left {
        ..0 => format!("expired on {expires} ({} days ago)", -left),
        0 => format!("expires today ({expires})"),
        1 => format!("expires tomorrow ({expires})"),
        n => format!("expires on {expires}, in {n} days"),
    };
    Some(format!("{what} of account {} {when}: {fix}", account.name))
}

/// The day the account's credential expires, if known.
pub(crate) fn expires(account: &Account) -> Option<Day> {
    match &account.client_certificate {
        Some(certificate) => certificate.not_after,
        None => account.client_secret_expires,
    }
}

/// Logs the warning now and then once a day until `stop`.
pub(crate) async fn watch(account: Arc<Account>, stop: CancellationToken) {
    if expires(&account).is_none() {
        return;
    }
    loop {
        if let Some(text) = warning(&account, Day::today()) {
            tracing::warn!(account = %account.name, "{text}");
        }
        tokio::select! {
            _ = tokio::time::sleep(DAY) => {}
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(expires: &str, warn_days: u32) -> Account {
        let mut a = crate::testkit::relay_config::example_account();
        a.client_secret_expires = Day::parse(expires);
        a.client_secret_warn_days = warn_days;
        a
    }

    #[test]
    fn warns_inside_the_window_only() {
        let today = Day::parse("2027-04-10").unwrap();
        let cases = [
            ("2027-06-01", 30, None),
            ("2027-05-10", 30, None),
            ("2027-05-09", 30, Some("expires on 2027-05-09, in 29 days")),
            ("2027-04-11", 30, Some("expires tomorrow (2027-04-11)")),
            ("2027-04-10", 30, Some("expires today (2027-04-10)")),
            ("2027-04-01", 30, Some("expired on 2027-04-01 (9 days ago)")),
            ("2027-04-20", 5, None),
        ];
        for (expires, days, want) in cases {
            let got = warning(&account(expires, days), today);
            match want {
                None => assert_eq!(got, None, "{expires}"),
                Some(part) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(part)),
                    "{expires}: {got:?}"
                ),
            }
        }
        let mut a = account("2027-04-01", 30);
        a.client_secret_expires = None;
        assert_eq!(warning(&a, today), None);
    }

    #[test]
    fn a_certificate_warns_from_its_own_not_after() {
        use crate::testkit::client_cert::{self, APP_CERT_PEM, APP_KEY_PEM};
        let mut a = account("2027-04-01", 30);
        let certificate = client_cert::credential(APP_CERT_PEM, APP_KEY_PEM);
        let not_after = certificate.not_after.expect("notAfter read");
        a.client_certificate = Some(certificate);
        let far = Day(not_after.0 - 31);
        assert_eq!(
            warning(&a, far),
            None,
            "client_secret_expires is not the date any more"
        );
        let near = Day(not_after.0 - 8);
        let got = warning(&a, near).unwrap_or_default();
        assert!(
            got.contains("client certificate (fixture.pem) of account contoso expires on")
                && got.contains("in 8 days")
                && got.contains("Certificates & secrets > Certificates"),
            "{got}"
        );
    }
}
