//! The converter's swscale path: every input the one-pass converters do not take (a
//! capture of another size, NV12 into YUV420P), in two bands at once where nothing
//! is scaled. swscale reads the capture's borrowed planes itself (no copy).

use anyhow::{Context, Result, bail};
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;

use super::{ConvertPath, Converter};
use crate::capture::{CpuFrame, PixelFormat, Plane};

fn pixel(format: PixelFormat) -> Pixel {
    match format {
        PixelFormat::Bgrx => Pixel::BGRZ,
        PixelFormat::Rgbx => Pixel::RGBZ,
        PixelFormat::Bgra => Pixel::BGRA,
        PixelFormat::Nv12 => Pixel::NV12,
    }
}

/// One swscale context and the source format and size it was made for.
pub(super) struct Scaler {
    pub(super) key: (PixelFormat, u32, u32),
    /// One context per band (all for the same band height but the last).
    bands: Vec<(u32, scaling::Context)>,
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

    /// Converts `cpu` (`width` x `height`) into the picture through swscale.
    pub(super) fn scale(&mut self, width: u32, height: u32, cpu: &CpuFrame<'_>) -> Result<()> {
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
}
