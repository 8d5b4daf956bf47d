//! The signals `run` reacts to: SIGTERM/SIGINT stop, SIGHUP reloads.

#[cfg(unix)]
pub(crate) type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
pub(crate) type Hangups = Option<()>;

/// Listens for SIGHUP from now on (registering once, so no signal is missed between reloads).
pub(crate) fn hangup_signals() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    None
}

/// Completes on the next SIGHUP; never where there are none.
pub(crate) async fn next_hangup(hangups: &mut Hangups) {
    #[cfg(unix)]
    if let Some(h) = hangups {
        h.recv().await;
        return;
    }
    let _ = hangups;
    std::future::pending::<()>().await
}

/// Listens for SIGTERM and SIGINT (Ctrl-C) from the moment it is called, so a signal that
/// arrives before the future is first polled (right after `READY=1`, say) still stops the
/// relay in order instead of killing it; the future completes on the first of them.
pub(crate) fn termination_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let next = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = next(term) => {}
                _ = next(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    /// The handler is in place as soon as `termination_signal` returns: a SIGTERM raised before
    /// the future is polled completes it, where it used to end the process.
    #[tokio::test]
    async fn a_signal_before_the_first_poll_is_not_lost() {
        let stop = super::termination_signal();
        // SAFETY: raise has no preconditions; the handler registered above takes the signal.
        assert_eq!(unsafe { libc::raise(libc::SIGTERM) }, 0);
        let waited = tokio::time::timeout(std::time::Duration::from_secs(10), stop).await;
        assert!(waited.is_ok(), "the signal was seen");
    }
}
