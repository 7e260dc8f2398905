//! A one-pass packed RGB (BGRx, RGBx, BGRA) to YUV 4:2:0 converter (YUV420P or NV12),
//! for the host's common case: the capture already has the encoder's size.
//!
//! A crate of its own so that debug builds of the host (which the interop tests run)
//! still get it optimised: see `[profile.dev.package.punktfunk-yuv]`.
//!
//! Why not swscale for this: swscale's unscaled RGB32 to YUV 4:2:0 path runs the
//! generic scaler (input unpacking, a 1-tap horizontal filter, a vertical filter, then
//! output packing: four passes over each line), and its `sws_scale` entry point is
//! single-threaded. This converter reads each source pixel once, writes Y and the
//! 2x2-averaged chroma in the same pass, and splits the picture into horizontal bands
//! that run on a persistent worker thread and the caller at once (the host's
//! `encode::slices`). Measured in `host/benches/pipeline.rs` (the lever table).
//!
//! The arithmetic is 8-bit fixed point for luma and 15-bit for chroma, exact in
//! integers. The portable loop is written so LLVM vectorises it; where the CPU has
//! AVX2 (checked at run time) the hand-written loop in `avx2.rs` runs instead, with
//! the same results to the bit and about 3x the speed (`examples/speed.rs`).

#[cfg(target_arch = "x86_64")]
mod avx2;
mod standard;
pub mod ten_bit;

pub use standard::Standard;

/// The colour matrix and range of the YUV output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matrix {
    /// Luma weights, 8-bit fixed point scaled for the range: luma runs on 16-bit lanes
    /// (all weights are positive and sum to at most 256, so 255 x 256 fits).
    yr: u16,
    yg: u16,
    yb: u16,
    /// Chroma weights (for the sum of four pixels, so 2 more bits of shift).
    ur: i32,
    ug: i32,
    ub: i32,
    vr: i32,
    vg: i32,
    vb: i32,
    /// 16 for limited range, 0 for full.
    y_offset: u16,
}

const SHIFT: u32 = 15;

impl Matrix {
    /// The matrix for `Kr`/`Kb` (a [`Standard`]'s, or any other) and range.
    pub fn new(kr: f64, kb: f64, full_range: bool) -> Self {
        let kg = 1.0 - kr - kb;
        let (ys, cs) = if full_range {
            (1.0, 1.0)
        } else {
            (219.0 / 255.0, 224.0 / 255.0)
        };
        let q = |v: f64| (v * f64::from(1u32 << SHIFT)).round() as i32;
        // Cb = (B - Y') / (2 (1 - Kb)), Cr = (R - Y') / (2 (1 - Kr)).
        let cb = cs / (2.0 * (1.0 - kb));
        let cr = cs / (2.0 * (1.0 - kr));
        let q8 = |v: f64| (v * 256.0).round() as u16;
        Self {
            yr: q8(kr * ys),
            yg: q8(kg * ys),
            yb: q8(kb * ys),
            ur: q(-kr * cb),
            ug: q(-kg * cb),
            ub: q((1.0 - kb) * cb),
            vr: q((1.0 - kr) * cr),
            vg: q(-kg * cr),
            vb: q(-kb * cr),
            y_offset: if full_range { 0 } else { 16 },
        }
    }

    /// The matrix of `standard` and range.
    pub fn standard(standard: Standard, full_range: bool) -> Self {
        let (kr, kb) = standard.kr_kb();
        Self::new(kr, kb, full_range)
    }

    /// BT.601.
    pub fn bt601(full_range: bool) -> Self {
        Self::standard(Standard::Bt601, full_range)
    }

    /// BT.709.
    pub fn bt709(full_range: bool) -> Self {
        Self::standard(Standard::Bt709, full_range)
    }

    /// BT.2020 non-constant luminance.
    pub fn bt2020(full_range: bool) -> Self {
        Self::standard(Standard::Bt2020, full_range)
    }
}

/// Where red, green and blue sit in a 4-byte pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Blue, green, red, then padding or alpha (DRM XRGB8888/ARGB8888, SPA BGRx).
    Bgrx,
    /// Red, green, blue, then padding (DRM XBGR8888, SPA RGBx).
    Rgbx,
}

/// How the chroma of the output is laid out.
#[derive(Debug)]
pub enum Chroma<'a> {
    /// Separate U and V planes (YUV420P).
    Planar { u: &'a mut [u8], v: &'a mut [u8] },
    /// One interleaved UV plane (NV12).
    Interleaved(&'a mut [u8]),
}

/// One band of rows to convert: a source of `rows` rows (even) of `width` (even)
/// pixels, and the destination planes starting at the band's first row.
#[derive(Debug)]
pub struct Band<'a> {
    /// The source pixels, `rows` rows of `src_stride` bytes.
    pub src: &'a [u8],
    /// Bytes between source rows.
    pub src_stride: usize,
    /// The luma plane at the band's first row.
    pub y: &'a mut [u8],
    /// Bytes between luma rows.
    pub y_stride: usize,
    /// The chroma plane(s) at the band's first chroma row.
    pub chroma: Chroma<'a>,
    /// Bytes between chroma rows (of each plane).
    pub c_stride: usize,
    /// Width in pixels (even).
    pub width: usize,
    /// Rows in this band (even).
    pub rows: usize,
}

/// Converts `band`, with the fastest build of the loop this CPU runs.
pub fn convert_band(band: Band<'_>, order: Order, m: &Matrix) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just checked to have AVX2.
            unsafe { avx2::convert_band(band, order, m) };
            return;
        }
    }
    // No AVX2: the portable loop as built for the baseline (checking again is moot).
    portable(band, order, m);
}

/// Converts `band` with the portable loop only (compiled for AVX2 where the CPU has
/// it, which LLVM auto-vectorises): the baseline the hand-written loop is measured
/// against (`examples/speed.rs`) and checked against (tests).
pub fn convert_band_portable(band: Band<'_>, order: Order, m: &Matrix) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just checked to have AVX2.
            unsafe { portable_avx2(band, order, m) };
            return;
        }
    }
    portable(band, order, m);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn portable_avx2(band: Band<'_>, order: Order, m: &Matrix) {
    portable(band, order, m);
}

#[inline(always)]
fn portable(band: Band<'_>, order: Order, m: &Matrix) {
    for pair in band.pairs() {
        convert_pair(pair, order, m);
    }
}

/// One row pair of a band: two source rows, their two luma rows and the chroma row
/// between them, each cut to the band's width.
#[derive(Debug)]
struct RowPair<'a> {
    s0: &'a [u8],
    s1: &'a [u8],
    y0: &'a mut [u8],
    y1: &'a mut [u8],
    chroma: ChromaRow<'a>,
}

/// One chroma row: `w / 2` samples of U and of V, or `w` interleaved bytes.
#[derive(Debug)]
enum ChromaRow<'a> {
    Planar(&'a mut [u8], &'a mut [u8]),
    Interleaved(&'a mut [u8]),
}

impl<'a> RowPair<'a> {
    /// The first `px` pixels (even) and the rest.
    fn split_at(self, px: usize) -> (RowPair<'a>, RowPair<'a>) {
        let (s0, t0) = self.s0.split_at(px * 4);
        let (s1, t1) = self.s1.split_at(px * 4);
        let (y0, z0) = self.y0.split_at_mut(px);
        let (y1, z1) = self.y1.split_at_mut(px);
        let (c, d) = match self.chroma {
            ChromaRow::Planar(u, v) => {
                let (u, tu) = u.split_at_mut(px / 2);
                let (v, tv) = v.split_at_mut(px / 2);
                (ChromaRow::Planar(u, v), ChromaRow::Planar(tu, tv))
            }
            ChromaRow::Interleaved(uv) => {
                let (uv, t) = uv.split_at_mut(px);
                (ChromaRow::Interleaved(uv), ChromaRow::Interleaved(t))
            }
        };
        (
            RowPair {
                s0,
                s1,
                y0,
                y1,
                chroma: c,
            },
            RowPair {
                s0: t0,
                s1: t1,
                y0: z0,
                y1: z1,
                chroma: d,
            },
        )
    }
}

impl<'a> Band<'a> {
    /// The band's row pairs, top to bottom.
    fn pairs(self) -> impl Iterator<Item = RowPair<'a>> {
        let Band {
            src,
            src_stride,
            y,
            y_stride,
            chroma,
            c_stride,
            width,
            rows,
        } = self;
        let w = width & !1;
        let chroma = match chroma {
            Chroma::Planar { u, v } => {
                ChromaRows::Planar(u.chunks_mut(c_stride).zip(v.chunks_mut(c_stride)), w)
            }
            Chroma::Interleaved(uv) => ChromaRows::Interleaved(uv.chunks_mut(c_stride), w),
        };
        src.chunks(2 * src_stride)
            .zip(y.chunks_mut(2 * y_stride))
            .zip(chroma)
            .take(rows / 2)
            .map(move |((s, y), chroma)| {
                let (y0, y1) = y.split_at_mut(y_stride);
                RowPair {
                    s0: &s[..w * 4],
                    s1: &s[src_stride..][..w * 4],
                    y0: &mut y0[..w],
                    y1: &mut y1[..w],
                    chroma,
                }
            })
    }
}

/// A band's chroma rows, cut to its width `w` (no allocation: this runs per band per frame).
enum ChromaRows<'a> {
    Planar(
        std::iter::Zip<std::slice::ChunksMut<'a, u8>, std::slice::ChunksMut<'a, u8>>,
        usize,
    ),
    Interleaved(std::slice::ChunksMut<'a, u8>, usize),
}

impl<'a> Iterator for ChromaRows<'a> {
    type Item = ChromaRow<'a>;

    fn next(&mut self) -> Option<ChromaRow<'a>> {
        match self {
            Self::Planar(rows, w) => rows
                .next()
                .map(|(u, v)| ChromaRow::Planar(&mut u[..*w / 2], &mut v[..*w / 2])),
            Self::Interleaved(rows, w) => {
                rows.next().map(|uv| ChromaRow::Interleaved(&mut uv[..*w]))
            }
        }
    }
}

/// One row pair with the portable loop (LLVM vectorises the luma).
#[inline(always)]
fn convert_pair(pair: RowPair<'_>, order: Order, m: &Matrix) {
    match order {
        Order::Bgrx => convert_pair_in::<2, 1, 0>(pair, m),
        Order::Rgbx => convert_pair_in::<0, 1, 2>(pair, m),
    }
}

#[inline(always)]
fn convert_pair_in<const R: usize, const G: usize, const B: usize>(p: RowPair<'_>, m: &Matrix) {
    luma_row::<R, G, B>(p.s0, p.y0, m);
    luma_row::<R, G, B>(p.s1, p.y1, m);
    let blocks = p.s0.chunks_exact(8).zip(p.s1.chunks_exact(8));
    match p.chroma {
        ChromaRow::Planar(u, v) => {
            for (((p0, p1), u), v) in blocks.zip(u.iter_mut()).zip(v.iter_mut()) {
                (*u, *v) = block::<R, G, B>(p0, p1, m);
            }
        }
        ChromaRow::Interleaved(uv) => {
            for ((p0, p1), uv) in blocks.zip(uv.chunks_exact_mut(2)) {
                (uv[0], uv[1]) = block::<R, G, B>(p0, p1, m);
            }
        }
    }
}

/// One row of luma: a plain map over pixels on 16-bit lanes, which LLVM vectorises.
#[inline(always)]
fn luma_row<const R: usize, const G: usize, const B: usize>(src: &[u8], y: &mut [u8], m: &Matrix) {
    for (p, y) in src.chunks_exact(4).zip(y.iter_mut()) {
        let v =
            (m.yr * u16::from(p[R]) + m.yg * u16::from(p[G]) + m.yb * u16::from(p[B]) + 128) >> 8;
        *y = (v + m.y_offset) as u8;
    }
}

/// One 2x2 block's chroma, from the sum of its four pixels.
#[inline(always)]
fn block<const R: usize, const G: usize, const B: usize>(
    p0: &[u8],
    p1: &[u8],
    m: &Matrix,
) -> (u8, u8) {
    let sum = |c: usize| {
        i32::from(p0[c]) + i32::from(p0[4 + c]) + i32::from(p1[c]) + i32::from(p1[4 + c])
    };
    let (r, g, b) = (sum(R), sum(G), sum(B));
    let round = 1 << (SHIFT + 1);
    let u = ((m.ur * r + m.ug * g + m.ub * b + round) >> (SHIFT + 2)) + 128;
    let v = ((m.vr * r + m.vg * g + m.vb * b + round) >> (SHIFT + 2)) + 128;
    (u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert_one(px: [u8; 4], m: &Matrix) -> (u8, u8, u8) {
        let src: Vec<u8> = px.iter().copied().cycle().take(16).collect();
        let (mut y, mut u, mut v) = ([0u8; 4], [0u8; 1], [0u8; 1]);
        convert_band(
            Band {
                src: &src,
                src_stride: 8,
                y: &mut y,
                y_stride: 2,
                chroma: Chroma::Planar {
                    u: &mut u,
                    v: &mut v,
                },
                c_stride: 1,
                width: 2,
                rows: 2,
            },
            Order::Bgrx,
            m,
        );
        assert!(y.iter().all(|&s| s == y[0]));
        (y[0], u[0], v[0])
    }

    #[test]
    fn reference_colours_land_on_their_bt709_and_bt601_codes() {
        let limited709 = Matrix::new(0.2126, 0.0722, false);
        // BGRx: white, black, pure red, pure blue.
        assert_eq!(
            convert_one([255, 255, 255, 0], &limited709),
            (235, 128, 128)
        );
        assert_eq!(convert_one([0, 0, 0, 0], &limited709), (16, 128, 128));
        // BT.709 limited red: Y 63, Cb 102, Cr 240.
        assert_eq!(convert_one([0, 0, 255, 0], &limited709), (63, 102, 240));
        // BT.709 limited blue: Y 32, Cb 240, Cr 118.
        assert_eq!(convert_one([255, 0, 0, 0], &limited709), (32, 240, 118));
        let full601 = Matrix::new(0.299, 0.114, true);
        assert_eq!(convert_one([255, 255, 255, 0], &full601), (255, 128, 128));
        // BT.601 full red: Y 76, Cb 85, Cr 255.
        let (y, u, v) = convert_one([0, 0, 255, 0], &full601);
        assert!((76..=77).contains(&y) && (u, v) == (85, 255), "{y} {u} {v}");
    }

    #[test]
    fn nv12_output_interleaves_the_same_chroma() {
        let m = Matrix::new(0.2126, 0.0722, false);
        let src: Vec<u8> = [0u8, 0, 255, 0, 255, 0, 0, 0]
            .iter()
            .copied()
            .cycle()
            .take(4 * 4 * 2)
            .collect();
        let (mut y, mut uv) = ([0u8; 8], [0u8; 4]);
        convert_band(
            Band {
                src: &src,
                src_stride: 16,
                y: &mut y,
                y_stride: 4,
                chroma: Chroma::Interleaved(&mut uv),
                c_stride: 4,
                width: 4,
                rows: 2,
            },
            Order::Bgrx,
            &m,
        );
        assert_eq!(&y[..4], &[63, 32, 63, 32]);
        // The average of red and blue, twice.
        assert_eq!(uv[0], uv[2]);
        assert_eq!(uv[1], uv[3]);
        assert!((170..=172).contains(&uv[0]), "{uv:?}");
        assert!((178..=180).contains(&uv[1]), "{uv:?}");
    }
}
