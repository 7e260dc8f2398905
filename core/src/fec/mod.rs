//! Forward error correction: two systematic Reed-Solomon erasure codes behind one
//! small trait.
//!
//! - [`Gf8Rs`]: GameStream's code over GF(2^8), bit-compatible with
//!   moonlight-common-c (a Cauchy parity matrix, at most 255 shards a block), built on
//!   reed-solomon-erasure's SIMD slice kernels.
//! - [`Gf16Rs`]: the native punktfunk/1 code, GF(2^16) Leopard-RS through
//!   `reed-solomon-simd`, so a whole frame (up to 65535 shards) is one block.
//!
//! Both work on one contiguous buffer holding the block's shards back to back: `k`
//! data shards, then `m` parity shards, each `shard_len` bytes. That is the layout
//! the packetizers keep their packets in, so no shard is copied to be encoded.

mod gf16;
pub mod gf256;
mod gf8;

pub use gf8::Gf8Rs;
pub use gf16::Gf16Rs;

use thiserror::Error;

/// The shape of one FEC block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockShape {
    /// Data shards (`k`).
    pub data: usize,
    /// Parity shards (`m`).
    pub parity: usize,
    /// Bytes in every shard.
    pub shard_len: usize,
}

impl BlockShape {
    /// Total shards in the block.
    pub fn total(&self) -> usize {
        self.data + self.parity
    }

    /// Bytes the whole block occupies in a contiguous buffer.
    pub fn buffer_len(&self) -> usize {
        self.total() * self.shard_len
    }
}

/// Why an FEC operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FecError {
    /// The block shape is outside what this code supports.
    #[error("unsupported block shape {data}+{parity} x {shard_len} bytes: {reason}")]
    UnsupportedShape {
        /// Data shards asked for.
        data: usize,
        /// Parity shards asked for.
        parity: usize,
        /// Shard length asked for.
        shard_len: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The buffer or the presence map does not match the block shape.
    #[error("buffer of {actual} bytes does not match a block needing {expected}")]
    BufferMismatch {
        /// Bytes (or presence flags) the shape needs.
        expected: usize,
        /// Bytes (or presence flags) supplied.
        actual: usize,
    },
    /// Too many shards are missing: the block cannot be recovered. The buffer was not
    /// modified.
    #[error("unrecoverable block: {missing} shards missing, only {parity} parity shards")]
    Unrecoverable {
        /// Missing shards (data and parity).
        missing: usize,
        /// Parity shards in the block.
        parity: usize,
    },
    /// The underlying codec refused the operation.
    #[error("codec failure: {0}")]
    Codec(String),
}

/// A systematic erasure code over shards stored back to back in one buffer.
///
/// Implementations keep their matrices and work buffers between calls, so steady-state
/// encoding and decoding of same-shaped blocks allocates nothing.
pub trait ErasureCode {
    /// The largest `data + parity` a block may have.
    fn max_shards(&self) -> usize;

    /// Shard lengths must be a multiple of this.
    fn shard_len_multiple(&self) -> usize;

    /// Fills the `parity` shards of `block` from its `data` shards.
    fn encode(&mut self, shape: BlockShape, block: &mut [u8]) -> Result<(), FecError>;

    /// Rebuilds every missing data shard in place. `present[i]` says whether shard `i`
    /// (data first, then parity) arrived. On success all data shards hold the original
    /// bytes; parity shards are left as they were. With more shards missing than there
    /// are parity shards this returns [`FecError::Unrecoverable`] and leaves `block`
    /// untouched: it never produces wrong bytes.
    fn reconstruct(
        &mut self,
        shape: BlockShape,
        block: &mut [u8],
        present: &[bool],
    ) -> Result<(), FecError>;

    /// Checks `shape` against this code's limits.
    fn check_shape(&self, shape: BlockShape) -> Result<(), FecError> {
        let fail = |reason| {
            Err(FecError::UnsupportedShape {
                data: shape.data,
                parity: shape.parity,
                shard_len: shape.shard_len,
                reason,
            })
        };
        if shape.data == 0 {
            return fail("a block needs at least one data shard");
        }
        if shape.total() > self.max_shards() {
            return fail("too many shards for this field");
        }
        if shape.shard_len == 0 || !shape.shard_len.is_multiple_of(self.shard_len_multiple()) {
            return fail("shard length is zero or not a multiple the codec needs");
        }
        Ok(())
    }
}

/// Validates the buffer and presence map against `shape` and counts missing shards.
/// Returns the number of missing data shards, or an error when the block cannot be
/// recovered.
pub(crate) fn check_reconstruct_args(
    shape: BlockShape,
    block: &[u8],
    present: &[bool],
) -> Result<usize, FecError> {
    if block.len() != shape.buffer_len() {
        return Err(FecError::BufferMismatch {
            expected: shape.buffer_len(),
            actual: block.len(),
        });
    }
    if present.len() != shape.total() {
        return Err(FecError::BufferMismatch {
            expected: shape.total(),
            actual: present.len(),
        });
    }
    let missing = present.iter().filter(|p| !**p).count();
    if missing > shape.parity {
        return Err(FecError::Unrecoverable {
            missing,
            parity: shape.parity,
        });
    }
    Ok(present[..shape.data].iter().filter(|p| !**p).count())
}

/// Number of parity shards GameStream pairs with `data` shards at `percent` percent:
/// `ceil(data * percent / 100)`, exactly as moonlight-common-c computes it
/// (`RtpVideoQueue.c`).
pub fn gamestream_parity_count(data: usize, percent: usize) -> usize {
    (data * percent).div_ceil(100)
}

#[cfg(test)]
mod tests;
