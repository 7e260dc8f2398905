//! Native (punktfunk/1) pairing, host side: the admin arms pairing in the web console,
//! the host shows a PIN, and the native client proves it knows that PIN.
//!
//! GameStream pairing goes the other way round (the client shows the PIN, the user types
//! it on the host). For the native protocol the host shows it, so the PIN is created
//! here, lives for a short window, is single-use, and is disarmed after a few wrong
//! guesses so a client on the LAN cannot brute-force it while the window is open. The
//! native protocol's pairing handshake calls [`NativePairing::try_consume`].
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;

/// How long an armed PIN is valid.
pub const PIN_TTL: Duration = Duration::from_secs(120);
/// Wrong PINs accepted before the window closes.
pub const MAX_WRONG: u8 = 3;
/// Digits in a native PIN.
pub const PIN_DIGITS: usize = 6;

/// Why a native client's PIN was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NativePinError {
    /// Pairing is not armed (never, expired, used, or closed after wrong guesses).
    #[error("native pairing is not armed: arm it in the web console first")]
    NotArmed,
    /// The PIN is wrong; pairing stays armed for a few more tries.
    #[error("wrong PIN")]
    WrongPin,
}

/// An armed window, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Armed {
    /// The PIN to show.
    pub pin: String,
    /// Unix seconds when it stops working.
    pub expires_at: i64,
}

#[derive(Debug)]
struct Window {
    armed: Armed,
    deadline: Instant,
    wrong: u8,
}

/// The native pairing window of one host.
#[derive(Debug, Default)]
pub struct NativePairing {
    window: Mutex<Option<Window>>,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl NativePairing {
    fn lock(&self) -> MutexGuard<'_, Option<Window>> {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.as_ref().is_some_and(|w| w.deadline <= Instant::now()) {
            *w = None;
        }
        w
    }

    /// Opens (or reopens, with a new PIN) the pairing window.
    pub fn arm(&self) -> Armed {
        self.arm_for(PIN_TTL)
    }

    fn arm_for(&self, ttl: Duration) -> Armed {
        use rand::Rng;
        let n: u32 = rand::rng().random_range(0..10u32.pow(PIN_DIGITS as u32));
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let armed = Armed {
            pin: format!("{n:0width$}", width = PIN_DIGITS),
            expires_at: i64::try_from(now_unix + ttl.as_secs()).unwrap_or(i64::MAX),
        };
        *self.lock() = Some(Window {
            armed: armed.clone(),
            deadline: Instant::now() + ttl,
            wrong: 0,
        });
        tracing::info!("native pairing armed for {} s", ttl.as_secs());
        armed
    }

    /// The armed window, if any.
    pub fn current(&self) -> Option<Armed> {
        self.lock().as_ref().map(|w| w.armed.clone())
    }

    /// Closes the window.
    pub fn disarm(&self) {
        *self.lock() = None;
    }

    /// A native client offers `pin`. The right PIN closes the window (single use);
    /// [`MAX_WRONG`] wrong ones close it too.
    pub fn try_consume(&self, pin: &str) -> Result<(), NativePinError> {
        let mut w = self.lock();
        let Some(window) = w.as_mut() else {
            return Err(NativePinError::NotArmed);
        };
        if constant_time_eq(window.armed.pin.as_bytes(), pin.as_bytes()) {
            *w = None;
            return Ok(());
        }
        window.wrong += 1;
        if window.wrong >= MAX_WRONG {
            tracing::warn!("native pairing closed after {MAX_WRONG} wrong PINs");
            *w = None;
        }
        Err(NativePinError::WrongPin)
    }

    /// Counts a failed native pairing proof (SPAKE2 tells the host only that the PIN
    /// did not match, never which PIN was tried); like a wrong PIN, [`MAX_WRONG`] of
    /// them close the window.
    pub fn record_failure(&self) {
        let mut w = self.lock();
        if let Some(window) = w.as_mut() {
            window.wrong += 1;
            if window.wrong >= MAX_WRONG {
                tracing::warn!("native pairing closed after {MAX_WRONG} failed attempts");
                *w = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_show_consume_once() {
        let p = NativePairing::default();
        assert_eq!(p.current(), None);
        assert_eq!(p.try_consume("123456"), Err(NativePinError::NotArmed));
        let armed = p.arm();
        assert_eq!(armed.pin.len(), PIN_DIGITS);
        assert!(armed.pin.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(p.current(), Some(armed.clone()));
        assert_eq!(p.try_consume(&armed.pin), Ok(()));
        assert_eq!(p.try_consume(&armed.pin), Err(NativePinError::NotArmed));
        assert_eq!(p.current(), None);
    }

    #[test]
    fn wrong_guesses_close_the_window() {
        let p = NativePairing::default();
        let armed = p.arm();
        let wrong = if armed.pin == "000000" {
            "000001"
        } else {
            "000000"
        };
        for _ in 0..MAX_WRONG - 1 {
            assert_eq!(p.try_consume(wrong), Err(NativePinError::WrongPin));
            assert!(p.current().is_some());
        }
        assert_eq!(p.try_consume(wrong), Err(NativePinError::WrongPin));
        assert_eq!(p.current(), None);
        assert_eq!(p.try_consume(&armed.pin), Err(NativePinError::NotArmed));
    }

    #[test]
    fn expiry_and_disarm() {
        let p = NativePairing::default();
        let armed = p.arm_for(Duration::ZERO);
        assert_eq!(p.current(), None);
        assert_eq!(p.try_consume(&armed.pin), Err(NativePinError::NotArmed));
        p.arm();
        p.disarm();
        assert_eq!(p.current(), None);
        // Re-arming gives a fresh window.
        let a = p.arm();
        assert_eq!(p.current(), Some(a));
    }
}
