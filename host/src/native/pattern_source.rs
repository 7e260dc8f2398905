//! A real frame source for native streams: the host's test pattern (with its
//! barcode of capture time and frame number) through the real encoder.

use anyhow::Result;

use super::data::FrameSource;
use crate::encode::probe::Codec as EncCodec;
use crate::encode::video::{EncodedFrame, VideoEncoder, VideoEncoderConfig};
use crate::source::CapturedFrame;
use crate::source::test_pattern::TestPattern;
use punktfunk_core::native::control::{Codec, Mode};

/// The test pattern, encoded.
#[derive(Debug)]
pub struct EncodedPattern {
    pattern: TestPattern,
    capture: CapturedFrame,
    encoder: VideoEncoder,
    encoded: EncodedFrame,
}

impl EncodedPattern {
    /// Opens the software encoder for `mode` (libx264 / libx265 / SVT-AV1).
    pub fn open(mode: &Mode) -> Result<Self> {
        let (codec, name) = match mode.codec {
            Codec::H264 => (EncCodec::H264, "libx264"),
            Codec::H265 => (EncCodec::Hevc, "libx265"),
            Codec::Av1 => (EncCodec::Av1, "libsvtav1"),
        };
        let (w, h) = (u32::from(mode.width), u32::from(mode.height));
        // The pattern compresses to almost nothing; x264's filler pads it to the
        // asked bitrate, so the data plane carries what a game's stream would.
        let encoder = VideoEncoder::open_tuned(
            name,
            &VideoEncoderConfig {
                codec,
                width: w,
                height: h,
                fps: u32::from(mode.fps),
                bitrate_kbps: mode.bitrate_kbps,
                csc_mode: 2, // BT.709, limited range
                ten_bit: false,
            },
            &crate::encode::software::Tuning {
                filler: true,
                ..Default::default()
            },
        )?;
        Ok(Self {
            pattern: TestPattern::new(w, h),
            capture: CapturedFrame::new(w, h),
            encoder,
            encoded: EncodedFrame::default(),
        })
    }
}

impl FrameSource for EncodedPattern {
    fn frame(&mut self, n: u32, _capture_us: u64, idr: bool, out: &mut Vec<u8>) -> Result<bool> {
        let unix_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        self.capture.captured_unix_us = unix_us;
        self.pattern.draw(u64::from(n), unix_us, &mut self.capture);
        self.encoder
            .encode(&self.capture.as_frame(), idr || n == 0, &mut self.encoded)?;
        out.extend_from_slice(&self.encoded.data);
        Ok(self.encoded.keyframe)
    }
}
