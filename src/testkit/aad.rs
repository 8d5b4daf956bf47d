//! Microsoft Entra (Azure AD) token endpoint behaviours: the [`TokenMode`] switch and the JSON
//! error bodies in Entra's exact shape (`error`, `error_description` with trace lines,
//! `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`).

use std::time::{SystemTime, UNIX_EPOCH};

use super::pki::random_hex;

/// How the fake token endpoint answers. Change it at any time with
/// [`FakeTokenEndpoint::set_mode`](super::FakeTokenEndpoint::set_mode).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TokenMode {
    /// Validate the request and issue a token (the default).
    #[default]
    Ok,
    /// Answer every request with this Entra JSON error (see the constructors below).
    Error {
        /// HTTP status code.
        status: u16,
        /// OAuth 2 `error` value, e.g. `invalid_client`.
        error: String,
        /// `error_codes`; the first one also prefixes the description as `AADSTSnnn: `.
        codes: Vec<u32>,
        /// Text after the `AADSTSnnn: ` prefix; the trace lines are added when answering.
        description: String,
    },
    /// HTTP 500 with an HTML body, like a broken front end.
    ServerError,
    /// Read the request and never answer (the connection stays open).
    Hang,
    /// HTTP 200 with a body that is not JSON.
    Garbage,
}

/// One Entra error: HTTP status, OAuth `error` value, AADSTS codes and the description text
/// (without the `AADSTSnnn: ` prefix and trace lines, which are added when answering).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AadError {
    /// HTTP status code.
    pub status: u16,
    /// OAuth 2 `error` value, e.g. `invalid_client`.
    pub error: String,
    /// `error_codes`; the first one also prefixes the description as `AADSTSnnn:`.
    pub codes: Vec<u32>,
    /// Human text after the `AADSTSnnn: ` prefix.
    pub description: String,
}

impl TokenMode {
    /// An arbitrary Entra error.
    pub fn error(status: u16, error: &str, codes: Vec<u32>, description: &str) -> Self {
        AadError::new(status, error, codes, description).into()
    }

    /// 401 `invalid_client`, AADSTS7000215 (wrong secret, or the secret's ID instead of its value).
    pub fn invalid_client_secret() -> Self {
        AadError::invalid_client_secret().into()
    }

    /// 401 `invalid_client`, AADSTS7000222 (the client secret has expired).
    pub fn expired_client_secret() -> Self {
        AadError::expired_client_secret("00000000-0000-0000-0000-000000000000").into()
    }

    /// 400 `unauthorized_client`, AADSTS700016 (application not found in the tenant).
    pub fn application_not_found() -> Self {
        AadError::application_not_found("unknown-client", "contoso").into()
    }

    /// 400 `invalid_request`, AADSTS90002 (tenant not found).
    pub fn tenant_not_found() -> Self {
        AadError::tenant_not_found("contoso").into()
    }

    /// 400 `invalid_scope`, AADSTS70011.
    pub fn invalid_scope() -> Self {
        AadError::invalid_scope("https://example.invalid/.default").into()
    }

    /// 400 `invalid_resource`, AADSTS500011 (resource principal not found in the tenant).
    pub fn resource_principal_not_found() -> Self {
        AadError::resource_principal_not_found("contoso").into()
    }
}

impl From<AadError> for TokenMode {
    fn from(e: AadError) -> Self {
        TokenMode::Error {
            status: e.status,
            error: e.error,
            codes: e.codes,
            description: e.description,
        }
    }
}

impl AadError {
    /// An error from its parts.
    pub fn new(status: u16, error: &str, codes: Vec<u32>, description: &str) -> Self {
        Self {
            status,
            error: error.to_string(),
            codes,
            description: description.to_string(),
        }
    }

    /// AADSTS7000215, wrong client secret.
    pub fn invalid_client_secret() -> Self {
        Self::new(
            401,
            "invalid_client",
            vec![7000215],
            "Invalid client secret provided. Ensure the secret being sent in the request is the \
             client secret value, not the client secret ID, for a secret added to app \
             '00000000-0000-0000-0000-000000000000'.",
        )
    }

    /// AADSTS7000222, expired client secret.
    pub fn expired_client_secret(client_id: &str) -> Self {
        let text = format!(
            "The provided client secret keys for app '{client_id}' are expired. Visit the Azure \
             portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider \
             using certificate credentials for added security: https://aka.ms/certCreds."
        );
        Self::new(401, "invalid_client", vec![7000222], &text)
    }

    /// AADSTS7000218, neither a secret nor an assertion in the body.
    pub fn missing_client_secret() -> Self {
        Self::new(
            401,
            "invalid_client",
            vec![7000218],
            "The request body must contain the following parameter: 'client_assertion' or \
             'client_secret'.",
        )
    }

    /// AADSTS700016, unknown application.
    pub fn application_not_found(client_id: &str, tenant: &str) -> Self {
        let text = format!(
            "Application with identifier '{client_id}' was not found in the directory \
             '{tenant}'. This can happen if the application has not been installed by the \
             administrator of the tenant or consented to by any user in the tenant. You may have \
             sent your authentication request to the wrong tenant."
        );
        Self::new(400, "unauthorized_client", vec![700016], &text)
    }

    /// AADSTS90002, unknown tenant.
    pub fn tenant_not_found(tenant: &str) -> Self {
        let text = format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and \
             are signing into the correct cloud. Check with your subscription administrator, \
             this may happen if there are no active subscriptions for the tenant."
        );
        Self::new(400, "invalid_request", vec![90002], &text)
    }

    /// AADSTS70011, bad scope.
    pub fn invalid_scope(scope: &str) -> Self {
        let text = format!(
            "The provided request must include a 'scope' input parameter. The provided value for \
             the input parameter 'scope' is not valid. The scope {scope} is not valid."
        );
        Self::new(400, "invalid_scope", vec![70011], &text)
    }

    /// AADSTS500011, resource principal missing from the tenant.
    pub fn resource_principal_not_found(tenant: &str) -> Self {
        let text = format!(
            "The resource principal named https://outlook.office365.com was not found in the \
             tenant named {tenant}. This can happen if the application has not been installed by \
             the administrator of the tenant or consented to by any user in the tenant. You \
             might have sent your authentication request to the wrong tenant."
        );
        Self::new(400, "invalid_resource", vec![500011], &text)
    }

    /// AADSTS70003 (`unsupported_grant_type`).
    pub fn unsupported_grant_type(grant_type: &str) -> Self {
        let text = format!("The app requested an unsupported grant type '{grant_type}'.");
        Self::new(400, "unsupported_grant_type", vec![70003], &text)
    }

    /// AADSTS900144, a required body parameter is missing.
    pub fn missing_parameter(name: &str) -> Self {
        let text = format!("The request body must contain the following parameter: '{name}'.");
        Self::new(400, "invalid_request", vec![900144], &text)
    }

    /// The JSON body Entra sends for this error, with fresh trace and correlation ids.
    pub fn to_json(&self) -> String {
        let trace_id = guid();
        let correlation_id = guid();
        let timestamp = utc_timestamp(SystemTime::now());
        let code = self.codes.first().copied().unwrap_or(0);
        let description = format!(
            "AADSTS{code}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\n\
             Timestamp: {timestamp}",
            self.description
        );
        serde_json::json!({
            "error": self.error,
            "error_description": description,
            "error_codes": self.codes,
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        })
        .to_string()
    }
}

/// A random GUID-shaped string (8-4-4-4-12 hex digits).
pub(crate) fn guid() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `YYYY-MM-DD hh:mm:ssZ`, the format Entra uses in `timestamp`.
pub(crate) fn utc_timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::dates::utc_timestamp(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamp_format() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(utc_timestamp(t), "2023-11-14 22:13:20Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01 00:00:00Z");
    }

    #[test]
    fn error_json_shape() {
        let json: serde_json::Value =
            serde_json::from_str(&AadError::invalid_client_secret().to_json()).expect("json");
        assert_eq!(json["error"], "invalid_client");
        assert_eq!(json["error_codes"][0], 7000215);
        let desc = json["error_description"].as_str().unwrap_or_default();
        assert!(desc.starts_with("AADSTS7000215: Invalid client secret provided."));
        assert!(desc.contains("\r\nTrace ID: ") && desc.contains("\r\nCorrelation ID: "));
        assert_eq!(guid().len(), 36);
    }
}
