//! The send loop under a [`Pacer`]: release what it says is due, sleep until the next
//! burst, stop when the frame is out. Both video send paths (GameStream's send thread
//! and punktfunk/1's [`crate::native::sender::FrameSender`]) pace through this one.

use std::ops::Range;
use std::thread;

use punktfunk_core::pacing::{Pacer, Release};

use crate::clock;

/// Hands `send` each burst of the `total` packets the pacer (its frame already begun)
/// releases, as a range of packet indices, sleeping between bursts; returns once all
/// are out, or with `send`'s first error.
pub fn release_paced<E>(
    pacer: &mut Pacer,
    total: usize,
    mut send: impl FnMut(Range<usize>) -> Result<(), E>,
) -> Result<(), E> {
    let mut sent = 0;
    loop {
        match pacer.poll(clock::now()) {
            Release::Send(count) => {
                let count = count.min(total - sent);
                send(sent..sent + count)?;
                pacer.sent(count);
                sent += count;
            }
            Release::WaitUntil(t) => {
                if let Some(wait) = t.checked_duration_since(clock::now()) {
                    thread::sleep(wait);
                }
            }
            Release::Idle => return Ok(()),
        }
    }
}
