//! `xoauth-relay demo`: the whole path on one machine, with no account and no network. It
//! starts the stand-ins for Microsoft 365 (a token endpoint and an SMTP server that requires
//! STARTTLS and checks the XOAUTH2 token, both with a throwaway certificate only this process
//! trusts), the real relay in front of them, sends one message through and shows what arrived.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::daemon::{self, Running};
use crate::testkit::smtp_client::{Reply, SmtpClient, auth_plain_line, dot_stuff};
use crate::testkit::{FakeTokenEndpoint, FakeUpstream, Identity, Received, TestPki, relay_config};

const USER: &str = "demo";
const PASSWORD: &str = "demo-password";
const MAILBOX: &str = "relay@contoso.example";
const TENANT: &str = "contoso.example";
const CLIENT_ID: &str = "00000000-0000-0000-0000-0000000de300";
const CLIENT_SECRET: &str = "demo-client-secret";
const DEFAULT_LISTEN: &str = "127.0.0.1:2525";
/// How long `--once` waits for its message before calling the demo failed.
const ARRIVAL_DEADLINE: Duration = Duration::from_secs(30);

/// The stand-ins and the relay.
struct Stage {
    tokens: FakeTokenEndpoint,
    upstream: FakeUpstream,
    relay: Running,
    /// Why the relay is not on the default address, when it was wanted there.
    moved: Option<String>,
}

pub async fn run(once: bool, listen: Option<SocketAddr>) -> Result<(), String> {
    crate::tls::install_crypto_provider();
    let stage = start(once, listen).await?;
    print_banner(&stage, once);
    let body = demo_message();
    submit(stage.relay.smtp_addr, &body).await?;
    let arrived = tokio::time::timeout(ARRIVAL_DEADLINE, stage.upstream.next_message())
        .await
        .map_err(|_| "the message did not arrive at the stand-in".to_string())?;
    let intact = show(&arrived, &body, &stage.tokens);
    if once {
        stage.relay.stop().await;
        return if intact {
            Ok(())
        } else {
            Err("the message arrived altered".into())
        };
    }
    println!("\nThe relay keeps running; send more mail to it. Ctrl-C stops the demo.");
    loop {
        tokio::select! {
            message = stage.upstream.next_message() => {
                println!("\n--- another message arrived at the stand-in ---");
                show_received(&message);
            }
            _ = daemon::termination_signal() => break,
        }
    }
    stage.relay.stop().await;
    Ok(())
}

async fn start(once: bool, listen: Option<SocketAddr>) -> Result<Stage, String> {
    let pki = TestPki::new().map_err(|e| format!("cannot make the demo certificate: {e}"))?;
    let tokens =
        FakeTokenEndpoint::start(&pki).map_err(|e| format!("stand-in token endpoint: {e}"))?;
    tokens.set_expected(CLIENT_ID, CLIENT_SECRET);
    let upstream = FakeUpstream::start(&pki, tokens.token_registry())
        .map_err(|e| format!("stand-in SMTP server: {e}"))?;
    upstream.script(|s| s.allowed_users = Some(vec![MAILBOX.to_string()]));
    let (listener, moved) = bind(once, listen, DEFAULT_LISTEN).await?;
    let config = demo_config(
        &pki,
        &tokens,
        &upstream,
        listener.local_addr().map_err(|e| e.to_string())?,
    );
    let relay = daemon::start(&config, listener)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Stage {
        tokens,
        upstream,
        relay,
        moved,
    })
}

/// The chosen address, which must be loopback (the demo has no TLS, and `run` refuses a
/// clear-text listener elsewhere too); without one, `default` (any free port for `--once`, or
/// when `default` is taken, saying so).
async fn bind(
    once: bool,
    listen: Option<SocketAddr>,
    default: &str,
) -> Result<(TcpListener, Option<String>), String> {
    if let Some(addr) = listen {
        if !addr.ip().is_loopback() {
            return Err(format!(
                "--listen {addr} is not a loopback address: the demo listens without TLS, so \
                 passwords would cross the network in clear text (`run` refuses the same); use \
                 127.0.0.1 or [::1]"
            ));
        }
        let listener = daemon::bind(addr).await.map_err(|e| e.to_string())?;
        return Ok((listener, None));
    }
    let moved = if once {
        None
    } else {
        match TcpListener::bind(default).await {
            Ok(listener) => return Ok((listener, None)),
            Err(e) => Some(format!("{default} is not available ({e})")),
        }
    };
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    Ok((listener, moved))
}

fn demo_config(
    pki: &TestPki,
    tokens: &FakeTokenEndpoint,
    upstream: &FakeUpstream,
    listen: SocketAddr,
) -> Config {
    let who = Identity {
        account: "demo",
        user: USER,
        password: PASSWORD,
        mailbox: MAILBOX,
        tenant: TENANT,
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
    };
    let mut config = relay_config(pki, tokens, upstream, &who, listen);
    config.hostname = "demo.xoauth-relay".into();
    config
}

fn print_banner(stage: &Stage, once: bool) {
    let smtp = stage.relay.smtp_addr;
    println!(
        "xoauth-relay demo: everything below runs on this machine, no Microsoft account needed.\n"
    );
    println!("Stand-in for Microsoft 365:");
    println!("  token endpoint  {}", stage.tokens.url(TENANT));
    println!(
        "  SMTP server     {} (requires STARTTLS, checks the XOAUTH2 token)",
        stage.upstream.addr()
    );
    if let Some(why) = &stage.moved {
        println!(
            "\n{why}, so the relay listens on port {} instead.",
            smtp.port()
        );
    }
    if once {
        println!(
            "\nThe relay, as you would run it, listens on {smtp} until the message is through:"
        );
    } else {
        println!("\nThe relay, as you would run it, listens on {smtp}. Point a mail client at it:");
    }
    let loopback = if smtp.ip().is_loopback() {
        " (loopback)"
    } else {
        ""
    };
    println!(
        "  server {}   port {}   security: none{loopback}",
        smtp.ip(),
        smtp.port()
    );
    println!("  username {USER}   password {PASSWORD}   sender {MAILBOX}\n");
    println!("Sending one message through the relay...");
}

/// A message with 8-bit text and lines that need dot-stuffing, to show nothing is altered.
fn demo_message() -> Vec<u8> {
    format!(
        "From: Demo <{MAILBOX}>\r\nTo: <someone@example.net>\r\nSubject: Hello from xoauth-relay\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         This message went: mail client -> relay (AUTH PLAIN) -> stand-in Microsoft 365 (STARTTLS, XOAUTH2).\r\n\
         .A line starting with a dot, and some 8-bit text: caf\u{e9}, \u{fc}ber, \u{65e5}\u{672c}.\r\n"
    )
    .into_bytes()
}

/// Submits `body` like an ordinary mail client would: EHLO, AUTH PLAIN, MAIL, RCPT, DATA.
async fn submit(relay: SocketAddr, body: &[u8]) -> Result<(), String> {
    let mut client = tokio::time::timeout(ARRIVAL_DEADLINE, SmtpClient::try_connect(relay))
        .await
        .map_err(|_| "the relay did not answer".to_string())?
        .ok_or_else(|| "cannot connect to the relay".to_string())?;
    println!("  relay: {}", last_line(&client.greeting));
    let steps: [(Vec<u8>, u16); 6] = [
        (b"EHLO demo-client\r\n".to_vec(), 250),
        (
            format!("{}\r\n", auth_plain_line(USER, PASSWORD)).into_bytes(),
            235,
        ),
        (
            format!("MAIL FROM:<{MAILBOX}> BODY=8BITMIME\r\n").into_bytes(),
            250,
        ),
        (b"RCPT TO:<someone@example.net>\r\nDATA\r\n".to_vec(), 250),
        (Vec::new(), 354),
        (dot_stuff(body), 250),
    ];
    for (send, want) in steps {
        client.write(&send).await.map_err(|e| e.to_string())?;
        let reply = tokio::time::timeout(ARRIVAL_DEADLINE, client.read_reply())
            .await
            .map_err(|_| "the relay did not answer".to_string())?;
        if reply.code == 0 {
            return Err("the relay closed the connection".into());
        }
        if reply.code != want {
            return Err(format!(
                "the relay answered {:?} (expected {want})",
                last_line(&reply)
            ));
        }
        println!("  relay: {}", last_line(&reply));
    }
    let _ = client.write(b"QUIT\r\n").await;
    Ok(())
}

/// The last line of a reply, which carries its code and final text.
fn last_line(reply: &Reply) -> &str {
    reply.text.lines().last().unwrap_or("")
}

/// Prints what arrived and whether it is byte-identical to what was sent.
fn show(arrived: &Received, sent: &[u8], tokens: &FakeTokenEndpoint) -> bool {
    println!("\nWhat the stand-in for Microsoft 365 received:");
    show_received(arrived);
    let intact = arrived.body == sent;
    let token_ok = tokens.issued().contains(&arrived.token);
    println!(
        "\n  token issued by the stand-in token endpoint: {}",
        yes(token_ok)
    );
    println!(
        "  message byte-identical to what the client sent: {}",
        yes(intact)
    );
    intact && token_ok
}

fn show_received(m: &Received) {
    println!(
        "  over TLS: {}   XOAUTH2 user: {}",
        yes(m.tls),
        m.xoauth2_user
    );
    println!("  bearer token: {} characters (not shown)", m.token.len());
    println!("  MAIL FROM:<{}> {}", m.mail_from, m.mail_params);
    for rcpt in &m.rcpts {
        println!("  RCPT TO:<{rcpt}>");
    }
    println!("  upstream message id: {}", m.message_id);
    println!("  ---- message ({} bytes) ----", m.body.len());
    for line in String::from_utf8_lossy(&m.body).lines() {
        println!("  | {line}");
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_busy_default_port_is_replaced_and_said() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let busy = taken.local_addr().unwrap().to_string();
        let (listener, moved) = bind(false, None, &busy).await.unwrap();
        assert_ne!(listener.local_addr().unwrap().to_string(), busy);
        let moved = moved.expect("the change is said");
        assert!(moved.contains(&busy), "{moved}");

        drop(listener);
        let (_, moved) = bind(true, None, &busy).await.unwrap();
        assert_eq!(moved, None, "--once never wanted the default port");
    }

    #[tokio::test]
    async fn listen_off_loopback_is_refused() {
        for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:2600"] {
            let err = bind(false, Some(addr.parse().unwrap()), DEFAULT_LISTEN)
                .await
                .err()
                .unwrap_or_else(|| panic!("{addr} accepted"));
            assert!(err.contains("not a loopback address"), "{err}");
        }
        let (listener, _) = bind(false, Some("127.0.0.1:0".parse().unwrap()), DEFAULT_LISTEN)
            .await
            .unwrap();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
    }
}
