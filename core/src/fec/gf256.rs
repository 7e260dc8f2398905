//! Scalar GF(2^8) arithmetic over the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D),
//! the field of GameStream's Reed-Solomon code (nanors' tables say "polynomial: 285").
//!
//! These are for building and inverting the small coefficient matrices; bulk shard
//! arithmetic goes through reed-solomon-erasure's SIMD slice kernels, which use the same
//! field.

use reed_solomon_erasure::galois_8;

/// The field's reduction polynomial.
pub const POLYNOMIAL: u16 = 0x11D;

const fn build_tables() -> ([u8; 512], [u8; 256]) {
    let mut exp = [0u8; 512];
    let mut log = [0u8; 256];
    let mut x: u16 = 1;
    let mut i = 0;
    while i < 255 {
        exp[i] = x as u8;
        exp[i + 255] = x as u8;
        log[x as usize] = i as u8;
        x <<= 1;
        if x & 0x100 != 0 {
            x ^= POLYNOMIAL;
        }
        i += 1;
    }
    // exp[510] and exp[511] are never read: log values are at most 254 each.
    (exp, log)
}

const TABLES: ([u8; 512], [u8; 256]) = build_tables();
static EXP: [u8; 512] = TABLES.0;
static LOG: [u8; 256] = TABLES.1;

/// `a * b` in GF(2^8).
#[inline]
pub fn mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        0
    } else {
        EXP[LOG[a as usize] as usize + LOG[b as usize] as usize]
    }
}

/// The multiplicative inverse of `a`; `None` for zero.
#[inline]
pub fn inv(a: u8) -> Option<u8> {
    if a == 0 {
        None
    } else {
        Some(EXP[255 - LOG[a as usize] as usize])
    }
}

/// Inverts the `n x n` row-major matrix in `a` in place by Gauss-Jordan elimination.
/// `work` is scratch space the caller keeps between calls (resized as needed). Returns
/// `false` when the matrix is singular, leaving `a` unspecified.
///
/// Row operations go through the SIMD slice kernels, so inverting the 40x40 system of
/// a 200+40 block costs microseconds rather than the milliseconds of scalar code.
pub fn invert_matrix(a: &mut [u8], n: usize, work: &mut Vec<u8>) -> bool {
    debug_assert_eq!(a.len(), n * n);
    // Augment as [A | I] in `work`, reduce to [I | A^-1], copy the right half back.
    let w = 2 * n;
    work.clear();
    work.resize(n * w, 0);
    for r in 0..n {
        work[r * w..r * w + n].copy_from_slice(&a[r * n..r * n + n]);
        work[r * w + n + r] = 1;
    }
    for col in 0..n {
        let Some(pivot) = (col..n).find(|&r| work[r * w + col] != 0) else {
            return false;
        };
        if pivot != col {
            let (upper, lower) = work.split_at_mut(pivot * w);
            upper[col * w..col * w + w].swap_with_slice(&mut lower[..w]);
        }
        let Some(scale) = inv(work[col * w + col]) else {
            return false;
        };
        // Columns left of `col` are already zero in the pivot row: skip them.
        if scale != 1 {
            for v in &mut work[col * w + col..col * w + w] {
                *v = mul(*v, scale);
            }
        }
        for r in 0..n {
            let factor = work[r * w + col];
            if r == col || factor == 0 {
                continue;
            }
            let (pivot_row, row) = if r < col {
                let (head, tail) = work.split_at_mut(col * w);
                (&tail[col..w], &mut head[r * w + col..r * w + w])
            } else {
                let (head, tail) = work.split_at_mut(r * w);
                (&head[col * w + col..col * w + w], &mut tail[col..w])
            };
            galois_8::mul_slice_xor(factor, pivot_row, row);
        }
    }
    for r in 0..n {
        a[r * n..r * n + n].copy_from_slice(&work[r * w + n..r * w + w]);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Carry-less multiply and reduce, bit by bit: independent of the tables.
    fn slow_mul(mut a: u8, mut b: u8) -> u8 {
        let mut p = 0u8;
        while b != 0 {
            if b & 1 != 0 {
                p ^= a;
            }
            let carry = a & 0x80 != 0;
            a <<= 1;
            if carry {
                a ^= (POLYNOMIAL & 0xFF) as u8;
            }
            b >>= 1;
        }
        p
    }

    #[test]
    fn tables_match_bitwise_arithmetic() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mul(a, b), slow_mul(a, b), "{a} * {b}");
            }
            if a != 0 {
                assert_eq!(mul(a, inv(a).unwrap()), 1);
            }
        }
        assert_eq!(inv(0), None);
    }

    #[test]
    fn inverse_times_matrix_is_identity() {
        let n = 5;
        let mut m: Vec<u8> = (0..n * n)
            .map(|i| inv(((i / n) ^ (n + i % n)) as u8).unwrap())
            .collect();
        let orig = m.clone();
        let mut work = Vec::new();
        assert!(invert_matrix(&mut m, n, &mut work));
        for r in 0..n {
            for c in 0..n {
                let dot = (0..n).fold(0u8, |acc, k| acc ^ mul(orig[r * n + k], m[k * n + c]));
                assert_eq!(dot, u8::from(r == c));
            }
        }
    }

    #[test]
    fn singular_matrix_is_reported() {
        let mut m = vec![1, 2, 2, 4]; // second row = 2 * first row
        assert!(!invert_matrix(&mut m, 2, &mut Vec::new()));
    }
}
