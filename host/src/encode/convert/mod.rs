//! Colour conversion from a captured [`Frame`] to the encoder's YUV 4:2:0, straight
//! from the capture's mapped planes: swscale reads the borrowed memory itself, so no
//! copy happens between capture and conversion.
//!
//! The source may differ from the encoder in layout (BGRx, RGBx, BGRA, NV12) and in
//! size (a compositor renegotiated after a mode change, or a PipeWire node at another
//! resolution than the client asked for): the converter is rebuilt whenever either
//! changes, and scales to the encoder's size.
//!
//! Where each part lives: the dispatch and the one-pass paths here, the band splitter
//! both one-pass converters share in [`bands`], swscale in `swscale`, DMA-BUF mapping
//! in `dmabuf`, the input checks in `planes`.

pub(crate) mod bands;
mod dmabuf;
mod planes;
mod swscale;
#[cfg(test)]
pub(crate) mod tests;

pub use planes::check_planes;

use anyhow::Result;
use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;

use super::slices::SliceWorker;
use crate::capture::{CpuFrame, Frame, PixelFormat, Pixels};
use bands::{BandChroma, in_bands};
use dmabuf::{DmaBufMap, dmabuf_planes};
use punktfunk_yuv::{Band, Chroma, Matrix, Order, Standard, convert_band};
use swscale::Scaler;

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
        self.scale(width, height, cpu)
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
