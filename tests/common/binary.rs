//! Running the built `xoauth-relay` binary in tests: a config file written for the stand-ins,
//! the process with its log read line by line, and its addresses taken from the log (the
//! relay listens on port 0, so no fixed ports and no waiting by sleeping).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use xoauth_relay::testkit::{FakeTokenEndpoint, FakeUpstream, TestPki};

use super::{CLIENT_ID, MAILBOX, TENANT};

pub const BIN: &str = env!("CARGO_BIN_EXE_xoauth-relay");
/// How long to wait for an expected log line before failing the test.
const LOG_DEADLINE: Duration = Duration::from_secs(30);

/// A scratch directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("xoauth-relay-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The configuration file text for the stand-ins: `users` is the `[[users]]` part, the
/// secret comes from the environment variable `E2E_CLIENT_SECRET`.
pub fn config_text(
    pki_dir: &Path,
    tokens: &FakeTokenEndpoint,
    upstream: &FakeUpstream,
    users: &str,
) -> String {
    format!(
        r#"hostname = "relay.e2e"

[listen]
smtp = "127.0.0.1:0"
health = "127.0.0.1:0"

[limits]
auth_failure_delay = "10ms"

{users}

[accounts.contoso]
mailbox = "{MAILBOX}"
tenant = "{TENANT}"
client_id = "{CLIENT_ID}"
client_secret_env = "E2E_CLIENT_SECRET"
token_url = "{url}"
smtp_host = "127.0.0.1"
smtp_port = {port}
ca_file = "{ca}"
"#,
        url = tokens.url(TENANT),
        port = upstream.port(),
        ca = pki_dir.join("ca.pem").display(),
    )
}

/// Writes the CA the relay must trust next to the config.
pub fn write_ca(dir: &Path, pki: &TestPki) {
    std::fs::write(dir.join("ca.pem"), pki.ca_pem()).expect("write ca");
}

/// The relay process; killed when dropped.
pub struct RelayProcess {
    child: Child,
    log: Receiver<String>,
    /// The lines `wait_for_log` read past, for `kill_and_collect`.
    seen: Vec<String>,
    pub smtp: String,
    pub health: String,
}

impl RelayProcess {
    /// Starts `xoauth-relay run --config <config>` with `env` and waits for "listening". What
    /// the relay keeps without a `state_dir` (the pacing counts) goes next to the config, never
    /// into the state directory of the user running the tests.
    pub fn start(config: &Path, env: &[(&str, &str)]) -> RelayProcess {
        let mut command = Command::new(BIN);
        let state = config.parent().unwrap_or(Path::new(".")).join("state");
        command
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env("XDG_STATE_HOME", &state)
            .env_remove("STATE_DIRECTORY");
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start xoauth-relay");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, log) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut relay = RelayProcess {
            child,
            log,
            seen: Vec::new(),
            smtp: String::new(),
            health: String::new(),
        };
        let line = relay.wait_for_log("xoauth-relay listening");
        relay.smtp = field(&line, "smtp=").expect("smtp address in the log");
        relay.health = field(&line, "health=").expect("health address in the log");
        relay
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        loop {
            match self.log.recv_timeout(LOG_DEADLINE) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!("no log line with {needle:?}: {e}; log: {:#?}", self.seen),
            }
        }
    }

    /// Sends a signal (`"HUP"`, `"TERM"`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
    }

    /// Kills the process with SIGKILL (no chance to clean up) and returns its whole log.
    pub fn kill_and_collect(&mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut lines = std::mem::take(&mut self.seen);
        // The reader thread ends at the pipe's end of file, which the exit has caused.
        while let Ok(line) = self.log.recv_timeout(LOG_DEADLINE) {
            lines.push(line);
        }
        lines
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait(mut self) -> Option<i32> {
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field(line: &str, name: &str) -> Option<String> {
    let rest = line.split(name).nth(1)?;
    rest.split_whitespace().next().map(str::to_string)
}

/// Runs `python3 -c script args…` off the async threads and returns what it printed, failing
/// the test (with its stderr) if it did not succeed.
pub async fn python(script: &str, args: &[&str]) -> String {
    let mut all = vec!["-c".to_string(), script.to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(&all)
            .output()
            .expect("python3 is required for this test")
    })
    .await
    .expect("python task");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
