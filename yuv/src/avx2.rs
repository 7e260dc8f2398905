//! The converter's inner loop written out in AVX2: 16 columns of a row pair a step,
//! bit-identical to the portable loop ([`crate::convert_pair`]), which still does the
//! last columns of a row that is not a multiple of 16 wide.
//!
//! Why by hand: the portable loop, auto-vectorised, reads every pixel twice (once for
//! luma, once for the 2x2 chroma sums) and de-interleaves BGRx with 32-bit shuffles:
//! about 0.85 ns a pixel at 1080p. Here each 64-byte run of a row is loaded once and
//! widened once to 16-bit lanes; luma and both chroma sums come from `vpmaddwd` on
//! those lanes (exact integer products, so the result matches the portable loop to
//! the bit; `tests` checks it on random pictures of odd sizes).

use std::arch::x86_64::*;

use crate::{Band, ChromaRow, Matrix, Order, RowPair, SHIFT};

/// Pixels of a row a step.
const STEP: usize = 16;

/// The chroma sums' rounding shift, `SHIFT + 2` (a sum of four pixels), as the
/// intrinsics' constant argument.
const CHROMA_SHIFT: i32 = 17;
const _: () = assert!(SHIFT + 2 == CHROMA_SHIFT as u32);

/// Converts `band` (the AVX2 build of [`crate::convert_band`]).
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn convert_band(band: Band<'_>, order: Order, m: &Matrix) {
    let k = Kernel::new(order, m);
    for pair in band.pairs() {
        let simd = pair.s0.len() / 4 / STEP * STEP;
        let (head, tail) = pair.split_at(simd);
        k.pair(head);
        crate::convert_pair(tail, order, m);
    }
}

/// The matrix as register constants.
struct Kernel {
    /// Luma, U and V weights for one pixel's four bytes in memory order (the padding
    /// byte weighted 0), repeated for each pixel in the register.
    wy: __m256i,
    wu: __m256i,
    wv: __m256i,
    y_offset: __m256i,
}

impl Kernel {
    #[target_feature(enable = "avx2")]
    fn new(order: Order, m: &Matrix) -> Self {
        // The Matrix weights fit 16 bits: luma at most 256, chroma at most 2^SHIFT / 2.
        let w = |r: i32, g: i32, b: i32| {
            let (first, third) = match order {
                Order::Bgrx => (b, r),
                Order::Rgbx => (r, b),
            };
            let (a, g, c) = (first as i16, g as i16, third as i16);
            _mm256_setr_epi16(a, g, c, 0, a, g, c, 0, a, g, c, 0, a, g, c, 0)
        };
        Self {
            wy: w(i32::from(m.yr), i32::from(m.yg), i32::from(m.yb)),
            wu: w(m.ur, m.ug, m.ub),
            wv: w(m.vr, m.vg, m.vb),
            y_offset: _mm256_set1_epi16(m.y_offset as i16),
        }
    }

    /// Converts a row pair whose width is a multiple of [`STEP`].
    #[target_feature(enable = "avx2")]
    fn pair(&self, p: RowPair<'_>) {
        let rows = p.s0.chunks_exact(4 * STEP).zip(p.s1.chunks_exact(4 * STEP));
        let luma = p.y0.chunks_exact_mut(STEP).zip(p.y1.chunks_exact_mut(STEP));
        match p.chroma {
            ChromaRow::Planar(u, v) => {
                let chroma = u
                    .chunks_exact_mut(STEP / 2)
                    .zip(v.chunks_exact_mut(STEP / 2));
                for (((a, b), (y0, y1)), (u, v)) in rows.zip(luma).zip(chroma) {
                    let uv = self.step(a, b, y0, y1);
                    // Bytes 0..8 are U, 8..16 V (see `step`).
                    let uv: [u8; 16] = bytes(uv);
                    u.copy_from_slice(&uv[..8]);
                    v.copy_from_slice(&uv[8..]);
                }
            }
            ChromaRow::Interleaved(uv) => {
                // U0 V0 U1 V1 ... from U0..U7 V0..V7.
                let interleave =
                    _mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
                for (((a, b), (y0, y1)), uv) in rows.zip(luma).zip(uv.chunks_exact_mut(STEP)) {
                    let planar = self.step(a, b, y0, y1);
                    let out: [u8; 16] = bytes(_mm_shuffle_epi8(planar, interleave));
                    uv.copy_from_slice(&out);
                }
            }
        }
    }

    /// One step: 16 pixels of each of the two rows (`a`, `b`: 64 bytes each) to their
    /// luma (written), and the 8 blocks' chroma, returned as U0..U7 then V0..V7.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn step(&self, a: &[u8], b: &[u8], y0: &mut [u8], y1: &mut [u8]) -> __m128i {
        let (a0, a1, b0, b1) = (
            load(&a[..32]),
            load(&a[32..]),
            load(&b[..32]),
            load(&b[32..]),
        );
        let z = _mm256_setzero_si256();
        // Each pixel's four bytes as four 16-bit lanes: `lo` holds pixels 0, 1 (and 4,
        // 5 in the upper 128-bit lane), `hi` pixels 2, 3 (6, 7).
        let widen = |v| (_mm256_unpacklo_epi8(v, z), _mm256_unpackhi_epi8(v, z));
        let (a0l, a0h) = widen(a0);
        let (a1l, a1h) = widen(a1);
        let (b0l, b0h) = widen(b0);
        let (b1l, b1h) = widen(b1);

        // Luma: 32-bit per pixel, then both rows packed to bytes in pixel order.
        let row = |l0, h0, l1, h1| {
            let y = _mm256_packs_epi32(self.luma8(l0, h0), self.luma8(l1, h1));
            _mm256_add_epi16(y, self.y_offset)
        };
        let y = _mm256_packus_epi16(row(a0l, a0h, a1l, a1h), row(b0l, b0h, b1l, b1h));
        // Dwords are [r0 0-3, r0 8-11, r1 0-3, r1 8-11 | r0 4-7, r0 12-15, r1 4-7, r1 12-15].
        let y = _mm256_permutevar8x32_epi32(y, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        let y: [u8; 32] = bytes256(y);
        y0.copy_from_slice(&y[..16]);
        y1.copy_from_slice(&y[16..]);

        // Chroma from the two rows' sums (at most 510 a lane).
        let (s0l, s0h) = (_mm256_add_epi16(a0l, b0l), _mm256_add_epi16(a0h, b0h));
        let (s1l, s1h) = (_mm256_add_epi16(a1l, b1l), _mm256_add_epi16(a1h, b1h));
        let u = self.chroma8(s0l, s0h, s1l, s1h, self.wu);
        let v = self.chroma8(s0l, s0h, s1l, s1h, self.wv);
        // i16 [U0-3 V0-3 | U4-7 V4-7], saturated to bytes as the portable loop clamps.
        let uv = _mm256_packus_epi16(_mm256_packs_epi32(u, v), z);
        let uv = _mm256_permutevar8x32_epi32(uv, _mm256_setr_epi32(0, 4, 1, 5, 2, 3, 6, 7));
        _mm256_castsi256_si128(uv)
    }

    /// Luma of 8 pixels (widened as in `step`), `(w . p + 128) >> 8`, in pixel order.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn luma8(&self, lo: __m256i, hi: __m256i) -> __m256i {
        let dot = _mm256_hadd_epi32(
            _mm256_madd_epi16(lo, self.wy),
            _mm256_madd_epi16(hi, self.wy),
        );
        _mm256_srli_epi32::<8>(_mm256_add_epi32(dot, _mm256_set1_epi32(128)))
    }

    /// One chroma component of 8 blocks from 16 columns of row-pair sums, with the
    /// portable loop's rounding and +128, in block order (32-bit lanes).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn chroma8(
        &self,
        s0l: __m256i,
        s0h: __m256i,
        s1l: __m256i,
        s1h: __m256i,
        w: __m256i,
    ) -> __m256i {
        // Per column: [c0-3 | c4-7] and [c8-11 | c12-15].
        let c0 = _mm256_hadd_epi32(_mm256_madd_epi16(s0l, w), _mm256_madd_epi16(s0h, w));
        let c1 = _mm256_hadd_epi32(_mm256_madd_epi16(s1l, w), _mm256_madd_epi16(s1h, w));
        // Per block (column pairs): [b0 b1 b4 b5 | b2 b3 b6 b7], then in order.
        let blocks = _mm256_hadd_epi32(c0, c1);
        let blocks = _mm256_permute4x64_epi64::<0b11_01_10_00>(blocks);
        let rounded = _mm256_add_epi32(blocks, _mm256_set1_epi32(1 << (CHROMA_SHIFT - 1)));
        _mm256_add_epi32(
            _mm256_srai_epi32::<CHROMA_SHIFT>(rounded),
            _mm256_set1_epi32(128),
        )
    }
}

/// 32 bytes of `s` (exactly 32 long) as a register.
#[target_feature(enable = "avx2")]
#[inline]
fn load(s: &[u8]) -> __m256i {
    assert_eq!(s.len(), 32);
    // SAFETY: `s` has 32 readable bytes; the load has no alignment requirement.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

/// A register's bytes.
#[target_feature(enable = "avx2")]
#[inline]
fn bytes256(v: __m256i) -> [u8; 32] {
    let mut out = [0u8; 32];
    // SAFETY: `out` has 32 writable bytes; the store has no alignment requirement.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), v) };
    out
}

/// A 128-bit register's bytes.
#[target_feature(enable = "avx2")]
#[inline]
fn bytes(v: __m128i) -> [u8; 16] {
    let mut out = [0u8; 16];
    // SAFETY: `out` has 16 writable bytes; the store has no alignment requirement.
    unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), v) };
    out
}

#[cfg(test)]
mod tests {
    use crate::{Band, Chroma, Matrix, Order, convert_band_portable};

    /// `h` rows of `stride` bytes of BGRx (padding included) from a small LCG.
    fn picture(h: usize, stride: usize, seed: u32) -> Vec<u8> {
        let mut x = seed;
        (0..stride * h)
            .map(|i| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // Runs of saturated values too, where rounding and clamping bite.
                match (i / 97) % 5 {
                    0 => 255,
                    1 => 0,
                    _ => (x >> 24) as u8,
                }
            })
            .collect()
    }

    /// Luma and chroma planes of `src` through `convert`.
    fn run(
        convert: impl Fn(Band<'_>),
        src: &[u8],
        (w, h, stride): (usize, usize, usize),
        nv12: bool,
    ) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        // Destination strides wider than the picture, so padding must stay untouched.
        let (ys, cs) = (w + 6, w + 4);
        let mut y = vec![7u8; ys * h];
        let mut u = vec![7u8; cs * h / 2];
        let mut v = vec![7u8; cs * h / 2];
        let chroma = if nv12 {
            Chroma::Interleaved(&mut u)
        } else {
            Chroma::Planar {
                u: &mut u,
                v: &mut v,
            }
        };
        convert(Band {
            src,
            src_stride: stride,
            y: &mut y,
            y_stride: ys,
            chroma,
            c_stride: cs,
            width: w,
            rows: h,
        });
        (y, u, v)
    }

    #[test]
    fn the_avx2_loop_matches_the_portable_loop_to_the_bit() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        }
        let matrices = [
            Matrix::bt601(false),
            Matrix::bt601(true),
            Matrix::bt709(false),
            Matrix::bt709(true),
            Matrix::bt2020(false),
            Matrix::bt2020(true),
        ];
        for (i, &(w, h)) in [
            (2, 2),
            (14, 4),
            (16, 2),
            (18, 6),
            (46, 8),
            (64, 4),
            (1282, 6),
        ]
        .iter()
        .enumerate()
        {
            let stride = w * 4 + 12;
            let src = picture(h, stride, i as u32 + 1);
            for m in &matrices {
                for order in [Order::Bgrx, Order::Rgbx] {
                    for nv12 in [false, true] {
                        let dims = (w, h, stride);
                        // SAFETY: AVX2 was checked above.
                        let fast = run(
                            |b| unsafe { super::convert_band(b, order, m) },
                            &src,
                            dims,
                            nv12,
                        );
                        let portable =
                            run(|b| convert_band_portable(b, order, m), &src, dims, nv12);
                        assert!(fast == portable, "{w}x{h} {order:?} nv12={nv12} {m:?}");
                    }
                }
            }
        }
    }
}
