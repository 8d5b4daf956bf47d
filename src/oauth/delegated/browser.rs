//! Signing in through a browser: the authorization code flow with PKCE and a loopback
//! redirect (RFC 8252 §7.3). The relay listens on 127.0.0.1 on a free port, the browser comes
//! back to `http://localhost:PORT` (Entra accepts any port for a loopback redirect URI
//! registered as `http://localhost`), and the one redirect with our `state` carries the code.

use std::io::Write;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::pkce::{self, Pkce};
use super::store::TokenStore;
use super::{Endpoint, LoginError, keep};
use crate::reply::sanitize;

/// How long the person has to finish signing in.
pub(crate) const SIGN_IN_DEADLINE: Duration = Duration::from_secs(5 * 60);
/// How long one browser connection may take to send its request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// A redirect's request head is well under this (the code is about 1 KiB).
const MAX_REQUEST: usize = 16 * 1024;

/// What came back to the loopback address.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Redirect {
    Code(String),
    /// The OAuth `error` and its description (RFC 6749 §4.1.2.1), already sanitised.
    Refused(String),
}

/// Runs the whole flow: prints the address to open, calls `open` with it (which may fail
/// quietly), waits for the redirect and exchanges the code. The refresh token ends up in
/// `store`.
pub(crate) async fn sign_in(
    endpoint: &Endpoint,
    store: &TokenStore,
    login_hint: &str,
    out: &mut dyn Write,
    open: &dyn Fn(&str),
) -> Result<(), LoginError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| LoginError(format!("cannot listen on 127.0.0.1 for the redirect: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| LoginError(e.to_string()))?
        .port();
    let redirect_uri = format!("http://localhost:{port}");
    let rng = pkce::system_random();
    let unavailable = |_| LoginError("the system random generator failed".into());
    let pkce = Pkce::new(&rng).map_err(unavailable)?;
    let state = pkce::random_text(&rng).map_err(unavailable)?;
    let url = authorize_url(endpoint, &redirect_uri, &pkce, &state, login_hint)?;
    let _ = writeln!(
        out,
        "Open this address in a browser and sign in as {login_hint}:\n\n  {url}\n\n\
         Waiting up to {} minutes for the sign-in to finish…",
        SIGN_IN_DEADLINE.as_secs() / 60
    );
    let _ = out.flush();
    open(&url);
    let code = match wait(&listener, &state, SIGN_IN_DEADLINE).await? {
        Redirect::Code(code) => code,
        Redirect::Refused(why) => return Err(LoginError(format!("the sign-in failed: {why}"))),
    };
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", pkce.verifier.expose().as_str()),
        ("scope", endpoint.scope.as_str()),
    ];
    keep(endpoint.grant(&form).await?, store)
}

fn authorize_url(
    endpoint: &Endpoint,
    redirect_uri: &str,
    pkce: &Pkce,
    state: &str,
    login_hint: &str,
) -> Result<String, LoginError> {
    let params = [
        ("client_id", endpoint.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", redirect_uri),
        ("response_mode", "query"),
        ("scope", endpoint.scope.as_str()),
        ("state", state),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("login_hint", login_hint),
    ];
    reqwest::Url::parse_with_params(&endpoint.sibling("authorize"), &params)
        .map(String::from)
        .map_err(|e| LoginError(format!("the token URL cannot be used to sign in: {e}")))
}

/// Answers browser requests until one brings our `state` back, or `deadline` passes. Others
/// (a favicon, a stray or forged request) get a 404 and change nothing.
pub(crate) async fn wait(
    listener: &TcpListener,
    state: &str,
    deadline: Duration,
) -> Result<Redirect, LoginError> {
    let until = Instant::now() + deadline;
    loop {
        let accepted = tokio::time::timeout_at(until, listener.accept()).await;
        let Ok(accepted) = accepted else {
            return Err(LoginError(format!(
                "no sign-in came back within {} minutes; run login again (or use --device)",
                deadline.as_secs() / 60
            )));
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        if let Some(redirect) = serve(stream, state).await {
            return Ok(redirect);
        }
    }
}

/// One browser connection: the redirect if it is ours, after answering it.
async fn serve(mut stream: TcpStream, state: &str) -> Option<Redirect> {
    let head = tokio::time::timeout(REQUEST_DEADLINE, read_head(&mut stream))
        .await
        .ok()?;
    let redirect = head.as_deref().and_then(|h| parse_redirect(h, state));
    let (status, page) = match &redirect {
        Some(Redirect::Code(_)) => (
            "200 OK",
            "Signed in. You can close this window; xoauth-relay is storing the sign-in.",
        ),
        Some(Redirect::Refused(_)) => (
            "200 OK",
            "The sign-in did not succeed; the terminal says why. You can close this window.",
        ),
        None => ("404 Not Found", "Not the sign-in redirect."),
    };
    let html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>xoauth-relay</title></head>\
         <body><p>{page}</p></body></html>"
    );
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{html}",
        html.len()
    );
    let _ = tokio::time::timeout(REQUEST_DEADLINE, stream.write_all(response.as_bytes())).await;
    let _ = stream.shutdown().await;
    redirect
}

/// The request head up to the blank line, or `None` when it is too long or the peer left.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(head).ok()
}

/// `GET /?code=…&state=…` or `GET /?error=…&state=…` with our `state`.
pub(crate) fn parse_redirect(head: &str, state: &str) -> Option<Redirect> {
    let target = head
        .lines()
        .next()?
        .strip_prefix("GET ")?
        .split(' ')
        .next()?;
    let url = reqwest::Url::parse(&format!("http://localhost{target}")).ok()?;
    if url.path() != "/" {
        return None;
    }
    let get = |key: &str| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    // RFC 6749 §10.12: a redirect without our state is not the answer to our request.
    if get("state").as_deref() != Some(state) {
        return None;
    }
    if let Some(code) = get("code").filter(|c| !c.is_empty()) {
        return Some(Redirect::Code(code));
    }
    let error = get("error")?;
    let description = get("error_description").unwrap_or_default();
    Some(Redirect::Refused(
        sanitize(&format!("{error}: {description}"))
            .trim_end()
            .to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_redirect_with_our_state_counts() {
        let ours = "GET /?code=abc%2B1&state=S1 HTTP/1.1\r\nHost: localhost\r\n\r\n";
        assert_eq!(
            parse_redirect(ours, "S1"),
            Some(Redirect::Code("abc+1".into()))
        );
        assert_eq!(parse_redirect(ours, "other"), None, "state checked");
        let refused = "GET /?error=access_denied&error_description=The+user+said+no%0D%0A&state=S1 HTTP/1.1\r\n\r\n";
        assert_eq!(
            parse_redirect(refused, "S1"),
            Some(Redirect::Refused("access_denied: The user said no".into()))
        );
        for other in [
            "GET /favicon.ico HTTP/1.1\r\n\r\n",
            "POST /?code=a&state=S1 HTTP/1.1\r\n\r\n",
            "GET /?state=S1 HTTP/1.1\r\n\r\n",
            "GET /x?code=a&state=S1 HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse_redirect(other, "S1"), None, "{other:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_ends_at_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let e = wait(&listener, "s", SIGN_IN_DEADLINE).await.unwrap_err();
        assert!(e.0.contains("within 5 minutes"), "{e}");
    }

    #[tokio::test]
    async fn stray_requests_are_answered_and_the_redirect_waited_for() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let browser = tokio::spawn(async move {
            let mut pages = Vec::new();
            for target in [
                "/favicon.ico",
                "/?code=c&state=wrong",
                "/?code=c0de&state=s",
            ] {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
                s.write_all(request.as_bytes()).await.unwrap();
                let mut page = String::new();
                s.read_to_string(&mut page).await.unwrap();
                pages.push(page);
            }
            pages
        });
        let got = wait(&listener, "s", SIGN_IN_DEADLINE).await.unwrap();
        assert_eq!(got, Redirect::Code("c0de".into()));
        let pages = browser.await.unwrap();
        assert!(pages[0].starts_with("HTTP/1.1 404") && pages[1].starts_with("HTTP/1.1 404"));
        assert!(
            pages[2].starts_with("HTTP/1.1 200") && pages[2].contains("Signed in"),
            "{}",
            pages[2]
        );
    }
}
