//! Where pictures and sound come from.
//!
//! The per-session sources (gamescope's PipeWire node, a PipeWire audio sink) plug in
//! behind these traits; the demo defaults are the test pattern and a 440 Hz tone.

pub mod test_pattern;
pub mod tone;

use std::time::Instant;

/// One captured picture: 32-bit BGRx, `stride` bytes per row.
#[derive(Debug, Clone)]
pub struct CapturedFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row.
    pub stride: usize,
    /// The pixels.
    pub data: Vec<u8>,
    /// When it was captured (monotonic), for latency accounting.
    pub captured_at: Instant,
    /// When it was captured, wall clock in microseconds since the Unix epoch.
    pub captured_unix_us: u64,
}

impl CapturedFrame {
    /// This picture as a capture frame (BGRx, borrowed).
    pub fn as_frame(&self) -> crate::capture::Frame<'_> {
        use crate::capture::{CpuFrame, Frame, PixelFormat, Pixels, Plane};
        Frame {
            width: self.width,
            height: self.height,
            captured_at: self.captured_at,
            captured_unix_us: self.captured_unix_us,
            pixels: Pixels::Cpu(CpuFrame {
                format: PixelFormat::Bgrx,
                planes: [
                    Plane {
                        data: &self.data,
                        stride: self.stride,
                    },
                    Plane::EMPTY,
                ],
            }),
        }
    }

    /// An all-black frame of the given size.
    pub fn new(width: u32, height: u32) -> Self {
        let stride = width as usize * 4;
        Self {
            width,
            height,
            stride,
            data: vec![0; stride * height as usize],
            captured_at: Instant::now(),
            captured_unix_us: 0,
        }
    }
}

/// A source of pictures.
pub trait VideoSource: Send {
    /// Fills `frame` with the next picture (frame `number`, from 1) and stamps it.
    fn capture(&mut self, number: u64, frame: &mut CapturedFrame) -> anyhow::Result<()>;
}

/// A source of 48 kHz interleaved float samples.
pub trait AudioSource: Send {
    /// Fills `samples` (`channels` interleaved) with the next stretch of sound.
    fn read(&mut self, samples: &mut [f32], channels: usize);
}
