//! Verifiable synthetic frames: what the loopback bench and the network tests stream
//! in place of encoded video.
//!
//! A frame is 12 bytes of metadata (capture time, frame id) followed by a window into
//! one fixed pseudo-random pattern, starting at an offset that depends on the frame
//! id. Making one is a `memcpy` and checking one a `memcmp`, so the bench measures the
//! data plane rather than a byte-at-a-time generator; and because the offset moves by
//! a non-multiple of the shard length, a shard delivered into the wrong frame or the
//! wrong place still fails the check.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::data::{FrameSource, SourceFrame};

/// Bytes of the per-frame header: send time (µs, BE u64), frame id (BE u32).
pub const FRAME_META: usize = 12;
/// Offsets into the pattern repeat after this many bytes (prime, so never a multiple
/// of a shard length).
const PERIOD: usize = 4093;

/// The shared pattern, grown on demand; every instance agrees byte for byte.
#[derive(Debug, Clone)]
pub struct Pattern {
    bytes: Arc<Vec<u8>>,
}

fn generate(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

impl Pattern {
    /// A pattern that covers frames of up to `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        static SHARED: OnceLock<std::sync::Mutex<Arc<Vec<u8>>>> = OnceLock::new();
        let need = max_frame + PERIOD;
        let shared = SHARED.get_or_init(Default::default);
        let mut guard = shared.lock().unwrap_or_else(|e| e.into_inner());
        if guard.len() < need {
            *guard = Arc::new(generate(need.next_power_of_two()));
        }
        Self {
            bytes: guard.clone(),
        }
    }

    /// The largest frame this pattern can fill or check.
    pub fn max_frame(&self) -> usize {
        self.bytes.len().saturating_sub(PERIOD)
    }

    fn body(&self, frame_id: u32, len: usize) -> Option<&[u8]> {
        let off = (frame_id as usize).wrapping_mul(1031) % PERIOD;
        self.bytes.get(off..off + len)
    }

    /// Fills `buf` (at least [`FRAME_META`] bytes, at most [`Self::max_frame`]) as
    /// frame `frame_id` sent at `sent_us`.
    pub fn fill(&self, buf: &mut [u8], frame_id: u32, sent_us: u64) {
        buf[..8].copy_from_slice(&sent_us.to_be_bytes());
        buf[8..FRAME_META].copy_from_slice(&frame_id.to_be_bytes());
        let body = self
            .body(frame_id, buf.len() - FRAME_META)
            .expect("frame longer than the pattern was made for");
        buf[FRAME_META..].copy_from_slice(body);
    }

    /// Whether `data` is exactly a frame [`Self::fill`] made.
    pub fn intact(&self, data: &[u8]) -> bool {
        let Some(meta) = data.get(..FRAME_META) else {
            return false;
        };
        let id = u32::from_be_bytes(meta[8..12].try_into().expect("4 bytes"));
        self.body(id, data.len() - FRAME_META)
            .is_some_and(|body| body == &data[FRAME_META..])
    }
}

/// The send time a synthetic frame carries.
pub fn sent_us(data: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(..8)?.try_into().ok()?))
}

/// A [`FrameSource`] of synthetic frames (the network tests' stand-in for the encode
/// stage), paced at a frame rate the way a capture is.
#[derive(Debug, Clone)]
pub struct SyntheticFrames {
    /// Bytes of an ordinary frame.
    pub bytes: usize,
    /// Every n-th frame is a keyframe twice the size.
    pub keyframe_every: u32,
    pattern: Pattern,
    interval: Duration,
    due: Option<Instant>,
    epoch: Instant,
    n: u32,
    idr: bool,
    buf: Vec<u8>,
}

impl SyntheticFrames {
    /// Frames of `bytes`, with a double-size keyframe every `keyframe_every`, at 60
    /// frames a second.
    pub fn new(bytes: usize, keyframe_every: u32) -> Self {
        let bytes = bytes.max(FRAME_META);
        Self {
            bytes,
            keyframe_every,
            pattern: Pattern::new(bytes * 2),
            interval: Duration::from_secs(1) / 60,
            due: None,
            epoch: Instant::now(),
            n: 0,
            idr: false,
            buf: Vec::new(),
        }
    }

    /// The same frames at `fps` a second.
    pub fn at_fps(mut self, fps: u32) -> Self {
        self.interval = Duration::from_secs(1) / fps.max(1);
        self
    }
}

impl FrameSource for SyntheticFrames {
    fn next_frame(&mut self, wait: Duration) -> Result<Option<SourceFrame<'_>>> {
        let now = Instant::now();
        let due = *self.due.get_or_insert(now);
        if due > now + wait {
            std::thread::sleep(wait);
            return Ok(None);
        }
        if let Some(left) = due.checked_duration_since(now) {
            std::thread::sleep(left);
        }
        self.due = Some(due + self.interval);
        let n = self.n;
        self.n += 1;
        let key = std::mem::take(&mut self.idr) || n.is_multiple_of(self.keyframe_every.max(1));
        let len = self.bytes * if key { 2 } else { 1 };
        self.buf.resize(len, 0);
        let sent_us = self.epoch.elapsed().as_micros() as u64;
        self.pattern.fill(&mut self.buf, n, sent_us);
        Ok(Some(SourceFrame {
            data: &self.buf,
            keyframe: key,
        }))
    }

    fn request_idr(&mut self) {
        self.idr = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_verify_and_corruption_or_misplacement_is_detected() {
        let p = Pattern::new(10_000);
        let mut a = vec![0u8; 5000];
        p.fill(&mut a, 7, 1234);
        assert!(p.intact(&a));
        assert_eq!(sent_us(&a), Some(1234));
        let mut b = a.clone();
        b[2500] ^= 1;
        assert!(!p.intact(&b));
        // Another frame's body under this frame's header does not verify.
        let mut c = vec![0u8; 5000];
        p.fill(&mut c, 8, 1234);
        c[8..12].copy_from_slice(&7u32.to_be_bytes());
        assert!(!p.intact(&c));
        // A pattern made later for bigger frames agrees with the first.
        assert!(Pattern::new(1 << 20).intact(&a));
        assert!(!p.intact(&a[..5]));
    }
}
