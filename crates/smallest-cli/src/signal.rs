//! The signals that end a command early: Ctrl-C (SIGINT), SIGTERM and SIGHUP. Each is
//! waited for like a future, so the command unwinds normally — a half-written
//! `FILE.part` is removed by its owner — and the process exits with 128 + the signal's
//! number (130, 143, 129), which the shell reports as "killed by" it.

use std::sync::atomic::{AtomicU8, Ordering};

/// The exit status of the signal that ended the command, 0 while none has.
static EXIT_STATUS: AtomicU8 = AtomicU8::new(0);

/// The exit status to use instead of a failure, when a signal ended the command.
pub(crate) fn exit_status() -> Option<u8> {
    match EXIT_STATUS.load(Ordering::SeqCst) {
        0 => None,
        n => Some(n),
    }
}

/// Waits for SIGINT, SIGTERM or SIGHUP and records its exit status (130, 143 or 129).
pub(crate) async fn terminated() {
    let status = wait().await;
    EXIT_STATUS.store(status, Ordering::SeqCst);
}

/// Runs `work` unless SIGINT, SIGTERM or SIGHUP comes first: then `work` is dropped (its
/// call cancelled) and the command fails with `why()`, its exit status the signal's.
pub(crate) async fn unless_interrupted<T>(
    why: impl FnOnce() -> String,
    work: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::select! {
        result = work => result,
        () = terminated() => Err(why()),
    }
}

#[cfg(unix)]
async fn wait() -> u8 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return 130;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => 130,
        _ = term.recv() => 143,
        _ = hup.recv() => 129,
    }
}

#[cfg(not(unix))]
async fn wait() -> u8 {
    let _ = tokio::signal::ctrl_c().await;
    130
}
