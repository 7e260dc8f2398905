//! Frame -> one GF(2^16) FEC block -> sealed punktfunk/1 packets.

use super::wire::{
    HEADER_LEN, KIND_VIDEO, MAX_SHARDS, NativeError, OVERHEAD, PacketHeader, PacketSealer,
};
use crate::fec::{BlockShape, Gf16Rs};
use crate::packet_run::{BlockInfo, PacketRun};

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

/// Turns frames into sealed packets. Buffers grow to the largest frame seen and are
/// reused, so steady state allocates nothing.
#[derive(Debug)]
pub struct NativePacketizer {
    config: NativeConfig,
    fec: Gf16Rs,
    sealer: PacketSealer,
}

impl NativePacketizer {
    /// A packetizer sealing with `sealer`.
    pub fn new(config: NativeConfig, sealer: PacketSealer) -> Result<Self, NativeError> {
        config.shape_for(1)?;
        Ok(Self {
            config,
            fec: Gf16Rs::new(),
            sealer,
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
    ///
    /// The frame is copied once, straight into the packets; the FEC encoder reads the
    /// data shards from there and its parity lands in the parity packets, and then
    /// every packet is sealed in place. `out` describes one block.
    pub fn packetize(
        &mut self,
        frame_id: u32,
        flags: u8,
        data: &[u8],
        out: &mut PacketRun,
    ) -> Result<(), NativeError> {
        let shape = self.config.shape_for(data.len())?;
        let len = shape.shard_len;
        let packet_len = len + OVERHEAD;
        let total = shape.total();
        let buf = out.reset(packet_len, total);
        for (i, pkt) in buf.chunks_exact_mut(packet_len).enumerate() {
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
            if i < shape.data {
                let shard = &mut pkt[HEADER_LEN..HEADER_LEN + len];
                let src = &data[(i * len).min(data.len())..((i + 1) * len).min(data.len())];
                shard[..src.len()].copy_from_slice(src);
                shard[src.len()..].fill(0);
            }
        }
        let (data_packets, parity_packets) = buf.split_at_mut(shape.data * packet_len);
        self.fec
            .encode_shards(
                shape,
                data_packets
                    .chunks_exact(packet_len)
                    .map(|p| &p[HEADER_LEN..HEADER_LEN + len]),
                |i, shard| {
                    let at = i * packet_len + HEADER_LEN;
                    parity_packets[at..at + len].copy_from_slice(shard);
                },
            )
            .map_err(|_| NativeError::Malformed("FEC refused the frame shape"))?;
        for pkt in buf.chunks_exact_mut(packet_len) {
            self.sealer.seal(pkt)?;
        }
        out.set_blocks(&[BlockInfo {
            first_packet: 0,
            data: shape.data,
            parity: shape.parity,
            percent: u8::try_from(self.config.parity_percent).unwrap_or(u8::MAX),
        }]);
        Ok(())
    }
}
