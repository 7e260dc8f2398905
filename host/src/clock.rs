//! The host's one clock. The core never reads time; everything it needs arrives as an
//! `Instant` from here, so tests can drive the core in virtual time.

use std::time::Instant;

/// The current monotonic time.
pub fn now() -> Instant {
    Instant::now()
}
