//! VAAPI (AMD and Intel GPUs) through FFmpeg's `*_vaapi` encoders and hwcontext.
//!
//! - **DMA-BUF frames** are described as a DRM PRIME frame ([`drm_descriptor`]: one
//!   object per distinct fd, the modifier passed through) and mapped onto a VAAPI
//!   surface with `av_hwframe_map`: the GPU reads the compositor's buffer, no CPU copy.
//!   VAAPI encoders take NV12 surfaces, so NV12 buffers map straight in; RGB buffers
//!   map onto an RGB surface that the video processor converts to NV12 on the GPU
//!   ([`super::vpp`]). Where VPP does not open (a driver without it), a linear RGB
//!   buffer is read by the CPU instead, with the reason logged once.
//! - **CPU frames** are converted to NV12 by [`super::convert::Converter`] and uploaded
//!   with `av_hwframe_transfer_data` into a surface from the encoder's pool.
//!
//! Without a render node or a VAAPI driver, [`VaapiEncoder::open`] fails with the
//! reason (`doctor` and the start-up probe show it) and the software encoder is used.

use std::ptr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ffmpeg::ffi;
use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;

use super::convert::{ConvertPath, Converter};
use super::cuda::HwRef as BufferRef;
use super::prime::map_onto;
use super::video::{Encode, EncodedFrame, VideoEncoderConfig, drain_packets};
use super::vpp::{Vpp, VppOutput};
use crate::capture::{DmaBufFrame, Frame, PixelFormat, Pixels};

/// The render node VAAPI opens: `PF_VAAPI_DEVICE`, else the first `renderD*` node.
pub fn render_node() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("PF_VAAPI_DEVICE") {
        return Some(p.into());
    }
    let mut nodes: Vec<_> = std::fs::read_dir("/dev/dri")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("renderD"))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().next()
}

fn check(ret: libc::c_int, what: &str) -> Result<()> {
    if ret < 0 {
        bail!("{what}: {}", ffmpeg::Error::from(ret));
    }
    Ok(())
}

/// An open VAAPI encoder.
pub struct VaapiEncoder {
    name: &'static str,
    device: BufferRef,
    frames: BufferRef,
    encoder: ffmpeg::encoder::video::Encoder,
    converter: Converter,
    /// The surface the next encode sends (uploaded or mapped).
    surface: ffmpeg::frame::Video,
    has_picture: bool,
    idr_requested: bool,
    packet: ffmpeg::Packet,
    pts: i64,
    /// The video processor for RGB DMA-BUFs, once one came; `Err` holds why it does
    /// not open here (logged once, the CPU converts instead).
    vpp: Option<std::result::Result<Vpp, String>>,
    /// The mapped RGB surface VPP reads.
    rgb: ffmpeg::frame::Video,
    out: VppOutput,
    /// A 10-bit stream: P010 surfaces (see [`dmabuf_route`]).
    ten_bit: bool,
}

impl std::fmt::Debug for VaapiEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaapiEncoder")
            .field("encoder", &self.name)
            .finish_non_exhaustive()
    }
}

/// The encoder's surface format: NV12, or P010 for a 10-bit stream (FFmpeg's VAAPI
/// encoders pick HEVC Main10 / AV1 10-bit from a P010 frames context).
pub fn surface_format(ten_bit: bool) -> ffi::AVPixelFormat {
    if ten_bit {
        ffi::AVPixelFormat::AV_PIX_FMT_P010LE
    } else {
        ffi::AVPixelFormat::AV_PIX_FMT_NV12
    }
}

/// How a DMA-BUF of `format` reaches an encoder surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Mapped onto an encoder surface as is (NV12 into an 8-bit stream).
    Surface,
    /// Mapped as RGB and converted by the video processor (to NV12 or P010).
    Vpp,
    /// Read and converted by the CPU, then uploaded: an 8-bit NV12 buffer cannot be a
    /// 10-bit stream's P010 surface.
    Cpu,
}

/// The route of a DMA-BUF of `format` into an (8- or 10-bit) stream.
pub fn dmabuf_route(format: PixelFormat, ten_bit: bool) -> Route {
    match (format, ten_bit) {
        (PixelFormat::Nv12, false) => Route::Surface,
        (PixelFormat::Nv12, true) => Route::Cpu,
        _ => Route::Vpp,
    }
}

impl VaapiEncoder {
    /// Opens `name` (`h264_vaapi`, `hevc_vaapi`, `av1_vaapi`) on the render node.
    pub fn open(name: &'static str, cfg: &VideoEncoderConfig) -> Result<Self> {
        let node = render_node().context("no GPU render node (/dev/dri/renderD*)")?;
        let path = std::ffi::CString::new(node.to_string_lossy().as_bytes())?;
        let mut device = BufferRef(ptr::null_mut());
        // SAFETY: FFmpeg writes a new device reference into `device` or fails.
        check(
            unsafe {
                ffi::av_hwdevice_ctx_create(
                    &mut device.0,
                    ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_VAAPI,
                    path.as_ptr(),
                    ptr::null_mut(),
                    0,
                )
            },
            &format!("opening VAAPI on {}", node.display()),
        )?;
        // SAFETY: allocating and initialising a frames context on the device above;
        // the fields are plain values read by av_hwframe_ctx_init.
        let frames = unsafe {
            let frames = BufferRef(ffi::av_hwframe_ctx_alloc(device.0));
            if frames.0.is_null() {
                bail!("allocating VAAPI frames");
            }
            let fc = (*frames.0).data.cast::<ffi::AVHWFramesContext>();
            (*fc).format = ffi::AVPixelFormat::AV_PIX_FMT_VAAPI;
            (*fc).sw_format = surface_format(cfg.ten_bit);
            (*fc).width = cfg.width as libc::c_int;
            (*fc).height = cfg.height as libc::c_int;
            (*fc).initial_pool_size = 4;
            check(
                ffi::av_hwframe_ctx_init(frames.0),
                "creating VAAPI surfaces",
            )?;
            frames
        };
        let codec = ffmpeg::encoder::find_by_name(name)
            .with_context(|| format!("{name} is not in this FFmpeg"))?;
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()?;
        enc.set_width(cfg.width);
        enc.set_height(cfg.height);
        enc.set_format(Pixel::VAAPI);
        enc.set_time_base(ffmpeg::Rational::new(1, cfg.fps as i32));
        enc.set_frame_rate(Some(ffmpeg::Rational::new(cfg.fps as i32, 1)));
        let bps = u64::from(cfg.bitrate_kbps) * 1000;
        enc.set_bit_rate(bps as usize);
        enc.set_max_bit_rate(bps as usize);
        enc.set_max_b_frames(0);
        enc.set_gop(i32::MAX as u32);
        // SAFETY: the context is not yet open; it takes its own reference to the frames.
        unsafe {
            let ctx = enc.as_mut_ptr();
            (*ctx).hw_frames_ctx = ffi::av_buffer_ref(frames.0);
            (*ctx).rc_buffer_size = (bps / u64::from(cfg.fps.max(1))) as libc::c_int;
        }
        let mut opts = ffmpeg::Dictionary::new();
        opts.set("rc_mode", "CBR");
        let encoder = enc
            .open_with(opts)
            .with_context(|| format!("opening {name} at {}x{}", cfg.width, cfg.height))?;
        let (_, _, _, sws_space) = cfg.colour();
        let converter = Converter::new(
            cfg.width,
            cfg.height,
            sws_space,
            cfg.full_range(),
            if cfg.ten_bit {
                Pixel::P010LE
            } else {
                Pixel::NV12
            },
            ConvertPath::default(),
        );
        tracing::info!(encoder = name, node = %node.display(), "VAAPI encoder open");
        Ok(Self {
            name,
            device,
            frames,
            encoder,
            converter,
            surface: ffmpeg::frame::Video::empty(),
            has_picture: false,
            idr_requested: false,
            packet: ffmpeg::Packet::empty(),
            pts: 0,
            vpp: None,
            rgb: ffmpeg::frame::Video::empty(),
            out: VppOutput {
                width: cfg.width,
                height: cfg.height,
                fps: cfg.fps,
                bt709: sws_space == ffi::SWS_CS_ITU709,
                full_range: cfg.full_range(),
                ten_bit: cfg.ten_bit,
            },
            ten_bit: cfg.ten_bit,
        })
    }

    /// Converts an RGB DMA-BUF to an NV12 surface with the video processor; `Ok(false)`
    /// when VPP is unavailable here (the caller converts on the CPU).
    fn through_vpp(
        &mut self,
        frame: &Frame<'_>,
        dmabuf: &DmaBufFrame<'_>,
        format: PixelFormat,
    ) -> Result<bool> {
        let key = (format, frame.width, frame.height);
        if !matches!(&self.vpp, Some(Ok(v)) if v.key == key) {
            let opened = Vpp::open(&self.device, format, frame.width, frame.height, self.out);
            if let Err(e) = &opened {
                tracing::warn!(
                    encoder = self.name,
                    "RGB DMA-BUFs are converted by the CPU: VAAPI's video processor does not open ({e:#})"
                );
            }
            self.vpp = Some(opened.map_err(|e| format!("{e:#}")));
        }
        let Some(Ok(vpp)) = &self.vpp else {
            return Ok(false);
        };
        let (frames, sw) = (
            vpp.rgb_frames(),
            super::vpp::rgb_sw_format(format).context("not an RGB format")?,
        );
        map_onto(self.device.0, frame, dmabuf, frames, sw, &mut self.rgb)?;
        let Some(Ok(vpp)) = &mut self.vpp else {
            unreachable!("checked above")
        };
        // SAFETY: the surface frame is ours; the filter's output replaces it.
        unsafe { ffi::av_frame_unref(self.surface.as_mut_ptr()) };
        vpp.process(&self.rgb, &mut self.surface)?;
        Ok(true)
    }

    /// Uploads the converter's NV12 picture into a fresh surface.
    fn upload(&mut self) -> Result<()> {
        // SAFETY: the surface frame is ours; FFmpeg takes a surface from the pool and
        // copies the system-memory picture into it.
        unsafe {
            let s = self.surface.as_mut_ptr();
            ffi::av_frame_unref(s);
            check(
                ffi::av_hwframe_get_buffer(self.frames.0, s, 0),
                "taking a VAAPI surface",
            )?;
            check(
                ffi::av_hwframe_transfer_data(s, self.converter.picture.as_ptr(), 0),
                "uploading to the VAAPI surface",
            )
        }
    }
}

impl Encode for VaapiEncoder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn convert(&mut self, frame: &Frame<'_>) -> Result<u64> {
        let t0 = Instant::now();
        let format = match &frame.pixels {
            Pixels::DmaBuf(d) => PixelFormat::from_drm_fourcc(d.fourcc),
            Pixels::Cpu(_) => None,
        };
        match (&frame.pixels, format) {
            (Pixels::DmaBuf(d), Some(f)) if dmabuf_route(f, self.ten_bit) == Route::Surface => {
                map_onto(
                    self.device.0,
                    frame,
                    d,
                    self.frames.0,
                    surface_format(false),
                    &mut self.surface,
                )?;
            }
            (Pixels::DmaBuf(d), Some(f))
                if dmabuf_route(f, self.ten_bit) == Route::Vpp
                    && self.through_vpp(frame, d, f)? => {}
            _ => {
                self.converter.convert(frame)?;
                self.upload()?;
            }
        }
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
        let t1 = Instant::now();
        let idr = force_idr || std::mem::take(&mut self.idr_requested);
        self.surface.set_pts(Some(self.pts));
        self.pts += 1;
        self.surface.set_kind(if idr {
            ffmpeg::picture::Type::I
        } else {
            ffmpeg::picture::Type::None
        });
        self.encoder.send_frame(&self.surface)?;
        let got = drain_packets(&mut self.encoder, &mut self.packet, out)?;
        out.convert_us = convert_us;
        out.encode_us = t1.elapsed().as_micros() as u64;
        Ok(got)
    }

    fn set_bitrate(&mut self, _bitrate_kbps: u32) -> Result<()> {
        bail!(
            "{} cannot change its bitrate without reopening (FFmpeg 5's VAAPI encoders read it only when opened)",
            self.name
        )
    }

    fn request_idr(&mut self) {
        self.idr_requested = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_bit_streams_take_p010_surfaces_and_nv12_buffers_go_through_the_cpu() {
        use ffi::AVPixelFormat as F;
        assert_eq!(surface_format(false), F::AV_PIX_FMT_NV12);
        assert_eq!(surface_format(true), F::AV_PIX_FMT_P010LE);
        assert_eq!(dmabuf_route(PixelFormat::Nv12, false), Route::Surface);
        assert_eq!(dmabuf_route(PixelFormat::Nv12, true), Route::Cpu);
        for f in [PixelFormat::Bgrx, PixelFormat::Bgra, PixelFormat::Rgbx] {
            assert_eq!(dmabuf_route(f, false), Route::Vpp);
            assert_eq!(dmabuf_route(f, true), Route::Vpp);
        }
    }

    #[test]
    fn without_a_device_opening_fails_with_a_reason() {
        ffmpeg::init().unwrap();
        let cfg = VideoEncoderConfig {
            codec: super::super::probe::Codec::H264,
            width: 640,
            height: 360,
            fps: 60,
            bitrate_kbps: 4000,
            csc_mode: 0,
            ten_bit: false,
        };
        if render_node().is_none() {
            let e = VaapiEncoder::open("h264_vaapi", &cfg).unwrap_err();
            assert!(format!("{e:#}").contains("render node"), "{e:#}");
        }
    }
}
