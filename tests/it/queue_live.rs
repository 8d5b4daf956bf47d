//! `xoauth-relay queue …` against the running binary: messages queued while Microsoft says
//! "later" are listed, held, shown, deleted and released over the control socket, which only
//! the relay's user may open; a released message goes out.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::binary::{BIN, RelayProcess, Scratch, config_text, write_ca};
use crate::common::*;
use xoauth_relay::testkit::{FakeTokenEndpoint, FakeUpstream, TestPki, init_crypto};

const SEND: &str = r#"
import smtplib, sys
host, port = sys.argv[1], int(sys.argv[2])
with smtplib.SMTP(host, port, timeout=30) as s:
    s.login("xenocept", "local-pass")
    for to in sys.argv[3:]:
        code, text = s.docmd("NOOP")
        s.mail("sender@contoso.com")
        s.rcpt(to)
        code, text = s.data(b"Subject: queued\r\n\r\nhello\r\n")
        print(code, text.decode())
"#;

fn queue(config: &Path, state: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("queue")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("XDG_STATE_HOME", state)
        .env_remove("STATE_DIRECTORY")
        .output()
        .expect("run xoauth-relay queue")
}

fn ok(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

fn listed(config: &Path, state: &Path) -> Vec<serde_json::Value> {
    let json: serde_json::Value =
        serde_json::from_str(&ok(&queue(config, state, &["list", "--json"]))).unwrap();
    json.as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_commands_against_the_running_relay() {
    init_crypto();
    let pki = TestPki::new().unwrap();
    let tokens = FakeTokenEndpoint::start(&pki).unwrap();
    tokens.set_expected(CLIENT_ID, CLIENT_SECRET);
    let upstream = FakeUpstream::start(&pki, tokens.token_registry()).unwrap();
    upstream.script(|s| s.final_reply = Some("451 4.3.0 Try again later".into()));
    let dir = Scratch::new("queue-live");
    write_ca(&dir.0, &pki);
    let users =
        format!("[[users]]\nname = \"{USER}\"\npassword = \"{PASSWORD}\"\naccount = \"contoso\"\n");
    let config = dir.0.join("relay.toml");
    let text = config_text(&dir.0, &tokens, &upstream, &users) + "\n[delivery]\nretry = [\"1h\"]\n";
    std::fs::write(&config, text).unwrap();
    let mut relay = RelayProcess::start(&config, &[("E2E_CLIENT_SECRET", CLIENT_SECRET)]);
    let state = dir.0.join("state");

    let (host, port) = relay.smtp.rsplit_once(':').unwrap();
    let sent = Command::new("python3")
        .args(["-c", SEND, host, port, "a@example.net", "b@example.net"])
        .output()
        .expect("python3 is required for this test");
    let replies = ok(&sent);
    assert_eq!(
        replies.matches("250 2.0.0 Queued as ").count(),
        2,
        "{replies}"
    );

    let socket = state.join("xoauth-relay/queue.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket is the relay user's only");

    let all = listed(&config, &state);
    assert_eq!(all.len(), 2, "{all:?}");
    let (first, second) = (
        all[0]["id"].as_str().unwrap(),
        all[1]["id"].as_str().unwrap(),
    );
    assert!(
        all[0]["last_error"].as_str().unwrap().contains("451"),
        "{all:?}"
    );

    ok(&queue(&config, &state, &["hold", first]));
    let shown = ok(&queue(&config, &state, &["show", first, "--json"]));
    assert!(
        shown.contains("\"hold\": \"operator\"") || shown.contains("\"hold\":\"operator\""),
        "{shown}"
    );

    ok(&queue(&config, &state, &["delete", second]));
    relay.wait_for_log("deleted by an operator");
    let failed = state.join("xoauth-relay/spool/failed");
    assert!(failed.join(format!("{second}.msg")).exists());
    assert_eq!(listed(&config, &state).len(), 1);

    upstream.script(|s| s.final_reply = None);
    ok(&queue(&config, &state, &["release", first]));
    relay.wait_for_log("queued message delivered");
    assert_eq!(upstream.messages().len(), 1);
    assert_eq!(upstream.messages()[0].rcpts, ["a@example.net"]);
    assert!(listed(&config, &state).is_empty());

    let unknown = queue(&config, &state, &["hold", "0000000000000000"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no message"),
        "{unknown:?}"
    );
}
