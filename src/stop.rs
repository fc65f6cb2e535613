//! Stopping when asked: SIGTERM (what `systemctl stop` and `kill` send) or SIGINT (Ctrl-C).
//!
//! The signal thread only passes the request on, over a channel the log task listens to. The
//! log task takes it between writes, so the write in flight, and any appends already queued
//! behind it, are written and fdatasync'd first; then the process exits with code 0, which
//! closes the listening sockets and every connection. Nothing acknowledged is at risk either way
//! (a reply waits for its fdatasync); the point is an orderly end with an exit code a service
//! manager reads as success. Until the executors start (recovery), the signals keep their default
//! action, which ends the process at once: nothing has been acknowledged yet.

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Starts the thread that waits for SIGTERM or SIGINT; the receiver yields once, on the first.
pub fn watch_signals() -> std::io::Result<flume::Receiver<()>> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    let (tx, rx) = flume::bounded(1);
    std::thread::Builder::new()
        .name("rk-signals".into())
        .spawn(move || {
            let mut forever = signals.forever();
            if let Some(sig) = forever.next() {
                let name = if sig == SIGTERM { "SIGTERM" } else { "SIGINT" };
                tracing::info!(
                    "{name}: stopping once the transaction log write in flight is synced"
                );
                let _ = tx.send(());
            }
            // A second signal does not wait (for a log write hung on a dead disk, say).
            // Nothing acknowledged is at risk: every reply waited for its fdatasync.
            if forever.next().is_some() {
                tracing::warn!("second stop signal: exiting now");
                std::process::exit(1);
            }
        })?;
    Ok(rx)
}

/// Ends the process after a requested stop, once the log holds everything it was given.
pub fn exit_stopped(synced_zxid: i64) -> ! {
    tracing::info!(
        zxid = format_args!("{synced_zxid:#x}"),
        "stopped: the transaction log is synced through this zxid"
    );
    std::process::exit(0)
}

/// Waits until a stop is requested (never, if the signal thread is gone).
pub async fn requested(stop: &flume::Receiver<()>) {
    if stop.recv_async().await.is_err() {
        futures_lite::future::pending::<()>().await;
    }
}

/// What a log task takes next.
pub enum Next<T> {
    Item(T),
    /// The sending side is gone.
    Closed,
    /// A stop was asked for and everything queued when it came is done: exit now.
    Stop,
}

/// A log task's receiving side with the stop rule: the stop is looked at before each next
/// item, so a steady stream cannot keep it out; once it came, only the items queued at that
/// moment are still taken (later ones were never acknowledged).
#[derive(Default)]
pub struct Gate {
    left: Option<usize>,
}

impl Gate {
    pub async fn next<T>(
        &mut self,
        rx: &flume::Receiver<T>,
        stop: &flume::Receiver<()>,
    ) -> Next<T> {
        if self.left.is_none() {
            let next = futures_lite::future::or(
                async {
                    requested(stop).await;
                    None
                },
                async { Some(rx.recv_async().await) },
            );
            match next.await {
                Some(Ok(item)) => return Next::Item(item),
                Some(Err(_)) => return Next::Closed,
                None => self.left = Some(rx.len()),
            }
        }
        if !self.take_one_more() {
            return Next::Stop;
        }
        match rx.try_recv() {
            Ok(item) => Next::Item(item),
            Err(_) => Next::Stop,
        }
    }

    /// Whether one more queued item may be taken now (always, until a stop came).
    pub fn take_one_more(&mut self) -> bool {
        match self.left.as_mut() {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }
}
