//! `FakeTokenEndpoint`: an HTTPS stand-in for
//! `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token` (client credentials; the
//! delegated grants and `/authorize`, `/devicecode` are in `delegated`),
//! with switchable failure modes and counters for the tests.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::aad::{AadError, TokenMode};
use super::assertion_check::{self, Expected, SeenIds};
use super::delegated::{DEVICE_GRANT, Delegated};
use super::pki::TestPki;
use super::server_task::{ServerTask, spawn_loopback_server};
use super::tokens::{SMTP_ROLE, SMTP_SCOPE, TokenGrant, TokenRegistry};
use crate::secret::Secret;

/// The scope Exchange Online SMTP needs with client credentials.
pub const DEFAULT_SCOPE: &str = "https://outlook.office365.com/.default";

/// Default `expires_in`, what Entra typically answers.
pub const DEFAULT_EXPIRES_IN: u64 = 3599;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// How long reading one request head may take.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// Largest request body accepted; a token request is a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// What the endpoint saw in one token request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenRequest {
    /// The `{tenant}` path segment.
    pub tenant: String,
    /// `grant_type` from the body.
    pub grant_type: String,
    /// `client_id` from the body (or from HTTP Basic auth).
    pub client_id: String,
    /// `scope` from the body.
    pub scope: String,
    /// `client_secret` from the body (or HTTP Basic auth); prints as `***`.
    pub client_secret: Option<Secret<String>>,
    /// `client_assertion_type` from the body.
    pub client_assertion_type: String,
    /// `client_assertion` (a signed JWT) from the body; prints as `***`.
    pub client_assertion: Option<Secret<String>>,
    /// `refresh_token` of a refresh grant; prints as `***`.
    pub refresh_token: Option<Secret<String>>,
    /// `code` of an authorization-code grant; prints as `***`.
    pub code: Option<Secret<String>>,
    /// `code_verifier` (PKCE) of an authorization-code grant; prints as `***`.
    pub code_verifier: Option<Secret<String>>,
    /// `redirect_uri` of an authorization-code grant.
    pub redirect_uri: String,
    /// `device_code` of a device-code grant.
    pub device_code: String,
}

impl TokenRequest {
    /// True when a non-empty client secret was sent.
    pub fn has_secret(&self) -> bool {
        self.client_secret
            .as_ref()
            .is_some_and(|s| !s.expose().is_empty())
    }
}

/// Settings the tests change while the server runs.
struct Settings {
    mode: TokenMode,
    /// Answers in this mode for the next so many requests, then in `mode` again.
    next: Option<(usize, TokenMode)>,
    client_id: Option<String>,
    client_secret: Option<Secret<String>>,
    /// The certificate registered on the app (DER): client assertions must be signed with it.
    certificate: Option<Vec<u8>>,
    /// Where the server listens, for the `aud` of client assertions.
    addr: Option<SocketAddr>,
    tenants: Option<Vec<String>>,
    expires_in: u64,
    roles: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: TokenMode::Ok,
            next: None,
            client_id: None,
            client_secret: None,
            certificate: None,
            addr: None,
            tenants: None,
            expires_in: DEFAULT_EXPIRES_IN,
            roles: vec![SMTP_ROLE.to_string()],
        }
    }
}

/// What was observed so far.
#[derive(Default)]
struct Log {
    issued: Vec<String>,
    last_request: Option<TokenRequest>,
    /// The `jti` of every client assertion accepted or refused after its signature checked.
    seen_ids: SeenIds,
}

/// State shared by the handle and the connection tasks. Std mutexes: no lock is held across
/// an `.await`, and every critical section is a few field accesses.
struct Shared {
    settings: Mutex<Settings>,
    log: Mutex<Log>,
    /// Number of requests; a watch channel so `wait_for_calls` cannot miss an update.
    calls: watch::Sender<usize>,
    registry: TokenRegistry,
    delegated: Mutex<Delegated>,
}

/// How to answer one request.
enum Answer {
    Respond {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// `302 Found` to this address (the browser's way back from `/authorize`).
    Redirect(String),
    Hang,
}

/// The fake token endpoint. Dropping it stops the server and closes every connection.
pub struct FakeTokenEndpoint {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _task: ServerTask,
}

impl FakeTokenEndpoint {
    /// Starts the HTTPS server on `127.0.0.1:0` with `pki`'s certificate. Needs a tokio runtime.
    pub fn start(pki: &TestPki) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            settings: Mutex::new(Settings::default()),
            log: Mutex::new(Log::default()),
            calls: watch::Sender::new(0),
            registry: TokenRegistry::new(),
            delegated: Mutex::new(Delegated::default()),
        });
        let mut tls = (*pki.server_config()).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) =
            spawn_loopback_server(move |tcp| serve_connection(app.clone(), acceptor.clone(), tcp))?;
        shared.settings().addr = Some(addr);
        Ok(Self {
            addr,
            shared,
            _task: task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:{port}/{tenant}/oauth2/v2.0/token`.
    pub fn url(&self, tenant: &str) -> String {
        format!(
            "https://127.0.0.1:{}/{tenant}/oauth2/v2.0/token",
            self.addr.port()
        )
    }

    /// Only this client id and secret are accepted from now on (default: any non-empty pair).
    pub fn set_expected(&self, client_id: &str, client_secret: &str) {
        let mut settings = self.settings();
        settings.client_id = Some(client_id.to_string());
        settings.client_secret = Some(Secret::new(client_secret.to_string()));
    }

    /// The certificate (DER) registered on the app: client assertions must be signed with its
    /// key (others get AADSTS700027). Without one, any assertion gets AADSTS700027.
    pub fn set_certificate(&self, der: &[u8]) {
        self.settings().certificate = Some(der.to_vec());
    }

    /// Only these tenants exist (others get AADSTS90002); `None` (default) accepts any.
    pub fn set_tenants(&self, tenants: Option<Vec<String>>) {
        self.settings().tenants = tenants;
    }

    /// How the next requests are answered.
    pub fn set_mode(&self, mode: TokenMode) {
        self.settings().mode = mode;
    }

    /// Answers the next `times` requests in `mode`, then as before (a transient failure).
    pub fn set_mode_for(&self, times: usize, mode: TokenMode) {
        self.settings().next = (times > 0).then_some((times, mode));
    }

    /// `expires_in` of issued tokens, in seconds (default 3599).
    pub fn set_expires_in(&self, secs: u64) {
        self.settings().expires_in = secs;
    }

    /// `roles` claim of issued tokens (default `["SMTP.SendAsApp"]`; empty omits the claim).
    pub fn set_roles(&self, roles: Vec<String>) {
        self.settings().roles = roles;
    }

    /// `/authorize` sends the browser back with this OAuth error (e.g. `access_denied`)
    /// instead of a code; `None` (default) signs in.
    pub fn set_authorize_error(&self, error: Option<(&str, &str)>) {
        self.shared.delegated().authorize_error =
            error.map(|(e, d)| (e.to_string(), d.to_string()));
    }

    /// What the polls of the next device flows get before the sign-in is approved, in order
    /// (`authorization_pending`, `slow_down`, or a final `authorization_declined` or
    /// `expired_token`); default one `authorization_pending`.
    pub fn set_device_answers(&self, answers: &[&str]) {
        self.shared.delegated().device_answers =
            Some(answers.iter().map(|a| a.to_string()).collect());
    }

    /// A refresh token for `client_id` and `scope`, as if the user had signed in.
    pub fn issue_refresh_token(&self, client_id: &str, scope: &str) -> String {
        self.shared.delegated().seed(client_id, scope)
    }

    /// The refresh tokens accepted now (each is refused once it was used: rotation).
    pub fn refresh_tokens(&self) -> Vec<String> {
        self.shared.delegated().valid()
    }

    /// Refresh-token grants received so far.
    pub fn refresh_grants(&self) -> usize {
        self.shared.delegated().refresh_grants
    }

    /// Revokes every refresh token issued so far: their next use gets `invalid_grant`
    /// (AADSTS50173), as after "revoke sessions".
    pub fn revoke_refresh_tokens(&self) {
        self.shared.delegated().revoke_all();
    }

    /// Requests received so far, whatever their outcome.
    pub fn calls(&self) -> usize {
        *self.shared.calls.borrow()
    }

    /// Waits until at least `n` requests were received.
    pub async fn wait_for_calls(&self, n: usize) {
        let mut rx = self.shared.calls.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|calls| *calls >= n).await;
    }

    /// Every token issued by this endpoint, oldest first.
    pub fn issued(&self) -> Vec<String> {
        self.log().issued.clone()
    }

    /// The last token request (on the token path), if any.
    pub fn last_request(&self) -> Option<TokenRequest> {
        self.log().last_request.clone()
    }

    /// The registry the fake upstream should check tokens against.
    pub fn token_registry(&self) -> TokenRegistry {
        self.shared.registry.clone()
    }

    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.shared.settings()
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.shared.log()
    }
}

impl Shared {
    /// The mode for this request: a pending temporary one, else the current one.
    fn next_mode(&self) -> TokenMode {
        let mut settings = self.settings();
        match settings.next.take() {
            Some((times, mode)) => {
                if times > 1 {
                    settings.next = Some((times - 1, mode.clone()));
                }
                mode
            }
            None => settings.mode.clone(),
        }
    }

    fn settings(&self) -> MutexGuard<'_, Settings> {
        // Poisoning can only come from a panicking test thread; the settings stay consistent.
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn delegated(&self) -> MutexGuard<'_, Delegated> {
        self.delegated.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides the answer to one request.
    fn answer(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Answer {
        if sibling_tenant(path, "authorize").is_some() {
            let query: HashMap<String, String> =
                form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                    .into_owned()
                    .collect();
            let expected = self.settings().client_id.clone();
            return match self.delegated().authorize(&query, expected.as_deref()) {
                Ok(location) => Answer::Redirect(location),
                Err(error) => aad_error(&error),
            };
        }
        if sibling_tenant(path, "devicecode").is_some() && method == Method::POST {
            let request = parse_token_request("", headers, body);
            let answer = self
                .delegated()
                .device_code(&request.client_id, &request.scope);
            return Answer::Respond {
                status: 200,
                content_type: "application/json; charset=utf-8",
                body: answer.to_string(),
            };
        }
        let Some(tenant) = token_path_tenant(path) else {
            return plain(404, "Not Found");
        };
        if method != Method::POST {
            return plain(405, "Method Not Allowed");
        }
        let token_request = parse_token_request(tenant, headers, body);
        self.log().last_request = Some(token_request.clone());
        let mode = self.next_mode();
        match mode {
            TokenMode::Ok => self.validate_and_issue(&token_request),
            TokenMode::Error {
                status,
                error,
                codes,
                description,
            } => aad_error(&AadError::new(status, &error, codes, &description)),
            TokenMode::ServerError => Answer::Respond {
                status: 500,
                content_type: "text/html; charset=utf-8",
                body: "<html><body><h1>500 Internal Server Error</h1>\
                       <p>Sorry, but we're having trouble signing you in.</p></body></html>"
                    .to_string(),
            },
            TokenMode::Hang => Answer::Hang,
            TokenMode::Garbage => Answer::Respond {
                status: 200,
                content_type: "application/json; charset=utf-8",
                body: "<!DOCTYPE html><html>this is not json".to_string(),
            },
        }
    }

    fn validate_and_issue(&self, request: &TokenRequest) -> Answer {
        if is_delegated(&request.grant_type) {
            return self.delegated_grant(request);
        }
        let grant = match self.validate(request) {
            Ok(grant) => grant,
            Err(error) => return aad_error(&error),
        };
        let token = self.registry.issue(&grant);
        self.log().issued.push(token.clone());
        let body = serde_json::json!({
            "token_type": "Bearer",
            "expires_in": grant.expires_in,
            "ext_expires_in": grant.expires_in,
            "access_token": token,
        });
        Answer::Respond {
            status: 200,
            content_type: "application/json; charset=utf-8",
            body: body.to_string(),
        }
    }

    /// A user's grant: a token with the `SMTP.Send` scope and the next refresh token.
    fn delegated_grant(&self, request: &TokenRequest) -> Answer {
        let expected = self.settings().client_id.clone();
        if expected.is_some_and(|id| id != request.client_id) {
            return aad_error(&AadError::application_not_found(
                &request.client_id,
                &request.tenant,
            ));
        }
        let approved = match self.delegated().grant(request) {
            Ok(approved) => approved,
            Err(error) => return aad_error(&error),
        };
        let expires_in = self.settings().expires_in;
        let token = self.registry.issue(&TokenGrant {
            tenant: request.tenant.clone(),
            client_id: approved.client_id,
            roles: Vec::new(),
            scopes: vec![SMTP_SCOPE.to_string()],
            expires_in,
        });
        self.log().issued.push(token.clone());
        let body = serde_json::json!({
            "token_type": "Bearer",
            "scope": approved.scope,
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": token,
            "refresh_token": approved.refresh_token,
        });
        Answer::Respond {
            status: 200,
            content_type: "application/json; charset=utf-8",
            body: body.to_string(),
        }
    }

    /// Entra's checks, in roughly Entra's order: tenant, grant, client, secret, scope.
    fn validate(&self, request: &TokenRequest) -> Result<TokenGrant, AadError> {
        let settings = self.settings();
        if let Some(tenants) = &settings.tenants
            && !tenants
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&request.tenant))
        {
            return Err(AadError::tenant_not_found(&request.tenant));
        }
        check_grant_type(&request.grant_type)?;
        if request.client_assertion.is_some() || !request.client_assertion_type.is_empty() {
            let seen = &mut self.log().seen_ids;
            check_assertion(&settings, request, seen)?;
        } else {
            check_client(&settings, request)?;
        }
        check_scope(&request.scope)?;
        Ok(TokenGrant {
            tenant: request.tenant.clone(),
            client_id: request.client_id.clone(),
            roles: settings.roles.clone(),
            scopes: Vec::new(),
            expires_in: settings.expires_in,
        })
    }
}

fn is_delegated(grant_type: &str) -> bool {
    matches!(
        grant_type,
        "refresh_token" | "authorization_code" | DEVICE_GRANT
    )
}

fn check_grant_type(grant_type: &str) -> Result<(), AadError> {
    match grant_type {
        "" => Err(AadError::missing_parameter("grant_type")),
        "client_credentials" => Ok(()),
        other => Err(AadError::unsupported_grant_type(other)),
    }
}

fn check_client(settings: &Settings, request: &TokenRequest) -> Result<(), AadError> {
    check_client_id(settings, request)?;
    let Some(sent) = request
        .client_secret
        .as_ref()
        .filter(|s| !s.expose().is_empty())
    else {
        return Err(AadError::missing_client_secret());
    };
    // A test fake: a plain comparison is fine, there is no timing attacker on loopback.
    if settings
        .client_secret
        .as_ref()
        .is_some_and(|want| want != sent)
    {
        return Err(AadError::invalid_client_secret());
    }
    Ok(())
}

fn check_client_id(settings: &Settings, request: &TokenRequest) -> Result<(), AadError> {
    if request.client_id.is_empty() {
        return Err(AadError::missing_parameter("client_id"));
    }
    if settings
        .client_id
        .as_ref()
        .is_some_and(|id| *id != request.client_id)
    {
        return Err(AadError::application_not_found(
            &request.client_id,
            &request.tenant,
        ));
    }
    Ok(())
}

/// The client and its assertion, instead of a secret (RFC 7523 §2.2).
fn check_assertion(
    settings: &Settings,
    request: &TokenRequest,
    seen: &mut SeenIds,
) -> Result<(), AadError> {
    check_client_id(settings, request)?;
    if request.client_assertion_type != crate::oauth::assertion::ASSERTION_TYPE {
        return Err(AadError::missing_parameter("client_assertion_type"));
    }
    let Some(jwt) = &request.client_assertion else {
        return Err(AadError::missing_parameter("client_assertion"));
    };
    let port = settings.addr.map_or(0, |a| a.port());
    let audience = format!(
        "https://127.0.0.1:{port}/{}/oauth2/v2.0/token",
        request.tenant
    );
    let expected = Expected {
        certificate: settings.certificate.as_deref(),
        client_id: &request.client_id,
        audience: &audience,
        now_unix: crate::dates::now_unix(),
    };
    assertion_check::verify(jwt.expose(), &expected, seen)
}

fn check_scope(scope: &str) -> Result<(), AadError> {
    if scope.is_empty() {
        return Err(AadError::missing_parameter("scope"));
    }
    if scope != DEFAULT_SCOPE {
        return Err(AadError::invalid_scope(scope));
    }
    Ok(())
}

fn aad_error(error: &AadError) -> Answer {
    Answer::Respond {
        status: error.status,
        content_type: "application/json; charset=utf-8",
        body: error.to_json(),
    }
}

fn plain(status: u16, text: &str) -> Answer {
    Answer::Respond {
        status,
        content_type: "text/plain; charset=utf-8",
        body: text.to_string(),
    }
}

/// The tenant of `/{tenant}/oauth2/v2.0/token` (query string ignored), or None for other paths.
fn token_path_tenant(target: &str) -> Option<&str> {
    let path = target.split('?').next().unwrap_or("");
    let tenant = path.strip_prefix('/')?.strip_suffix("/oauth2/v2.0/token")?;
    (!tenant.is_empty() && !tenant.contains('/')).then_some(tenant)
}

/// The tenant of `/{tenant}/oauth2/v2.0/{leaf}`, for the endpoints next to the token one.
fn sibling_tenant<'a>(path: &'a str, leaf: &str) -> Option<&'a str> {
    let tenant = path
        .strip_prefix('/')?
        .strip_suffix(leaf)?
        .strip_suffix("/oauth2/v2.0/")?;
    (!tenant.is_empty() && !tenant.contains('/')).then_some(tenant)
}

/// The form fields of the body; like lenient servers, bad `%` escapes are kept literally and
/// invalid UTF-8 is replaced.
fn parse_token_request(tenant: &str, headers: &HeaderMap, body: &[u8]) -> TokenRequest {
    let mut out = TokenRequest {
        tenant: tenant.to_string(),
        ..TokenRequest::default()
    };
    for (key, value) in form_urlencoded::parse(body) {
        let value = value.into_owned();
        match &*key {
            "grant_type" => out.grant_type = value,
            "client_id" => out.client_id = value,
            "client_secret" => out.client_secret = Some(Secret::new(value)),
            "client_assertion_type" => out.client_assertion_type = value,
            "client_assertion" => out.client_assertion = Some(Secret::new(value)),
            "scope" => out.scope = value,
            "refresh_token" => out.refresh_token = Some(Secret::new(value)),
            "code" => out.code = Some(Secret::new(value)),
            "code_verifier" => out.code_verifier = Some(Secret::new(value)),
            "redirect_uri" => out.redirect_uri = value,
            "device_code" => out.device_code = value,
            _ => {}
        }
    }
    if out.client_secret.is_none()
        && let Some((id, secret)) = basic_credentials(headers)
    {
        // RFC 6749 §2.3.1: Entra also accepts the client in an Authorization: Basic header.
        if out.client_id.is_empty() {
            out.client_id = id;
        }
        out.client_secret = Some(Secret::new(secret));
    }
    out
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// Form decoding of one value: `+` is a space, then percent escapes.
fn form_decode(value: &str) -> String {
    let spaced = value.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Every request that HTTP could parse, whatever its path, method or body.
async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return respond(413, "text/plain", String::new());
    };
    shared.calls.send_modify(|calls| *calls += 1);
    let (path, query) = (parts.uri.path(), parts.uri.query());
    match shared.answer(&parts.method, path, query, &parts.headers, &body) {
        Answer::Respond {
            status,
            content_type,
            body,
        } => respond(status, content_type, body),
        Answer::Redirect(location) => {
            let mut response = respond(302, "text/plain", String::new());
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        // The connection stays open until the client gives up or the fake is dropped.
        Answer::Hang => std::future::pending().await,
    }
}

fn respond(status: u16, content_type: &'static str, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Body::from(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // RFC 6749 §5.1: token responses must not be cached.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn serve_connection(app: Router, acceptor: TlsAcceptor, tcp: TcpStream) {
    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await else {
        return;
    };
    // hyper answers malformed requests itself (400, 431, 505), and on closing sends TLS
    // close_notify through the stream's shutdown, so clients reading to EOF see a clean end.
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(REQUEST_DEADLINE)
        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
        .await;
    if let Err(error) = served {
        tracing::debug!(%error, "fake token endpoint connection failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_path() {
        assert_eq!(
            token_path_tenant("/contoso/oauth2/v2.0/token"),
            Some("contoso")
        );
        assert_eq!(token_path_tenant("/c/oauth2/v2.0/token?x=1"), Some("c"));
        assert_eq!(token_path_tenant("//oauth2/v2.0/token"), None);
        assert_eq!(token_path_tenant("/a/b/oauth2/v2.0/token"), None);
        assert_eq!(token_path_tenant("/contoso/oauth2/token"), None);
    }

    #[test]
    fn form_and_basic_credentials_are_decoded_leniently() {
        let body = b"grant_type=client_credentials&scope=https%3A%2F%2Fx%2F.default\
                     &client_id=a+b&bad=%zz%4&empty=&flag";
        let request = parse_token_request("t", &HeaderMap::new(), body);
        assert_eq!(request.grant_type, "client_credentials");
        assert_eq!(request.scope, "https://x/.default");
        assert_eq!(request.client_id, "a b");
        assert!(!request.has_secret());
        let form: Vec<_> = form_urlencoded::parse(b"bad=%zz%4&empty=&flag").collect();
        assert_eq!(form[0], ("bad".into(), "%zz%4".into()));
        assert_eq!(form[1], ("empty".into(), "".into()));
        assert_eq!(form[2], ("flag".into(), "".into()));

        let mut headers = HeaderMap::new();
        let basic = format!("Basic {}", STANDARD.encode("id%2B1:s+%26%3D"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&basic).expect("header"),
        );
        let request = parse_token_request("t", &headers, b"");
        assert_eq!(request.client_id, "id+1");
        assert_eq!(
            request.client_secret.as_ref().map(|s| s.expose().as_str()),
            Some("s &=")
        );
    }
}
