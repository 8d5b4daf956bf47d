//! Crash safety of the spool with the built binary: Python's `smtplib` sends messages one at a
//! time while the test makes the stand-ins fail at random (upstream drops, hangs, `432`, `421`
//! greetings, a `250` lost after the message was taken, token endpoint 500s and hangs) and
//! kills the relay with SIGKILL, restarting it on the same state directory. At the end, with the failures off and the queue drained: every
//! message that got a `250` arrived upstream, none that got another reply (or never reached its
//! final dot) did, and a message that arrived twice is one the relay logged as ambiguous.
//!
//! `XOAUTH_CRASH_MESSAGES` (default 60, about one kill per 12 messages) and
//! `XOAUTH_CRASH_SEED` (default: from the clock, printed) scale and replay a run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use crate::common::binary::{RelayProcess, Scratch, config_text, write_ca};
use crate::common::*;
use xoauth_relay::testkit::{FakeTokenEndpoint, FakeUpstream, Phase, TestPki, TokenMode};

/// The Python side: one JSON line per message. `outcome` is `reply` (with `code` and `text`:
/// the reply to the final dot, or a refusal before it), `unknown` (the connection ended after
/// the final dot went out and before its reply) or `unsent` (it ended before the final dot).
/// After a refused connection it polls until the relay listens again, then goes on. It sends
/// message N when the test writes the line N, and ends at the end of its input.
const CLIENT: &str = r#"
import json, smtplib, socket, sys, time
addr_file, seed = sys.argv[1], sys.argv[2]

def address():
    try:
        host, port = open(addr_file).read().strip().rsplit(":", 1)
        return host, int(port)
    except (OSError, ValueError):
        return None

def emit(**fields):
    print(json.dumps(fields), flush=True)

def wait_up():
    delay, deadline = 0.02, time.monotonic() + 60
    while time.monotonic() < deadline:
        a = address()
        if a:
            try:
                socket.create_connection(a, timeout=1).close()
                return
            except OSError:
                pass
        time.sleep(delay)
        delay = min(delay * 2, 0.3)
    raise SystemExit("the relay did not come back within 60 s")

def send(i):
    mid = "<crash.%s.%d@test.example>" % (seed, i)
    body = ("From: <sender@contoso.com>\r\nTo: <r%d@example.net>\r\nSubject: crash %d\r\n"
            "Message-ID: %s\r\n\r\nmessage %d\r\n" % (i, i, mid, i))
    stage = "connect"
    try:
        a = address()
        if a is None:
            raise ConnectionRefusedError("no address yet")
        s = smtplib.SMTP(a[0], a[1], timeout=20)
        stage = "session"
        s.ehlo("crash.test")
        s.login("xenocept", "local-pass")
        for step in (lambda: s.mail("sender@contoso.com"),
                     lambda: s.rcpt("r%d@example.net" % i),
                     lambda: s.docmd("DATA")):
            code, text = step()
            if code not in (250, 354):
                return emit(id=mid, outcome="reply", code=code, text=text.decode("utf-8", "replace"), before_dot=True)
        stage = "dot"
        s.send(body + ".\r\n")
        code, text = s.getreply()
        emit(id=mid, outcome="reply", code=code, text=text.decode("utf-8", "replace"))
        try:
            s.quit()
        except (OSError, smtplib.SMTPException):
            pass
    except (OSError, smtplib.SMTPException) as e:
        emit(id=mid, outcome="unknown" if stage == "dot" else "unsent", error=repr(e))
        if stage == "connect":
            wait_up()

for line in sys.stdin:
    send(int(line))
"#;

/// A tiny xorshift64*: reproducible from the printed seed, no new crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The relay's config: the stand-ins, a state directory in the scratch dir, hybrid delivery
/// with short waits so that every failure ends (and every queued message is retried) quickly.
fn crash_config(dir: &Path, tokens: &FakeTokenEndpoint, upstream: &FakeUpstream) -> String {
    let users =
        format!("[[users]]\nname = \"{USER}\"\npassword = \"{PASSWORD}\"\naccount = \"contoso\"\n");
    let state = dir.join("state-dir");
    format!(
        "state_dir = \"{state}\"\n{base}\n[delivery]\nmode = \"hybrid\"\nsync_timeout = \"2s\"\n\
         retry = [\"1s\"]\n\n[timeouts]\nupstream_connect = \"1s\"\nupstream_greeting = \"1s\"\n\
         upstream_command = \"1s\"\nupstream_data_start = \"1s\"\nupstream_data_block = \"1s\"\n\
         upstream_data_end = \"1s\"\nupstream_slot_wait = \"1s\"\ntoken_connect = \"1s\"\n\
         token_total = \"1s\"\n",
        state = state.display(),
        // No pacing: the retries of a run must not wait a minute for a rate slot.
        base = config_text(dir, tokens, upstream, &users)
            + "max_messages_per_minute = 0\nmax_recipients_per_day = 0\n",
    )
}

/// One of the upstream's and token endpoint's moods, picked at random (normal 3 times in 10).
fn upset(rng: &mut Rng, upstream: &FakeUpstream, tokens: &FakeTokenEndpoint) -> String {
    const PHASES: [Phase; 7] = [
        Phase::Greeting,
        Phase::Ehlo,
        Phase::Auth,
        Phase::Mail,
        Phase::Rcpt,
        Phase::DataStart,
        Phase::DataEnd,
    ];
    let phase = PHASES[rng.below(PHASES.len() as u64) as usize];
    let pick = rng.below(10);
    let what = match pick {
        0..=2 => "normal".to_string(),
        3 | 4 => format!("drop_at {phase:?}"),
        5 => format!("drop_at {phase:?}"),
        6 => format!("hang_at {phase:?}"),
        7 => "final_reply 432".to_string(),
        8 => "greeting 421".to_string(),
        _ => "lose_verdict".to_string(),
    };
    upstream.script(|s| {
        s.drop_at = None;
        s.hang_at = None;
        s.final_reply = None;
        s.greeting = None;
        s.lose_verdict = false;
        match pick {
            3..=5 => s.drop_at = Some(phase),
            6 => s.hang_at = Some(phase),
            7 => {
                s.final_reply =
                    Some("432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded".into())
            }
            8 => s.greeting = Some("421 4.3.2 Service not available".into()),
            9 => s.lose_verdict = true,
            _ => {}
        }
    });
    let token = match rng.below(6) {
        0 => (TokenMode::ServerError, "token 500"),
        1 => (TokenMode::Hang, "token hang"),
        _ => (TokenMode::Ok, "token ok"),
    };
    tokens.set_mode(token.0);
    format!("{what}, {}", token.1)
}

fn calm(upstream: &FakeUpstream, tokens: &FakeTokenEndpoint) {
    upstream.script(|s| {
        s.drop_at = None;
        s.hang_at = None;
        s.final_reply = None;
        s.greeting = None;
        s.lose_verdict = false;
    });
    tokens.set_mode(TokenMode::Ok);
}

/// Starts the relay and publishes its address for the client (written, then renamed, so the
/// client never reads half of it).
fn start_relay(config: &Path, addr_file: &Path) -> RelayProcess {
    let relay = RelayProcess::start(config, &[("E2E_CLIENT_SECRET", CLIENT_SECRET)]);
    let staged = addr_file.with_extension("new");
    std::fs::write(&staged, &relay.smtp).unwrap();
    std::fs::rename(&staged, addr_file).unwrap();
    relay
}

/// The Python client (it sends message N when it reads the line N) and its lines.
fn start_client(addr_file: &Path, seed: u64) -> (Child, Receiver<String>) {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(CLIENT)
        .arg(addr_file)
        .arg(seed.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 is required for this test");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn queue_files(state: &Path) -> usize {
    std::fs::read_dir(state.join("spool/queue")).map_or(0, |d| d.count())
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(name).nth(1)?.split_whitespace().next()
}

/// What the relay's logs (every run's) say: queue ID → Message-ID, and the queue IDs logged
/// as possibly delivered already.
#[derive(Default)]
struct Logged {
    queue_ids: HashMap<String, String>,
    ambiguous: BTreeSet<String>,
    panics: Vec<String>,
}

impl Logged {
    fn read(&mut self, lines: &[String]) {
        for line in lines {
            if line.contains("panicked") {
                self.panics.push(line.clone());
            }
            let queue_id = field(line, "queue_id=");
            if let (Some(q), Some(m)) = (queue_id, field(line, "message_id=")) {
                self.queue_ids.insert(q.to_string(), m.to_string());
            }
            // A crash between the commit and its log lines leaves only the delivery's line.
            let delivered_twice =
                line.contains("queued message delivered") && line.contains("ambiguous=true");
            if line.contains("Microsoft may have the message") || delivered_twice {
                self.ambiguous
                    .insert(queue_id.expect("queue_id").to_string());
            }
        }
    }

    /// What the queue holds while the relay is down: a crash right after a commit can take
    /// the log line that names the message's queue ID with it.
    fn read_queue(&mut self, state: &Path) {
        let Ok(dir) = std::fs::read_dir(state.join("spool/queue")) else {
            return;
        };
        for entry in dir.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let Ok(meta) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if let (Some(q), Some(m)) = (meta["id"].as_str(), meta["message_id"].as_str()) {
                self.queue_ids.insert(q.to_string(), m.to_string());
            }
        }
    }

    /// The Message-IDs of the ambiguous queue IDs.
    fn ambiguous_messages(&self) -> BTreeSet<String> {
        self.ambiguous
            .iter()
            .filter_map(|q| self.queue_ids.get(q).cloned())
            .collect()
    }
}

fn message_id_of(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let line = text
        .lines()
        .take_while(|l| !l.is_empty())
        .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))?;
    Some(line["message-id:".len()..].trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_250_lost_and_no_unlogged_duplicate_across_kills_and_failures() {
    let messages = env_number("XOAUTH_CRASH_MESSAGES").unwrap_or(60);
    let seed = env_number("XOAUTH_CRASH_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(1, |d| d.as_nanos() as u64) | 1
    });
    println!("crash test: seed {seed} (XOAUTH_CRASH_SEED), {messages} messages");
    let mut rng = Rng(seed | 1);
    xoauth_relay::testkit::init_crypto();
    let pki = TestPki::new().unwrap();
    let tokens = FakeTokenEndpoint::start(&pki).unwrap();
    tokens.set_expected(CLIENT_ID, CLIENT_SECRET);
    let upstream = FakeUpstream::start(&pki, tokens.token_registry()).unwrap();
    let dir = Scratch::new("crash");
    write_ca(&dir.0, &pki);
    let config = dir.0.join("relay.toml");
    std::fs::write(&config, crash_config(&dir.0, &tokens, &upstream)).unwrap();
    let (addr_file, state) = (dir.0.join("relay-address"), dir.0.join("state-dir"));
    let config = config.as_path();
    let mut relay = tokio::task::block_in_place(|| start_relay(config, &addr_file));

    // Kills at random moments while given messages are under way, about one per 12.
    let mut kill_during: BTreeSet<u64> = BTreeSet::new();
    for _ in 0..(messages / 12).max(1) {
        kill_during.insert(1 + rng.below(messages.saturating_sub(2).max(1)));
    }
    let (mut client, lines) = start_client(&addr_file, seed);
    let mut go = client.stdin.take().expect("client stdin");
    let mut outcomes: Vec<serde_json::Value> = Vec::new();
    let mut logs: Vec<Vec<String>> = Vec::new();
    let mut logged = Logged::default();
    let (mut kills, mut moods) = (0u64, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(30 + messages / 2);
    // The test sets the pace: one message at a time, the failures changed before it or while
    // it is under way, so that a fast client cannot finish between two changes.
    for i in 0..messages {
        if rng.below(3) == 0 {
            moods.push(upset(&mut rng, &upstream, &tokens));
        }
        writeln!(go, "{i}")
            .and_then(|()| go.flush())
            .expect("tell the client");
        if kill_during.contains(&i) {
            tokio::time::sleep(rng.millis(0, 20)).await;
            logs.push(relay.kill_and_collect());
            logged.read_queue(&state);
            kills += 1;
            relay = tokio::task::block_in_place(|| start_relay(config, &addr_file));
        } else if rng.below(4) == 0 {
            tokio::time::sleep(rng.millis(0, 20)).await;
            moods.push(upset(&mut rng, &upstream, &tokens));
        }
        loop {
            if let Ok(line) = lines.try_recv() {
                outcomes.push(serde_json::from_str(&line).expect("json from python"));
                break;
            }
            assert!(
                client.try_wait().unwrap().is_none(),
                "the client ended early: {outcomes:?}"
            );
            if Instant::now() > deadline {
                let log = relay.kill_and_collect();
                let tail = &log[log.len().saturating_sub(60)..];
                panic!(
                    "the run took too long: {} messages; the relay's log ends: {tail:#?}",
                    outcomes.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    drop(go);
    assert!(client.wait().unwrap().success());

    // Failures off: the queue must drain.
    calm(&upstream, &tokens);
    let drained = Instant::now() + Duration::from_secs(60);
    while queue_files(&state) > 0 {
        if Instant::now() > drained {
            let (_, status) = http_get(relay.health.parse().unwrap(), "/status").await;
            panic!("the queue did not drain within 60 s: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    logs.push(relay.kill_and_collect());
    logs.iter().for_each(|run| logged.read(run));

    let mut arrived: BTreeMap<String, usize> = BTreeMap::new();
    for m in upstream.messages() {
        let id = message_id_of(&m.body).expect("every message has a Message-ID");
        *arrived.entry(id).or_default() += 1;
    }
    let mut problems = Vec::new();
    let (mut accepted, mut queued, mut unknown, mut unknown_arrived) = (0, 0, 0, 0);
    let (mut refused, mut unsent) = (0, 0);
    for o in &outcomes {
        let id = o["id"].as_str().unwrap().to_string();
        let count = arrived.get(&id).copied().unwrap_or(0);
        match (o["outcome"].as_str().unwrap(), o["code"].as_u64()) {
            ("reply", Some(250)) => {
                accepted += 1;
                let text = o["text"].as_str().unwrap_or_default();
                if let Some(q) = text.strip_prefix("2.0.0 Queued as ") {
                    queued += 1;
                    let q = q.split(';').next().unwrap_or_default().to_string();
                    logged.queue_ids.insert(q, id.clone());
                }
                if count == 0 {
                    problems.push(format!("{id} got 250 ({text}) and never arrived"));
                }
            }
            ("unknown", _) => {
                unknown += 1;
                unknown_arrived += usize::from(count > 0);
            }
            (outcome, _) => {
                if outcome == "unsent" {
                    unsent += 1;
                } else {
                    refused += 1;
                }
                if count > 0 {
                    problems.push(format!("{id} arrived {count}× but the client got {o}"));
                }
            }
        }
    }
    let ambiguous = logged.ambiguous_messages();
    let duplicates: Vec<_> = arrived.iter().filter(|(_, n)| **n > 1).collect();
    for (id, n) in &duplicates {
        if !ambiguous.contains(*id) {
            problems.push(format!(
                "{id} arrived {n}× and was never logged as ambiguous"
            ));
        }
    }
    for id in arrived.keys() {
        if !outcomes.iter().any(|o| o["id"] == id.as_str()) {
            problems.push(format!("{id} arrived but the client never sent it"));
        }
    }
    println!(
        "crash test: seed {seed}: runs {}, messages {}, kills {kills}, 250s {accepted} \
         (queued {queued}), unknown {unknown} (arrived {unknown_arrived}), refused {refused}, \
         unsent {unsent}, duplicates {}, ambiguous {} (logged queue IDs {})",
        logs.len(),
        outcomes.len(),
        duplicates.len(),
        ambiguous.len(),
        logged.ambiguous.len(),
    );
    assert_eq!(outcomes.len() as u64, messages, "one outcome per message");
    assert!(kills >= 1, "the relay was killed");
    assert!(
        logged.panics.is_empty(),
        "the relay panicked: {:?}",
        logged.panics
    );
    assert!(
        problems.is_empty(),
        "seed {seed}: {problems:#?}\nmoods: {moods:?}\noutcomes: {outcomes:#?}"
    );
}

/// The retry worker picks a due message while holding the queue, then asks how many of the
/// account's messages run: that must not lock the queue again (it did, and the worker, then
/// every client queueing a message, waited forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_message_is_retried_and_delivered() {
    let state = Scratch::new("crash-retry");
    let w = World::start_with(|c| {
        c.state_dir = Some(state.0.clone());
        c.delivery.mode = xoauth_relay::config::DeliveryMode::Hybrid;
        c.delivery.retry = vec![Duration::from_secs(1)];
    })
    .await;
    w.upstream.script(|s| {
        s.final_reply = Some("432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded".into())
    });
    let mut c = w.logged_in().await;
    let body = message("a@example.net", "retry");
    let r = c.send_mail(MAILBOX, &["a@example.net"], &body).await;
    r.expect_start("250 2.0.0 Queued as ");
    w.upstream.script(|s| s.final_reply = None);
    let delivered = tokio::time::timeout(Duration::from_secs(20), w.upstream.wait_for_messages(1));
    delivered
        .await
        .expect("the queued message is delivered by a retry");
    // The queue still takes messages after a retry.
    w.upstream.script(|s| {
        s.final_reply = Some("432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded".into())
    });
    let queued = tokio::time::timeout(
        Duration::from_secs(20),
        c.send_mail(MAILBOX, &["a@example.net"], &body),
    );
    queued
        .await
        .expect("a reply")
        .expect_start("250 2.0.0 Queued as ");
    w.upstream.script(|s| s.final_reply = None);
    let delivered = tokio::time::timeout(Duration::from_secs(20), w.upstream.wait_for_messages(2));
    delivered
        .await
        .expect("the second queued message is delivered by a retry");
}
