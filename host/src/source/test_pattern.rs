//! The demo picture: moving colour bars, and a barcode that identifies each frame.
//!
//! The barcode's layout is fixed because the interop tests decode it on the client to
//! check frame identity and measure capture-to-decode latency: in the top-left corner,
//! two rows of 64 cells of 16x16 pixels; row 0 is the capture time as u64 microseconds
//! of CLOCK_REALTIME, row 1 the u64 frame number; bits most significant first; white
//! (255) is 1, black (0) is 0.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::{CapturedFrame, VideoSource};

/// Cell edge in pixels.
pub const CELL: u32 = 16;
/// Cells per barcode row (bits of a u64).
pub const BITS: u32 = 64;
/// Rows of the barcode.
pub const ROWS: u32 = 2;

/// The eight 75% colour bars (BGR), left to right.
pub const BARS: [[u8; 3]; 8] = [
    [191, 191, 191], // white
    [0, 191, 191],   // yellow
    [191, 191, 0],   // cyan
    [0, 191, 0],     // green
    [191, 0, 191],   // magenta
    [0, 0, 191],     // red
    [191, 0, 0],     // blue
    [40, 40, 40],    // dark grey
];

/// Pixels the bars move per frame.
pub const SPEED: u32 = 4;

/// The test pattern.
#[derive(Debug)]
pub struct TestPattern {
    width: u32,
    height: u32,
    /// One row of bars, twice as wide as the frame so any offset is a plain copy.
    bar_row: Vec<u8>,
}

impl TestPattern {
    /// A pattern for `width` x `height` frames.
    pub fn new(width: u32, height: u32) -> Self {
        let mut bar_row = Vec::with_capacity(width as usize * 8);
        for x in 0..width * 2 {
            let bar = ((x % width) * 8 / width) as usize;
            let [b, g, r] = BARS[bar];
            bar_row.extend_from_slice(&[b, g, r, 255]);
        }
        Self {
            width,
            height,
            bar_row,
        }
    }

    /// The bar colour (BGR) at column `x` of frame `number`.
    pub fn bar_at(&self, number: u64, x: u32) -> [u8; 3] {
        let offset = ((number * u64::from(SPEED)) % u64::from(self.width)) as u32;
        BARS[(((x + offset) % self.width) * 8 / self.width) as usize]
    }

    /// Draws frame `number` captured at `unix_us` into `frame`.
    pub fn draw(&self, number: u64, unix_us: u64, frame: &mut CapturedFrame) {
        self.draw_into(number, unix_us, &mut frame.data, frame.stride);
    }

    /// Draws frame `number` captured at `unix_us` into BGRx `pixels` with rows `stride`
    /// bytes apart: the host's test pattern, and the test producers and painter apps
    /// that stand in for a game, paint exactly the same picture.
    pub fn draw_into(&self, number: u64, unix_us: u64, pixels: &mut [u8], stride: usize) {
        let (w, h) = (self.width as usize, self.height as usize);
        let row_bytes = w * 4;
        let offset = ((number * u64::from(SPEED)) % u64::from(self.width)) as usize * 4;
        for y in 0..h {
            let dst = &mut pixels[y * stride..y * stride + row_bytes];
            dst.copy_from_slice(&self.bar_row[offset..offset + row_bytes]);
        }
        for (row, value) in [unix_us, number].into_iter().enumerate() {
            for bit in 0..BITS {
                let on = (value >> (63 - bit)) & 1 == 1;
                let px = if on { 255 } else { 0 };
                let x0 = (bit * CELL) as usize;
                let y0 = row * CELL as usize;
                if x0 + CELL as usize > w || y0 + CELL as usize > h {
                    continue;
                }
                for y in y0..y0 + CELL as usize {
                    let line =
                        &mut pixels[y * stride + x0 * 4..y * stride + (x0 + CELL as usize) * 4];
                    for p in line.chunks_exact_mut(4) {
                        p.copy_from_slice(&[px, px, px, 255]);
                    }
                }
            }
        }
    }
}

/// Reads a barcode back from BGR(x) pixels: `(capture time us, frame number)`, or
/// `None` when a cell is neither clearly white nor clearly black.
pub fn read_barcode(pixels: &[u8], stride: usize, bytes_per_pixel: usize) -> Option<(u64, u64)> {
    Some((
        read_row(pixels, stride, bytes_per_pixel, 0)?,
        read_row(pixels, stride, bytes_per_pixel, 1)?,
    ))
}

/// Reads barcode row `row` (64 cells, most significant bit first) from BGR(x)
/// pixels; the session painter (`tests/painter`) paints its session's tag in row 2.
pub fn read_row(pixels: &[u8], stride: usize, bytes_per_pixel: usize, row: usize) -> Option<u64> {
    let mut value = 0u64;
    for bit in 0..BITS as usize {
        // Sample the cell's centre 8x8 and average the green channel.
        let cx = bit * CELL as usize + 4;
        let cy = row * CELL as usize + 4;
        let mut sum = 0u32;
        for y in cy..cy + 8 {
            for x in cx..cx + 8 {
                sum += u32::from(*pixels.get(y * stride + x * bytes_per_pixel + 1)?);
            }
        }
        let bit_value = match sum / 64 {
            0..=64 => 0,
            192..=255 => 1,
            _ => return None,
        };
        value = (value << 1) | bit_value;
    }
    Some(value)
}

/// The test pattern painted straight into NV12, as a producer that offers YUV would
/// hand it over (a game or compositor rendering to a YUV buffer, a PipeWire node
/// negotiated to NV12): the host then has no colour conversion to do. The same bars
/// and barcode as [`TestPattern`], in the colour matrix and range the encoder is
/// configured for (white cells at the range's top, black at its bottom).
#[derive(Debug)]
pub struct Nv12Pattern {
    width: u32,
    height: u32,
    /// Luma of one row of bars, twice as wide as the frame.
    y_row: Vec<u8>,
    /// Interleaved chroma of that row (one UV pair per two pixels).
    uv_row: Vec<u8>,
    /// Luma of a white and a black barcode cell.
    white: u8,
    black: u8,
    /// The picture: a Y plane, then the UV plane, rows `width` bytes apart.
    pub y: Vec<u8>,
    /// The UV plane.
    pub uv: Vec<u8>,
}

impl Nv12Pattern {
    /// A `width` x `height` (even) NV12 pattern in the matrix `m`.
    pub fn new(width: u32, height: u32, m: &punktfunk_yuv::Matrix) -> Self {
        use punktfunk_yuv::{Band, Chroma, Order, convert_band};
        let (w, h) = (width as usize, height as usize);
        let bars = TestPattern::new(width, height).bar_row;
        // Two identical rows of the double-wide bar row, converted once.
        let src = [bars.as_slice(), bars.as_slice()].concat();
        let (mut y2, mut uv_row) = (vec![0u8; 4 * w], vec![0u8; 2 * w]);
        convert_band(
            Band {
                src: &src,
                src_stride: 8 * w,
                y: &mut y2,
                y_stride: 2 * w,
                chroma: Chroma::Interleaved(&mut uv_row),
                c_stride: 2 * w,
                width: 2 * w,
                rows: 2,
            },
            Order::Bgrx,
            m,
        );
        y2.truncate(2 * w);
        // The extremes of the range: convert a white and a black pixel pair.
        let cell = |v: u8| {
            let (mut yy, mut c) = ([0u8; 4], [0u8; 2]);
            convert_band(
                Band {
                    src: &[v, v, v, 255, v, v, v, 255, v, v, v, 255, v, v, v, 255],
                    src_stride: 8,
                    y: &mut yy,
                    y_stride: 2,
                    chroma: Chroma::Interleaved(&mut c),
                    c_stride: 2,
                    width: 2,
                    rows: 2,
                },
                Order::Bgrx,
                m,
            );
            yy[0]
        };
        let (white, black) = (cell(255), cell(0));
        Self {
            width,
            height,
            y_row: y2,
            uv_row,
            white,
            black,
            y: vec![0; w * h],
            uv: vec![128; w * h.div_ceil(2)],
        }
    }

    /// Paints frame `number` captured at `unix_us`.
    pub fn draw(&mut self, number: u64, unix_us: u64) {
        let (w, h) = (self.width as usize, self.height as usize);
        // SPEED is even, so the chroma pairs stay aligned with the luma offset.
        let offset = ((number * u64::from(SPEED)) % u64::from(self.width)) as usize;
        for row in self.y.chunks_exact_mut(w) {
            row.copy_from_slice(&self.y_row[offset..offset + w]);
        }
        let uv_offset = offset & !1;
        for row in self.uv.chunks_exact_mut(w) {
            row.copy_from_slice(&self.uv_row[uv_offset..uv_offset + w]);
        }
        let c = CELL as usize;
        for (r, value) in [unix_us, number].into_iter().enumerate() {
            for bit in 0..BITS as usize {
                let (x0, y0) = (bit * c, r * c);
                if x0 + c > w || y0 + c > h {
                    continue;
                }
                let on = (value >> (63 - bit)) & 1 == 1;
                let luma = if on { self.white } else { self.black };
                for y in y0..y0 + c {
                    self.y[y * w + x0..y * w + x0 + c].fill(luma);
                }
                for y in y0 / 2..(y0 + c) / 2 {
                    self.uv[y * w + x0..y * w + x0 + c].fill(128);
                }
            }
        }
    }

    /// The painted picture as a capture frame (NV12, borrowed), captured at `at`.
    pub fn as_frame(&self, at: Instant, unix_us: u64) -> crate::capture::Frame<'_> {
        use crate::capture::{CpuFrame, Frame, PixelFormat, Pixels, Plane};
        let w = self.width as usize;
        Frame {
            width: self.width,
            height: self.height,
            captured_at: at,
            captured_unix_us: unix_us,
            pixels: Pixels::Cpu(CpuFrame {
                format: PixelFormat::Nv12,
                planes: [
                    Plane {
                        data: &self.y,
                        stride: w,
                    },
                    Plane {
                        data: &self.uv,
                        stride: w,
                    },
                ],
            }),
        }
    }
}

impl VideoSource for TestPattern {
    fn capture(&mut self, number: u64, frame: &mut CapturedFrame) -> anyhow::Result<()> {
        frame.captured_at = Instant::now();
        frame.captured_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        self.draw(number, frame.captured_unix_us, frame);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barcode_roundtrips_and_bars_move() {
        let p = TestPattern::new(1280, 720);
        let mut f = CapturedFrame::new(1280, 720);
        p.draw(42, 1_700_000_000_123_456, &mut f);
        assert_eq!(
            read_barcode(&f.data, f.stride, 4),
            Some((1_700_000_000_123_456, 42))
        );
        // Bars below the barcode.
        let y = 100usize;
        let px = |x: usize| {
            [
                f.data[y * f.stride + x * 4],
                f.data[y * f.stride + x * 4 + 1],
                f.data[y * f.stride + x * 4 + 2],
            ]
        };
        assert_eq!(px(600), p.bar_at(42, 600));
        let mut g = CapturedFrame::new(1280, 720);
        p.draw(43, 0, &mut g);
        let moved = (0..1280).any(|x| {
            g.data[y * g.stride + x * 4..y * g.stride + x * 4 + 3]
                != f.data[y * f.stride + x * 4..y * f.stride + x * 4 + 3]
        });
        assert!(moved);
        // Mean brightness far above moonlight-python's "black" threshold of 5.
        let mean = f.data.iter().map(|&b| f64::from(b)).sum::<f64>() / f.data.len() as f64;
        assert!(mean > 60.0, "{mean}");
    }

    #[test]
    fn the_nv12_pattern_is_the_bgrx_pattern_converted() {
        use crate::encode::convert::{ConvertPath, Converter};
        ffmpeg_next::init().unwrap();
        let (w, h) = (640u32, 360u32);
        let m = punktfunk_yuv::Matrix::bt601(false);
        let mut nv = Nv12Pattern::new(w, h, &m);
        nv.draw(42, 1_700_000_000_123_456);
        let p = TestPattern::new(w, h);
        let mut f = CapturedFrame::new(w, h);
        p.draw(42, 1_700_000_000_123_456, &mut f);
        let mut c = Converter::new(
            w,
            h,
            ffmpeg_next::ffi::SWS_CS_ITU601,
            false,
            ffmpeg_next::format::Pixel::NV12,
            ConvertPath::Fast { slices: 1 },
        );
        c.convert(&f.as_frame()).unwrap();
        let (ys, cs) = (c.picture.stride(0), c.picture.stride(1));
        for y in 0..h as usize {
            assert_eq!(
                &c.picture.data(0)[y * ys..y * ys + w as usize],
                &nv.y[y * w as usize..(y + 1) * w as usize],
                "luma row {y}"
            );
        }
        // Chroma too, except where a 2x2 block straddles two bars (the converter
        // averages them; the pattern's row was converted at another offset).
        let differ = (0..h as usize / 2)
            .flat_map(|y| (0..w as usize).map(move |x| (y, x)))
            .filter(|&(y, x)| c.picture.data(1)[y * cs + x] != nv.uv[y * w as usize + x])
            .count();
        assert!(
            differ <= 8 * 2 * h as usize / 2,
            "{differ} chroma bytes differ"
        );
        // The converter takes it as a plain copy.
        let t = Instant::now();
        c.convert(&nv.as_frame(t, 0)).unwrap();
        assert_eq!(&c.picture.data(0)[..w as usize], &nv.y[..w as usize]);
        let row = (h as usize / 2 - 1) * cs;
        assert_eq!(
            &c.picture.data(1)[row..row + w as usize],
            &nv.uv[(h as usize / 2 - 1) * w as usize..h as usize / 2 * w as usize]
        );
    }

    #[test]
    fn garbled_barcodes_are_rejected() {
        let p = TestPattern::new(1280, 720);
        let mut f = CapturedFrame::new(1280, 720);
        p.draw(1, 5, &mut f);
        for b in &mut f.data[..f.stride * 16] {
            *b = 128;
        }
        assert_eq!(read_barcode(&f.data, f.stride, 4), None);
    }
}
