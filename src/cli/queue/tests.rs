//! The commands against a running stand-in daemon on the control socket: what they send, what
//! they print, and their exit codes.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::*;
use crate::config::Config;
use crate::spool::control::{ControlSocket, QueueOps, Response};

const ID: &str = "0190A1B2C3D40000";

/// Refuses `bounce`, answers everything else, and remembers what it was asked.
#[derive(Default)]
struct Daemon {
    seen: Mutex<Vec<Request>>,
}

impl QueueOps for Daemon {
    fn call<'a>(&'a self, request: Request) -> crate::BoxFuture<'a, Response> {
        Box::pin(async move {
            let response = match &request {
                Request::List | Request::Show { .. } => Response {
                    messages: vec![meta()],
                    ..Response::done("")
                },
                Request::Bounce { id } => Response::error(format!("{id} is a bounce\u{1b}[2J")),
                other => Response::done(format!("{} done", other.name())),
            };
            self.seen.lock().unwrap().push(request);
            response
        })
    }
}

fn meta() -> Meta {
    serde_json::from_value(serde_json::json!({
        "id": ID, "account": "contoso", "user": "app", "mail_from": "a@contoso.com",
        "rcpts": ["b@example.net"], "size": 10, "arrived": 1, "next_attempt": 2,
        "reason": "the token endpoint did not answer",
    }))
    .unwrap()
}

/// A configuration whose state_dir is a fresh directory, and the daemon answering there on a
/// runtime of its own (the commands start theirs).
fn daemon(
    test: &str,
) -> (
    Config,
    Arc<Daemon>,
    CancellationToken,
    std::thread::JoinHandle<()>,
) {
    let state = std::env::temp_dir().join(format!("xr-q-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    let text = format!(
        "state_dir = {:?}\n[[users]]\nname = \"app\"\npassword = \"pw\"\naccount = \"a\"\n\
         [accounts.a]\nmailbox = \"sender@contoso.com\"\ntenant = \"contoso.example\"\n\
         client_id = \"11111111-2222-3333-4444-555555555555\"\nclient_secret = \"s\"\n",
        state.display().to_string()
    );
    let env = crate::testkit::env(&[]);
    let config = crate::config::load_str(&text, &state, &env).unwrap();
    let ops = Arc::new(Daemon::default());
    let stop = CancellationToken::new();
    let path = spool::control::socket_path(&state);
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let (ops2, stop2) = (ops.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let socket = ControlSocket::bind(&path).await.unwrap();
            bound_tx.send(()).unwrap();
            socket.run(ops2, stop2).await.unwrap();
        });
    });
    bound_rx.recv().unwrap();
    (config, ops, stop, thread)
}

fn command(config: &Config, action: Action) -> (ExitCode, String) {
    let mut out = Vec::new();
    let location = config.state_dir.clone().zip(config.spool_dir());
    let code = run_with(location, &action, &mut out);
    (code, String::from_utf8(out).unwrap())
}

#[test]
fn commands_go_to_the_running_daemon_and_print_its_answer() {
    let (config, daemon, stop, thread) = daemon("online");
    let (code, out) = command(&config, Action::List { json: false });
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(out.lines().nth(1).unwrap().starts_with(ID), "{out}");
    assert!(out.contains("the token endpoint did not answer"), "{out}");
    let (code, out) = command(
        &config,
        Action::Show {
            id: ID.into(),
            json: true,
        },
    );
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(serde_json::from_str::<Meta>(&out).unwrap(), meta());
    let (code, out) = command(
        &config,
        Action::Retry {
            id: None,
            all: true,
        },
    );
    assert_eq!((code, out.as_str()), (ExitCode::SUCCESS, "retry done\n"));
    let (code, out) = command(&config, Action::Hold { id: ID.into() });
    assert_eq!((code, out.as_str()), (ExitCode::SUCCESS, "hold done\n"));
    // A refusal goes to stderr (through `print::shown`), and the exit code says so.
    let (code, out) = command(&config, Action::Bounce { id: ID.into() });
    assert_eq!((code, out.as_str()), (ExitCode::from(FAILURE), ""));
    // A malformed ID never leaves the command.
    let (code, _) = command(&config, Action::Delete { id: "x".into() });
    assert_eq!(code, ExitCode::from(EX_USAGE));
    let seen = daemon.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            Request::List,
            Request::Show { id: ID.into() },
            Request::Retry { id: None },
            Request::Hold { id: ID.into() },
            Request::Bounce { id: ID.into() },
        ]
    );
    stop.cancel();
    thread.join().unwrap();
    // Once it has stopped, the socket is gone and `list` reads the (empty) spool.
    let (code, out) = command(&config, Action::List { json: false });
    assert_eq!(
        (code, out.as_str()),
        (ExitCode::SUCCESS, "the queue is empty\n")
    );
    let (code, _) = command(&config, Action::Release { id: ID.into() });
    assert_eq!(code, ExitCode::from(EX_UNAVAILABLE));
}
