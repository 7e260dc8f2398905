//! Restarting the service on request (the web console's "Restart" button).
//!
//! The request only flips a flag; `serve::run` notices, stops every service the normal
//! way (tasks aborted, sockets closed, store checkpointed) and then calls
//! [`restart_process`]:
//!
//! - Under systemd (`INVOCATION_ID` is set for every unit it starts) the process exits
//!   with [`RESTART_EXIT_CODE`] (75, `EX_TEMPFAIL`). The unit restarts it because it
//!   says `RestartForceExitStatus=75` (and `Restart=on-failure` would too), so a restart
//!   is visible in the journal as what it is, and systemd's start limits still apply.
//! - Anywhere else (a terminal, a container, the tests) the process re-executes its
//!   own binary with the same arguments: same PID, fresh state. Every socket the host
//!   opens is close-on-exec, so the ports are free again for the new image.

use std::time::Duration;

use tokio::sync::watch;

/// The exit status that asks systemd to start the service again.
pub const RESTART_EXIT_CODE: i32 = 75;

/// How long after the request the restart begins: long enough for the HTTP reply to
/// reach the browser.
pub const RESTART_DELAY: Duration = Duration::from_millis(300);

/// The restart request flag, shared by the services.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    restart: watch::Sender<bool>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// Nothing requested.
    pub fn new() -> Self {
        Self {
            restart: watch::channel(false).0,
        }
    }

    /// Asks the service to restart after [`RESTART_DELAY`].
    pub fn request_restart(&self) {
        let tx = self.restart.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RESTART_DELAY).await;
            tx.send_replace(true);
        });
    }

    /// Whether a restart was requested (and its delay passed).
    pub fn restart_requested(&self) -> bool {
        *self.restart.borrow()
    }

    /// Resolves once a restart is requested.
    pub async fn restart_wanted(&self) {
        let mut rx = self.restart.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we wait.
        let _ = rx.wait_for(|r| *r).await;
    }
}

/// Replaces the process with a fresh one (see the module docs). Returns only if the
/// re-exec failed, with the error.
pub fn restart_process() -> std::io::Error {
    if std::env::var_os("INVOCATION_ID").is_some() {
        tracing::info!(
            "restarting: exiting with status {RESTART_EXIT_CODE} for systemd to start the service again"
        );
        std::process::exit(RESTART_EXIT_CODE);
    }
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return e,
    };
    tracing::info!(exe = %exe.display(), "restarting: re-executing the host");
    std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_fires_after_the_delay() {
        let l = Lifecycle::new();
        assert!(!l.restart_requested());
        l.request_restart();
        let waiter = {
            let l = l.clone();
            tokio::spawn(async move { l.restart_wanted().await })
        };
        tokio::time::sleep(RESTART_DELAY / 2).await;
        assert!(!l.restart_requested());
        tokio::time::sleep(RESTART_DELAY).await;
        assert!(l.restart_requested());
        waiter.await.unwrap();
    }
}
