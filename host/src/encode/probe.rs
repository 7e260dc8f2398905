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

    /// `ServerCodecModeSupport` for these encoders.
    pub fn codec_mode_support(&self) -> u32 {
        self.chosen.iter().fold(0, |acc, a| acc | scm_bit(a.codec))
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
        for codec in Codec::ALL {
            for &name in candidates(codec) {
                match try_open_bounded(name, PROBE_TIMEOUT) {
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
            }
        }
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Warning);
        Self { chosen, available }
    }
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
        .map(|(c, n)| (c, n, try_open_bounded(n, PROBE_TIMEOUT)))
        .collect();
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Warning);
    out
}

/// How long one encoder may take to open, encode a frame and close.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// [`try_open`] on its own thread, abandoned after `timeout`: a driver or library that
/// hangs must cost one encoder, not the host's start-up.
fn try_open_bounded(name: &'static str, timeout: std::time::Duration) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("pf-probe-{name}"))
        .spawn(move || {
            let _ = tx.send(try_open(name));
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

/// Opens `name` at 1280x720 60 fps, encodes a test frame, and closes it again: an
/// encoder that opens but cannot encode (a driver without the profile, a GPU without
/// the engine) is not kept.
fn try_open(name: &'static str) -> Result<(), String> {
    if name.ends_with("_vaapi") {
        return try_vaapi(name);
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
    let format = ffmpeg::format::Pixel::YUV420P;
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
        let mut frame = ffmpeg::frame::Video::new(format, 1280, 720);
        for plane in 0..frame.planes() {
            frame
                .data_mut(plane)
                .fill(if plane == 0 { 16 } else { 128 });
        }
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

/// VAAPI through the host's own encoder: device, surfaces, upload and one frame.
fn try_vaapi(name: &'static str) -> Result<(), String> {
    use super::video::{Encode, EncodedFrame, VideoEncoderConfig};
    let cfg = VideoEncoderConfig {
        codec: Codec::H264,
        width: 1280,
        height: 720,
        fps: 60,
        bitrate_kbps: 10_000,
        csc_mode: 0,
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
mod tests {
    use super::*;

    #[test]
    fn software_h264_always_opens_and_sets_its_bit() {
        let e = Encoders::probe();
        let h264 = e
            .chosen
            .iter()
            .find(|a| a.codec == Codec::H264)
            .expect("libx264 at least");
        assert!(e.codec_mode_support() & scm::H264 != 0);
        // Whatever was chosen really opens.
        assert!(try_open(h264.name).is_ok());
        assert!(try_open("no_such_encoder").is_err());
        assert!(e.available.contains(h264));
    }

    #[test]
    fn the_default_encoder_setting_picks_among_what_opened_and_falls_back() {
        let a = |codec, name: &'static str, hardware| Available {
            codec,
            name,
            hardware,
        };
        let e = Encoders {
            chosen: vec![
                a(Codec::H264, "h264_nvenc", true),
                a(Codec::Hevc, "libx265", false),
            ],
            available: vec![
                a(Codec::H264, "h264_nvenc", true),
                a(Codec::H264, "libx264", false),
                a(Codec::Hevc, "libx265", false),
            ],
        };
        assert_eq!(e.preferring("auto"), e);
        let soft = e.preferring("libx264");
        assert_eq!(soft.chosen[0].name, "libx264");
        assert_eq!(soft.chosen[1].name, "libx265", "other codecs keep theirs");
        // A preference that did not open here: the probe's choice stays.
        assert_eq!(e.preferring("hevc_vaapi"), e);
    }
}
