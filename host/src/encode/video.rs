//! Video encoding through FFmpeg: captured frames in (converted by [`Converter`]
//! straight from the capture's memory), Annex B / OBU access units out.
//!
//! Settings follow what low-latency streaming needs (and what Sunshine uses):
//! libx264 superfast/ultrafast with `zerolatency` and no B-frames, parameter sets
//! repeated on every IDR, CBR at the requested bitrate with a one-frame VBV, and IDR on
//! demand within one frame (`forced-idr`). Hardware encoders take the same knobs where
//! they exist.

use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;

use super::convert::Converter;
use super::probe::{Codec, Encoders};
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
}

impl VideoEncoderConfig {
    fn colour(
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
                TransferCharacteristic::BT709,
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

    fn full_range(&self) -> bool {
        self.csc_mode & 1 == 1
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

/// An open encoder and its colour converter.
pub struct VideoEncoder {
    name: &'static str,
    encoder: ffmpeg::encoder::video::Encoder,
    converter: Converter,
    /// Whether the converter holds a picture (what a repeat re-encodes).
    has_picture: bool,
    packet: ffmpeg::Packet,
    pts: i64,
    fps: u32,
}

impl std::fmt::Debug for VideoEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoEncoder")
            .field("encoder", &self.name)
            .finish_non_exhaustive()
    }
}

/// The VBV buffer in bits: one frame's worth, so the encoder may not exceed the link
/// for even a frame. This also caps an IDR near one frame's share, so the recovery
/// frame is not the one most likely to be lost again.
fn vbv_bits(kbps: u32, fps: u32) -> i32 {
    i32::try_from(u64::from((kbps / fps.max(1)).max(1)) * 1000).unwrap_or(i32::MAX)
}

fn options(name: &str, cfg: &VideoEncoderConfig) -> ffmpeg::Dictionary<'static> {
    let mut o = ffmpeg::Dictionary::new();
    let kbps = cfg.bitrate_kbps;
    let vbv = (kbps / cfg.fps.max(1)).max(1);
    match name {
        "libx264" => {
            // superfast costs ~2x ultrafast but halves the bitrate needed for the same
            // picture; below 1080p60 it fits a core comfortably.
            let preset = if u64::from(cfg.width) * u64::from(cfg.height) * u64::from(cfg.fps)
                > 1920 * 1080 * 30
            {
                "ultrafast"
            } else {
                "superfast"
            };
            o.set("preset", preset);
            o.set("tune", "zerolatency");
            o.set("forced-idr", "1");
            // Hard CBR through `filler`, not `nal-hrd=cbr`: x264 refuses to change
            // the VBV while NAL HRD is on ("VBV parameters cannot be changed when NAL
            // HRD is in use"), and adaptive FEC changes the bitrate mid-stream.
            o.set(
                "x264-params",
                &format!("repeat-headers=1:bframes=0:filler=1:vbv-maxrate={kbps}:vbv-bufsize={vbv}:keyint=infinite:scenecut=0"),
            );
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
        n if n.ends_with("_vaapi") => {
            o.set("rc_mode", "CBR");
        }
        _ => {}
    }
    o
}

impl VideoEncoder {
    /// Opens the encoder chosen at start-up for `cfg.codec`.
    pub fn open(cfg: &VideoEncoderConfig, encoders: &Encoders) -> Result<Self> {
        let chosen = encoders
            .chosen
            .iter()
            .find(|a| a.codec == cfg.codec)
            .ok_or_else(|| anyhow!("no encoder opens for {:?} on this machine", cfg.codec))?;
        Self::open_named(chosen.name, cfg)
    }

    /// Opens the FFmpeg encoder `name`.
    pub fn open_named(name: &'static str, cfg: &VideoEncoderConfig) -> Result<Self> {
        if name.ends_with("_vaapi") {
            bail!("VAAPI encoding needs a hardware frame pool; not wired yet");
        }
        let codec = ffmpeg::encoder::find_by_name(name)
            .ok_or_else(|| anyhow!("{name} is not in this FFmpeg"))?;
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .context("allocating the encoder")?;
        enc.set_width(cfg.width);
        enc.set_height(cfg.height);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base(ffmpeg::Rational::new(1, cfg.fps as i32));
        enc.set_frame_rate(Some(ffmpeg::Rational::new(cfg.fps as i32, 1)));
        let bps = usize::try_from(u64::from(cfg.bitrate_kbps) * 1000).unwrap_or(usize::MAX);
        enc.set_bit_rate(bps);
        // SVT-AV1's CBR refuses a maximum equal to the target ("Max Bitrate must be
        // greater than Target Bitrate") and needs none; the others cap at the target.
        if name != "libsvtav1" {
            enc.set_max_bit_rate(bps);
        }
        // SAFETY: the context is allocated and not yet open; a plain field. The same
        // VBV as the x264/x265 params, so a later set_bitrate starts from agreement.
        unsafe { (*enc.as_mut_ptr()).rc_buffer_size = vbv_bits(cfg.bitrate_kbps, cfg.fps) };
        enc.set_max_b_frames(0);
        // IDRs come on request (client start, loss); no periodic ones.
        enc.set_gop(i32::MAX as u32);
        // Convert and tag exactly as the client asked (`encoderCscMode`): its decoder
        // converts back with the same matrix and range.
        let (space, primaries, transfer, sws_space) = cfg.colour();
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
        }
        let encoder = enc.open_with(options(name, cfg)).with_context(|| {
            format!("opening {name} at {}x{}@{}", cfg.width, cfg.height, cfg.fps)
        })?;
        let converter = Converter::new(cfg.width, cfg.height, sws_space, cfg.full_range());
        tracing::info!(
            encoder = name,
            width = cfg.width,
            height = cfg.height,
            fps = cfg.fps,
            kbps = cfg.bitrate_kbps,
            "video encoder open"
        );
        Ok(Self {
            name,
            encoder,
            converter,
            has_picture: false,
            packet: ffmpeg::Packet::empty(),
            pts: 0,
            fps: cfg.fps,
        })
    }

    /// FFmpeg's name of the encoder in use.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Changes the target bitrate without reopening the encoder: the next frame is
    /// encoded at `bitrate_kbps` (the adaptive FEC gives video what parity leaves of
    /// the client's bitrate). libx264 and libx265 pick the new rate and VBV up on
    /// their next frame (FFmpeg reconfigures them when these fields change); for the
    /// others it is best effort.
    pub fn set_bitrate(&mut self, bitrate_kbps: u32) -> Result<()> {
        if bitrate_kbps == 0 {
            bail!("a bitrate of 0 kbit/s");
        }
        let bps = i64::from(bitrate_kbps) * 1000;
        // SAFETY: the context is open and owned by this encoder; these are plain
        // integer fields FFmpeg's libx264 wrapper reads before each frame.
        unsafe {
            let ctx = self.encoder.as_mut_ptr();
            (*ctx).bit_rate = bps;
            if self.name != "libsvtav1" {
                (*ctx).rc_max_rate = bps;
            }
            (*ctx).rc_buffer_size = vbv_bits(bitrate_kbps, self.fps);
        }
        Ok(())
    }

    /// Converts `frame` (from its own layout and size to the encoder's) and encodes
    /// it; `force_idr` makes it an IDR frame. Returns `false` when the encoder produced
    /// nothing for it (it never should with these settings). A frame whose planes do
    /// not hold its picture is an error and leaves the last picture in place.
    pub fn encode(
        &mut self,
        frame: &Frame<'_>,
        force_idr: bool,
        out: &mut EncodedFrame,
    ) -> Result<bool> {
        let convert_us = self.convert(frame)?;
        self.encode_picture(force_idr, convert_us, out)
    }

    /// Converts `frame` into the picture the next [`VideoEncoder::encode_picture`]
    /// encodes; returns the microseconds it took. An error (a frame whose planes do
    /// not hold its picture) leaves the previous picture in place.
    pub fn convert(&mut self, frame: &Frame<'_>) -> Result<u64> {
        let t0 = Instant::now();
        self.converter
            .convert(frame)
            .context("converting the captured picture to YUV 4:2:0")?;
        self.has_picture = true;
        Ok(t0.elapsed().as_micros() as u64)
    }

    /// Whether [`VideoEncoder::repeat`] has a picture to encode.
    pub fn has_picture(&self) -> bool {
        self.has_picture
    }

    /// Encodes the last converted picture again (a still screen), with no conversion.
    pub fn repeat(&mut self, force_idr: bool, out: &mut EncodedFrame) -> Result<bool> {
        if !self.has_picture {
            bail!("no picture to repeat yet");
        }
        self.encode_picture(force_idr, 0, out)
    }

    /// Encodes the converted picture (`convert_us` is reported with it).
    pub fn encode_picture(
        &mut self,
        force_idr: bool,
        convert_us: u64,
        out: &mut EncodedFrame,
    ) -> Result<bool> {
        let t1 = Instant::now();
        let picture = &mut self.converter.picture;
        picture.set_pts(Some(self.pts));
        self.pts += 1;
        picture.set_kind(if force_idr {
            ffmpeg::picture::Type::I
        } else {
            ffmpeg::picture::Type::None
        });
        self.encoder
            .send_frame(&self.converter.picture)
            .context("sending a frame to the encoder")?;
        out.data.clear();
        out.keyframe = false;
        let mut got = false;
        loop {
            match self.encoder.receive_packet(&mut self.packet) {
                Ok(()) => {
                    if let Some(d) = self.packet.data() {
                        out.data.extend_from_slice(d);
                    }
                    out.keyframe |= self.packet.is_key();
                    got = true;
                }
                Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => break,
                Err(ffmpeg::Error::Eof) => break,
                Err(e) => return Err(e).context("receiving a packet from the encoder"),
            }
        }
        out.convert_us = convert_us;
        out.encode_us = t1.elapsed().as_micros() as u64;
        Ok(got)
    }
}

impl Drop for VideoEncoder {
    fn drop(&mut self) {
        // End the stream before the encoder is freed (SVT-AV1 hangs otherwise).
        let _ = self.encoder.send_eof();
        while self.encoder.receive_packet(&mut self.packet).is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x264_changes_bitrate_without_reopening() {
        ffmpeg::init().unwrap();
        let cfg = VideoEncoderConfig {
            codec: Codec::H264,
            width: 320,
            height: 240,
            fps: 60,
            bitrate_kbps: 8000,
            csc_mode: 0,
        };
        let mut enc = VideoEncoder::open_named("libx264", &cfg).unwrap();
        // Noise: a picture no bitrate is enough for, so the rate control spends
        // what it is given.
        let mut frame = crate::source::CapturedFrame::new(320, 240);
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut out = EncodedFrame::default();
        let mut run = |enc: &mut VideoEncoder, from: u64| -> usize {
            let mut bytes = 0;
            for n in from..from + 60 {
                for b in frame.data.iter_mut() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    *b = seed as u8;
                }
                enc.encode(&frame.as_frame(), n == 1, &mut out).unwrap();
                // The first frames after a change settle the rate control.
                if n >= from + 20 {
                    bytes += out.data.len();
                }
            }
            bytes
        };
        let high = run(&mut enc, 1);
        enc.set_bitrate(1000).unwrap();
        let low = run(&mut enc, 61);
        assert!(
            low * 3 < high,
            "8 Mbit/s: {high} bytes in 40 frames, 1 Mbit/s: {low}"
        );
        // One frame's worth of 1 Mbit/s is ~2 kB: the VBV caps frames near it.
        assert!(low / 40 < 4_000, "{} bytes a frame at 1 Mbit/s", low / 40);
        assert!(enc.set_bitrate(0).is_err());
    }

    use crate::source::VideoSource;
    use crate::source::test_pattern::TestPattern;

    /// The recovery frame is capped: the one-frame VBV keeps an IDR near one frame's
    /// budget, so under loss it is no likelier to be lost than any other frame.
    #[test]
    fn x264_idr_frames_stay_near_one_frames_budget() {
        ffmpeg::init().unwrap();
        let cfg = VideoEncoderConfig {
            codec: Codec::H264,
            width: 1280,
            height: 720,
            fps: 60,
            bitrate_kbps: 8000,
            csc_mode: 0,
        };
        let mut enc = VideoEncoder::open_named("libx264", &cfg).unwrap();
        let mut src = TestPattern::new(1280, 720);
        let mut frame = crate::source::CapturedFrame::new(1280, 720);
        let mut out = EncodedFrame::default();
        let (mut idr, mut p) = (Vec::new(), Vec::new());
        for n in 1..=90u64 {
            src.capture(n, &mut frame).unwrap();
            enc.encode(&frame.as_frame(), n % 30 == 1, &mut out)
                .unwrap();
            if out.keyframe { &mut idr } else { &mut p }.push(out.data.len());
        }
        let budget = 8000 * 1000 / 8 / 60;
        let worst_idr = *idr.iter().max().unwrap();
        let mean_p = p.iter().sum::<usize>() / p.len();
        println!("IDR frames {idr:?} bytes, P-frames {mean_p} bytes on average, budget {budget}");
        assert_eq!(idr.len(), 3);
        assert!(
            worst_idr <= budget * 3 / 2,
            "IDR of {worst_idr} bytes, budget {budget}"
        );
    }

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
    }
}
