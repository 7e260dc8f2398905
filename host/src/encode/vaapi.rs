//! VAAPI (AMD and Intel GPUs) through FFmpeg's `*_vaapi` encoders and hwcontext.
//!
//! - **DMA-BUF frames** are described as a DRM PRIME frame ([`drm_descriptor`]: one
//!   object per distinct fd, the modifier passed through) and mapped onto a VAAPI
//!   surface with `av_hwframe_map`: the GPU reads the compositor's buffer, no CPU copy.
//!   VAAPI encoders take NV12 surfaces, so NV12 buffers map straight in; RGB buffers
//!   would need the video processor (VPP) for the colour conversion, which is not
//!   wired: a linear RGB buffer is read by the CPU instead, a tiled one refused with
//!   the reason.
//! - **CPU frames** are converted to NV12 by [`super::convert::Converter`] and uploaded
//!   with `av_hwframe_transfer_data` into a surface from the encoder's pool.
//!
//! Without a render node or a VAAPI driver, [`VaapiEncoder::open`] fails with the
//! reason (`doctor` and the start-up probe show it) and the software encoder is used.

use std::os::fd::AsRawFd;
use std::ptr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ffmpeg::ffi;
use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;

use super::convert::{ConvertPath, Converter};
use super::video::{Encode, EncodedFrame, VideoEncoderConfig};
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

/// The DRM PRIME description of `dmabuf` for FFmpeg: distinct fds become objects
/// (sized by `size_of`), planes point at their object, and the modifier rides on every
/// object. Only NV12 is mapped onto an encoder surface directly.
pub fn drm_descriptor(
    dmabuf: &DmaBufFrame<'_>,
    size_of: impl Fn(libc::c_int) -> Result<usize>,
) -> Result<ffi::AVDRMFrameDescriptor> {
    match PixelFormat::from_drm_fourcc(dmabuf.fourcc) {
        Some(PixelFormat::Nv12) => {}
        Some(f) => bail!(
            "a {f:?} DMA-BUF needs VAAPI's video processor for the colour conversion, which is not wired"
        ),
        None => bail!("DMA-BUF fourcc {:#010x} is not mapped", dmabuf.fourcc),
    }
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut desc: ffi::AVDRMFrameDescriptor = unsafe { std::mem::zeroed() };
    desc.nb_layers = 1;
    desc.layers[0].format = dmabuf.fourcc;
    let mut nb_planes = 0;
    for plane in dmabuf.planes.iter().flatten() {
        let fd = plane.fd.as_raw_fd();
        let n = desc.nb_objects as usize;
        let object = match desc.objects[..n].iter().position(|o| o.fd == fd) {
            Some(i) => i,
            None => {
                desc.objects[n] = ffi::AVDRMObjectDescriptor {
                    fd,
                    size: size_of(fd)?,
                    format_modifier: dmabuf.modifier,
                };
                desc.nb_objects += 1;
                n
            }
        };
        desc.layers[0].planes[nb_planes] = ffi::AVDRMPlaneDescriptor {
            object_index: object as libc::c_int,
            offset: plane.offset as isize,
            pitch: plane.stride as isize,
        };
        nb_planes += 1;
    }
    if nb_planes != 2 {
        bail!("an NV12 DMA-BUF has {nb_planes} planes, not 2");
    }
    desc.layers[0].nb_planes = 2;
    Ok(desc)
}

/// A DMA-BUF's size: `lseek` to its end (what the kernel reports for dma-buf fds).
fn dmabuf_size(fd: libc::c_int) -> Result<usize> {
    // SAFETY: lseek on a descriptor the frame borrows; the offset is restored below.
    let end = unsafe { libc::lseek(fd, 0, libc::SEEK_END) };
    // SAFETY: as above.
    unsafe { libc::lseek(fd, 0, libc::SEEK_SET) };
    if end <= 0 {
        bail!("the DMA-BUF reports no size");
    }
    Ok(end as usize)
}

fn check(ret: libc::c_int, what: &str) -> Result<()> {
    if ret < 0 {
        bail!("{what}: {}", ffmpeg::Error::from(ret));
    }
    Ok(())
}

/// An owned `AVBufferRef`.
struct BufferRef(*mut ffi::AVBufferRef);

impl Drop for BufferRef {
    fn drop(&mut self) {
        // SAFETY: we own this reference.
        unsafe { ffi::av_buffer_unref(&mut self.0) };
    }
}

// SAFETY: FFmpeg's buffer references are reference-counted atomically; this one is
// used by the encoder's thread only.
unsafe impl Send for BufferRef {}

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
}

impl std::fmt::Debug for VaapiEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaapiEncoder")
            .field("encoder", &self.name)
            .finish_non_exhaustive()
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
            (*fc).sw_format = ffi::AVPixelFormat::AV_PIX_FMT_NV12;
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
            Pixel::NV12,
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
        })
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

    /// Maps an NV12 DMA-BUF onto a VAAPI surface (no copy).
    fn map(&mut self, frame: &Frame<'_>, dmabuf: &DmaBufFrame<'_>) -> Result<()> {
        let desc = Box::new(drm_descriptor(dmabuf, dmabuf_size)?);
        // SAFETY: `drm` is a DRM PRIME frame over `desc` (owned by the buffer that frees
        // it); FFmpeg imports the fds into a VA surface that the mapped frame
        // references, and the capture keeps the fds open while the frame is borrowed.
        unsafe {
            let mut drm = ffmpeg::frame::Video::empty();
            let d = drm.as_mut_ptr();
            (*d).format = ffi::AVPixelFormat::AV_PIX_FMT_DRM_PRIME as libc::c_int;
            (*d).width = frame.width as libc::c_int;
            (*d).height = frame.height as libc::c_int;
            let raw = Box::into_raw(desc);
            (*d).buf[0] = ffi::av_buffer_create(
                raw.cast(),
                std::mem::size_of::<ffi::AVDRMFrameDescriptor>(),
                Some(free_descriptor),
                ptr::null_mut(),
                0,
            );
            if (*d).buf[0].is_null() {
                drop(Box::from_raw(raw));
                bail!("allocating the DRM frame");
            }
            (*d).data[0] = raw.cast();
            let mut drm_device = BufferRef(ptr::null_mut());
            check(
                ffi::av_hwdevice_ctx_create_derived(
                    &mut drm_device.0,
                    ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_DRM,
                    self.device.0,
                    0,
                ),
                "deriving the DRM device",
            )?;
            let drm_frames = BufferRef(ffi::av_hwframe_ctx_alloc(drm_device.0));
            let fc = (*drm_frames.0).data.cast::<ffi::AVHWFramesContext>();
            (*fc).format = ffi::AVPixelFormat::AV_PIX_FMT_DRM_PRIME;
            (*fc).sw_format = ffi::AVPixelFormat::AV_PIX_FMT_NV12;
            (*fc).width = frame.width as libc::c_int;
            (*fc).height = frame.height as libc::c_int;
            check(ffi::av_hwframe_ctx_init(drm_frames.0), "DRM frames")?;
            (*d).hw_frames_ctx = ffi::av_buffer_ref(drm_frames.0);
            let s = self.surface.as_mut_ptr();
            ffi::av_frame_unref(s);
            (*s).format = ffi::AVPixelFormat::AV_PIX_FMT_VAAPI as libc::c_int;
            (*s).hw_frames_ctx = ffi::av_buffer_ref(self.frames.0);
            check(
                ffi::av_hwframe_map(
                    s,
                    d,
                    ffi::AV_HWFRAME_MAP_READ as libc::c_int
                        | ffi::AV_HWFRAME_MAP_DIRECT as libc::c_int,
                ),
                "mapping the DMA-BUF onto a VAAPI surface",
            )
        }
    }
}

unsafe extern "C" fn free_descriptor(_opaque: *mut libc::c_void, data: *mut u8) {
    // SAFETY: `data` is the Box::into_raw of `map`, freed exactly once by FFmpeg.
    drop(unsafe { Box::from_raw(data.cast::<ffi::AVDRMFrameDescriptor>()) });
}

impl Encode for VaapiEncoder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn convert(&mut self, frame: &Frame<'_>) -> Result<u64> {
        let t0 = Instant::now();
        match &frame.pixels {
            Pixels::DmaBuf(d)
                if PixelFormat::from_drm_fourcc(d.fourcc) == Some(PixelFormat::Nv12) =>
            {
                self.map(frame, d)?
            }
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
        out.data.clear();
        out.keyframe = false;
        let mut got = false;
        while self.encoder.receive_packet(&mut self.packet).is_ok() {
            if let Some(d) = self.packet.data() {
                out.data.extend_from_slice(d);
            }
            out.keyframe |= self.packet.is_key();
            got = true;
        }
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
    use std::os::fd::AsFd;

    use super::*;
    use crate::capture::DmaBufPlane;

    #[test]
    fn nv12_planes_on_one_fd_share_an_object_and_keep_the_modifier() {
        let file = tempfile::tempfile().unwrap();
        let other = tempfile::tempfile().unwrap();
        let p = |fd, offset, stride| Some(DmaBufPlane { fd, offset, stride });
        let modifier = 0x0200_0000_0000_0001; // an AMD tiled layout
        let one = DmaBufFrame {
            fourcc: PixelFormat::Nv12.drm_fourcc(),
            modifier,
            planes: [
                p(file.as_fd(), 0, 1280),
                p(file.as_fd(), 1280 * 720, 1280),
                None,
                None,
            ],
        };
        let d = drm_descriptor(&one, |_| Ok(4096)).unwrap();
        assert_eq!((d.nb_objects, d.nb_layers), (1, 1));
        assert_eq!(d.objects[0].format_modifier, modifier);
        assert_eq!(d.layers[0].nb_planes, 2);
        assert_eq!(d.layers[0].planes[1].offset, 1280 * 720);
        assert_eq!(d.layers[0].planes[1].object_index, 0);
        let two = DmaBufFrame {
            planes: [
                p(file.as_fd(), 0, 1280),
                p(other.as_fd(), 0, 1280),
                None,
                None,
            ],
            ..one
        };
        let d = drm_descriptor(&two, |_| Ok(4096)).unwrap();
        assert_eq!(d.nb_objects, 2);
        assert_eq!(d.layers[0].planes[1].object_index, 1);
    }

    #[test]
    fn rgb_and_unknown_buffers_are_refused_with_the_reason() {
        let file = tempfile::tempfile().unwrap();
        let plane = DmaBufPlane {
            fd: file.as_fd(),
            offset: 0,
            stride: 5120,
        };
        let mut d = DmaBufFrame {
            fourcc: PixelFormat::Bgrx.drm_fourcc(),
            modifier: 0,
            planes: [Some(plane), None, None, None],
        };
        let e = drm_descriptor(&d, |_| Ok(1)).unwrap_err().to_string();
        assert!(e.contains("video processor"), "{e}");
        d.fourcc = 0;
        assert!(drm_descriptor(&d, |_| Ok(1)).is_err());
        d.fourcc = PixelFormat::Nv12.drm_fourcc();
        let e = drm_descriptor(&d, |_| Ok(1)).unwrap_err().to_string();
        assert!(e.contains("1 planes"), "{e}");
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
        };
        if render_node().is_none() {
            let e = VaapiEncoder::open("h264_vaapi", &cfg).unwrap_err();
            assert!(format!("{e:#}").contains("render node"), "{e:#}");
        }
    }
}
