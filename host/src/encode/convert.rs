//! Colour conversion from a captured [`Frame`] to the encoder's YUV 4:2:0, straight
//! from the capture's mapped planes: swscale reads the borrowed memory itself, so no
//! copy happens between capture and conversion.
//!
//! The source may differ from the encoder in layout (BGRx, RGBx, BGRA, NV12) and in
//! size (a compositor renegotiated after a mode change, or a PipeWire node at another
//! resolution than the client asked for): the converter is rebuilt whenever either
//! changes, and scales to the encoder's size.

use std::os::fd::AsRawFd;

use anyhow::{Context, Result, bail};
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;

use crate::capture::{CpuFrame, DmaBufFrame, Frame, PixelFormat, Pixels, Plane};

fn pixel(format: PixelFormat) -> Pixel {
    match format {
        PixelFormat::Bgrx => Pixel::BGRZ,
        PixelFormat::Rgbx => Pixel::RGBZ,
        PixelFormat::Bgra => Pixel::BGRA,
        PixelFormat::Nv12 => Pixel::NV12,
    }
}

/// Checks that `frame`'s planes hold a whole picture, so swscale never reads past the
/// borrowed memory: a producer that lies about sizes gets its frame refused, not a
/// crash.
pub fn check_planes(width: u32, height: u32, cpu: &CpuFrame<'_>) -> Result<()> {
    let (w, h) = (width as usize, height as usize);
    if w == 0 || h == 0 {
        bail!("an empty {width}x{height} frame");
    }
    let need = |plane: &Plane<'_>, row_bytes: usize, rows: usize, what: &str| -> Result<()> {
        if plane.stride < row_bytes {
            bail!(
                "{what} rows are {} bytes apart, less than a row of {row_bytes}",
                plane.stride
            );
        }
        let len = plane.stride * (rows - 1) + row_bytes;
        if plane.data.len() < len {
            bail!(
                "{what} has {} bytes, a {width}x{height} picture needs {len}",
                plane.data.len()
            );
        }
        Ok(())
    };
    match cpu.format {
        PixelFormat::Bgrx | PixelFormat::Rgbx | PixelFormat::Bgra => {
            need(&cpu.planes[0], w * 4, h, "the pixel plane")
        }
        PixelFormat::Nv12 => {
            need(&cpu.planes[0], w, h, "the Y plane")?;
            need(
                &cpu.planes[1],
                w.div_ceil(2) * 2,
                h.div_ceil(2),
                "the UV plane",
            )
        }
    }
}

/// A read-only mapping of a linear DMA-BUF for the CPU path (software encoders on a
/// machine whose compositor hands out DMA-BUFs).
struct DmaBufMap {
    ptr: *mut libc::c_void,
    len: usize,
    fd: libc::c_int,
}

/// `DMA_BUF_IOCTL_SYNC` (`_IOW('b', 0, struct dma_buf_sync)`) and its flags.
const DMA_BUF_IOCTL_SYNC: libc::c_ulong = 0x4008_6200;
const DMA_BUF_SYNC_READ: u64 = 1;
const DMA_BUF_SYNC_START: u64 = 0;
const DMA_BUF_SYNC_END: u64 = 4;
/// `DRM_FORMAT_MOD_LINEAR`; `DRM_FORMAT_MOD_INVALID` (implicit) is treated alike,
/// which is what shm-backed and most single-GPU linear buffers announce.
const MOD_LINEAR: u64 = 0;
const MOD_INVALID: u64 = 0x00ff_ffff_ffff_ffff;

impl DmaBufMap {
    fn new(dmabuf: &DmaBufFrame<'_>) -> Result<Self> {
        if dmabuf.modifier != MOD_LINEAR && dmabuf.modifier != MOD_INVALID {
            bail!(
                "a tiled DMA-BUF (modifier {:#x}) needs a hardware encoder",
                dmabuf.modifier
            );
        }
        let plane = dmabuf.planes[0].context("a DMA-BUF without planes")?;
        let fd = plane.fd.as_raw_fd();
        // SAFETY: fstat on a descriptor the frame borrows, into a zeroed struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            bail!("fstat on the DMA-BUF: {}", std::io::Error::last_os_error());
        }
        let len = usize::try_from(st.st_size).unwrap_or(0);
        if len == 0 {
            bail!("the DMA-BUF reports no size");
        }
        // SAFETY: a fresh shared read-only mapping of `len` bytes of the borrowed fd;
        // unmapped in Drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            bail!("mapping the DMA-BUF: {}", std::io::Error::last_os_error());
        }
        let sync = [DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ];
        // SAFETY: the ioctl reads one u64 flags word; failure only means no cache sync
        // is needed (not every exporter implements it).
        unsafe { libc::ioctl(fd, DMA_BUF_IOCTL_SYNC, sync.as_ptr()) };
        Ok(Self { ptr, len, fd })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for DmaBufMap {
    fn drop(&mut self) {
        let sync = [DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ];
        // SAFETY: as in `new`; then the mapping made there is released exactly once.
        unsafe {
            libc::ioctl(self.fd, DMA_BUF_IOCTL_SYNC, sync.as_ptr());
            libc::munmap(self.ptr, self.len);
        }
    }
}

/// The CPU view of a linear DMA-BUF's planes inside its mapping.
fn dmabuf_planes<'m>(map: &'m DmaBufMap, dmabuf: &DmaBufFrame<'_>) -> Result<CpuFrame<'m>> {
    let format = PixelFormat::from_drm_fourcc(dmabuf.fourcc)
        .with_context(|| format!("DMA-BUF fourcc {:#010x} is not converted", dmabuf.fourcc))?;
    let mut planes = [Plane::EMPTY; 2];
    for (i, slot) in planes.iter_mut().enumerate().take(format.planes()) {
        let p = dmabuf.planes[i].with_context(|| format!("DMA-BUF plane {i} is missing"))?;
        let bytes = map.bytes();
        let start = (p.offset as usize).min(bytes.len());
        *slot = Plane {
            data: &bytes[start..],
            stride: p.stride as usize,
        };
    }
    Ok(CpuFrame { format, planes })
}

/// Converts captured frames into one YUV 4:2:0 picture of the encoder's size.
pub struct Converter {
    scaler: Option<(PixelFormat, u32, u32, scaling::Context)>,
    /// The converted picture: what the encoder gets, kept for repeats.
    pub picture: ffmpeg::frame::Video,
    width: u32,
    height: u32,
    sws_space: libc::c_int,
    full_range: bool,
}

impl std::fmt::Debug for Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter")
            .field("source", &self.scaler.as_ref().map(|s| (s.0, s.1, s.2)))
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl Converter {
    /// A converter to `width` x `height` YUV 4:2:0 with the swscale colour matrix
    /// `sws_space` (`SWS_CS_*`) and range.
    pub fn new(width: u32, height: u32, sws_space: libc::c_int, full_range: bool) -> Self {
        Self {
            scaler: None,
            picture: ffmpeg::frame::Video::new(Pixel::YUV420P, width, height),
            width,
            height,
            sws_space,
            full_range,
        }
    }

    fn scaler(&mut self, format: PixelFormat, w: u32, h: u32) -> Result<&mut scaling::Context> {
        if self
            .scaler
            .as_ref()
            .is_none_or(|s| (s.0, s.1, s.2) != (format, w, h))
        {
            if let Some((old, ow, oh, _)) = &self.scaler {
                tracing::info!(
                    from = format!("{old:?} {ow}x{oh}"),
                    to = format!("{format:?} {w}x{h}"),
                    "the captured picture changed; converting the new one"
                );
            }
            let mut ctx = scaling::Context::get(
                pixel(format),
                w,
                h,
                Pixel::YUV420P,
                self.width,
                self.height,
                scaling::Flags::FAST_BILINEAR,
            )
            .context("creating the colour converter")?;
            // SAFETY: the scaler is valid; the coefficient tables are static in
            // libswscale. An NV12 source is taken to use the same matrix, limited range.
            unsafe {
                let table = ffmpeg::ffi::sws_getCoefficients(self.sws_space);
                ffmpeg::ffi::sws_setColorspaceDetails(
                    ctx.as_mut_ptr(),
                    table,
                    libc::c_int::from(format != PixelFormat::Nv12),
                    table,
                    libc::c_int::from(self.full_range),
                    0,
                    1 << 16,
                    1 << 16,
                );
            }
            self.scaler = Some((format, w, h, ctx));
        }
        Ok(&mut self.scaler.as_mut().expect("just set").3)
    }

    /// Converts `frame` into [`Converter::picture`].
    pub fn convert(&mut self, frame: &Frame<'_>) -> Result<()> {
        match &frame.pixels {
            Pixels::Cpu(cpu) => self.convert_cpu(frame.width, frame.height, cpu),
            Pixels::DmaBuf(dmabuf) => {
                let map = DmaBufMap::new(dmabuf)?;
                let cpu = dmabuf_planes(&map, dmabuf)?;
                self.convert_cpu(frame.width, frame.height, &cpu)
            }
        }
    }

    fn convert_cpu(&mut self, width: u32, height: u32, cpu: &CpuFrame<'_>) -> Result<()> {
        check_planes(width, height, cpu)?;
        let src: [*const u8; 4] = [
            cpu.planes[0].data.as_ptr(),
            cpu.planes[1].data.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
        ];
        let stride = |p: &Plane<'_>| libc::c_int::try_from(p.stride).unwrap_or(0);
        let src_stride = [stride(&cpu.planes[0]), stride(&cpu.planes[1]), 0, 0];
        let h = libc::c_int::try_from(height).context("frame height")?;
        // SAFETY: the pointer is only used below, while `self.scaler` keeps it alive.
        let sws = unsafe { self.scaler(cpu.format, width, height)?.as_mut_ptr() };
        // SAFETY: check_planes proved every source plane holds `height` rows of its
        // stride (the last row only its pixels), which is all swscale reads; the
        // destination is our own frame of the converter's size; the source memory is
        // borrowed for the duration of this call.
        let rows = unsafe {
            let dst = self.picture.as_mut_ptr();
            ffmpeg::ffi::sws_scale(
                sws,
                src.as_ptr(),
                src_stride.as_ptr(),
                0,
                h,
                (*dst).data.as_ptr(),
                (*dst).linesize.as_ptr(),
            )
        };
        if rows <= 0 {
            bail!("swscale converted nothing ({rows})");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn frame(format: PixelFormat, w: u32, h: u32, planes: [Plane<'_>; 2]) -> Frame<'_> {
        Frame {
            width: w,
            height: h,
            captured_at: Instant::now(),
            captured_unix_us: 0,
            pixels: Pixels::Cpu(CpuFrame { format, planes }),
        }
    }

    /// The Y value of the converted picture at (x, y).
    fn luma(c: &Converter, x: usize, y: usize) -> u8 {
        c.picture.data(0)[y * c.picture.stride(0) + x]
    }

    #[test]
    fn every_format_converts_to_the_same_grey_and_scales() {
        ffmpeg::init().unwrap();
        let (w, h) = (64u32, 32u32);
        let grey = vec![128u8; (w * h * 4) as usize];
        let nv12 = vec![128u8; (w * h * 3 / 2) as usize];
        let mut c = Converter::new(32, 16, ffmpeg::ffi::SWS_CS_ITU709, true);
        for format in [PixelFormat::Bgrx, PixelFormat::Rgbx, PixelFormat::Bgra] {
            let p = Plane {
                data: &grey,
                stride: w as usize * 4,
            };
            c.convert(&frame(format, w, h, [p, Plane::EMPTY])).unwrap();
            let y = luma(&c, 10, 10);
            assert!((126..=130).contains(&y), "{format:?}: Y {y}");
        }
        let (yp, uv) = nv12.split_at((w * h) as usize);
        let planes = [
            Plane {
                data: yp,
                stride: w as usize,
            },
            Plane {
                data: uv,
                stride: w as usize,
            },
        ];
        c.convert(&frame(PixelFormat::Nv12, w, h, planes)).unwrap();
        // Limited-range 128 stretched to full range: (128 - 16) * 255 / 219.
        let y = luma(&c, 5, 5);
        assert!((128..=134).contains(&y), "NV12: Y {y}");
        assert_eq!((c.picture.width(), c.picture.height()), (32, 16));
    }

    #[test]
    fn short_or_narrow_planes_are_refused() {
        let data = vec![0u8; 100];
        let short = Plane {
            data: &data,
            stride: 40,
        };
        let cpu = CpuFrame {
            format: PixelFormat::Bgrx,
            planes: [short, Plane::EMPTY],
        };
        // 10x3 BGRx needs 40 * 2 + 40 = 120 bytes.
        assert!(check_planes(10, 3, &cpu).is_err());
        assert!(check_planes(10, 2, &cpu).is_ok());
        let narrow = CpuFrame {
            format: PixelFormat::Bgrx,
            planes: [
                Plane {
                    data: &data,
                    stride: 20,
                },
                Plane::EMPTY,
            ],
        };
        assert!(check_planes(10, 1, &narrow).is_err());
        let nv12 = CpuFrame {
            format: PixelFormat::Nv12,
            planes: [
                Plane {
                    data: &data,
                    stride: 10,
                },
                Plane::EMPTY,
            ],
        };
        assert!(check_planes(10, 10, &nv12).is_err(), "no UV plane");
        assert!(check_planes(0, 10, &nv12).is_err());
    }
}
