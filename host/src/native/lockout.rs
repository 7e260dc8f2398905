//! Brute-force protection of native pairing: every failed PIN proof is counted, and
//! [`MAX_FAILURES`] of them lock pairing for [`LOCKOUT`], whichever connection or
//! armed window they came from. Time is passed in, so tests need no sleeping.

use std::time::{Duration, Instant};

/// Failed attempts that trigger a lockout.
pub const MAX_FAILURES: u32 = 5;
/// How long pairing stays locked.
pub const LOCKOUT: Duration = Duration::from_secs(60);

/// The failure counter.
#[derive(Debug, Default)]
pub struct PairingLockout {
    failures: u32,
    locked_until: Option<Instant>,
}

impl PairingLockout {
    /// `Err(remaining)` while locked.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        match self.locked_until {
            Some(until) if now < until => Err(until - now),
            Some(_) => {
                self.locked_until = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed attempt; the fifth locks pairing.
    pub fn failure(&mut self, now: Instant) {
        self.failures += 1;
        if self.failures >= MAX_FAILURES {
            self.failures = 0;
            self.locked_until = Some(now + LOCKOUT);
            tracing::warn!(
                "native pairing locked for {} s after {MAX_FAILURES} failed attempts",
                LOCKOUT.as_secs()
            );
        }
    }

    /// A successful pairing clears the count.
    pub fn success(&mut self) {
        self.failures = 0;
    }

    /// Failures counted towards the next lockout.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_for_a_minute() {
        let t0 = Instant::now();
        let mut l = PairingLockout::default();
        for _ in 0..MAX_FAILURES - 1 {
            l.failure(t0);
            assert_eq!(l.check(t0), Ok(()));
        }
        l.failure(t0);
        assert_eq!(l.check(t0), Err(LOCKOUT));
        assert_eq!(
            l.check(t0 + Duration::from_secs(59)),
            Err(Duration::from_secs(1))
        );
        assert_eq!(l.check(t0 + LOCKOUT), Ok(()));
        // The count starts over after a lockout and after a success.
        l.failure(t0 + LOCKOUT);
        l.success();
        assert_eq!(l.failures(), 0);
    }
}
