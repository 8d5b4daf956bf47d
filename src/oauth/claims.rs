//! Reads the claims of an access token without verifying it, for `check` to explain what
//! Microsoft put in it (roles, tenant, app). Never used to make an access decision.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct Claims {
    #[serde(default)]
    pub(crate) roles: Vec<String>,
    pub(crate) aud: Option<String>,
    pub(crate) tid: Option<String>,
    pub(crate) appid: Option<String>,
    pub(crate) exp: Option<i64>,
    /// The delegated permissions of a user's token, space-separated.
    pub(crate) scp: Option<String>,
}

impl Claims {
    /// The payload of a JWT (`header.payload.signature`), or `None` when it is not one.
    pub(crate) fn decode(token: &str) -> Option<Self> {
        let payload = token.split('.').nth(1)?;
        let json = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&json).ok()
    }

    pub(crate) fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    pub(crate) fn has_scope(&self, scope: &str) -> bool {
        self.scp
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|x| x.eq_ignore_ascii_case(scope)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_payload() {
        let payload = URL_SAFE_NO_PAD.encode(
            br#"{"aud":"https://outlook.office.com","roles":["SMTP.SendAsApp"],"tid":"t","exp":5}"#,
        );
        let c = Claims::decode(&format!("e30.{payload}.sig")).unwrap();
        assert!(c.has_role("smtp.sendasapp"));
        assert_eq!(c.tid.as_deref(), Some("t"));
        assert_eq!(c.exp, Some(5));
        assert!(!c.has_scope("SMTP.Send"));
        let payload = URL_SAFE_NO_PAD.encode(br#"{"scp":"offline_access SMTP.Send"}"#);
        assert!(
            Claims::decode(&format!("e30.{payload}.sig"))
                .unwrap()
                .has_scope("smtp.send")
        );
        assert!(Claims::decode("opaque-token").is_none());
        assert!(Claims::decode("a.!!!.c").is_none());
    }
}
