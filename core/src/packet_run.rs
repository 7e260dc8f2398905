//! The one output type of both packetizers: a run of equal-length packets, back to
//! back in one reused buffer, with the FEC blocks they form.
//!
//! GameStream (`gamestream::video`) cuts a frame into up to four GF(2^8) blocks;
//! punktfunk/1 (`native::packetizer`) puts a whole frame in one GF(2^16) block. Either
//! way the packets all have the same length and sit contiguously, so a whole run (or
//! any slice of it the pacer releases) goes out as UDP GSO batches in one `sendmsg`
//! per 64 KiB, and the host's send path is the same code for both protocols.

/// Most FEC blocks one run describes (GameStream's two-bit block number; punktfunk/1
/// uses one).
pub const MAX_RUN_BLOCKS: usize = 4;

/// One FEC block of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockInfo {
    /// Index of the block's first packet in the run.
    pub first_packet: usize,
    /// Data packets in the block.
    pub data: usize,
    /// Parity packets in the block.
    pub parity: usize,
    /// The parity percentage the block advertises (saturating at 255).
    pub percent: u8,
}

/// The packets of one frame. The buffer grows to the largest frame seen and is
/// reused, so steady state allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct PacketRun {
    buf: Vec<u8>,
    packet_len: usize,
    count: usize,
    blocks: [BlockInfo; MAX_RUN_BLOCKS],
    block_count: usize,
}

impl PacketRun {
    /// An empty run.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of packets.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the run holds no packets.
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

    /// Packet `i`, mutably (for in-place encryption or loss injection in tests).
    pub fn packet_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.buf[i * self.packet_len..(i + 1) * self.packet_len]
    }

    /// All packets in order.
    pub fn packets(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.as_bytes().chunks_exact(self.packet_len.max(1))
    }

    /// Packets `range` as one contiguous buffer (a GSO payload).
    pub fn slice(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.buf[range.start * self.packet_len..range.end * self.packet_len]
    }

    /// All packets as one contiguous buffer.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.count * self.packet_len]
    }

    /// The FEC blocks of the frame.
    pub fn blocks(&self) -> &[BlockInfo] {
        &self.blocks[..self.block_count]
    }

    /// Sizes the run for `count` packets of `packet_len` bytes and returns the whole
    /// buffer for the packetizer to fill. Contents are stale until written.
    pub(crate) fn reset(&mut self, packet_len: usize, count: usize) -> &mut [u8] {
        self.packet_len = packet_len;
        self.count = count;
        self.block_count = 0;
        if self.buf.len() < packet_len * count {
            self.buf.resize(packet_len * count, 0);
        }
        &mut self.buf[..packet_len * count]
    }

    /// Records the run's FEC blocks (at most [`MAX_RUN_BLOCKS`]).
    pub(crate) fn set_blocks(&mut self, blocks: &[BlockInfo]) {
        let n = blocks.len().min(MAX_RUN_BLOCKS);
        self.blocks[..n].copy_from_slice(&blocks[..n]);
        self.block_count = n;
    }

    /// The packet bytes of block-relative range `start..start + len`, mutably (the
    /// packetizer encodes FEC over whole packets in place).
    pub(crate) fn bytes_mut(&mut self, start: usize, len: usize) -> &mut [u8] {
        &mut self.buf[start..start + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_reuses_its_buffer_and_slices_packets() {
        let mut run = PacketRun::new();
        let buf = run.reset(4, 3);
        buf.copy_from_slice(b"aaaabbbbcccc");
        run.set_blocks(&[BlockInfo {
            first_packet: 0,
            data: 2,
            parity: 1,
            percent: 50,
        }]);
        assert_eq!(run.len(), 3);
        assert_eq!(run.packet(1), b"bbbb");
        assert_eq!(run.slice(1..3), b"bbbbcccc");
        assert_eq!(run.packets().count(), 3);
        assert_eq!(run.blocks()[0].parity, 1);
        let cap = run.buf.capacity();
        run.reset(4, 2);
        assert_eq!(
            (run.as_bytes(), run.buf.capacity()),
            (&b"aaaabbbb"[..], cap)
        );
        assert!(run.blocks().is_empty());
    }
}
