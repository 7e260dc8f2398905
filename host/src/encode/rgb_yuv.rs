//! A one-pass packed RGB (BGRx, RGBx, BGRA) to YUV 4:2:0 converter, for the common case
//! where the capture already has the encoder's size.
//!
//! Why not swscale for this: swscale's unscaled RGB32 to YUV 4:2:0 path runs the
//! generic scaler (input unpacking, a 1-tap horizontal filter, a vertical filter, then
//! output packing: four passes over each line), and its `sws_scale` entry point is
//! single-threaded. This converter reads each source pixel once, writes Y and the
//! 2x2-averaged chroma in the same pass, and splits the picture into horizontal bands
//! that run on a persistent worker thread and the caller at once (see
//! [`super::slices`]). Measured in `host/benches/pipeline.rs` (the lever table).
//!
//! The arithmetic is 15-bit fixed point on `i32` lanes, written so LLVM vectorises
//! it; the AVX2 build of the same loop is picked at run time where the CPU has it.

use crate::capture::PixelFormat;

/// The colour matrix and range of the YUV output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matrix {
    /// Red weight of luma, 15-bit fixed point, scaled for the range.
    yr: i32,
    yg: i32,
    yb: i32,
    /// Chroma weights (for the sum of four pixels, so 2 more bits of shift).
    ur: i32,
    ug: i32,
    ub: i32,
    vr: i32,
    vg: i32,
    vb: i32,
    /// 16 for limited range, 0 for full.
    y_offset: i32,
}

const SHIFT: u32 = 15;

impl Matrix {
    /// The matrix for `Kr`/`Kb` (BT.601 0.299/0.114, BT.709 0.2126/0.0722, BT.2020
    /// 0.2627/0.0593) and range.
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
        Self {
            yr: q(kr * ys),
            yg: q(kg * ys),
            yb: q(kb * ys),
            ur: q(-kr * cb),
            ug: q(-kg * cb),
            ub: q((1.0 - kb) * cb),
            vr: q((1.0 - kr) * cr),
            vg: q(-kg * cr),
            vb: q(-kb * cr),
            y_offset: if full_range { 0 } else { 16 },
        }
    }

    /// The matrix for an `SWS_CS_*` constant (what the encoder configuration carries).
    pub fn from_sws(sws_space: libc::c_int, full_range: bool) -> Self {
        match sws_space {
            ffmpeg_next::ffi::SWS_CS_ITU709 => Self::new(0.2126, 0.0722, full_range),
            ffmpeg_next::ffi::SWS_CS_BT2020 => Self::new(0.2627, 0.0593, full_range),
            _ => Self::new(0.299, 0.114, full_range),
        }
    }
}

/// Byte positions of red, green and blue in a 4-byte pixel of `format`, or `None` for
/// a format this converter does not read.
pub fn rgb_order(format: PixelFormat) -> Option<(usize, usize, usize)> {
    match format {
        PixelFormat::Bgrx | PixelFormat::Bgra => Some((2, 1, 0)),
        PixelFormat::Rgbx => Some((0, 1, 2)),
        PixelFormat::Nv12 => None,
    }
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
pub fn convert_band(band: Band<'_>, order: (usize, usize, usize), m: &Matrix) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just checked to have AVX2.
            unsafe { convert_band_avx2(band, order, m) };
            return;
        }
    }
    convert_band_generic(band, order, m);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn convert_band_avx2(band: Band<'_>, order: (usize, usize, usize), m: &Matrix) {
    convert_band_generic(band, order, m);
}

#[inline(always)]
fn convert_band_generic(band: Band<'_>, order: (usize, usize, usize), m: &Matrix) {
    match order {
        (2, 1, 0) => convert_rows::<2, 1, 0>(band, m),
        _ => convert_rows::<0, 1, 2>(band, m),
    }
}

#[inline(always)]
fn convert_rows<const R: usize, const G: usize, const B: usize>(band: Band<'_>, m: &Matrix) {
    let Band {
        src,
        src_stride,
        y,
        y_stride,
        mut chroma,
        c_stride,
        width,
        rows,
    } = band;
    let w = width & !1;
    for pair in 0..rows / 2 {
        let s0 = &src[2 * pair * src_stride..][..w * 4];
        let s1 = &src[(2 * pair + 1) * src_stride..][..w * 4];
        let (ya, yb) = y[2 * pair * y_stride..].split_at_mut(y_stride);
        let ya = &mut ya[..w];
        let yb = &mut yb[..w];
        match &mut chroma {
            Chroma::Planar { u, v } => {
                let u = &mut u[pair * c_stride..][..w / 2];
                let v = &mut v[pair * c_stride..][..w / 2];
                for (((((p0, p1), y0), y1), u), v) in s0
                    .chunks_exact(8)
                    .zip(s1.chunks_exact(8))
                    .zip(ya.chunks_exact_mut(2))
                    .zip(yb.chunks_exact_mut(2))
                    .zip(u.iter_mut())
                    .zip(v.iter_mut())
                {
                    let (cu, cv) = block::<R, G, B>(p0, p1, y0, y1, m);
                    *u = cu;
                    *v = cv;
                }
            }
            Chroma::Interleaved(uv) => {
                let uv = &mut uv[pair * c_stride..][..w];
                for ((((p0, p1), y0), y1), uv) in s0
                    .chunks_exact(8)
                    .zip(s1.chunks_exact(8))
                    .zip(ya.chunks_exact_mut(2))
                    .zip(yb.chunks_exact_mut(2))
                    .zip(uv.chunks_exact_mut(2))
                {
                    let (cu, cv) = block::<R, G, B>(p0, p1, y0, y1, m);
                    uv[0] = cu;
                    uv[1] = cv;
                }
            }
        }
    }
}

/// One 2x2 block: writes its four luma samples and returns its chroma.
#[inline(always)]
fn block<const R: usize, const G: usize, const B: usize>(
    p0: &[u8],
    p1: &[u8],
    y0: &mut [u8],
    y1: &mut [u8],
    m: &Matrix,
) -> (u8, u8) {
    let px = |p: &[u8], i: usize| {
        (
            i32::from(p[i * 4 + R]),
            i32::from(p[i * 4 + G]),
            i32::from(p[i * 4 + B]),
        )
    };
    let round = 1 << (SHIFT - 1);
    let luma = |(r, g, b): (i32, i32, i32)| {
        (((m.yr * r + m.yg * g + m.yb * b + round) >> SHIFT) + m.y_offset).clamp(0, 255) as u8
    };
    let a = px(p0, 0);
    let b = px(p0, 1);
    let c = px(p1, 0);
    let d = px(p1, 1);
    y0[0] = luma(a);
    y0[1] = luma(b);
    y1[0] = luma(c);
    y1[1] = luma(d);
    let (r, g, bl) = (
        a.0 + b.0 + c.0 + d.0,
        a.1 + b.1 + c.1 + d.1,
        a.2 + b.2 + c.2 + d.2,
    );
    let cround = 1 << (SHIFT + 1);
    let u = ((m.ur * r + m.ug * g + m.ub * bl + cround) >> (SHIFT + 2)) + 128;
    let v = ((m.vr * r + m.vg * g + m.vb * bl + cround) >> (SHIFT + 2)) + 128;
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
            (2, 1, 0),
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
        assert_eq!(convert_one([0, 0, 255, 0], &full601), (76, 85, 255));
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
            (2, 1, 0),
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
