//! GameStream's Reed-Solomon code over GF(2^8), bit-compatible with moonlight-common-c.
//!
//! moonlight-common-c and Sunshine both use nanors (`rs.c`), whose parity matrix is the
//! Cauchy matrix `parity[j][i] = 1 / ((m + i) xor j)` for parity row `j < m` and data
//! column `i < k`, over GF(2^8) with polynomial 0x11D. No crate implements that matrix,
//! so this builds it on reed-solomon-erasure's SIMD `galois_8` slice kernels (same
//! field). GameStream audio uses a fixed 2x4 matrix instead (see
//! [`Gf8Rs::gamestream_audio`]).
//!
//! Decoding inverts only the `W x W` system of the `W` lost data shards and folds the
//! inverse into one coefficient row per lost shard, so recovering `W` shards costs
//! `W * k` slice operations: the same as encoding `W` parity shards.

use reed_solomon_erasure::galois_8;

use super::{BlockShape, ErasureCode, FecError, check_reconstruct_args, gf256};

/// GF(2^8) shards per block: nanors' `RS8_DATA_SHARDS_MAX`.
pub const MAX_SHARDS: usize = 255;

/// Matrices kept for recently used shapes; computing one costs `k * m` inversions.
const MATRIX_CACHE: usize = 8;

/// Output rows are processed in byte tiles so the rows being accumulated stay in L1.
const TILE_BUDGET: usize = 64 * 1024;

/// The parity matrix of GameStream audio FEC (4 data + 2 parity shards). Sunshine and
/// moonlight-common-c both overwrite nanors' Cauchy rows with these coefficients
/// (`RtpAudioQueue.c`, `stream.cpp`), taken from OpenFEC, to match NVIDIA's hosts.
pub const GAMESTREAM_AUDIO_MATRIX: [u8; 8] = [0x77, 0x40, 0x38, 0x0e, 0xc7, 0xa7, 0x0d, 0x6c];

#[derive(Debug, Clone)]
enum Matrix {
    /// nanors' Cauchy matrix, any shape up to 255 shards.
    Cauchy,
    /// A fixed matrix for exactly one shape.
    Fixed {
        data: usize,
        parity: usize,
        rows: Vec<u8>,
    },
}

/// Systematic Reed-Solomon over GF(2^8) with GameStream's parity matrices.
#[derive(Debug, Clone)]
pub struct Gf8Rs {
    matrix: Matrix,
    /// Most recently used first: (data, parity, m x k row-major coefficients).
    cache: Vec<(usize, usize, Vec<u8>)>,
    scratch: Scratch,
}

#[derive(Debug, Clone, Default)]
struct Scratch {
    lost: Vec<usize>,
    inputs: Vec<usize>,
    system: Vec<u8>,
    invert: Vec<u8>,
    coeffs: Vec<u8>,
    row: Vec<u8>,
    out: Vec<u8>,
    tails: Vec<u8>,
}

impl Gf8Rs {
    /// The Cauchy code GameStream video uses, for any shape up to 255 shards.
    pub fn cauchy() -> Self {
        Self::with_matrix(Matrix::Cauchy)
    }

    /// GameStream audio's RS(4,2) with its fixed OpenFEC matrix.
    pub fn gamestream_audio() -> Self {
        Self::with_matrix(Matrix::Fixed {
            data: 4,
            parity: 2,
            rows: GAMESTREAM_AUDIO_MATRIX.to_vec(),
        })
    }

    fn with_matrix(matrix: Matrix) -> Self {
        Self {
            matrix,
            cache: Vec::with_capacity(MATRIX_CACHE),
            scratch: Scratch::default(),
        }
    }

    /// The `parity x data` coefficient matrix for `shape`, row-major.
    pub fn parity_matrix(&mut self, shape: BlockShape) -> Result<&[u8], FecError> {
        self.check_shape(shape)?;
        let idx = self.matrix_index(shape.data, shape.parity)?;
        Ok(&self.cache[idx].2)
    }

    /// Finds or builds the matrix for (data, parity) and moves it to the cache front.
    fn matrix_index(&mut self, data: usize, parity: usize) -> Result<usize, FecError> {
        if let Some(pos) = self
            .cache
            .iter()
            .position(|(k, m, _)| *k == data && *m == parity)
        {
            if pos != 0 {
                let entry = self.cache.remove(pos);
                self.cache.insert(0, entry);
            }
            return Ok(0);
        }
        let rows = match &self.matrix {
            Matrix::Cauchy => cauchy_rows(data, parity),
            Matrix::Fixed {
                data: k,
                parity: m,
                rows,
            } => {
                if (*k, *m) != (data, parity) {
                    return Err(FecError::UnsupportedShape {
                        data,
                        parity,
                        shard_len: 0,
                        reason: "this fixed matrix supports a single shape",
                    });
                }
                rows.clone()
            }
        };
        if self.cache.len() == MATRIX_CACHE {
            self.cache.pop();
        }
        self.cache.insert(0, (data, parity, rows));
        Ok(0)
    }
}

/// nanors' Cauchy rows: `parity[j][i] = 1 / ((m + i) xor j)`. `m + i <= 254` and
/// `j < m <= m + i`, so the operand is never zero.
fn cauchy_rows(data: usize, parity: usize) -> Vec<u8> {
    let mut rows = Vec::with_capacity(data * parity);
    for j in 0..parity {
        for i in 0..data {
            let x = ((parity + i) ^ j) as u8;
            rows.push(gf256::inv(x).expect("Cauchy operand is never zero"));
        }
    }
    rows
}

/// The SIMD kernels work in 32-byte steps and finish a slice's last `len % 32` bytes
/// one at a time; shard tails are therefore gathered and processed as whole vectors.
const VECTOR: usize = 32;

/// `out[o] = sum_i coeffs[o * n_in + i] * input(i)` for every output shard `o`.
///
/// Inputs are visited in the outer loop so each stays in L1 while it is folded into
/// every output; outputs are processed in byte tiles sized so that all of them fit in
/// L1 together. The last `shard_len % 32` bytes of every shard (16 of a 1392-byte
/// GameStream packet) would each cost a scalar table lookup in the kernel; instead they
/// are gathered into 32-byte lanes in `tails`, combined there, and scattered back.
fn combine<'a>(
    coeffs: &[u8],
    n_in: usize,
    input: impl Fn(usize) -> &'a [u8],
    out: &mut [u8],
    shard_len: usize,
    tails: &mut Vec<u8>,
) {
    let n_out = out.len() / shard_len;
    debug_assert_eq!(coeffs.len(), n_out * n_in);
    let body = shard_len - shard_len % VECTOR;
    // Split the body into as few equal tiles as keep all outputs' tiles in L1.
    let tiles = (n_out * body).div_ceil(TILE_BUDGET).max(1);
    let tile = body.div_ceil(tiles).div_ceil(VECTOR) * VECTOR;
    let mut start = 0;
    while start < body {
        let end = (start + tile).min(body);
        for i in 0..n_in {
            let src = &input(i)[start..end];
            for o in 0..n_out {
                let dst = &mut out[o * shard_len + start..o * shard_len + end];
                mul_into(coeffs[o * n_in + i], src, dst, i == 0);
            }
        }
        start = end;
    }
    let tail = shard_len - body;
    if tail == 0 {
        return;
    }
    tails.clear();
    tails.resize((n_in + n_out) * VECTOR, 0);
    let (tin, tout) = tails.split_at_mut(n_in * VECTOR);
    for i in 0..n_in {
        tin[i * VECTOR..i * VECTOR + tail].copy_from_slice(&input(i)[body..]);
    }
    for i in 0..n_in {
        let src = &tin[i * VECTOR..(i + 1) * VECTOR];
        for o in 0..n_out {
            let dst = &mut tout[o * VECTOR..(o + 1) * VECTOR];
            mul_into(coeffs[o * n_in + i], src, dst, i == 0);
        }
    }
    for o in 0..n_out {
        out[o * shard_len + body..(o + 1) * shard_len]
            .copy_from_slice(&tout[o * VECTOR..o * VECTOR + tail]);
    }
}

/// `dst = c * src` when `first`, else `dst ^= c * src`.
#[inline]
fn mul_into(c: u8, src: &[u8], dst: &mut [u8], first: bool) {
    if first {
        galois_8::mul_slice(c, src, dst);
    } else if c != 0 {
        galois_8::mul_slice_xor(c, src, dst);
    }
}

impl ErasureCode for Gf8Rs {
    fn max_shards(&self) -> usize {
        MAX_SHARDS
    }

    fn shard_len_multiple(&self) -> usize {
        1
    }

    fn encode(&mut self, shape: BlockShape, block: &mut [u8]) -> Result<(), FecError> {
        self.check_shape(shape)?;
        if block.len() != shape.buffer_len() {
            return Err(FecError::BufferMismatch {
                expected: shape.buffer_len(),
                actual: block.len(),
            });
        }
        if shape.parity == 0 {
            return Ok(());
        }
        let idx = self.matrix_index(shape.data, shape.parity)?;
        let len = shape.shard_len;
        let (data, parity) = block.split_at_mut(shape.data * len);
        let data: &[u8] = data;
        combine(
            &self.cache[idx].2,
            shape.data,
            |i| &data[i * len..(i + 1) * len],
            parity,
            len,
            &mut self.scratch.tails,
        );
        Ok(())
    }

    fn reconstruct(
        &mut self,
        shape: BlockShape,
        block: &mut [u8],
        present: &[bool],
    ) -> Result<(), FecError> {
        self.check_shape(shape)?;
        let lost_data = check_reconstruct_args(shape, block, present)?;
        if lost_data == 0 {
            return Ok(());
        }
        let idx = self.matrix_index(shape.data, shape.parity)?;
        let (k, len) = (shape.data, shape.shard_len);
        let rows = &self.cache[idx].2;
        let s = &mut self.scratch;

        // Lost data columns, and as many surviving parity rows as there are lost columns.
        s.lost.clear();
        s.lost.extend((0..k).filter(|&i| !present[i]));
        let w = s.lost.len();
        s.inputs.clear();
        s.inputs.extend((0..k).filter(|&i| present[i]));
        s.inputs
            .extend((k..shape.total()).filter(|&i| present[i]).take(w));
        let chosen_parity = &s.inputs[k - w..];

        // The W x W system: chosen parity rows restricted to the lost columns.
        s.system.clear();
        for &p in chosen_parity {
            let row = &rows[(p - k) * k..(p - k + 1) * k];
            s.system.extend(s.lost.iter().map(|&c| row[c]));
        }
        if !gf256::invert_matrix(&mut s.system, w, &mut s.invert) {
            return Err(FecError::Codec("parity submatrix is singular".into()));
        }

        // lost[c] = sum_r inv[c][r] * (parity_r - sum_{known i} rows[r][i] * data_i):
        // over GF(2) subtraction is xor, so each lost shard is one linear combination of
        // the known data shards and the chosen parity shards.
        let n_in = k; // (k - w) known data shards + w parity shards
        s.coeffs.clear();
        s.coeffs.resize(w * n_in, 0);
        // Known-data coefficients: sum_r inv[c][r] * rows[p_r][known columns]. Each
        // parity row's known columns are gathered once and folded into every output row.
        for (r, &p) in chosen_parity.iter().enumerate() {
            for c in 0..w {
                s.coeffs[c * n_in + k - w + r] = s.system[c * w + r];
            }
            if k == w {
                continue;
            }
            let row = &rows[(p - k) * k..(p - k + 1) * k];
            s.row.clear();
            s.row.extend(s.inputs[..k - w].iter().map(|&i| row[i]));
            for c in 0..w {
                let f = s.system[c * w + r];
                let dst = &mut s.coeffs[c * n_in..c * n_in + k - w];
                mul_into(f, &s.row, dst, r == 0);
            }
        }

        // Every output byte is assigned by the first input's pass: no need to zero.
        if s.out.len() < w * len {
            s.out.resize(w * len, 0);
        }
        {
            let src: &[u8] = block;
            let inputs = &s.inputs;
            combine(
                &s.coeffs,
                n_in,
                |i| &src[inputs[i] * len..(inputs[i] + 1) * len],
                &mut s.out[..w * len],
                len,
                &mut s.tails,
            );
        }
        for (c, &i) in s.lost.iter().enumerate() {
            block[i * len..(i + 1) * len].copy_from_slice(&s.out[c * len..(c + 1) * len]);
        }
        Ok(())
    }
}
