//! Encoders that take pictures in system memory, through FFmpeg: libx264, libx265 and
//! SVT-AV1 on the CPU, and NVENC's own upload path (FFmpeg copies a system-memory
//! picture to the GPU itself; see [`super::nvenc`]).
//!
//! Settings follow what low-latency streaming needs (and what Sunshine uses): x264
//! superfast with `zerolatency` and no B-frames, parameter sets repeated on every IDR,
//! CBR at the requested bitrate with a one-frame VBV, and IDR on demand within one
//! frame (`forced-idr`). The bitrate changes on the fly (FFmpeg's libx264 and NVENC
//! wrappers reconfigure the open encoder when the context's rates change).

use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;

use super::convert::{ConvertPath, Converter};
use super::video::{Encode, EncodedFrame, VideoEncoderConfig, drain_packets};
use crate::capture::Frame;

/// The per-encoder knobs the pipeline bench varies (the levers); the defaults are
/// what the host streams with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// How packed RGB becomes YUV.
    pub convert: ConvertPath,
    /// Hand x264 NV12 (its internal layout) instead of YUV420P, saving its
    /// interleaving copy. Ignored by encoders that do not take NV12.
    pub nv12: bool,
    /// x264's thread count (`None`: FFmpeg's default, x264's automatic choice).
    pub threads: Option<u32>,
    /// x264's preset.
    pub preset: &'static str,
    /// Pad x264's output with filler to the bitrate (hard CBR). Off for streaming (the
    /// padding is bytes the link carries for nothing); the loss tests turn it on so a
    /// simple test pattern loads the link like a game at the configured bitrate.
    pub filler: bool,
    /// More `x264-params` (`key=value:...`), appended after the host's own: the
    /// bench's option levers. Empty for the host.
    pub x264_extra: &'static str,
}

impl Default for Tuning {
    /// What the lever table in `host/benches/pipeline.rs` measured best on the 2-core
    /// reference box at superfast.
    fn default() -> Self {
        Self {
            convert: ConvertPath::default(),
            nv12: true,
            threads: Some(2),
            preset: "superfast",
            filler: false,
            x264_extra: "",
        }
    }
}

/// An open FFmpeg encoder fed from system memory, and its colour converter.
pub struct FfmpegEncoder {
    name: &'static str,
    encoder: ffmpeg::encoder::video::Encoder,
    converter: Converter,
    /// Whether the converter holds a picture (what a repeat re-encodes).
    has_picture: bool,
    idr_requested: bool,
    packet: ffmpeg::Packet,
    pts: i64,
    /// What it was opened with, to reopen it (see [`forces_key_frames`]).
    cfg: VideoEncoderConfig,
    tuning: Tuning,
}

impl std::fmt::Debug for FfmpegEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfmpegEncoder")
            .field("encoder", &self.name)
            .field("converter", &self.converter)
            .finish_non_exhaustive()
    }
}

/// The VBV size in bits for `kbps` at `fps`: one frame's worth, so the encoder may not
/// exceed the link for even a frame.
fn vbv_bits(kbps: u32, fps: u32) -> i32 {
    let bits = u64::from(kbps) * 1000 / u64::from(fps.max(1));
    i32::try_from(bits.max(1000)).unwrap_or(i32::MAX)
}

fn options(name: &str, cfg: &VideoEncoderConfig, tuning: &Tuning) -> ffmpeg::Dictionary<'static> {
    let mut o = ffmpeg::Dictionary::new();
    let kbps = cfg.bitrate_kbps;
    let vbv = (kbps / cfg.fps.max(1)).max(1);
    match name {
        "libx264" => {
            o.set("preset", tuning.preset);
            o.set("tune", "zerolatency");
            o.set("forced-idr", "1");
            // The VBV comes from the context (rc_max_rate, rc_buffer_size), so that a
            // bitrate change reconfigures it consistently. No `nal-hrd`: x264 refuses
            // to change VBV parameters while NAL HRD is signalled, and its CBR filler
            // only pads frames with bytes the link then carries for nothing.
            // `filler` (unlike `nal-hrd`) leaves the VBV reconfigurable.
            let mut params = String::from("repeat-headers=1:bframes=0:keyint=infinite:scenecut=0");
            if tuning.filler {
                params.push_str(":filler=1");
            }
            if !tuning.x264_extra.is_empty() {
                params.push(':');
                params.push_str(tuning.x264_extra);
            }
            o.set("x264-params", &params);
        }
        "libx265" => {
            // info=0: x265's version SEI (a prefix SEI between the PPS and the IDR slice)
            // makes moonlight-common-c drop every HEVC frame; checked with
            // moonlight-python, where no frame reached the decoder with it.
            o.set("preset", "ultrafast");
            o.set("tune", "zerolatency");
            o.set("forced-idr", "1");
            o.set(
                "x265-params",
                &format!("log-level=none:repeat-headers=1:bframes=0:vbv-maxrate={kbps}:vbv-bufsize={vbv}:keyint=-1:scenecut=0:info=0"),
            );
        }
        "libsvtav1" => {
            o.set("preset", "12");
            o.set(
                "svtav1-params",
                "pred-struct=1:rc=2:fast-decode=1:enable-overlays=0",
            );
        }
        n if n.ends_with("_nvenc") => {
            o.set("preset", "p1");
            o.set("tune", "ull");
            o.set("zerolatency", "1");
            o.set("rc", "cbr");
            o.set("forced-idr", "1");
        }
        _ => {}
    }
    o
}

/// The pixel format `name` is fed: NV12 where the encoder takes it and `tuning` asks;
/// for a 10-bit stream the 10-bit layout the encoder takes (x265 and SVT-AV1 read
/// `yuv420p10le`, NVENC reads P010), or the reason it has none.
pub fn input_format(name: &str, tuning: &Tuning, ten_bit: bool) -> Result<Pixel> {
    if ten_bit {
        return match name {
            "libx265" | "libsvtav1" => Ok(Pixel::YUV420P10LE),
            n if n.starts_with("hevc_") || n.starts_with("av1_") => Ok(Pixel::P010LE),
            _ => bail!("{name} has no 10-bit profile a Moonlight client decodes"),
        };
    }
    let takes_nv12 = name == "libx264" || name.ends_with("_nvenc");
    Ok(if tuning.nv12 && takes_nv12 {
        Pixel::NV12
    } else {
        Pixel::YUV420P
    })
}

/// Whether `name` makes a key frame when a picture asks for one. SVT-AV1 (1.4, as in
/// Debian 12) forces key frames only in random-access CRF/CQP mode ("Force key frame
/// is only supported with RA CRF/CQP mode"), never in the low-delay CBR mode a stream
/// needs, so it would ignore every IDR request: a client that lost a frame would wait
/// for a key frame that never comes. Such an encoder is restarted instead (a new
/// sequence starts with a key frame).
fn forces_key_frames(name: &str) -> bool {
    name != "libsvtav1"
}

/// Opens the FFmpeg encoder `name` with the host's settings for pictures of `format`;
/// `hw_frames` (a hardware frames context, for `format` `CUDA`) is referenced by the
/// encoder when given.
pub(crate) fn open_context(
    name: &'static str,
    cfg: &VideoEncoderConfig,
    tuning: &Tuning,
    format: Pixel,
    hw_frames: Option<*mut ffmpeg::ffi::AVBufferRef>,
) -> Result<ffmpeg::encoder::video::Encoder> {
    let codec = ffmpeg::encoder::find_by_name(name)
        .ok_or_else(|| anyhow!("{name} is not in this FFmpeg"))?;
    let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .context("allocating the encoder")?;
    enc.set_width(cfg.width);
    enc.set_height(cfg.height);
    enc.set_format(format);
    enc.set_time_base(ffmpeg::Rational::new(1, cfg.fps as i32));
    enc.set_frame_rate(Some(ffmpeg::Rational::new(cfg.fps as i32, 1)));
    let bps = usize::try_from(u64::from(cfg.bitrate_kbps) * 1000).unwrap_or(usize::MAX);
    enc.set_bit_rate(bps);
    // SVT-AV1's CBR refuses a maximum equal to the target ("Max Bitrate must be
    // greater than Target Bitrate") and needs none; the others cap at the target.
    if name != "libsvtav1" {
        enc.set_max_bit_rate(bps);
    }
    enc.set_max_b_frames(0);
    // IDRs come on request (client start, loss); no periodic ones.
    enc.set_gop(i32::MAX as u32);
    if name == "libx264"
        && let Some(t) = tuning.threads
    {
        enc.set_threading(ffmpeg::threading::Config {
            kind: ffmpeg::threading::Type::Slice,
            count: t as usize,
            ..Default::default()
        });
    }
    // Convert and tag exactly as the client asked (`encoderCscMode`): its decoder
    // converts back with the same matrix and range.
    let (space, primaries, transfer, _) = cfg.colour();
    enc.set_colorspace(space);
    enc.set_color_range(if cfg.full_range() {
        ffmpeg::color::Range::JPEG
    } else {
        ffmpeg::color::Range::MPEG
    });
    // SAFETY: the context is allocated and not yet open; these are plain fields.
    unsafe {
        let ctx = enc.as_mut_ptr();
        (*ctx).color_primaries = primaries.into();
        (*ctx).color_trc = transfer.into();
        if name == "libx264" || name.ends_with("_nvenc") {
            (*ctx).rc_buffer_size = vbv_bits(cfg.bitrate_kbps, cfg.fps);
        }
        if let Some(frames) = hw_frames {
            (*ctx).hw_frames_ctx = ffmpeg::ffi::av_buffer_ref(frames);
        }
    }
    enc.open_with(options(name, cfg, tuning))
        .with_context(|| format!("opening {name} at {}x{}@{}", cfg.width, cfg.height, cfg.fps))
}

/// Stamps `picture` as the next frame (`pts`, an IDR when `idr`), sends it and drains
/// the access unit into `out`.
pub(crate) fn send_picture(
    encoder: &mut ffmpeg::encoder::video::Encoder,
    packet: &mut ffmpeg::Packet,
    picture: &mut ffmpeg::frame::Video,
    pts: &mut i64,
    idr: bool,
    out: &mut EncodedFrame,
) -> Result<bool> {
    picture.set_pts(Some(*pts));
    *pts += 1;
    picture.set_kind(if idr {
        ffmpeg::picture::Type::I
    } else {
        ffmpeg::picture::Type::None
    });
    encoder
        .send_frame(picture)
        .context("sending a frame to the encoder")?;
    drain_packets(encoder, packet, out)
}

/// Sets an open encoder's target, maximum and VBV for `bitrate_kbps`; the libx264 and
/// NVENC wrappers apply them from the next frame on.
pub(crate) fn set_rates(
    encoder: &mut ffmpeg::encoder::video::Encoder,
    bitrate_kbps: u32,
    fps: u32,
) {
    let bps = i64::from(bitrate_kbps) * 1000;
    // SAFETY: the encoder is open and used only from this thread; FFmpeg reads these
    // plain fields on the next frame.
    unsafe {
        let ctx = encoder.as_mut_ptr();
        (*ctx).bit_rate = bps;
        (*ctx).rc_max_rate = bps;
        (*ctx).rc_buffer_size = vbv_bits(bitrate_kbps, fps);
    }
}

/// Opens the FFmpeg encoder `name` for system-memory pictures; returns it, its input
/// format and the swscale colour matrix its converter uses.
fn open_encoder(
    name: &'static str,
    cfg: &VideoEncoderConfig,
    tuning: &Tuning,
) -> Result<(ffmpeg::encoder::video::Encoder, Pixel, libc::c_int)> {
    let format = input_format(name, tuning, cfg.ten_bit)?;
    let encoder = open_context(name, cfg, tuning, format, None)?;
    Ok((encoder, format, cfg.colour().3))
}

/// Ends `encoder`'s stream and drops what it still holds (SVT-AV1 hangs when freed
/// mid-stream).
fn finish(encoder: &mut ffmpeg::encoder::video::Encoder, packet: &mut ffmpeg::Packet) {
    let _ = encoder.send_eof();
    while encoder.receive_packet(packet).is_ok() {}
}

impl FfmpegEncoder {
    /// Opens the FFmpeg encoder `name` for system-memory pictures.
    pub fn open(name: &'static str, cfg: &VideoEncoderConfig, tuning: &Tuning) -> Result<Self> {
        let (encoder, format, sws_space) = open_encoder(name, cfg, tuning)?;
        let converter = Converter::new(
            cfg.width,
            cfg.height,
            sws_space,
            cfg.full_range(),
            format,
            tuning.convert,
        );
        tracing::info!(
            encoder = name,
            width = cfg.width,
            height = cfg.height,
            fps = cfg.fps,
            kbps = cfg.bitrate_kbps,
            ten_bit = cfg.ten_bit,
            ?tuning,
            "video encoder open"
        );
        Ok(Self {
            name,
            encoder,
            converter,
            has_picture: false,
            idr_requested: false,
            packet: ffmpeg::Packet::empty(),
            pts: 0,
            cfg: *cfg,
            tuning: *tuning,
        })
    }

    /// Replaces the encoder with a new one, whose first frame is a key frame: how an
    /// encoder that cannot force key frames honours an IDR request.
    fn restart(&mut self) -> Result<()> {
        let t0 = Instant::now();
        let (encoder, ..) = open_encoder(self.name, &self.cfg, &self.tuning)?;
        let mut old = std::mem::replace(&mut self.encoder, encoder);
        finish(&mut old, &mut self.packet);
        self.pts = 0;
        tracing::info!(
            encoder = self.name,
            ms = t0.elapsed().as_secs_f64() * 1e3,
            "restarted the encoder for a key frame (it cannot force one)"
        );
        Ok(())
    }
}

impl Encode for FfmpegEncoder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn convert(&mut self, frame: &Frame<'_>) -> Result<u64> {
        let t0 = Instant::now();
        self.converter
            .convert(frame)
            .context("converting the captured picture to YUV 4:2:0")?;
        self.has_picture = true;
        Ok(t0.elapsed().as_micros() as u64)
    }

    fn has_picture(&self) -> bool {
        self.has_picture
    }

    fn encode_picture(
        &mut self,
        force_idr: bool,
        convert_us: u64,
        out: &mut EncodedFrame,
    ) -> Result<bool> {
        if !self.has_picture {
            bail!("no picture to encode yet");
        }
        let t1 = Instant::now();
        let mut force_idr = force_idr || std::mem::take(&mut self.idr_requested);
        if force_idr && self.pts > 0 && !forces_key_frames(self.name) {
            self.restart()?;
            force_idr = false;
        }
        let got = send_picture(
            &mut self.encoder,
            &mut self.packet,
            &mut self.converter.picture,
            &mut self.pts,
            force_idr,
            out,
        )?;
        out.convert_us = convert_us;
        out.encode_us = t1.elapsed().as_micros() as u64;
        Ok(got)
    }

    fn set_bitrate(&mut self, bitrate_kbps: u32) -> Result<()> {
        // FFmpeg's libx264 wrapper compares these fields with its parameters before each
        // frame and calls x264_encoder_reconfig; NVENC's does the same when the driver
        // reports dynamic bitrate support. Other wrappers read them only when opened.
        if !(self.name == "libx264" || self.name.ends_with("_nvenc")) {
            bail!("{} cannot change its bitrate without reopening", self.name);
        }
        set_rates(&mut self.encoder, bitrate_kbps, self.cfg.fps);
        self.cfg.bitrate_kbps = bitrate_kbps;
        tracing::info!(encoder = self.name, kbps = bitrate_kbps, "bitrate changed");
        Ok(())
    }

    fn request_idr(&mut self) {
        self.idr_requested = true;
    }
}

impl Drop for FfmpegEncoder {
    fn drop(&mut self) {
        finish(&mut self.encoder, &mut self.packet);
    }
}
