//! The native punktfunk/1 code: Leopard-RS over GF(2^16) through `reed-solomon-simd`.
//!
//! GF(2^16) lifts GameStream's 255-shard ceiling, so a whole frame is one block (up to
//! 65535 shards) and a loss anywhere in the frame can be repaired by any parity shard.
//! That is what takes the native protocol past the ~1 Gbps FEC wall. The encoder and
//! decoder keep their work buffers across `reset`, so steady state allocates nothing.

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use super::{BlockShape, ErasureCode, FecError, check_reconstruct_args};

/// Most shards one GF(2^16) block may hold.
pub const MAX_SHARDS: usize = 65535;

/// Leopard-RS over GF(2^16).
pub struct Gf16Rs {
    encoder: Option<ReedSolomonEncoder>,
    decoder: Option<ReedSolomonDecoder>,
}

impl std::fmt::Debug for Gf16Rs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gf16Rs").finish_non_exhaustive()
    }
}

impl Default for Gf16Rs {
    fn default() -> Self {
        Self::new()
    }
}

fn codec_err(e: reed_solomon_simd::Error) -> FecError {
    FecError::Codec(e.to_string())
}

impl Gf16Rs {
    /// A coder with no work buffers yet; the first block sizes them.
    pub fn new() -> Self {
        Self {
            encoder: None,
            decoder: None,
        }
    }

    fn check(&self, shape: BlockShape) -> Result<(), FecError> {
        self.check_shape(shape)?;
        if shape.parity > 0 && !ReedSolomonEncoder::supports(shape.data, shape.parity) {
            return Err(FecError::UnsupportedShape {
                data: shape.data,
                parity: shape.parity,
                shard_len: shape.shard_len,
                reason: "reed-solomon-simd does not support this data/parity split",
            });
        }
        Ok(())
    }
}

impl Gf16Rs {
    /// Encodes parity for `shape` from data shards that need not be contiguous (the
    /// native packetizer feeds them straight out of the packets it is building, so a
    /// frame is copied once, not three times) and hands each parity shard to
    /// `parity(index, bytes)`.
    pub fn encode_shards<'a>(
        &mut self,
        shape: BlockShape,
        originals: impl IntoIterator<Item = &'a [u8]>,
        mut parity: impl FnMut(usize, &[u8]),
    ) -> Result<(), FecError> {
        self.check(shape)?;
        if shape.parity == 0 {
            return Ok(());
        }
        let (k, m, len) = (shape.data, shape.parity, shape.shard_len);
        let encoder = match &mut self.encoder {
            Some(e) => {
                e.reset(k, m, len).map_err(codec_err)?;
                e
            }
            slot => slot.insert(ReedSolomonEncoder::new(k, m, len).map_err(codec_err)?),
        };
        for shard in originals {
            encoder.add_original_shard(shard).map_err(codec_err)?;
        }
        let result = encoder.encode().map_err(codec_err)?;
        for (i, shard) in result.recovery_iter().enumerate() {
            parity(i, shard);
        }
        Ok(())
    }
}

impl ErasureCode for Gf16Rs {
    fn max_shards(&self) -> usize {
        MAX_SHARDS
    }

    fn shard_len_multiple(&self) -> usize {
        2
    }

    fn encode(&mut self, shape: BlockShape, block: &mut [u8]) -> Result<(), FecError> {
        self.check(shape)?;
        if block.len() != shape.buffer_len() {
            return Err(FecError::BufferMismatch {
                expected: shape.buffer_len(),
                actual: block.len(),
            });
        }
        let len = shape.shard_len;
        let (data, parity) = block.split_at_mut(shape.data * len);
        self.encode_shards(shape, data.chunks_exact(len), |i, shard| {
            parity[i * len..(i + 1) * len].copy_from_slice(shard);
        })
    }

    fn reconstruct(
        &mut self,
        shape: BlockShape,
        block: &mut [u8],
        present: &[bool],
    ) -> Result<(), FecError> {
        self.check(shape)?;
        if check_reconstruct_args(shape, block, present)? == 0 {
            return Ok(());
        }
        let (k, m, len) = (shape.data, shape.parity, shape.shard_len);
        let decoder = match &mut self.decoder {
            Some(d) => {
                d.reset(k, m, len).map_err(codec_err)?;
                d
            }
            slot => slot.insert(ReedSolomonDecoder::new(k, m, len).map_err(codec_err)?),
        };
        for (i, shard) in block.chunks_exact(len).enumerate() {
            if !present[i] {
                continue;
            }
            if i < k {
                decoder.add_original_shard(i, shard).map_err(codec_err)?;
            } else {
                decoder
                    .add_recovery_shard(i - k, shard)
                    .map_err(codec_err)?;
            }
        }
        let result = decoder.decode().map_err(codec_err)?;
        for (i, restored) in result.restored_original_iter() {
            block[i * len..(i + 1) * len].copy_from_slice(restored);
        }
        Ok(())
    }
}
