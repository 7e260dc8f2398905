//! The reference path of the pipeline bench: what the host did before, and about
//! what Sunshine does.

use anyhow::{Context, Result, bail};
use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;
use punktfunk_host::encode::video::VideoEncoderConfig;
use punktfunk_host::source::CapturedFrame;

/// The reference path: swscale (default flags, one thread) and libx264 with FFmpeg's
/// default threading.
pub struct Reference {
    /// swscale, BGRx to YUV420P (the conversion table drives it alone too).
    pub scaler: ffmpeg::software::scaling::Context,
    /// The converted picture.
    pub picture: ffmpeg::frame::Video,
    encoder: ffmpeg::encoder::video::Encoder,
    packet: ffmpeg::Packet,
    /// The last frame's bitstream.
    pub out: Vec<u8>,
    pts: i64,
}

impl Reference {
    pub fn open(cfg: &VideoEncoderConfig) -> Result<Self> {
        let (w, h) = (cfg.width, cfg.height);
        let scaler = ffmpeg::software::scaling::Context::get(
            Pixel::BGRZ,
            w,
            h,
            Pixel::YUV420P,
            w,
            h,
            ffmpeg::software::scaling::Flags::BICUBIC,
        )?;
        let codec = ffmpeg::encoder::find_by_name("libx264").context("no libx264")?;
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()?;
        enc.set_width(w);
        enc.set_height(h);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base(ffmpeg::Rational::new(1, cfg.fps as i32));
        enc.set_frame_rate(Some(ffmpeg::Rational::new(cfg.fps as i32, 1)));
        let bps = u64::from(cfg.bitrate_kbps) * 1000;
        enc.set_bit_rate(bps as usize);
        enc.set_max_bit_rate(bps as usize);
        enc.set_max_b_frames(0);
        enc.set_gop(i32::MAX as u32);
        // SAFETY: a plain field of the context before it is opened.
        unsafe { (*enc.as_mut_ptr()).rc_buffer_size = (bps / u64::from(cfg.fps)) as i32 };
        let mut o = ffmpeg::Dictionary::new();
        o.set("preset", "superfast");
        o.set("tune", "zerolatency");
        o.set("forced-idr", "1");
        let encoder = enc.open_with(o)?;
        Ok(Self {
            scaler,
            picture: ffmpeg::frame::Video::new(Pixel::YUV420P, w, h),
            encoder,
            packet: ffmpeg::Packet::empty(),
            out: Vec::new(),
            pts: 0,
        })
    }

    /// Converts and encodes `frame`; returns the encoded size.
    pub fn process(&mut self, frame: &CapturedFrame, idr: bool) -> Result<usize> {
        let src: [*const u8; 4] = [frame.data.as_ptr(), ptr0(), ptr0(), ptr0()];
        let stride = [frame.stride as i32, 0, 0, 0];
        // SAFETY: the source is a whole BGRx picture of the scaler's size; the
        // destination is our own picture of that size.
        let rows = unsafe {
            let dst = self.picture.as_mut_ptr();
            ffmpeg::ffi::sws_scale(
                self.scaler.as_mut_ptr(),
                src.as_ptr(),
                stride.as_ptr(),
                0,
                frame.height as i32,
                (*dst).data.as_ptr(),
                (*dst).linesize.as_ptr(),
            )
        };
        if rows <= 0 {
            bail!("swscale failed");
        }
        self.picture.set_pts(Some(self.pts));
        self.pts += 1;
        self.picture.set_kind(if idr {
            ffmpeg::picture::Type::I
        } else {
            ffmpeg::picture::Type::None
        });
        self.encoder.send_frame(&self.picture)?;
        self.out.clear();
        while self.encoder.receive_packet(&mut self.packet).is_ok() {
            self.out
                .extend_from_slice(self.packet.data().unwrap_or_default());
        }
        Ok(self.out.len())
    }
}

pub fn ptr0() -> *const u8 {
    std::ptr::null()
}
