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
use super::probe::Encoders;
use super::software::{FfmpegEncoder, Tuning};
use super::vaapi::VaapiEncoder;
use crate::capture::Frame;

mod config;
#[cfg(test)]
mod tests;

pub use config::VideoEncoderConfig;
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
