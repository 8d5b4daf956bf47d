//! What can go wrong when asking the token endpoint, kept `Clone` so one failure can be handed
//! to every session that waited for the same request.

use std::fmt;
use std::time::Duration;

use crate::reply::sanitize;

/// The error body Microsoft Entra returns (Microsoft identity platform, "Microsoft Entra authentication and
/// authorization error codes"), reduced to what helps a person.
/// `error_description` never carries request secrets, but it is still bounded and sanitised.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct OAuthError {
    /// The OAuth `error` field, e.g. `invalid_client`.
    pub(crate) error: String,
    /// AADSTS numbers from `error_codes`.
    pub(crate) codes: Vec<u32>,
    /// First line of `error_description`.
    pub(crate) summary: String,
    pub(crate) trace_id: Option<String>,
    pub(crate) correlation_id: Option<String>,
}

impl OAuthError {
    /// Parses Entra's JSON error body; `None` when the body is something else.
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let error = v.get("error")?.as_str()?.to_string();
        let text = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(|s| sanitize(s).into_owned())
        };
        // Not `sanitize`d as a whole: its bound would cut the description before the trace
        // lines are found; `first_line` bounds it instead.
        let summary = v
            .get("error_description")
            .and_then(|x| x.as_str())
            .map(|d| first_line(&without_controls(d)))
            .unwrap_or_default();
        let codes = v
            .get("error_codes")
            .and_then(|c| c.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_u64()?.try_into().ok())
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            error: sanitize(&error).into_owned(),
            codes,
            summary,
            trace_id: text("trace_id"),
            correlation_id: text("correlation_id"),
        })
    }

    /// `AADSTS7000215` when a code is known, else the OAuth `error`.
    pub(crate) fn code_label(&self) -> String {
        match self.codes.first() {
            Some(code) => format!("AADSTS{code}"),
            None => self.error.clone(),
        }
    }
}

fn without_controls(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Entra's descriptions run to a few sentences (AADSTS700016 has three, about 350
/// characters); longer text is cut at the end of a sentence, or with an ellipsis.
const MAX_SUMMARY: usize = 600;

fn first_line(description: &str) -> String {
    // Entra separates the trace/correlation lines with CRLF, which `sanitize` turned into
    // spaces; cut at the first of them.
    let end = description.find(" Trace ID:").unwrap_or(description.len());
    bounded(description[..end].trim(), MAX_SUMMARY)
}

/// `text` if it has at most `max` characters; else its longest prefix that ends a sentence,
/// or the first `max` characters and an ellipsis.
fn bounded(text: &str, max: usize) -> String {
    let Some((cut, _)) = text.char_indices().nth(max) else {
        return text.to_string();
    };
    let head = &text[..cut];
    match head.rfind(". ") {
        Some(dot) if dot > max / 2 => head[..=dot].to_string(),
        _ => format!("{}…", head.trim_end()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("the token endpoint did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach the token endpoint: {0}")]
    Unreachable(String),
    /// The endpoint's certificate did not verify: the TLS-inspecting proxy case `ca_file` is for.
    #[error("the token endpoint's TLS certificate is not trusted: {0}")]
    Certificate(String),
    #[error("the token endpoint {} (HTTP {status}{})", refusal(*.status), describe(.oauth))]
    Refused {
        status: u16,
        oauth: Option<OAuthError>,
    },
    #[error("unexpected answer from the token endpoint: {0}")]
    Malformed(String),
    /// The client assertion of a certificate credential could not be made.
    #[error("cannot sign the client assertion: {0}")]
    Signing(String),
    /// A delegated account has no usable refresh token: nobody signed in yet, or Microsoft
    /// refused the one kept; only the user signing in again fixes it.
    #[error("this account needs a sign-in ({why}): run `xoauth-relay login {account}`")]
    SignIn { account: String, why: String },
    /// The refresh token file could not be read or replaced.
    #[error("cannot keep the refresh token in {path}: {error}")]
    Store { path: String, error: String },
}

/// A 5xx is the endpoint's own failure, not a refusal of what the relay sent.
fn refusal(status: u16) -> &'static str {
    if status >= 500 {
        "failed on its side"
    } else {
        "refused the request"
    }
}

/// The OAuth error and, for a support case with Microsoft, the trace and correlation ids.
fn describe(oauth: &Option<OAuthError>) -> String {
    let Some(o) = oauth else {
        return String::new();
    };
    let mut text = if o.summary.is_empty() {
        format!(", {}", o.error)
    } else {
        format!(", {}: {}", o.error, o.summary)
    };
    if let (Some(trace), Some(correlation)) = (&o.trace_id, &o.correlation_id) {
        text.push_str(&format!(
            " [trace ID {trace}, correlation ID {correlation}]"
        ));
    }
    text
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.error, self.code_label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entra_error_body() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: abc\r\nCorrelation ID: def\r\nTimestamp: 2026-11-26","error_codes":[7000215],"timestamp":"x","trace_id":"abc","correlation_id":"def"}"#;
        let e = OAuthError::parse(body).unwrap();
        assert_eq!(e.error, "invalid_client");
        assert_eq!(e.codes, vec![7000215]);
        assert_eq!(e.summary, "AADSTS7000215: Invalid client secret provided.");
        assert_eq!(e.trace_id.as_deref(), Some("abc"));
        assert_eq!(e.code_label(), "AADSTS7000215");
        let shown = TokenError::Refused {
            status: 401,
            oauth: Some(e),
        }
        .to_string();
        assert_eq!(
            shown,
            "the token endpoint refused the request (HTTP 401, invalid_client: AADSTS7000215: \
             Invalid client secret provided. [trace ID abc, correlation ID def])"
        );
        assert!(OAuthError::parse(b"<html>").is_none());
        let failed = TokenError::Refused {
            status: 503,
            oauth: None,
        };
        assert_eq!(
            failed.to_string(),
            "the token endpoint failed on its side (HTTP 503)"
        );
        assert!(OAuthError::parse(b"{}").is_none());
    }

    #[test]
    fn long_descriptions_end_at_a_sentence() {
        let aadsts700016 = "AADSTS700016: Application with identifier \
            '11111111-2222-3333-4444-555555555555' was not found in the directory \
            'contoso.onmicrosoft.com'. This can happen if the application has not been installed \
            by the administrator of the tenant or consented to by any user in the tenant. You may \
            have sent your authentication request to the wrong tenant.";
        let body = serde_json::json!({
            "error": "unauthorized_client",
            "error_description": format!("{aadsts700016}\r\nTrace ID: t\r\nCorrelation ID: c"),
            "error_codes": [700016],
        });
        let e = OAuthError::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(e.summary, aadsts700016);
        let long = "First sentence here. ".repeat(60);
        let cut = bounded(&long, MAX_SUMMARY);
        assert!(cut.ends_with("here."), "{cut}");
        assert!(cut.chars().count() <= MAX_SUMMARY);
        let one = "x".repeat(2000);
        let cut = bounded(&one, MAX_SUMMARY);
        assert!(cut.ends_with('…') && cut.chars().count() == MAX_SUMMARY + 1);
        assert_eq!(bounded("short.", 10), "short.");
    }
}
