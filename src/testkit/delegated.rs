//! The fake token endpoint's delegated side: `/authorize` (the page a scripted browser
//! follows back to the loopback redirect), the authorization-code grant checked against its
//! PKCE challenge, `/devicecode` and the device-code grant (pending, then approved), and
//! refresh-token grants that rotate the token (the old one is refused after use) and can be
//! revoked on demand.

use std::collections::{HashMap, HashSet, VecDeque};

use super::aad::AadError;
use super::pki::random_hex;
use super::token_endpoint::TokenRequest;

/// RFC 8628 §3.4.
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Bound on codes and tokens kept: a test makes a handful.
const MAX_ENTRIES: usize = 10_000;

/// Who a code or refresh token was issued to.
#[derive(Debug, Clone)]
struct Issued {
    client_id: String,
    /// The scope of the sign-in, which later grants must stay within.
    scope: String,
}

#[derive(Debug)]
struct PendingCode {
    issued: Issued,
    redirect_uri: String,
    challenge: String,
}

#[derive(Debug)]
struct DeviceFlow {
    issued: Issued,
    /// OAuth errors the next polls get, in order; approved once empty.
    answers: VecDeque<String>,
}

/// The delegated state of the fake: codes in flight and refresh tokens.
#[derive(Debug, Default)]
pub(crate) struct Delegated {
    codes: HashMap<String, PendingCode>,
    devices: HashMap<String, DeviceFlow>,
    refresh: HashMap<String, Issued>,
    /// Refresh tokens already traded for a new one.
    rotated: HashSet<String>,
    revoked: HashSet<String>,
    /// What `/authorize` answers instead of a code: `(error, description)`.
    pub(crate) authorize_error: Option<(String, String)>,
    /// The poll answers of the next device flows (default: one `authorization_pending`).
    pub(crate) device_answers: Option<Vec<String>>,
    pub(crate) refresh_grants: usize,
}

/// A successful delegated grant: the access token is minted by the caller.
pub(crate) struct Approved {
    pub(crate) client_id: String,
    pub(crate) scope: String,
    pub(crate) refresh_token: String,
}

impl Delegated {
    /// `/authorize?…`: where to send the browser (a redirect URI with a code or an error).
    pub(crate) fn authorize(
        &mut self,
        query: &HashMap<String, String>,
        client_id: Option<&str>,
    ) -> Result<String, AadError> {
        let get = |k: &str| query.get(k).map(String::as_str).unwrap_or_default();
        let redirect_uri = get("redirect_uri");
        if !(redirect_uri == "http://localhost" || redirect_uri.starts_with("http://localhost:")) {
            // AADSTS50011: the redirect URI is not one registered on the app.
            return Err(AadError::new(
                400,
                "invalid_request",
                vec![50011],
                "The redirect URI specified in the request does not match the redirect URIs configured for the application.",
            ));
        }
        if client_id.is_some_and(|id| id != get("client_id")) {
            return Err(AadError::application_not_found(get("client_id"), "tenant"));
        }
        if get("response_type") != "code" || get("code_challenge_method") != "S256" {
            return Err(AadError::missing_parameter("code_challenge_method=S256"));
        }
        let state = get("state");
        let mut url = reqwest::Url::parse(redirect_uri)
            .map_err(|_| AadError::missing_parameter("redirect_uri"))?;
        if let Some((error, description)) = &self.authorize_error {
            url.query_pairs_mut()
                .append_pair("error", error)
                .append_pair("error_description", description)
                .append_pair("state", state);
            return Ok(url.into());
        }
        let code = format!("fake-code-{}", random_hex(24));
        bounded(&mut self.codes);
        self.codes.insert(
            code.clone(),
            PendingCode {
                issued: Issued {
                    client_id: get("client_id").to_owned(),
                    scope: get("scope").to_owned(),
                },
                redirect_uri: redirect_uri.to_owned(),
                challenge: get("code_challenge").to_owned(),
            },
        );
        url.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", state);
        Ok(url.into())
    }

    /// `/devicecode`: the JSON answer.
    pub(crate) fn device_code(&mut self, client_id: &str, scope: &str) -> serde_json::Value {
        let device_code = format!("fake-device-{}", random_hex(24));
        let user_code = random_hex(4).to_ascii_uppercase();
        let answers = self
            .device_answers
            .clone()
            .unwrap_or_else(|| vec!["authorization_pending".into()]);
        bounded(&mut self.devices);
        self.devices.insert(
            device_code.clone(),
            DeviceFlow {
                issued: Issued {
                    client_id: client_id.to_owned(),
                    scope: scope.to_owned(),
                },
                answers: answers.into(),
            },
        );
        let uri = "https://microsoft.com/devicelogin";
        serde_json::json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            "expires_in": 900,
            "interval": 5,
            "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
        })
    }

    /// A delegated grant (authorization code, device code or refresh token).
    pub(crate) fn grant(&mut self, request: &TokenRequest) -> Result<Approved, AadError> {
        if request.has_secret() || request.client_assertion.is_some() {
            return Err(AadError::new(
                400,
                "invalid_request",
                vec![700025],
                "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
            ));
        }
        let issued = match request.grant_type.as_str() {
            "authorization_code" => self.code_grant(request)?,
            DEVICE_GRANT => self.device_grant(request)?,
            _ => self.refresh_grant(request)?,
        };
        if issued.client_id != request.client_id {
            return Err(AadError::new(
                400,
                "invalid_grant",
                vec![70000],
                "The provided grant was issued to another client.",
            ));
        }
        if !request.scope.is_empty() && request.scope != issued.scope {
            return Err(AadError::invalid_scope(&request.scope));
        }
        let refresh_token = format!("fake-refresh-{}", random_hex(32));
        bounded(&mut self.refresh);
        self.refresh.insert(refresh_token.clone(), issued.clone());
        Ok(Approved {
            client_id: issued.client_id,
            scope: issued.scope,
            refresh_token,
        })
    }

    fn code_grant(&mut self, request: &TokenRequest) -> Result<Issued, AadError> {
        let code = request
            .code
            .as_ref()
            .map(|c| c.expose().clone())
            .unwrap_or_default();
        // A code is good once (RFC 6749 §4.1.2).
        let Some(pending) = self.codes.remove(&code) else {
            return Err(AadError::new(
                400,
                "invalid_grant",
                vec![70008],
                "The provided authorization code or refresh token has expired due to inactivity.",
            ));
        };
        if request.redirect_uri != pending.redirect_uri {
            return Err(AadError::new(
                400,
                "invalid_grant",
                vec![50148],
                "The redirect_uri does not match the one of the authorization request.",
            ));
        }
        let verifier = request
            .code_verifier
            .as_ref()
            .map(|v| v.expose().as_str())
            .unwrap_or_default();
        if crate::oauth::delegated::pkce::challenge(verifier) != pending.challenge {
            return Err(AadError::new(
                400,
                "invalid_grant",
                vec![501481],
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            ));
        }
        Ok(pending.issued)
    }

    fn device_grant(&mut self, request: &TokenRequest) -> Result<Issued, AadError> {
        let Some(flow) = self.devices.get_mut(&request.device_code) else {
            return Err(AadError::new(
                400,
                "bad_verification_code",
                vec![70019],
                "Verification code expired.",
            ));
        };
        if let Some(answer) = flow.answers.pop_front() {
            let text = format!("The device flow answered {answer}.");
            return Err(AadError::new(400, &answer, vec![70016], &text));
        }
        let flow = self.devices.remove(&request.device_code);
        flow.map(|f| f.issued)
            .ok_or_else(|| AadError::missing_parameter("device_code"))
    }

    fn refresh_grant(&mut self, request: &TokenRequest) -> Result<Issued, AadError> {
        self.refresh_grants += 1;
        let token = request
            .refresh_token
            .as_ref()
            .map(|t| t.expose().clone())
            .unwrap_or_default();
        if self.revoked.contains(&token) {
            return Err(AadError::new(
                400,
                "invalid_grant",
                vec![50173],
                "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
            ));
        }
        match self.refresh.remove(&token) {
            Some(issued) => {
                self.rotated.insert(token);
                Ok(issued)
            }
            None => Err(AadError::new(
                400,
                "invalid_grant",
                vec![70008],
                "The provided authorization code or refresh token has expired due to inactivity.",
            )),
        }
    }

    /// A refresh token as if someone had signed in.
    pub(crate) fn seed(&mut self, client_id: &str, scope: &str) -> String {
        let token = format!("fake-refresh-{}", random_hex(32));
        let issued = Issued {
            client_id: client_id.to_owned(),
            scope: scope.to_owned(),
        };
        self.refresh.insert(token.clone(), issued);
        token
    }

    /// The refresh tokens that would be accepted now.
    pub(crate) fn valid(&self) -> Vec<String> {
        self.refresh.keys().cloned().collect()
    }

    /// Revokes every refresh token issued so far ("revoke sessions").
    pub(crate) fn revoke_all(&mut self) {
        self.revoked.extend(self.refresh.drain().map(|(t, _)| t));
    }
}

fn bounded<V>(map: &mut HashMap<String, V>) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
}
