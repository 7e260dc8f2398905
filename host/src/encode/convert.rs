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

use super::bands::{BandChroma, in_bands};
use super::slices::SliceWorker;
use crate::capture::{CpuFrame, DmaBufFrame, Frame, PixelFormat, Pixels, Plane};
use punktfunk_yuv::{Band, Chroma, Matrix, Order, Standard, convert_band};

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

/// Where red, green and blue sit in a pixel of `format`, for the one-pass converter.
pub(crate) fn rgb_order(format: PixelFormat) -> Option<Order> {
    match format {
        PixelFormat::Bgrx | PixelFormat::Bgra => Some(Order::Bgrx),
        PixelFormat::Rgbx => Some(Order::Rgbx),
        PixelFormat::Nv12 => None,
    }
}

/// The colour standard of an `SWS_CS_*` constant (BT.601 for any other).
pub(crate) fn standard(sws_space: libc::c_int) -> Standard {
    match sws_space {
        ffmpeg::ffi::SWS_CS_ITU709 => Standard::Bt709,
        ffmpeg::ffi::SWS_CS_BT2020 => Standard::Bt2020,
        _ => Standard::Bt601,
    }
}

/// The one-pass converter's matrix for an `SWS_CS_*` constant.
pub(crate) fn matrix(sws_space: libc::c_int, full_range: bool) -> Matrix {
    Matrix::standard(standard(sws_space), full_range)
}

/// How the converter turns packed RGB of the encoder's size into YUV (the levers the
/// pipeline bench compares; other inputs always go through swscale).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertPath {
    /// swscale, in `slices` horizontal bands converted at once (1 or 2).
    Swscale {
        /// Bands converted at once.
        slices: usize,
    },
    /// The one-pass converter of `punktfunk_yuv`, in `slices` bands (1 or 2).
    Fast {
        /// Bands converted at once.
        slices: usize,
    },
}

impl Default for ConvertPath {
    /// The fast converter in two bands: the fastest in the bench's lever table, on
    /// the 2-core reference box and anything larger.
    fn default() -> Self {
        Self::Fast { slices: 2 }
    }
}

/// One swscale context and the source format and size it was made for.
struct Scaler {
    key: (PixelFormat, u32, u32),
    /// One context per band (all for the same band height but the last).
    bands: Vec<(u32, scaling::Context)>,
}

/// Converts captured frames into one YUV 4:2:0 picture of the encoder's size.
pub struct Converter {
    scaler: Option<Scaler>,
    /// The converted picture: what the encoder gets, kept for repeats.
    pub picture: ffmpeg::frame::Video,
    width: u32,
    height: u32,
    sws_space: libc::c_int,
    full_range: bool,
    path: ConvertPath,
    matrix: Matrix,
    /// The same matrix for 10-bit pictures ([`super::convert10`]).
    matrix10: punktfunk_yuv::ten_bit::Matrix10,
    worker: Option<SliceWorker>,
    /// The last captured picture's format and size, to log when it changes (a mode
    /// change), whichever conversion path takes it.
    last_input: Option<(PixelFormat, u32, u32)>,
}

impl std::fmt::Debug for Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter")
            .field("source", &self.scaler.as_ref().map(|s| s.key))
            .field("width", &self.width)
            .field("height", &self.height)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A raw destination pointer that may cross to the slice worker.
#[derive(Clone, Copy)]
struct SendPtr(*mut u8);
// SAFETY: only used to hand disjoint row ranges of one picture to two threads that
// both finish before the picture is touched again.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// One band's swscale call: context, source planes, destination planes, rows.
type Job = (SendPtr, [SendPtr; 4], [SendPtr; 4], usize);

impl Converter {
    /// A converter to `width` x `height` YUV 4:2:0 (`out`: `YUV420P` or `NV12`, or
    /// the 10-bit `YUV420P10LE` or `P010LE`) with
    /// the swscale colour matrix `sws_space` (`SWS_CS_*`) and range, converting packed
    /// RGB of that size along `path`.
    pub fn new(
        width: u32,
        height: u32,
        sws_space: libc::c_int,
        full_range: bool,
        out: Pixel,
        path: ConvertPath,
    ) -> Self {
        let slices = match path {
            ConvertPath::Swscale { slices } | ConvertPath::Fast { slices } => slices,
        };
        let worker = if slices > 1 {
            SliceWorker::spawn("pf-convert")
                .inspect_err(|e| {
                    tracing::warn!("no conversion helper thread ({e}); converting on one")
                })
                .ok()
        } else {
            None
        };
        Self {
            scaler: None,
            picture: ffmpeg::frame::Video::new(out, width, height),
            width,
            height,
            sws_space,
            full_range,
            path,
            matrix: matrix(sws_space, full_range),
            matrix10: super::convert10::matrix10(sws_space, full_range),
            worker,
            last_input: None,
        }
    }

    /// The encoder-side pixel format (`YUV420P` or `NV12`).
    pub fn output_format(&self) -> Pixel {
        self.picture.format()
    }

    fn scaler(&mut self, format: PixelFormat, w: u32, h: u32) -> Result<&mut Scaler> {
        if self.scaler.as_ref().is_none_or(|s| s.key != (format, w, h)) {
            // Bands only where nothing is scaled (a band's rows map to the same rows).
            let same = (w, h) == (self.width, self.height);
            let slices = match self.path {
                ConvertPath::Swscale { slices } if same && self.worker.is_some() => {
                    slices.clamp(1, 2)
                }
                _ => 1,
            };
            let band = (h / slices as u32).next_multiple_of(2).min(h);
            let mut bands = Vec::new();
            let mut y = 0;
            while y < h {
                let rows = band.min(h - y);
                let (dw, dh) = if slices == 1 {
                    (self.width, self.height)
                } else {
                    (w, rows)
                };
                let mut ctx = scaling::Context::get(
                    pixel(format),
                    w,
                    rows,
                    self.picture.format(),
                    dw,
                    dh,
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
                bands.push((rows, ctx));
                y += rows;
            }
            self.scaler = Some(Scaler {
                key: (format, w, h),
                bands,
            });
        }
        Ok(self.scaler.as_mut().expect("just set"))
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
        let input = (cpu.format, width, height);
        if let Some((of, ow, oh)) = self.last_input.replace(input)
            && (of, ow, oh) != input
        {
            tracing::info!(
                from = format!("{of:?} {ow}x{oh}"),
                to = format!("{:?} {width}x{height}", cpu.format),
                "the captured picture changed; converting the new one"
            );
        }
        let same_size = (width, height) == (self.width, self.height);
        if super::convert10::is_ten_bit(self.picture.format())
            && same_size
            && super::convert10::convert(
                &mut self.picture,
                cpu,
                &self.matrix10,
                self.full_range,
                self.worker.as_ref(),
            )
        {
            return Ok(());
        }
        let fast = matches!(self.path, ConvertPath::Fast { .. })
            && !super::convert10::is_ten_bit(self.picture.format())
            && (width, height) == (self.width, self.height)
            && width.is_multiple_of(2)
            && height.is_multiple_of(2);
        if fast && let Some(order) = rgb_order(cpu.format) {
            self.convert_fast(cpu, order);
            return Ok(());
        }
        if cpu.format == PixelFormat::Nv12
            && self.picture.format() == Pixel::NV12
            && (width, height) == (self.width, self.height)
        {
            self.copy_nv12(cpu);
            return Ok(());
        }
        let stride = |p: &Plane<'_>| libc::c_int::try_from(p.stride).unwrap_or(0);
        let src_stride = [stride(&cpu.planes[0]), stride(&cpu.planes[1]), 0, 0];
        let nv12_out = self.picture.format() == Pixel::NV12;
        // SAFETY: the destination is our own frame of the converter's size.
        let (dst, dst_stride) = unsafe {
            let f = self.picture.as_mut_ptr();
            ((*f).data, (*f).linesize)
        };
        let scaler = self.scaler(cpu.format, width, height)?;
        let chroma_rows = |y: usize| y / 2;
        let mut jobs: [Option<Job>; 2] = [None, None];
        let mut y = 0usize;
        for ((rows, ctx), slot) in scaler.bands.iter_mut().zip(&mut jobs) {
            let rows = *rows as usize;
            let src: [*const u8; 4] = match cpu.format {
                PixelFormat::Nv12 => [
                    cpu.planes[0].data[y * cpu.planes[0].stride..].as_ptr(),
                    cpu.planes[1].data[chroma_rows(y) * cpu.planes[1].stride..].as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                ],
                _ => [
                    cpu.planes[0].data[y * cpu.planes[0].stride..].as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    std::ptr::null(),
                ],
            };
            let mut d = [std::ptr::null_mut::<u8>(); 4];
            let planes = if nv12_out { 2 } else { 3 };
            for (i, slot) in d.iter_mut().enumerate().take(planes) {
                let r = if i == 0 { y } else { chroma_rows(y) };
                // SAFETY: offsets by whole rows inside the picture's plane `i` (band
                // starts are below the picture's height).
                *slot = unsafe { dst[i].add(r * dst_stride[i] as usize) };
            }
            *slot = Some((
                // SAFETY: the context lives in `self.scaler` past the calls below.
                SendPtr(unsafe { ctx.as_mut_ptr() }.cast()),
                src.map(|p| SendPtr(p.cast_mut())),
                d.map(SendPtr),
                rows,
            ));
            y += rows;
        }
        let run = |job: &Job| -> libc::c_int {
            let (ctx, src, d, rows) = job;
            let src = src.map(|p| p.0.cast_const());
            let d = d.map(|p| p.0);
            let h = libc::c_int::try_from(*rows).unwrap_or(0);
            // SAFETY: check_planes proved every source plane holds the frame's rows of
            // its stride, which is all swscale reads of this band; each band writes
            // its own rows of our picture; the source memory is borrowed for the
            // duration of this call; each band has its own context.
            unsafe {
                ffmpeg::ffi::sws_scale(
                    ctx.0.cast(),
                    src.as_ptr(),
                    src_stride.as_ptr(),
                    0,
                    h,
                    d.as_ptr(),
                    dst_stride.as_ptr(),
                )
            }
        };
        let rows = match (&jobs, &self.worker) {
            ([Some(a), Some(b)], Some(w)) => {
                let mut rb = 0;
                let mut ra = 0;
                w.join(|| rb = run(b), || ra = run(a));
                ra.min(rb)
            }
            _ => jobs.iter().flatten().map(run).min().unwrap_or(0),
        };
        if rows <= 0 {
            bail!("swscale converted nothing ({rows})");
        }
        Ok(())
    }

    /// An NV12 source of the picture's size into an NV12 picture: no colour work, a
    /// row copy per plane (the encoder keeps the picture for repeats, so it cannot
    /// borrow the capture's memory past this frame).
    fn copy_nv12(&mut self, cpu: &CpuFrame<'_>) {
        let (w, h) = (self.width as usize, self.height as usize);
        for (i, rows) in [(0, h), (1, h.div_ceil(2))] {
            let src = cpu.planes[i];
            let row_bytes = if i == 0 { w } else { w.div_ceil(2) * 2 };
            let stride = self.picture.stride(i);
            let dst = self.picture.data_mut(i);
            for r in 0..rows {
                dst[r * stride..r * stride + row_bytes]
                    .copy_from_slice(&src.data[r * src.stride..r * src.stride + row_bytes]);
            }
        }
    }

    /// Packed RGB of the picture's size into the picture, in one pass per band.
    fn convert_fast(&mut self, cpu: &CpuFrame<'_>, order: Order) {
        let m = self.matrix;
        let src = cpu.planes[0];
        let slices = match self.path {
            ConvertPath::Fast { slices } => slices,
            ConvertPath::Swscale { .. } => 1,
        };
        let worker = self.worker.as_ref().filter(|_| slices > 1);
        in_bands::<u8>(&mut self.picture, worker, |b| {
            convert_band(
                Band {
                    src: &src.data[b.y0 * src.stride..],
                    src_stride: src.stride,
                    y: b.y,
                    y_stride: b.y_stride,
                    chroma: match b.chroma {
                        BandChroma::Interleaved(uv) => Chroma::Interleaved(uv),
                        BandChroma::Planar { u, v } => Chroma::Planar { u, v },
                    },
                    c_stride: b.c_stride,
                    width: b.width,
                    rows: b.rows,
                },
                order,
                &m,
            );
        });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Instant;

    use super::*;
    use crate::encode::pattern_trip::psnr;

    /// A captured frame of `format` and size over `planes`.
    pub(crate) fn frame(format: PixelFormat, w: u32, h: u32, planes: [Plane<'_>; 2]) -> Frame<'_> {
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
        let mut c = Converter::new(
            32,
            16,
            ffmpeg::ffi::SWS_CS_ITU709,
            true,
            Pixel::YUV420P,
            ConvertPath::default(),
        );
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

    /// The picture's planes as tightly packed I420 bytes (NV12 chroma de-interleaved).
    fn i420(c: &Converter) -> Vec<u8> {
        let p = &c.picture;
        let (w, h) = (p.width() as usize, p.height() as usize);
        let mut out = Vec::new();
        for y in 0..h {
            out.extend_from_slice(&p.data(0)[y * p.stride(0)..][..w]);
        }
        if p.format() == Pixel::NV12 {
            for i in 0..2 {
                for y in 0..h / 2 {
                    let row = &p.data(1)[y * p.stride(1)..][..w];
                    out.extend(row.iter().skip(i).step_by(2));
                }
            }
        } else {
            for plane in 1..3 {
                for y in 0..h / 2 {
                    out.extend_from_slice(&p.data(plane)[y * p.stride(plane)..][..w / 2]);
                }
            }
        }
        out
    }

    #[test]
    fn every_conversion_path_gives_swscales_picture() {
        use crate::source::VideoSource;
        ffmpeg::init().unwrap();
        let (w, h) = (320u32, 180u32);
        let mut src = crate::source::test_pattern::TestPattern::new(w, h);
        let mut frame = crate::source::CapturedFrame::new(w, h);
        src.capture(7, &mut frame).unwrap();
        let reference = {
            let mut c = Converter::new(
                w,
                h,
                ffmpeg::ffi::SWS_CS_ITU709,
                false,
                Pixel::YUV420P,
                ConvertPath::Swscale { slices: 1 },
            );
            c.convert(&frame.as_frame()).unwrap();
            i420(&c)
        };
        for out in [Pixel::YUV420P, Pixel::NV12] {
            for path in [
                ConvertPath::Swscale { slices: 2 },
                ConvertPath::Fast { slices: 1 },
                ConvertPath::Fast { slices: 2 },
            ] {
                let mut c = Converter::new(w, h, ffmpeg::ffi::SWS_CS_ITU709, false, out, path);
                c.convert(&frame.as_frame()).unwrap();
                let got = i420(&c);
                let (yl, _) = got.split_at((w * h) as usize);
                let luma = psnr(yl, &reference[..(w * h) as usize], 255.0);
                let all = psnr(&got, &reference, 255.0);
                assert!(luma > 45.0, "{path:?} {out:?}: luma PSNR {luma:.1} dB");
                assert!(all > 35.0, "{path:?} {out:?}: PSNR {all:.1} dB");
            }
        }
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
