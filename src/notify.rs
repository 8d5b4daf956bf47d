//! `sd_notify` without libsystemd: tells systemd that the relay is ready, still alive (the
//! watchdog) and stopping, with one datagram per message to the socket named by
//! `$NOTIFY_SOCKET` (a path, or `@name` for a Linux abstract socket).
//!
//! Everything here is best effort and silent: without `NOTIFY_SOCKET` (not started by
//! systemd, or not `Type=notify`) each call does nothing, and a message that cannot be sent is
//! logged at debug level. Nothing here panics or fails the caller.

use std::path::PathBuf;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The socket systemd listens on for this service.
pub(crate) const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// The watchdog timeout in microseconds (`WatchdogSec=`).
pub(crate) const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// The process the watchdog is meant for; another process must not ping for it.
pub(crate) const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// How long one send may block. systemd reads its socket promptly; a stuck manager must not
/// stall the async runtime for long.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// The service is up: the listener is bound and the configuration is valid.
pub(crate) fn ready() {
    notify("READY=1");
}

/// A reload (SIGHUP) has started; `ready()` follows when it is done.
pub(crate) fn reloading() {
    notify("RELOADING=1");
}

/// The service is shutting down (sent before draining, so `systemctl` shows "deactivating").
pub(crate) fn stopping() {
    notify("STOPPING=1");
}

/// The service is alive; systemd kills and restarts it if this stops for `WatchdogSec`.
pub(crate) fn watchdog() {
    notify("WATCHDOG=1");
}

/// A one-line status for `systemctl status`.
pub(crate) fn status(text: &str) {
    notify(&status_message(text));
}

/// The watchdog timeout systemd expects pings within, if it is enabled for this process.
pub(crate) fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(process_var, std::process::id())
}

/// Pings the watchdog every half interval until `shutdown` is cancelled. Returns `None`, and
/// starts nothing, when the watchdog is not enabled. Must be called inside a tokio runtime.
pub(crate) fn spawn_watchdog(shutdown: CancellationToken) -> Option<JoinHandle<()>> {
    let period = watchdog_interval()? / 2;
    if period.is_zero() {
        return None;
    }
    tracing::debug!(?period, "pinging the systemd watchdog");
    Some(tokio::spawn(ping_until_cancelled(period, shutdown)))
}

async fn ping_until_cancelled(period: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(period);
    // After a stall, one ping is enough; a burst of catch-up pings would say nothing more.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => watchdog(),
        }
    }
}

/// Reads one variable of the process environment; a non-UTF-8 value counts as unset.
fn process_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `WATCHDOG_USEC` as a duration, honouring `WATCHDOG_PID` as `sd_watchdog_enabled(3)` does:
/// when it is set, the watchdog is only ours if it names `pid`. `env` reads one variable, so
/// tests need not touch the process environment.
pub(crate) fn watchdog_interval_from(
    env: impl Fn(&str) -> Option<String>,
    pid: u32,
) -> Option<Duration> {
    let usec: u64 = env(WATCHDOG_USEC)?.trim().parse().ok()?;
    if usec == 0 || usec == u64::MAX {
        return None;
    }
    if let Some(owner) = env(WATCHDOG_PID) {
        let owner: u32 = owner.trim().parse().ok()?;
        if owner != pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// `STATUS=…` on one line: a newline would start another assignment in the datagram.
pub(crate) fn status_message(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("STATUS={line}")
}

/// Where `$NOTIFY_SOCKET` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A socket file.
    Path(PathBuf),
    /// A Linux abstract socket: the name after `@`, without the leading NUL byte.
    Abstract(Vec<u8>),
}

/// Parses `$NOTIFY_SOCKET`: an absolute path, or `@name` for an abstract socket. Anything else
/// (empty, relative, or systemd's newer `vsock:` form) is not something we can send to.
pub(crate) fn parse_target(value: &str) -> Option<Target> {
    if let Some(name) = value.strip_prefix('@') {
        return (!name.is_empty()).then(|| Target::Abstract(name.as_bytes().to_vec()));
    }
    value
        .starts_with('/')
        .then(|| Target::Path(PathBuf::from(value)))
}

fn notify(message: &str) {
    let Some(value) = process_var(NOTIFY_SOCKET) else {
        return;
    };
    let Some(target) = parse_target(&value) else {
        tracing::debug!(socket = %value, "NOTIFY_SOCKET is not a socket path; not notifying");
        return;
    };
    match send(&target, message) {
        Ok(()) => tracing::trace!(message, "notified systemd"),
        Err(e) => tracing::debug!(message, error = %e, "cannot notify systemd"),
    }
}

/// Sends one datagram from a fresh unbound socket, as `sd_notify` does.
#[cfg(unix)]
pub(crate) fn send(target: &Target, message: &str) -> std::io::Result<()> {
    use std::os::unix::net::UnixDatagram;
    let socket = UnixDatagram::unbound()?;
    socket.set_write_timeout(Some(SEND_TIMEOUT))?;
    let sent = match target {
        Target::Path(path) => socket.send_to(message.as_bytes(), path)?,
        Target::Abstract(name) => send_abstract(&socket, name, message.as_bytes())?,
    };
    if sent != message.len() {
        return Err(std::io::Error::other("datagram truncated"));
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn send(_target: &Target, _message: &str) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(target_os = "linux")]
fn send_abstract(
    socket: &std::os::unix::net::UnixDatagram,
    name: &[u8],
    message: &[u8],
) -> std::io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(message, &addr)
}

#[cfg(all(unix, not(target_os = "linux")))]
fn send_abstract(
    _socket: &std::os::unix::net::UnixDatagram,
    _name: &[u8],
    _message: &[u8],
) -> std::io::Result<usize> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map = crate::testkit::env(pairs);
        move |name| map.get(name).cloned()
    }

    #[test]
    fn watchdog_interval_from_usec() {
        let env = vars(&[(WATCHDOG_USEC, "60000000")]);
        assert_eq!(
            watchdog_interval_from(env, 42),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn watchdog_pid_must_be_ours_when_set() {
        let ours = vars(&[(WATCHDOG_USEC, "200000"), (WATCHDOG_PID, "42")]);
        assert_eq!(
            watchdog_interval_from(ours, 42),
            Some(Duration::from_millis(200))
        );
        let theirs = vars(&[(WATCHDOG_USEC, "200000"), (WATCHDOG_PID, "7")]);
        assert_eq!(watchdog_interval_from(theirs, 42), None);
        let garbage = vars(&[(WATCHDOG_USEC, "200000"), (WATCHDOG_PID, "x")]);
        assert_eq!(watchdog_interval_from(garbage, 42), None);
    }

    #[test]
    fn no_watchdog_when_unset_zero_infinite_or_garbage() {
        for usec in ["0", "18446744073709551615", "-5", "1.5", "", "sixty"] {
            let env = vars(&[(WATCHDOG_USEC, usec)]);
            assert_eq!(watchdog_interval_from(env, 1), None, "{usec:?}");
        }
        assert_eq!(watchdog_interval_from(vars(&[]), 1), None);
    }

    #[test]
    fn status_stays_on_one_line() {
        assert_eq!(status_message("listening"), "STATUS=listening");
        assert_eq!(
            status_message("a\nREADY=1\r\tb"),
            "STATUS=a READY=1  b",
            "a newline must not inject another assignment"
        );
    }

    #[test]
    fn socket_targets() {
        assert_eq!(
            parse_target("/run/systemd/notify"),
            Some(Target::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            parse_target("@/org/freedesktop/systemd1/notify/123"),
            Some(Target::Abstract(
                b"/org/freedesktop/systemd1/notify/123".to_vec()
            ))
        );
        for unusable in ["", "@", "relative/sock", "vsock:2:1234"] {
            assert_eq!(parse_target(unusable), None, "{unusable:?}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let name = format!("xoauth-relay-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
        let receiver = UnixDatagram::bind_addr(&addr).expect("bind abstract socket");
        let target = parse_target(&format!("@{name}")).expect("target");
        send(&target, "READY=1").expect("send");
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).expect("receive");
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[cfg(unix)]
    #[test]
    fn sending_to_a_missing_socket_is_an_error_not_a_panic() {
        let target = Target::Path("/nonexistent/xoauth-relay/notify.sock".into());
        assert!(send(&target, "READY=1").is_err());
    }
}
