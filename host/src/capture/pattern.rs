//! The built-in test pattern as a capture backend: the demo picture where no
//! compositor runs, and the baseline the pipeline benchmark compares real captures to.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{CaptureError, CpuFrame, Frame, PixelFormat, Pixels, Plane, VideoCapture};
use crate::source::test_pattern::{Nv12Pattern, TestPattern};

/// Paints the moving bars and the frame barcode into its own buffer, paced at `fps`
/// like a display's refresh: one new picture per frame interval, numbered from 1.
#[derive(Debug)]
pub struct TestPatternCapture {
    pattern: TestPattern,
    width: u32,
    height: u32,
    stride: usize,
    pixels: Vec<u8>,
    interval: Duration,
    /// When the next picture is due.
    due: Option<Instant>,
    number: u64,
    /// Painting NV12 instead (see [`VideoCapture::offer_nv12`]).
    nv12: Option<Nv12Pattern>,
}

impl TestPatternCapture {
    /// A pattern of `width` x `height` at `fps` frames a second.
    pub fn new(width: u32, height: u32, fps: u32) -> Result<Self, CaptureError> {
        if width == 0 || height == 0 || fps == 0 || width > 16384 || height > 16384 {
            return Err(CaptureError::Failed(format!(
                "the test pattern cannot run at {width}x{height}@{fps}"
            )));
        }
        let stride = width as usize * 4;
        Ok(Self {
            pattern: TestPattern::new(width, height),
            width,
            height,
            stride,
            pixels: vec![0; stride * height as usize],
            interval: Duration::from_secs(1) / fps,
            due: None,
            number: 0,
            nv12: None,
        })
    }
}

impl VideoCapture for TestPatternCapture {
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<Frame<'_>>, CaptureError> {
        let now = Instant::now();
        let due = *self.due.get_or_insert(now);
        if due > now + timeout {
            std::thread::sleep(timeout);
            return Ok(None);
        }
        if due > now {
            std::thread::sleep(due - now);
        }
        let now = Instant::now();
        // A caller that fell behind (a slow encode) gets the next picture at once,
        // then the cadence restarts from now instead of bursting to catch up.
        self.due = Some(if now - due > self.interval * 2 {
            now + self.interval
        } else {
            due + self.interval
        });
        self.number += 1;
        let unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        if let Some(nv12) = &mut self.nv12 {
            nv12.draw(self.number, unix_us);
            // Captured once painted, as below.
            return Ok(Some(nv12.as_frame(Instant::now(), unix_us)));
        }
        self.pattern
            .draw_into(self.number, unix_us, &mut self.pixels, self.stride);
        Ok(Some(Frame {
            width: self.width,
            height: self.height,
            // Captured once painted, as a compositor's frame is once rendered; the
            // barcode carries the moment painting began.
            captured_at: Instant::now(),
            captured_unix_us: unix_us,
            pixels: Pixels::Cpu(CpuFrame {
                format: PixelFormat::Bgrx,
                planes: [
                    Plane {
                        data: &self.pixels,
                        stride: self.stride,
                    },
                    Plane::EMPTY,
                ],
            }),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "the test pattern at {}x{}@{}",
            self.width,
            self.height,
            (Duration::from_secs(1).as_secs_f64() / self.interval.as_secs_f64()).round()
        )
    }

    fn offer_nv12(&mut self, m: &punktfunk_yuv::Matrix) -> bool {
        // NV12 needs even sizes (one chroma pair per 2x2 pixels).
        if !(self.width.is_multiple_of(2) && self.height.is_multiple_of(2)) {
            return false;
        }
        self.nv12 = Some(Nv12Pattern::new(self.width, self.height, m));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_pattern::read_barcode;

    #[test]
    fn frames_are_numbered_paced_and_carry_the_barcode() {
        let mut cap = TestPatternCapture::new(1280, 720, 100).unwrap();
        let start = Instant::now();
        let mut numbers = Vec::new();
        while numbers.len() < 5 {
            if let Some(f) = cap.next_frame(Duration::from_millis(50)).unwrap() {
                let Pixels::Cpu(cpu) = f.pixels else {
                    panic!("CPU frame")
                };
                let (us, n) = read_barcode(cpu.planes[0].data, cpu.planes[0].stride, 4).unwrap();
                assert_eq!(us, f.captured_unix_us);
                numbers.push(n);
            }
        }
        assert_eq!(numbers, [1, 2, 3, 4, 5]);
        // Five frames at 100 fps take at least four intervals.
        assert!(
            start.elapsed() >= Duration::from_millis(38),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn offered_nv12_it_paints_nv12_with_the_barcode_in_luma() {
        let mut cap = TestPatternCapture::new(1280, 720, 1000).unwrap();
        assert!(cap.offer_nv12(&punktfunk_yuv::Matrix::bt709(false)));
        let f = cap.next_frame(Duration::from_millis(50)).unwrap().unwrap();
        let Pixels::Cpu(cpu) = f.pixels else {
            panic!("CPU frame")
        };
        assert_eq!(cpu.format, PixelFormat::Nv12);
        crate::encode::convert::check_planes(1280, 720, &cpu).unwrap();
        let (us, n) = read_barcode(cpu.planes[0].data, cpu.planes[0].stride, 1).unwrap();
        assert_eq!((us, n), (f.captured_unix_us, 1));
        let mut odd = TestPatternCapture::new(641, 360, 60).unwrap();
        assert!(!odd.offer_nv12(&punktfunk_yuv::Matrix::bt709(false)));
    }

    #[test]
    fn a_short_timeout_returns_nothing_new() {
        let mut cap = TestPatternCapture::new(64, 64, 1).unwrap();
        assert!(cap.next_frame(Duration::ZERO).unwrap().is_some());
        assert!(cap.next_frame(Duration::from_millis(5)).unwrap().is_none());
        assert!(TestPatternCapture::new(0, 64, 60).is_err());
    }
}
