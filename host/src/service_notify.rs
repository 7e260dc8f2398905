//! Telling the service manager how the host is doing (`sd_notify(3)`): the unit is
//! `Type=notify`, so systemd counts the host as started only at `READY=1`, sent once
//! every listener is bound (units ordered after it can then connect), restarts it if the
//! `WATCHDOG=1` pings stop (`WatchdogSec=`), and shows the `STATUS=` line in
//! `systemctl status`. Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

/// Sends `states`; a failure is logged, never fatal (the host works without systemd).
fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

/// Listeners are bound: the host is ready, and `status` says what it serves.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// The host is shutting down (systemd then waits for it rather than calling it dead).
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC`, as `sd_watchdog_enabled(3)`
/// recommends, or `None` when the service manager set no watchdog for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec) / 2)
    } else {
        None
    }
}

/// Pings the watchdog every `interval` for as long as the task runs. It runs on the
/// same runtime as the control planes, so a wedged runtime stops the pings and systemd
/// restarts the host.
pub async fn watchdog(interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        notify(&[NotifyState::Watchdog]);
    }
}
