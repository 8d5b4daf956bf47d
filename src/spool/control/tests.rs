//! The control socket against a fake daemon: every request there and back, the bounds, the
//! deadline, the socket's mode and a stale socket.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

use super::server::{MAX_CONNECTIONS, MAX_REQUEST, READ_DEADLINE};
use super::*;

const ID: &str = "0190A1B2C3D40000";

/// Answers every request with its name and remembers it.
#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<Request>>,
}

impl QueueOps for Fake {
    fn call<'a>(&'a self, request: Request) -> crate::BoxFuture<'a, Response> {
        Box::pin(async move {
            let mut response = Response::done(format!("did {}", request.name()));
            if request == Request::List {
                response.messages = vec![meta()];
            }
            self.seen.lock().unwrap().push(request);
            response
        })
    }
}

fn meta() -> Meta {
    let json = format!(
        r#"{{"id":"{ID}","account":"contoso","user":"app","mail_from":"a@contoso.com",
            "rcpts":["b@example.net"],"size":10,"arrived":1,"next_attempt":2,"reason":"432"}}"#
    );
    serde_json::from_str(&json).unwrap()
}

/// A short directory (a socket path has ~100 octets at most).
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xr-ctl-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Running {
    path: PathBuf,
    fake: Arc<Fake>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(test: &str) -> Running {
    let path = socket_path(&scratch(test));
    let fake = Arc::new(Fake::default());
    let stop = CancellationToken::new();
    let socket = ControlSocket::bind(&path).await.expect("bind");
    let task = tokio::spawn(socket.run(fake.clone(), stop.clone()));
    Running {
        path,
        fake,
        stop,
        task,
    }
}

/// Sends `bytes` as they are and reads the server's one line. (A server that closes with
/// bytes unread makes the next read fail with a reset, so only the line is read.)
async fn raw(path: &std::path::Path, bytes: &[u8]) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut stream = UnixStream::connect(path).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = String::new();
    tokio::io::BufReader::new(stream)
        .read_line(&mut answer)
        .await
        .unwrap();
    answer
}

#[tokio::test]
async fn every_request_goes_there_and_back() {
    let r = start("all").await;
    let requests = [
        Request::List,
        Request::Show { id: ID.into() },
        Request::Retry {
            id: Some(ID.into()),
        },
        Request::Retry { id: None },
        Request::Hold { id: ID.into() },
        Request::Release { id: ID.into() },
        Request::Delete { id: ID.into() },
        Request::Bounce { id: ID.into() },
    ];
    for request in requests.clone() {
        let name = request.name();
        let response = super::request(&r.path, request).await.unwrap();
        assert!(response.ok, "{response:?}");
        assert_eq!(response.message, format!("did {name}"));
        let expected = if name == "list" { vec![meta()] } else { vec![] };
        assert_eq!(response.messages, expected);
    }
    assert_eq!(*r.fake.seen.lock().unwrap(), requests);
    let wire = serde_json::to_string(&Request::Retry { id: None }).unwrap();
    assert_eq!(wire, r#"{"command":"retry","id":null}"#);
    r.stop.cancel();
    r.task.await.unwrap().unwrap();
    assert!(!r.path.exists(), "the socket is removed on shutdown");
}

#[tokio::test]
async fn bad_ids_lines_and_json_get_an_answer_and_reach_nothing() {
    let r = start("bad").await;
    for id in [
        "../../etc/passwd",
        "0190a1b2c3d40000",
        "",
        "0190A1B2C3D40000\n",
    ] {
        let response = super::request(&r.path, Request::Delete { id: id.into() })
            .await
            .unwrap();
        assert!(
            !response.ok && response.message.contains("not a queue ID"),
            "{response:?}"
        );
    }
    let too_long = format!(
        "{{\"command\":\"show\",\"id\":\"{}\"}}\n",
        "A".repeat(MAX_REQUEST)
    );
    let answer = raw(&r.path, too_long.as_bytes()).await;
    let response: Response = serde_json::from_str(&answer).unwrap();
    assert!(
        !response.ok && response.message.contains("longer than 64 KiB"),
        "{answer}"
    );
    let answer = raw(&r.path, b"{\"command\":\"rm -rf\"}\n").await;
    let response: Response = serde_json::from_str(&answer).unwrap();
    assert!(
        !response.ok && response.message.starts_with("bad request"),
        "{answer}"
    );
    assert!(r.fake.seen.lock().unwrap().is_empty());
    // A request line of exactly the limit is read (and refused only for its ID).
    let prefix = "{\"command\":\"show\",\"id\":\"";
    let fill = "A".repeat(MAX_REQUEST - prefix.len() - 3);
    let answer = raw(&r.path, format!("{prefix}{fill}\"}}\n").as_bytes()).await;
    assert!(answer.contains("not a queue ID"), "{answer}");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_says_nothing_is_closed_after_the_deadline() {
    let r = start("silent").await;
    let started = tokio::time::Instant::now();
    let mut stream = UnixStream::connect(&r.path).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(
        started.elapsed() >= READ_DEADLINE,
        "{:?}",
        started.elapsed()
    );
    let response: Response = serde_json::from_str(&answer).unwrap();
    assert!(!response.ok && response.message.contains("no request line within 10 s"));
    // The slot it held is free again, and others were served meanwhile.
    assert!(super::request(&r.path, Request::List).await.unwrap().ok);
}

#[tokio::test]
async fn the_socket_is_0600_and_a_stale_one_is_replaced() {
    let dir = scratch("mode");
    let path = socket_path(&dir);
    // A socket left by a relay that died: nobody answers on it.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_socket()
    );
    let socket = ControlSocket::bind(&path)
        .await
        .expect("a stale socket is replaced");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "only the socket: {leftovers:?}");
    // A live one is not taken over.
    let err = ControlSocket::bind(&path).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    drop(socket);
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_alone() {
    let path = socket_path(&scratch("file"));
    std::fs::write(&path, "operator's notes").unwrap();
    let err = ControlSocket::bind(&path).await.unwrap_err();
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "operator's notes");
}

#[tokio::test]
async fn the_client_says_when_nothing_is_there() {
    let path = socket_path(&scratch("absent"));
    let err = super::request(&path, Request::List).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let err = super::request(&path, Request::List).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

#[tokio::test(start_paused = true)]
async fn connections_beyond_the_bound_wait_for_a_free_slot() {
    let r = start("bound").await;
    let mut silent = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        silent.push(UnixStream::connect(&r.path).await.unwrap());
    }
    let started = tokio::time::Instant::now();
    let response = super::request(&r.path, Request::List).await.unwrap();
    assert!(response.ok, "{response:?}");
    assert!(
        started.elapsed() >= READ_DEADLINE,
        "served only once the silent ones timed out: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn shutdown_ends_a_connection_that_is_still_reading() {
    let r = start("stop").await;
    let mut silent = UnixStream::connect(&r.path).await.unwrap();
    // Once the server answers a request, the silent connection has surely been accepted.
    assert!(super::request(&r.path, Request::List).await.unwrap().ok);
    r.stop.cancel();
    r.task.await.unwrap().unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        silent.read_to_end(&mut rest).await.unwrap(),
        0,
        "closed, no answer"
    );
    assert!(!r.path.exists());
}

#[tokio::test]
async fn a_path_too_long_for_a_socket_is_named_in_the_error() {
    let dir = scratch("long").join("d".repeat(120));
    std::fs::create_dir_all(&dir).unwrap();
    let err = ControlSocket::bind(&socket_path(&dir)).await.unwrap_err();
    assert!(
        err.to_string().contains("cannot create the queue socket"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "no staging left behind"
    );
}
