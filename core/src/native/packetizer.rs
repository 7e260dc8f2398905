//! Frame -> one GF(2^16) FEC block -> sealed punktfunk/1 packets.

use super::wire::{
    HEADER_LEN, KIND_VIDEO, MAX_SHARDS, NativeError, OVERHEAD, PacketHeader, PacketSealer,
};
use crate::fec::{BlockShape, ErasureCode, Gf16Rs};

/// How frames are cut and protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeConfig {
    /// Bytes of frame data per packet (even: GF(2^16) works on 16-bit words). 1400 -
    /// overhead fits a 1500-byte MTU with IPv6 and UDP headers.
    pub shard_len: usize,
    /// Parity shards as a percentage of data shards.
    pub parity_percent: u16,
    /// Fewest parity shards a frame gets (small frames would otherwise get none).
    pub min_parity: usize,
}

impl Default for NativeConfig {
    fn default() -> Self {
        Self {
            shard_len: 1400 - OVERHEAD,
            parity_percent: 10,
            min_parity: 2,
        }
    }
}

impl NativeConfig {
    /// Bytes of every packet on the wire.
    pub fn packet_len(&self) -> usize {
        self.shard_len + OVERHEAD
    }

    /// Data and parity shard counts for a frame of `len` bytes.
    pub fn shape_for(&self, len: usize) -> Result<BlockShape, NativeError> {
        if self.shard_len == 0 || !self.shard_len.is_multiple_of(2) {
            return Err(NativeError::Malformed(
                "shard length must be even and non-zero",
            ));
        }
        if len == 0 {
            return Err(NativeError::Malformed("empty frame"));
        }
        let data = len.div_ceil(self.shard_len);
        let parity = (data * usize::from(self.parity_percent))
            .div_ceil(100)
            .max(self.min_parity);
        if data + parity > MAX_SHARDS || len > u32::MAX as usize {
            return Err(NativeError::Malformed("frame too large for one block"));
        }
        Ok(BlockShape {
            data,
            parity,
            shard_len: self.shard_len,
        })
    }
}

/// The sealed packets of one frame, back to back, all the same length: one GSO send.
#[derive(Debug, Clone, Default)]
pub struct NativeBatch {
    buf: Vec<u8>,
    packet_len: usize,
    count: usize,
}

impl NativeBatch {
    /// Number of packets.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of every packet.
    pub fn packet_len(&self) -> usize {
        self.packet_len
    }

    /// Packet `i`.
    pub fn packet(&self, i: usize) -> &[u8] {
        &self.buf[i * self.packet_len..(i + 1) * self.packet_len]
    }

    /// All packets in order.
    pub fn packets(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.as_bytes().chunks_exact(self.packet_len.max(1))
    }

    /// All packets as one contiguous buffer.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.count * self.packet_len]
    }
}

/// Turns frames into sealed packets. Buffers grow to the largest frame seen and are
/// reused, so steady state allocates nothing.
#[derive(Debug)]
pub struct NativePacketizer {
    config: NativeConfig,
    fec: Gf16Rs,
    sealer: PacketSealer,
    block: Vec<u8>,
}

impl NativePacketizer {
    /// A packetizer sealing with `sealer`.
    pub fn new(config: NativeConfig, sealer: PacketSealer) -> Result<Self, NativeError> {
        config.shape_for(1)?;
        Ok(Self {
            config,
            fec: Gf16Rs::new(),
            sealer,
            block: Vec::new(),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &NativeConfig {
        &self.config
    }

    /// Changes the parity percentage from the next frame on (adaptive FEC).
    pub fn set_parity_percent(&mut self, percent: u16) {
        self.config.parity_percent = percent;
    }

    /// Cuts `data` into shards, adds parity, and seals every packet into `out`.
    pub fn packetize(
        &mut self,
        frame_id: u32,
        flags: u8,
        data: &[u8],
        out: &mut NativeBatch,
    ) -> Result<(), NativeError> {
        let shape = self.config.shape_for(data.len())?;
        let len = shape.shard_len;
        if self.block.len() < shape.buffer_len() {
            self.block.resize(shape.buffer_len(), 0);
        }
        let block = &mut self.block[..shape.buffer_len()];
        block[..data.len()].copy_from_slice(data);
        block[data.len()..shape.data * len].fill(0);
        self.fec
            .encode(shape, block)
            .map_err(|_| NativeError::Malformed("FEC refused the frame shape"))?;

        let packet_len = len + OVERHEAD;
        let total = shape.total();
        if out.buf.len() < total * packet_len {
            out.buf.resize(total * packet_len, 0);
        }
        out.packet_len = packet_len;
        out.count = total;
        for i in 0..total {
            let pkt = &mut out.buf[i * packet_len..(i + 1) * packet_len];
            PacketHeader {
                kind: KIND_VIDEO,
                flags,
                counter: 0, // the sealer writes it
                frame_id,
                shard_index: i as u16,
                data_shards: shape.data as u16,
                parity_shards: shape.parity as u16,
                frame_len: data.len() as u32,
            }
            .write(&mut pkt[..HEADER_LEN])?;
            pkt[HEADER_LEN..HEADER_LEN + len].copy_from_slice(&block[i * len..(i + 1) * len]);
            self.sealer.seal(pkt)?;
        }
        Ok(())
    }
}
