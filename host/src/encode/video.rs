//! Video encoding: captured frames in (CPU pixels or DMA-BUFs, see
//! [`crate::capture::Frame`]), Annex B / OBU access units out.
//!
//! One trait ([`Encode`]) with three backends behind the [`VideoEncoder`] enum, as the
//! input backends are built: [`super::software`] (FFmpeg encoders fed from system
//! memory: x264, x265, SVT-AV1), [`super::vaapi`] (AMD and Intel GPUs) and
//! [`super::nvenc`] (NVIDIA). [`VideoEncoder::open`] opens the encoder the start-up
//! probe chose for the codec.

use anyhow::{Result, anyhow};
use ffmpeg_next as ffmpeg;

use super::nvenc::NvencEncoder;
use super::probe::{Codec, Encoders};
use super::software::{FfmpegEncoder, Tuning};
use super::vaapi::VaapiEncoder;
use crate::capture::Frame;

/// What to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoEncoderConfig {
    /// The codec.
    pub codec: Codec,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target bitrate for the encoder, in kbit/s.
    pub bitrate_kbps: u32,
    /// The client's `encoderCscMode`: colour space (0 BT.601, 1 BT.709, 2 BT.2020) << 1,
    /// plus 1 for full range.
    pub csc_mode: u32,
    /// A 10-bit stream (HEVC Main10, AV1 Main 10-bit): the client's ANNOUNCE asked
    /// for it (`x-nv-video[0].dynamicRangeMode:1`), which moonlight-common-c does only
    /// when serverinfo offered the codec's 10-bit `SCM_*` bit. The capture is SDR, so
    /// this is 10-bit SDR: the client's matrix and transfer, no PQ (see
    /// [`VideoEncoderConfig::colour`]).
    pub ten_bit: bool,
}

impl VideoEncoderConfig {
    /// The colour space, primaries, transfer and swscale matrix to convert and tag
    /// with, following the client's `encoderCscMode`. The host's sources are SDR
    /// desktops, so even a 10-bit stream keeps an SDR transfer: BT.2020 at 10 bits is
    /// tagged `bt2020-10` (as Sunshine tags "BT.2020 SDR"), never SMPTE 2084 (PQ),
    /// which would make the client's display stretch SDR levels into HDR brightness.
    pub(crate) fn colour(
        &self,
    ) -> (
        ffmpeg::color::Space,
        ffmpeg::color::Primaries,
        ffmpeg::color::TransferCharacteristic,
        libc::c_int,
    ) {
        use ffmpeg::color::{Primaries, Space, TransferCharacteristic};
        match self.csc_mode >> 1 {
            1 => (
                Space::BT709,
                Primaries::BT709,
                TransferCharacteristic::BT709,
                ffmpeg::ffi::SWS_CS_ITU709,
            ),
            2 => (
                Space::BT2020NCL,
                Primaries::BT2020,
                if self.ten_bit {
                    TransferCharacteristic::BT2020_10
                } else {
                    TransferCharacteristic::BT709
                },
                ffmpeg::ffi::SWS_CS_BT2020,
            ),
            _ => (
                Space::SMPTE170M,
                Primaries::SMPTE170M,
                TransferCharacteristic::SMPTE170M,
                ffmpeg::ffi::SWS_CS_ITU601,
            ),
        }
    }

    pub(crate) fn full_range(&self) -> bool {
        self.csc_mode & 1 == 1
    }

    /// The YUV matrix and range the client asked for, for a source that paints YUV
    /// itself ([`crate::capture::VideoCapture::offer_nv12`]).
    pub fn yuv_matrix(&self) -> punktfunk_yuv::Matrix {
        super::convert::matrix(self.colour().3, self.full_range())
    }

    /// The 10-bit converter's matrix for the client's colour space and range.
    pub fn yuv_matrix10(&self) -> punktfunk_yuv::ten_bit::Matrix10 {
        super::convert10::matrix10(self.colour().3, self.full_range())
    }
}

/// One encoded frame.
#[derive(Debug, Clone, Default)]
pub struct EncodedFrame {
    /// The bitstream.
    pub data: Vec<u8>,
    /// Whether it is an IDR / key frame.
    pub keyframe: bool,
    /// Microseconds spent converting the captured picture to the encoder's format.
    pub convert_us: u64,
    /// Microseconds spent encoding.
    pub encode_us: u64,
}

/// Collects every packet the encoder has ready into `out` (replacing its bitstream and
/// key-frame flag), until it answers EAGAIN (wants the next frame) or EOF. Returns
/// whether any packet came. One frame in gives one access unit out with the settings
/// the backends use (no B-frames, no lookahead), so this is called once per frame.
pub(crate) fn drain_packets(
    encoder: &mut ffmpeg::encoder::video::Encoder,
    packet: &mut ffmpeg::Packet,
    out: &mut EncodedFrame,
) -> Result<bool> {
    out.data.clear();
    out.keyframe = false;
    let mut got = false;
    loop {
        match encoder.receive_packet(packet) {
            Ok(()) => {
                if let Some(d) = packet.data() {
                    out.data.extend_from_slice(d);
                }
                out.keyframe |= packet.is_key();
                got = true;
            }
            Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => return Ok(got),
            Err(ffmpeg::Error::Eof) => return Ok(got),
            Err(e) => {
                return Err(anyhow::Error::new(e).context("receiving a packet from the encoder"));
            }
        }
    }
}

/// What every video encoder does.
pub trait Encode {
    /// FFmpeg's name of the encoder in use.
    fn name(&self) -> &'static str;

    /// Takes `frame` as the picture the next [`Encode::encode_picture`] encodes
    /// (converting or importing it); returns the microseconds it took. An error (a
    /// frame whose planes do not hold its picture, a buffer that cannot be imported)
    /// leaves the previous picture in place.
    fn convert(&mut self, frame: &Frame<'_>) -> Result<u64>;

    /// Whether a picture was taken yet (what a repeat re-encodes).
    fn has_picture(&self) -> bool;

    /// Encodes the current picture, as an IDR when `force_idr` or when one was
    /// requested; `convert_us` is reported with it. Returns `false` when the encoder
    /// produced nothing (it never should with these settings).
    fn encode_picture(
        &mut self,
        force_idr: bool,
        convert_us: u64,
        out: &mut EncodedFrame,
    ) -> Result<bool>;

    /// Changes the target bitrate from the next frame on, without reopening (no IDR,
    /// no stall). An encoder that cannot says so.
    fn set_bitrate(&mut self, bitrate_kbps: u32) -> Result<()>;

    /// Makes the next encoded frame an IDR.
    fn request_idr(&mut self);
}

/// An open video encoder of any backend.
#[derive(Debug)]
pub enum VideoEncoder {
    /// FFmpeg, from system memory (CPU encoders).
    Software(FfmpegEncoder),
    /// VAAPI.
    Vaapi(VaapiEncoder),
    /// NVENC.
    Nvenc(NvencEncoder),
}

macro_rules! each {
    ($self:expr, $e:ident => $body:expr) => {
        match $self {
            VideoEncoder::Software($e) => $body,
            VideoEncoder::Vaapi($e) => $body,
            VideoEncoder::Nvenc($e) => $body,
        }
    };
}

impl VideoEncoder {
    /// Opens the encoder chosen at start-up for `cfg.codec`.
    pub fn open(cfg: &VideoEncoderConfig, encoders: &Encoders) -> Result<Self> {
        Self::open_chosen(cfg, encoders, &Tuning::default())
    }

    /// Opens the encoder chosen at start-up for `cfg.codec`, with `tuning`.
    pub fn open_chosen(
        cfg: &VideoEncoderConfig,
        encoders: &Encoders,
        tuning: &Tuning,
    ) -> Result<Self> {
        let mut cfg = *cfg;
        if cfg.ten_bit {
            if let Some(ten) = encoders.ten_bit.iter().find(|a| a.codec == cfg.codec) {
                tracing::info!(encoder = ten.name, codec = ?cfg.codec, "10-bit stream");
                return Self::open_tuned(ten.name, &cfg, tuning);
            }
            // The host never offers 10-bit without an encoder for it; a client that
            // asks anyway gets the 8-bit stream its decoder also plays.
            tracing::warn!(
                codec = ?cfg.codec,
                "the client asked for 10-bit, which no encoder here produces; streaming 8-bit"
            );
            cfg.ten_bit = false;
        }
        let chosen = encoders
            .chosen
            .iter()
            .find(|a| a.codec == cfg.codec)
            .ok_or_else(|| anyhow!("no encoder opens for {:?} on this machine", cfg.codec))?;
        Self::open_tuned(chosen.name, &cfg, tuning)
    }

    /// Opens the FFmpeg encoder `name` with the host's default tuning.
    pub fn open_named(name: &'static str, cfg: &VideoEncoderConfig) -> Result<Self> {
        Self::open_tuned(name, cfg, &Tuning::default())
    }

    /// Opens the FFmpeg encoder `name` with `tuning` (the bench's levers).
    pub fn open_tuned(
        name: &'static str,
        cfg: &VideoEncoderConfig,
        tuning: &Tuning,
    ) -> Result<Self> {
        if name.ends_with("_vaapi") {
            return Ok(Self::Vaapi(VaapiEncoder::open(name, cfg)?));
        }
        if name.ends_with("_nvenc") {
            return Ok(Self::Nvenc(NvencEncoder::open(name, cfg, tuning)?));
        }
        Ok(Self::Software(FfmpegEncoder::open(name, cfg, tuning)?))
    }

    /// Converts `frame` and encodes it; `force_idr` makes it an IDR frame.
    pub fn encode(
        &mut self,
        frame: &Frame<'_>,
        force_idr: bool,
        out: &mut EncodedFrame,
    ) -> Result<bool> {
        let convert_us = self.convert(frame)?;
        self.encode_picture(force_idr, convert_us, out)
    }

    /// Encodes the last picture again (a still screen), with no conversion.
    pub fn repeat(&mut self, force_idr: bool, out: &mut EncodedFrame) -> Result<bool> {
        if !self.has_picture() {
            anyhow::bail!("no picture to repeat yet");
        }
        self.encode_picture(force_idr, 0, out)
    }
}

impl Encode for VideoEncoder {
    fn name(&self) -> &'static str {
        each!(self, e => e.name())
    }

    fn convert(&mut self, frame: &Frame<'_>) -> Result<u64> {
        each!(self, e => e.convert(frame))
    }

    fn has_picture(&self) -> bool {
        each!(self, e => e.has_picture())
    }

    fn encode_picture(
        &mut self,
        force_idr: bool,
        convert_us: u64,
        out: &mut EncodedFrame,
    ) -> Result<bool> {
        each!(self, e => e.encode_picture(force_idr, convert_us, out))
    }

    fn set_bitrate(&mut self, bitrate_kbps: u32) -> Result<()> {
        each!(self, e => e.set_bitrate(bitrate_kbps))
    }

    fn request_idr(&mut self) {
        each!(self, e => e.request_idr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::VideoSource;
    use crate::source::test_pattern::TestPattern;

    fn nal_types(data: &[u8]) -> Vec<u8> {
        let mut types = Vec::new();
        let mut i = 0;
        while i + 3 < data.len() {
            if data[i..i + 3] == [0, 0, 1] {
                types.push(data[i + 3] & 0x1F);
                i += 3;
            } else {
                i += 1;
            }
        }
        types
    }

    #[test]
    fn x264_starts_with_an_idr_with_parameter_sets_and_honours_idr_requests() {
        ffmpeg::init().unwrap();
        let cfg = VideoEncoderConfig {
            codec: Codec::H264,
            width: 640,
            height: 360,
            fps: 60,
            bitrate_kbps: 4000,
            csc_mode: 0,
            ten_bit: false,
        };
        let mut enc = VideoEncoder::open_named("libx264", &cfg).unwrap();
        let mut src = TestPattern::new(640, 360);
        let mut frame = crate::source::CapturedFrame::new(640, 360);
        let mut out = EncodedFrame::default();
        let mut kinds = Vec::new();
        for n in 1..=12u64 {
            src.capture(n, &mut frame).unwrap();
            assert!(
                enc.encode(&frame.as_frame(), n == 1 || n == 8, &mut out)
                    .unwrap(),
                "one access unit per frame"
            );
            let types = nal_types(&out.data);
            kinds.push((out.keyframe, types.contains(&7), types.contains(&5)));
        }
        // IDR (5) with SPS (7) exactly on frames 1 and 8.
        for (i, k) in kinds.iter().enumerate() {
            let want = i == 0 || i == 7;
            assert_eq!(*k, (want, want, want), "frame {}", i + 1);
        }
        // A request through the trait makes the very next frame an IDR.
        enc.request_idr();
        src.capture(13, &mut frame).unwrap();
        enc.encode(&frame.as_frame(), false, &mut out).unwrap();
        assert!(out.keyframe && nal_types(&out.data).contains(&5));
        src.capture(14, &mut frame).unwrap();
        enc.encode(&frame.as_frame(), false, &mut out).unwrap();
        assert!(!out.keyframe, "only one IDR per request");
    }

    /// Noise: every frame needs more bits than any bitrate here allows.
    fn noise(frame: &mut crate::source::CapturedFrame, seed: u64) {
        let mut x = seed | 1;
        for b in frame.data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }

    #[test]
    fn x264_follows_a_bitrate_change_without_reopening_or_an_idr() {
        ffmpeg::init().unwrap();
        let cfg = VideoEncoderConfig {
            codec: Codec::H264,
            width: 320,
            height: 240,
            fps: 60,
            bitrate_kbps: 4000,
            csc_mode: 0,
            ten_bit: false,
        };
        let mut enc = VideoEncoder::open_named("libx264", &cfg).unwrap();
        let mut frame = crate::source::CapturedFrame::new(320, 240);
        let mut out = EncodedFrame::default();
        let mut sizes = Vec::new();
        let mut keyframes = 0;
        for n in 0..60u64 {
            if n == 30 {
                enc.set_bitrate(1000).unwrap();
            }
            noise(&mut frame, n + 1);
            enc.encode(&frame.as_frame(), n == 0, &mut out).unwrap();
            keyframes += usize::from(out.keyframe);
            sizes.push(out.data.len());
        }
        assert_eq!(keyframes, 1, "no IDR for a bitrate change");
        // Leave the encoder a few frames to settle on either side.
        let before: usize = sizes[10..30].iter().sum::<usize>() / 20;
        let after: usize = sizes[40..60].iter().sum::<usize>() / 20;
        // 4000 and 1000 kbit/s at 60 fps are about 8300 and 2100 bytes a frame.
        assert!(
            before > after * 3,
            "frames of {before} bytes before, {after} after"
        );
        assert!(after < 4000, "{after} bytes a frame at 1000 kbit/s");
    }
}
