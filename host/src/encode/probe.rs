//! Which encoders actually open on this machine.
//!
//! FFmpeg builds list NVENC and VAAPI encoders whether or not a GPU is there; only
//! opening one tells. The host probes once at start-up, prefers hardware where it
//! opens and falls back to software, logs the choice once, and advertises exactly the
//! codecs that work (`ServerCodecModeSupport`, DESCRIBE): a client must never be offered
//! a codec the host cannot produce.

use ffmpeg_next as ffmpeg;
use punktfunk_core::gamestream::nvhttp::scm;

pub use punktfunk_core::codec::VideoCodec as Codec;

/// FFmpeg encoder names to try for `codec`, best first: NVIDIA, VAAPI, then software.
pub fn candidates(codec: Codec) -> &'static [&'static str] {
    match codec {
        Codec::H264 => &["h264_nvenc", "h264_vaapi", "libx264"],
        Codec::Hevc => &["hevc_nvenc", "hevc_vaapi", "libx265"],
        Codec::Av1 => &["av1_nvenc", "av1_vaapi", "libsvtav1"],
    }
}

/// The `ServerCodecModeSupport` bit of `codec`.
pub fn scm_bit(codec: Codec) -> u32 {
    match codec {
        Codec::H264 => scm::H264,
        Codec::Hevc => scm::HEVC,
        Codec::Av1 => scm::AV1_MAIN8,
    }
}

/// The `ServerCodecModeSupport` bit of `codec`'s 10-bit profile (HEVC Main10, AV1
/// Main 10-bit); `None` for H.264, which Moonlight never asks for at 10 bits.
pub fn scm_bit_10(codec: Codec) -> Option<u32> {
    match codec {
        Codec::H264 => None,
        Codec::Hevc => Some(scm::HEVC_MAIN10),
        Codec::Av1 => Some(scm::AV1_MAIN10),
    }
}

/// An encoder that opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Available {
    /// Its codec.
    pub codec: Codec,
    /// FFmpeg's name for it.
    pub name: &'static str,
    /// Whether it runs on a GPU.
    pub hardware: bool,
}

/// The encoders chosen at start-up, one per codec that works.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoders {
    /// The chosen encoder per codec.
    pub chosen: Vec<Available>,
    /// Every encoder that opened and encoded a test frame, best first per codec (what
    /// the console's default-encoder setting may name).
    pub available: Vec<Available>,
    /// The encoder per codec that opened *and* encoded a 10-bit test frame (HEVC
    /// Main10, AV1 10-bit): only these codecs are offered at 10 bits, and only with
    /// one of them does serverinfo say `IsHdrSupported`.
    pub ten_bit: Vec<Available>,
}

impl Encoders {
    /// These encoders with `preferred` (the console's default-encoder setting: an
    /// FFmpeg encoder name, or `auto`) chosen for its codec. A preference that did not
    /// open here is logged with the reason and the probe's choice kept.
    pub fn preferring(&self, preferred: &str) -> Self {
        if preferred.is_empty() || preferred == "auto" {
            return self.clone();
        }
        let Some(want) = self.available.iter().find(|a| a.name == preferred) else {
            let fallback: Vec<&str> = self.chosen.iter().map(|a| a.name).collect();
            tracing::warn!(
                preferred,
                ?fallback,
                "the default encoder did not open on this machine at start-up; using the probe's choice"
            );
            return self.clone();
        };
        let mut out = self.clone();
        for c in &mut out.chosen {
            if c.codec == want.codec {
                *c = want.clone();
            }
        }
        out
    }

    /// `ServerCodecModeSupport` for these encoders: each working codec's bit, and its
    /// 10-bit bit where a 10-bit encoder was kept too. moonlight-common-c asks for
    /// Main10 (`dynamicRangeMode:1` in ANNOUNCE) only when that bit is set.
    pub fn codec_mode_support(&self) -> u32 {
        let eight = self.chosen.iter().fold(0, |acc, a| acc | scm_bit(a.codec));
        self.ten_bit
            .iter()
            .filter(|t| self.chosen.iter().any(|c| c.codec == t.codec))
            .filter_map(|t| scm_bit_10(t.codec))
            .fold(eight, |acc, bit| acc | bit)
    }

    /// Whether any codec is offered at 10 bits: the app list's `IsHdrSupported`.
    pub fn ten_bit_supported(&self) -> bool {
        self.codec_mode_support() & (scm::HEVC_MAIN10 | scm::AV1_MAIN10) != 0
    }

    /// Probes every candidate and keeps the first that opens for each codec.
    pub fn probe() -> Self {
        if let Err(e) = ffmpeg::init() {
            tracing::error!("FFmpeg failed to initialise: {e}; no encoder is available");
            return Self::default();
        }
        // Probing the hardware encoders on a machine without them makes FFmpeg log
        // errors; they are expected, the outcome is logged below instead. SVT-AV1 logs
        // through its own channel, quieted by its environment variable.
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
        if std::env::var_os("SVT_LOG").is_none() {
            // SAFETY: set before any encoder thread starts; probing runs once at start-up,
            // before the services spawn threads that read the environment.
            unsafe { std::env::set_var("SVT_LOG", "1") };
        }
        let mut chosen = Vec::new();
        let mut available = Vec::new();
        let mut ten_bit = Vec::new();
        for codec in Codec::ALL {
            for &name in candidates(codec) {
                match try_open_bounded(name, false, PROBE_TIMEOUT) {
                    Ok(()) => {
                        let hardware = !name.starts_with("lib");
                        tracing::info!(encoder = name, ?codec, hardware, "encoder available");
                        let a = Available {
                            codec,
                            name,
                            hardware,
                        };
                        if !chosen.iter().any(|c: &Available| c.codec == codec) {
                            chosen.push(a.clone());
                        }
                        available.push(a);
                    }
                    // Hardware that is absent is the common case: say why once, at
                    // info, so the log tells why software encodes.
                    Err(why) => tracing::info!(encoder = name, %why, "encoder does not open"),
                }
            }
            if !chosen.iter().any(|a| a.codec == codec) {
                tracing::warn!(
                    ?codec,
                    "no encoder opens for this codec; it will not be offered"
                );
            } else if scm_bit_10(codec).is_some() {
                ten_bit.extend(probe_ten_bit(codec));
            }
        }
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Warning);
        Self {
            chosen,
            available,
            ten_bit,
        }
    }
}

/// Encoders that encode 10-bit but are not offered at 10 bits, and why: SVT-AV1 1.4
/// (Debian 12) in the low-delay mode a stream needs leaves 16x16 blocks from other
/// pictures in every other 10-bit picture, for good (at 8 bits only in the first
/// ~40 after a key frame); `encode::round_trip10` shows it.
const TEN_BIT_REFUSED: &[(&str, &str)] = &[(
    "libsvtav1",
    "SVT-AV1 1.4's low-delay 10-bit pictures keep stale blocks; AV1 stays 8-bit",
)];

/// Whether `name` may be offered at 10 bits, or why not (before any probing).
fn ten_bit_allowed(name: &str) -> Result<(), String> {
    match TEN_BIT_REFUSED.iter().find(|(n, _)| *n == name) {
        Some((_, why)) => Err((*why).to_owned()),
        None => Ok(()),
    }
}

/// The first of `codec`'s candidates that encodes a 10-bit test frame, logged either
/// way: the log (and `doctor`) tells why a client is or is not offered 10-bit.
fn probe_ten_bit(codec: Codec) -> Option<Available> {
    for &name in candidates(codec) {
        match ten_bit_allowed(name).and_then(|()| try_open_bounded(name, true, PROBE_TIMEOUT)) {
            Ok(()) => {
                let hardware = !name.starts_with("lib");
                tracing::info!(
                    encoder = name,
                    ?codec,
                    hardware,
                    "10-bit encoder available: the codec is offered at 10 bits (IsHdrSupported)"
                );
                return Some(Available {
                    codec,
                    name,
                    hardware,
                });
            }
            Err(why) => tracing::info!(encoder = name, %why, "encoder does not encode 10-bit"),
        }
    }
    tracing::info!(
        ?codec,
        "no 10-bit encoder for this codec: it is offered at 8 bits only"
    );
    None
}

/// Every 10-bit candidate (HEVC, AV1) and whether it encodes a 10-bit frame (for
/// `punktfunk-host doctor`).
pub fn probe_all_ten_bit() -> Vec<(Codec, &'static str, Result<(), String>)> {
    if let Err(e) = ffmpeg::init() {
        return vec![(Codec::Hevc, "ffmpeg", Err(e.to_string()))];
    }
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    let out = Codec::ALL
        .iter()
        .filter(|c| scm_bit_10(**c).is_some())
        .flat_map(|c| candidates(*c).iter().map(move |n| (*c, *n)))
        .map(|(c, n)| {
            let outcome =
                ten_bit_allowed(n).and_then(|()| try_open_bounded(n, true, PROBE_TIMEOUT));
            (c, n, outcome)
        })
        .collect();
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Warning);
    out
}

/// Every candidate encoder and whether it opened (for `punktfunk-host doctor`).
pub fn probe_all() -> Vec<(Codec, &'static str, Result<(), String>)> {
    if let Err(e) = ffmpeg::init() {
        return vec![(Codec::H264, "ffmpeg", Err(e.to_string()))];
    }
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    if std::env::var_os("SVT_LOG").is_none() {
        // SAFETY: `doctor` calls this from its only thread, before any encoder runs.
        unsafe { std::env::set_var("SVT_LOG", "1") };
    }
    let out = Codec::ALL
        .iter()
        .flat_map(|c| candidates(*c).iter().map(move |n| (*c, *n)))
        .map(|(c, n)| (c, n, try_open_bounded(n, false, PROBE_TIMEOUT)))
        .collect();
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Warning);
    out
}

/// How long one encoder may take to open, encode a frame and close.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// [`try_open`] on its own thread, abandoned after `timeout`: a driver or library that
/// hangs must cost one encoder, not the host's start-up.
fn try_open_bounded(
    name: &'static str,
    ten_bit: bool,
    timeout: std::time::Duration,
) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("pf-probe-{name}"))
        .spawn(move || {
            let _ = tx.send(try_open(name, ten_bit));
        })
        .map_err(|e| e.to_string())?;
    rx.recv_timeout(timeout).unwrap_or_else(|_| {
        tracing::warn!(
            encoder = name,
            "encoder probe hung; treating it as unavailable"
        );
        Err("probe timed out".into())
    })
}

/// Opens `name` at 1280x720 60 fps (at 10 bits with `ten_bit`), encodes a test
/// frame, and closes it again: an encoder that opens but cannot encode (a driver
/// without the profile, a GPU without the engine) is not kept.
fn try_open(name: &'static str, ten_bit: bool) -> Result<(), String> {
    if name.ends_with("_vaapi") {
        return try_vaapi(name, ten_bit);
    }
    if name.ends_with("_nvenc") {
        super::nvenc::driver_present().map_err(|e| e.to_string())?;
    }
    let codec = ffmpeg::encoder::find_by_name(name).ok_or("not compiled into FFmpeg")?;
    let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| e.to_string())?;
    enc.set_width(1280);
    enc.set_height(720);
    enc.set_time_base(ffmpeg::Rational::new(1, 60));
    enc.set_frame_rate(Some(ffmpeg::Rational::new(60, 1)));
    enc.set_bit_rate(10_000_000);
    let format = if ten_bit {
        super::software::input_format(name, &Default::default(), true).map_err(|e| e.to_string())?
    } else {
        ffmpeg::format::Pixel::YUV420P
    };
    enc.set_format(format);
    let mut opts = ffmpeg::Dictionary::new();
    if name == "libx264" || name == "libx265" {
        opts.set("preset", "ultrafast");
    }
    if name == "libx265" {
        opts.set("x265-params", "log-level=none");
    }
    if name == "libsvtav1" {
        opts.set("preset", "12");
    }
    let mut opened = enc.open_with(opts).map_err(|e| e.to_string())?;
    {
        // Encode one frame and close through end-of-stream: SVT-AV1 deadlocks when an
        // encoder is flushed before it saw a picture, or freed without a flush.
        let mut frame = black(format);
        frame.set_pts(Some(0));
        opened.send_frame(&frame).map_err(|e| e.to_string())?;
        opened.send_eof().map_err(|e| e.to_string())?;
        let mut packet = ffmpeg::Packet::empty();
        let mut got = 0;
        while opened.receive_packet(&mut packet).is_ok() {
            got += 1;
        }
        if got == 0 {
            return Err("opened but produced no packet".into());
        }
    }
    Ok(())
}

/// A limited-range black picture of `format` (8-bit, `yuv420p10le` or P010).
fn black(format: ffmpeg::format::Pixel) -> ffmpeg::frame::Video {
    use ffmpeg::format::Pixel;
    let mut frame = ffmpeg::frame::Video::new(format, 1280, 720);
    for plane in 0..frame.planes() {
        let (y, c) = match format {
            Pixel::YUV420P10LE => (64u16, 512u16),
            Pixel::P010LE => (64 << 6, 512 << 6),
            _ => {
                frame
                    .data_mut(plane)
                    .fill(if plane == 0 { 16 } else { 128 });
                continue;
            }
        };
        let v = if plane == 0 { y } else { c }.to_le_bytes();
        for pair in frame.data_mut(plane).chunks_exact_mut(2) {
            pair.copy_from_slice(&v);
        }
    }
    frame
}

/// VAAPI through the host's own encoder: device, surfaces, upload and one frame.
fn try_vaapi(name: &'static str, ten_bit: bool) -> Result<(), String> {
    use super::video::{Encode, EncodedFrame, VideoEncoderConfig};
    let cfg = VideoEncoderConfig {
        codec: Codec::H264,
        width: 1280,
        height: 720,
        fps: 60,
        bitrate_kbps: 10_000,
        csc_mode: 0,
        ten_bit,
    };
    let mut enc = super::vaapi::VaapiEncoder::open(name, &cfg).map_err(|e| format!("{e:#}"))?;
    let frame = crate::source::CapturedFrame::new(1280, 720);
    let mut out = EncodedFrame::default();
    let us = enc
        .convert(&frame.as_frame())
        .map_err(|e| format!("{e:#}"))?;
    match enc.encode_picture(true, us, &mut out) {
        Ok(true) if !out.data.is_empty() => Ok(()),
        Ok(_) => Err("opened but produced no packet".into()),
        Err(e) => Err(format!("{e:#}")),
    }
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
