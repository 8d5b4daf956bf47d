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

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub(crate) async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
