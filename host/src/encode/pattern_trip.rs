//! What the encoders' round-trip tests share ([`super::round_trip`] at 8 bits,
//! [`super::round_trip10`] at 10): the test pattern captured picture by picture and
//! encoded by one of the host's encoders at 1280x720@30, and a PSNR to compare
//! decoded pictures with the host's own conversion.

use super::probe::Codec;
use super::video::{EncodedFrame, VideoEncoder, VideoEncoderConfig};
use crate::source::test_pattern::TestPattern;
use crate::source::{CapturedFrame, VideoSource};

/// The pattern's width.
pub const W: u32 = 1280;
/// The pattern's height.
pub const H: u32 = 720;

/// The test pattern feeding one encoder.
pub struct PatternEncoder {
    /// The encoder (for IDR requests).
    pub enc: VideoEncoder,
    src: TestPattern,
    /// The last captured picture (its barcode carries its number).
    pub frame: CapturedFrame,
    /// The last encoded packet.
    pub out: EncodedFrame,
}

impl PatternEncoder {
    /// Opens FFmpeg's `encoder` for `codec` at `bitrate_kbps`, with GameStream's
    /// `csc_mode` (0: BT.601 limited, 2: BT.709 limited) and bit depth.
    pub fn open(
        encoder: &'static str,
        codec: Codec,
        bitrate_kbps: u32,
        csc_mode: u32,
        ten_bit: bool,
    ) -> Self {
        ffmpeg_next::init().unwrap();
        let cfg = VideoEncoderConfig {
            codec,
            width: W,
            height: H,
            fps: 30,
            bitrate_kbps,
            csc_mode,
            ten_bit,
        };
        Self {
            enc: VideoEncoder::open_named(encoder, &cfg).unwrap(),
            src: TestPattern::new(W, H),
            frame: CapturedFrame::new(W, H),
            out: EncodedFrame::default(),
        }
    }

    /// Captures pattern picture `n` into [`Self::frame`] and encodes it (picture 1
    /// as a key frame); returns whether a packet came out (in [`Self::out`]).
    pub fn encode(&mut self, n: u64) -> bool {
        self.src.capture(n, &mut self.frame).unwrap();
        self.enc
            .encode(&self.frame.as_frame(), n == 1, &mut self.out)
            .unwrap()
    }
}

/// The PSNR in dB of `a` against `b`, for samples peaking at `peak` (255, 1023).
pub fn psnr<T: Copy + Into<f64>>(a: &[T], b: &[T], peak: f64) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x.into() - y.into()).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (peak * peak / mse.max(1e-9)).log10()
}
