//! DMA-BUFs described to FFmpeg as DRM PRIME frames and mapped onto VAAPI surfaces:
//! the GPU then reads the compositor's buffer itself, with no CPU copy. NV12 buffers
//! map onto the encoder's surfaces; packed RGB ones onto RGB surfaces that the video
//! processor converts ([`super::vpp`]).

use std::os::fd::AsRawFd;
use std::ptr;

use anyhow::{Result, bail};
use ffmpeg::ffi;
use ffmpeg_next as ffmpeg;

use super::cuda::HwRef;
use crate::capture::{DmaBufFrame, Frame, PixelFormat};

/// The DRM PRIME description of `dmabuf` for FFmpeg: distinct fds become objects
/// (sized by `size_of`), planes point at their object, and the modifier rides on every
/// object. NV12 (two planes) maps onto an encoder surface directly, packed RGB (one
/// plane) onto an RGB surface for the video processor.
pub fn drm_descriptor(
    dmabuf: &DmaBufFrame<'_>,
    size_of: impl Fn(libc::c_int) -> Result<usize>,
) -> Result<ffi::AVDRMFrameDescriptor> {
    let Some(format) = PixelFormat::from_drm_fourcc(dmabuf.fourcc) else {
        bail!("DMA-BUF fourcc {:#010x} is not mapped", dmabuf.fourcc);
    };
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
    let want = format.planes();
    if nb_planes != want {
        bail!("a {format:?} DMA-BUF has {nb_planes} planes, not {want}");
    }
    desc.layers[0].nb_planes = want as libc::c_int;
    Ok(desc)
}

/// A DMA-BUF's size: `lseek` to its end (what the kernel reports for dma-buf fds).
pub(crate) fn dmabuf_size(fd: libc::c_int) -> Result<usize> {
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

/// Maps a DMA-BUF onto a VAAPI surface of `frames` (whose software format is
/// `sw`, on the VAAPI `device`) in `dst`: no copy.
pub(crate) fn map_onto(
    device: *mut ffi::AVBufferRef,
    frame: &Frame<'_>,
    dmabuf: &DmaBufFrame<'_>,
    frames: *mut ffi::AVBufferRef,
    sw: ffi::AVPixelFormat,
    dst: &mut ffmpeg::frame::Video,
) -> Result<()> {
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
        let mut drm_device = HwRef(ptr::null_mut());
        check(
            ffi::av_hwdevice_ctx_create_derived(
                &mut drm_device.0,
                ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_DRM,
                device,
                0,
            ),
            "deriving the DRM device",
        )?;
        let drm_frames = HwRef(ffi::av_hwframe_ctx_alloc(drm_device.0));
        let fc = (*drm_frames.0).data.cast::<ffi::AVHWFramesContext>();
        (*fc).format = ffi::AVPixelFormat::AV_PIX_FMT_DRM_PRIME;
        (*fc).sw_format = sw;
        (*fc).width = frame.width as libc::c_int;
        (*fc).height = frame.height as libc::c_int;
        check(ffi::av_hwframe_ctx_init(drm_frames.0), "DRM frames")?;
        (*d).hw_frames_ctx = ffi::av_buffer_ref(drm_frames.0);
        let s = dst.as_mut_ptr();
        ffi::av_frame_unref(s);
        (*s).format = ffi::AVPixelFormat::AV_PIX_FMT_VAAPI as libc::c_int;
        (*s).hw_frames_ctx = ffi::av_buffer_ref(frames);
        check(
            ffi::av_hwframe_map(
                s,
                d,
                ffi::AV_HWFRAME_MAP_READ as libc::c_int | ffi::AV_HWFRAME_MAP_DIRECT as libc::c_int,
            ),
            "mapping the DMA-BUF onto a VAAPI surface",
        )
    }
}

unsafe extern "C" fn free_descriptor(_opaque: *mut libc::c_void, data: *mut u8) {
    // SAFETY: `data` is the Box::into_raw of `map_onto`, freed exactly once by FFmpeg.
    drop(unsafe { Box::from_raw(data.cast::<ffi::AVDRMFrameDescriptor>()) });
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
    fn rgb_buffers_are_one_plane_for_the_video_processor_and_unknown_ones_refused() {
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
        let rgb = drm_descriptor(&d, |_| Ok(5120 * 720)).unwrap();
        assert_eq!((rgb.nb_objects, rgb.layers[0].nb_planes), (1, 1));
        assert_eq!(rgb.layers[0].format, PixelFormat::Bgrx.drm_fourcc());
        assert_eq!(rgb.layers[0].planes[0].pitch, 5120);
        d.fourcc = 0;
        assert!(drm_descriptor(&d, |_| Ok(1)).is_err());
        d.fourcc = PixelFormat::Nv12.drm_fourcc();
        let e = drm_descriptor(&d, |_| Ok(1)).unwrap_err().to_string();
        assert!(e.contains("1 planes"), "{e}");
    }
}
