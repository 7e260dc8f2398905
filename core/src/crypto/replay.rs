//! The replay window of the native data plane.
//!
//! Every native packet carries the 64-bit counter its nonce was built from. After a
//! packet authenticates, the receiver records its counter here; a counter seen before,
//! or one too far behind the newest, is refused, so a captured packet cannot be played
//! into the stream again. The window tolerates reordering of up to [`WINDOW`] packets,
//! which at 1 Gbps and 1400-byte packets is about 45 ms of traffic.

use thiserror::Error;

/// How far behind the newest counter a packet may arrive and still be accepted.
pub const WINDOW: u64 = 4096;
const WORDS: usize = (WINDOW / 64) as usize;

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ReplayError {
    /// This counter was already accepted.
    #[error("replayed packet counter {0}")]
    Duplicate(u64),
    /// This counter is older than the window.
    #[error("packet counter {counter} is older than the window (newest {newest})")]
    TooOld {
        /// The refused counter.
        counter: u64,
        /// The newest counter accepted so far.
        newest: u64,
    },
}

/// A sliding bitmap of recently accepted counters.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    newest: Option<u64>,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window: any first counter is accepted.
    pub fn new() -> Self {
        Self {
            newest: None,
            bits: [0; WORDS],
        }
    }

    fn slot(counter: u64) -> (usize, u64) {
        let bit = counter % WINDOW;
        ((bit / 64) as usize, 1u64 << (bit % 64))
    }

    /// Whether `counter` would be accepted. Call before spending work on decryption.
    pub fn check(&self, counter: u64) -> Result<(), ReplayError> {
        let Some(newest) = self.newest else {
            return Ok(());
        };
        if counter > newest {
            return Ok(());
        }
        if newest - counter >= WINDOW {
            return Err(ReplayError::TooOld { counter, newest });
        }
        let (word, mask) = Self::slot(counter);
        if self.bits[word] & mask != 0 {
            return Err(ReplayError::Duplicate(counter));
        }
        Ok(())
    }

    /// Records `counter` as received. Call only after the packet authenticated, so a
    /// forged packet cannot advance the window.
    pub fn accept(&mut self, counter: u64) -> Result<(), ReplayError> {
        self.check(counter)?;
        match self.newest {
            Some(newest) if counter <= newest => {}
            Some(newest) => {
                // Clear the slots the window slides over.
                let advance = counter - newest;
                if advance >= WINDOW {
                    self.bits = [0; WORDS];
                } else {
                    for c in newest + 1..=counter {
                        let (word, mask) = Self::slot(c);
                        self.bits[word] &= !mask;
                    }
                }
                self.newest = Some(counter);
            }
            None => self.newest = Some(counter),
        }
        let (word, mask) = Self::slot(counter);
        self.bits[word] |= mask;
        Ok(())
    }

    /// The newest counter accepted so far.
    pub fn newest(&self) -> Option<u64> {
        self.newest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn duplicates_and_stale_counters_are_refused() {
        let mut w = ReplayWindow::new();
        w.accept(10).unwrap();
        assert_eq!(w.accept(10), Err(ReplayError::Duplicate(10)));
        w.accept(7).unwrap(); // reordered, inside the window
        assert_eq!(w.check(7), Err(ReplayError::Duplicate(7)));
        w.accept(10 + WINDOW).unwrap();
        assert_eq!(
            w.check(10),
            Err(ReplayError::TooOld {
                counter: 10,
                newest: 10 + WINDOW
            })
        );
        // 11 is still inside the window and was never seen.
        assert!(w.check(11).is_ok());
        w.accept(u64::MAX).unwrap();
        assert_eq!(w.newest(), Some(u64::MAX));
    }

    proptest! {
        /// Against a model that remembers everything: the window accepts a counter iff it
        /// was never accepted before and is within WINDOW of the newest.
        #[test]
        fn matches_an_unbounded_model(seq in proptest::collection::vec(0u64..20_000, 1..600)) {
            let mut w = ReplayWindow::new();
            let mut seen = HashSet::new();
            let mut newest: Option<u64> = None;
            for c in seq {
                let fresh = !seen.contains(&c);
                let in_window = newest.is_none_or(|n| c > n || n - c < WINDOW);
                let got = w.accept(c);
                prop_assert_eq!(got.is_ok(), fresh && in_window, "counter {}", c);
                if got.is_ok() {
                    seen.insert(c);
                    newest = Some(newest.map_or(c, |n| n.max(c)));
                }
            }
        }
    }
}
