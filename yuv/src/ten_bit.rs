//! 8-bit captures to 10-bit YUV 4:2:0, for HEVC Main10 and AV1 10-bit streams.
//!
//! Two layouts, because the encoders disagree: `yuv420p10le` (three planes of 16-bit
//! words holding the value in the low 10 bits: x265, SVT-AV1) and P010 (a luma plane
//! and an interleaved chroma plane, the value in the high 10 bits: VAAPI, NVENC).
//!
//! Why not scale the 8-bit output by 4: the matrix then rounds to 8 bits first and
//! the 10-bit stream carries the same banding as an 8-bit one. Converting straight
//! from RGB to 10 bits keeps the two extra bits the matrix produces, which is the
//! point of a 10-bit stream from an 8-bit desktop (Sunshine encodes such a source as
//! "10-bit SDR" the same way). A source that already paints YUV (NV12) has no more
//! precision to give: its samples are widened exactly (limited range: `v << 2`, the
//! same code value per ITU-T H.273; full range: bit replication, 255 to 1023).
//!
//! Same fixed-point scheme as the 8-bit converter, with 16 fraction bits: the result
//! is off the exact formula by at most a few hundredths of a code value before
//! rounding, so it differs only next to a rounding boundary (tests below).

use crate::{Order, Standard};

const SHIFT: u32 = 16;

/// A colour matrix and range for 10-bit output from 8-bit RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matrix10 {
    /// Luma weights: 10-bit output per 8-bit input, `SHIFT` fraction bits.
    y: [i32; 3],
    /// Chroma weights per sum of four pixels (`SHIFT + 2` fraction bits).
    u: [i32; 3],
    v: [i32; 3],
    /// 64 for limited range, 0 for full (10-bit code values).
    y_offset: i32,
}

impl Matrix10 {
    /// The matrix for `Kr`/`Kb` and range (ITU-T H.273 equations 11 to 20 at 10 bits:
    /// limited range scales luma by 876 and chroma by 896 around 64 and 512; full
    /// range by 1023).
    pub fn new(kr: f64, kb: f64, full_range: bool) -> Self {
        let kg = 1.0 - kr - kb;
        let (ys, cs) = if full_range {
            (1023.0, 1023.0)
        } else {
            (876.0, 896.0)
        };
        let scale = |v: f64, extra: u32| v / 255.0 * f64::from(1u32 << (SHIFT - extra));
        let q = |v: f64, extra: u32| scale(v, extra).round() as i32;
        let cb = cs / (2.0 * (1.0 - kb));
        let cr = cs / (2.0 * (1.0 - kr));
        // Each chroma row sums to zero (greys land on 512 exactly), and its largest
        // weight is rounded down: a saturated colour's chroma is then a hair inside
        // +-cs/2, so the full-range ties (511.5 either side of 512) round as H.273's
        // Round() does (0.5 to 1, 1023.5 to 1023 after clipping).
        let (ub, ur) = (scale((1.0 - kb) * cb, 2).floor() as i32, q(-kr * cb, 2));
        let (vr, vb) = (scale((1.0 - kr) * cr, 2).floor() as i32, q(-kb * cr, 2));
        Self {
            y: [q(kr * ys, 0), q(kg * ys, 0), q(kb * ys, 0)],
            u: [ur, -(ur + ub), ub],
            v: [vr, -(vr + vb), vb],
            y_offset: if full_range { 0 } else { 64 },
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

    /// The 10-bit luma of one pixel (R, G, B).
    #[inline(always)]
    fn luma(&self, r: i32, g: i32, b: i32) -> u16 {
        let y = (self.y[0] * r + self.y[1] * g + self.y[2] * b + (1 << (SHIFT - 1))) >> SHIFT;
        (y + self.y_offset).clamp(0, 1023) as u16
    }

    /// The 10-bit chroma of a 2x2 block, from its summed R, G, B.
    #[inline(always)]
    fn chroma(&self, r: i32, g: i32, b: i32) -> (u16, u16) {
        let c = |w: &[i32; 3]| {
            let v = (w[0] * r + w[1] * g + w[2] * b + (1 << (SHIFT - 1))) >> SHIFT;
            (v + 512).clamp(0, 1023) as u16
        };
        (c(&self.u), c(&self.v))
    }
}

/// How the 10-bit picture is laid out.
#[derive(Debug)]
pub enum Planes10<'a> {
    /// `yuv420p10le`: U and V planes, values in the low 10 bits.
    Planar {
        /// The U plane at the band's first chroma row.
        u: &'a mut [u16],
        /// The V plane at the band's first chroma row.
        v: &'a mut [u16],
    },
    /// P010: one interleaved UV plane, values in the high 10 bits.
    P010(&'a mut [u16]),
}

/// One band of rows (even) of a picture of even width, as 16-bit samples.
#[derive(Debug)]
pub struct Band10<'a> {
    /// The luma plane at the band's first row.
    pub y: &'a mut [u16],
    /// Samples between luma rows.
    pub y_stride: usize,
    /// The chroma plane(s) at the band's first chroma row.
    pub chroma: Planes10<'a>,
    /// Samples between chroma rows (of each plane).
    pub c_stride: usize,
    /// Width in pixels (even).
    pub width: usize,
    /// Rows in this band (even).
    pub rows: usize,
}

impl Band10<'_> {
    /// The left shift that places a 10-bit value in a sample of this layout.
    fn shift(&self) -> u32 {
        match self.chroma {
            Planes10::Planar { .. } => 0,
            Planes10::P010(_) => 6,
        }
    }
}

/// Converts `rows` of packed RGB (`src`, `src_stride` bytes apart) into `band`.
pub fn rgb_to_10bit(src: &[u8], src_stride: usize, order: Order, band: Band10<'_>, m: &Matrix10) {
    match order {
        Order::Bgrx => rgb_rows::<2, 1, 0>(src, src_stride, band, m),
        Order::Rgbx => rgb_rows::<0, 1, 2>(src, src_stride, band, m),
    }
}

fn rgb_rows<const R: usize, const G: usize, const B: usize>(
    src: &[u8],
    src_stride: usize,
    band: Band10<'_>,
    m: &Matrix10,
) {
    let shift = band.shift();
    let Band10 {
        y,
        y_stride,
        mut chroma,
        c_stride,
        width,
        rows,
    } = band;
    let w = width & !1;
    let px = |p: &[u8]| (i32::from(p[R]), i32::from(p[G]), i32::from(p[B]));
    for pair in 0..rows / 2 {
        let s0 = &src[2 * pair * src_stride..][..w * 4];
        let s1 = &src[(2 * pair + 1) * src_stride..][..w * 4];
        let (ya, yb) = y[2 * pair * y_stride..].split_at_mut(y_stride);
        for (s, row) in [(s0, &mut ya[..w]), (s1, &mut yb[..w])] {
            for (p, out) in s.chunks_exact(4).zip(row.iter_mut()) {
                let (r, g, b) = px(p);
                *out = m.luma(r, g, b) << shift;
            }
        }
        let block = |p0: &[u8], p1: &[u8]| {
            let (r0, g0, b0) = px(&p0[..4]);
            let (r1, g1, b1) = px(&p0[4..]);
            let (r2, g2, b2) = px(&p1[..4]);
            let (r3, g3, b3) = px(&p1[4..]);
            m.chroma(r0 + r1 + r2 + r3, g0 + g1 + g2 + g3, b0 + b1 + b2 + b3)
        };
        let blocks = s0.chunks_exact(8).zip(s1.chunks_exact(8));
        match &mut chroma {
            Planes10::Planar { u, v } => {
                let u = &mut u[pair * c_stride..][..w / 2];
                let v = &mut v[pair * c_stride..][..w / 2];
                for (((p0, p1), u), v) in blocks.zip(u.iter_mut()).zip(v.iter_mut()) {
                    (*u, *v) = block(p0, p1);
                }
            }
            Planes10::P010(uv) => {
                let uv = &mut uv[pair * c_stride..][..w];
                for ((p0, p1), uv) in blocks.zip(uv.chunks_exact_mut(2)) {
                    let (u, v) = block(p0, p1);
                    (uv[0], uv[1]) = (u << shift, v << shift);
                }
            }
        }
    }
}

/// Widens one 8-bit sample to 10 bits: `v << 2` in limited range (the same code
/// value), bit replication in full range (0 to 0, 255 to 1023).
#[inline(always)]
pub fn widen(v: u8, full_range: bool) -> u16 {
    let v = u16::from(v);
    if full_range {
        (v << 2) | (v >> 6)
    } else {
        v << 2
    }
}

/// Converts an NV12 picture (`y_src` and `uv_src` with their strides) into `band`,
/// widening each sample (see [`widen`]).
pub fn nv12_to_10bit(
    y_src: &[u8],
    y_src_stride: usize,
    uv_src: &[u8],
    uv_src_stride: usize,
    full_range: bool,
    band: Band10<'_>,
) {
    let shift = band.shift();
    let Band10 {
        y,
        y_stride,
        mut chroma,
        c_stride,
        width,
        rows,
    } = band;
    for r in 0..rows {
        let s = &y_src[r * y_src_stride..][..width];
        for (v, out) in s.iter().zip(&mut y[r * y_stride..][..width]) {
            *out = widen(*v, full_range) << shift;
        }
    }
    let cw = width / 2;
    for r in 0..rows / 2 {
        let s = &uv_src[r * uv_src_stride..][..cw * 2];
        match &mut chroma {
            Planes10::Planar { u, v } => {
                let u = &mut u[r * c_stride..][..cw];
                let v = &mut v[r * c_stride..][..cw];
                for ((p, u), v) in s.chunks_exact(2).zip(u.iter_mut()).zip(v.iter_mut()) {
                    *u = widen(p[0], full_range);
                    *v = widen(p[1], full_range);
                }
            }
            Planes10::P010(uv) => {
                for (p, out) in s.iter().zip(&mut uv[r * c_stride..][..cw * 2]) {
                    *out = widen(*p, full_range) << shift;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "ten_bit_tests.rs"]
mod tests;
