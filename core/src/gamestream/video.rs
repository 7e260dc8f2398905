//! GameStream video packets: the packetizer the host runs and a reassembler that
//! behaves like moonlight-common-c's (`RtpVideoQueue.c`), used by tests and the loss
//! harness.
//!
//! Layout of every packet, all `packet_size + 16` bytes long (`Video.h`, Sunshine
//! `stream.cpp`):
//!
//! | bytes | field |
//! |---|---|
//! | 0..12 | RTP header: `0x90`, type 0, BE16 sequence, BE32 90 kHz timestamp, ssrc 0 |
//! | 12..16 | reserved (the RTP extension words) |
//! | 16..32 | `NV_VIDEO_PACKET`: LE32 `streamPacketIndex` (`index << 8`), LE32 `frameIndex`, `flags`, `extraFlags`, `multiFecFlags` (0x10), `multiFecBlocks` (current block in bits 4-5, last block in bits 6-7), LE32 `fecInfo` (data shards in bits 22-31, shard index in 12-21, FEC percentage in 4-11) |
//! | 32.. | payload: `packet_size - 16` bytes, the last data packet of a frame zero-padded |
//!
//! A frame's payload starts with the 8-byte frame header: `0x01`, LE16 host processing
//! latency in 0.1 ms, the frame type, LE16 length of the last packet's payload, two zero
//! bytes. The payload is cut into at most 4 FEC blocks of at most 255 shards; each
//! block's parity is Reed-Solomon over GF(2^8) computed over the *whole* packets,
//! headers included, and the parity packets then get their own RTP header, frame index,
//! block bits and `fecInfo` written over the parity bytes in those places, as Sunshine
//! does. Only the payload and `flags` of a recovered packet are trusted by the client.

use thiserror::Error;

use super::rtp::{RTP_EXTENSION, RTP_HEADER_LEN, RTP_VERSION_BITS, RtpHeader, frame_before};
use crate::fec::{BlockShape, ErasureCode, FecError, Gf8Rs, gamestream_parity_count};
use crate::wire::{Reader, WireError};

/// moonlight-common-c's default `packetSize`.
pub const DEFAULT_PACKET_SIZE: usize = 1392;
/// RTP header plus the 4 reserved extension bytes (`MAX_RTP_HEADER_SIZE`).
pub const RTP_PREFIX_LEN: usize = RTP_HEADER_LEN + 4;
/// `sizeof(NV_VIDEO_PACKET)`.
pub const NV_HEADER_LEN: usize = 16;
/// The short frame header at the start of every frame's payload.
pub const FRAME_HEADER_LEN: usize = 8;
/// At most 4 FEC blocks a frame: two bits carry the block numbers.
pub const MAX_FEC_BLOCKS: usize = crate::packet_run::MAX_RUN_BLOCKS;
/// GF(2^8) shards per block.
pub const MAX_BLOCK_SHARDS: usize = 255;
/// The 10-bit shard-count and shard-index fields of `fecInfo`.
const MAX_FEC_INFO_SHARDS: usize = 1023;

/// `NV_VIDEO_PACKET` flag: the packet carries picture data.
pub const FLAG_CONTAINS_PIC_DATA: u8 = 0x1;
/// `NV_VIDEO_PACKET` flag: last data packet of its FEC block.
pub const FLAG_EOF: u8 = 0x2;
/// `NV_VIDEO_PACKET` flag: first data packet of its FEC block.
pub const FLAG_SOF: u8 = 0x4;
const MULTI_FEC_FLAGS: u8 = 0x10;

/// Why a video packet could not be produced or parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VideoError {
    /// The packet was shorter than its headers or otherwise malformed.
    #[error("malformed video packet: {0}")]
    Malformed(&'static str),
    /// A field ran past the end of the packet.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The stream configuration is unusable.
    #[error("invalid video config: {0}")]
    Config(&'static str),
    /// The frame does not fit in 4 FEC blocks of 1023 packets.
    #[error("frame of {0} bytes is too large for one GameStream frame")]
    FrameTooLarge(usize),
    /// FEC failed.
    #[error(transparent)]
    Fec(#[from] FecError),
}

/// The frame type byte of the frame header (Sunshine `video_short_frame_header_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    /// A normal P-frame.
    P = 1,
    /// An IDR frame.
    Idr = 2,
    /// A P-frame with intra-refresh blocks.
    IntraRefresh = 4,
    /// The first P-frame after a reference frame invalidation.
    AfterRefInvalidation = 5,
}

impl FrameType {
    /// Parses the byte; unknown values are an error.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => FrameType::P,
            2 => FrameType::Idr,
            4 => FrameType::IntraRefresh,
            5 => FrameType::AfterRefInvalidation,
            _ => return None,
        })
    }
}

/// What the client negotiated for the video stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoConfig {
    /// The client's `packetSize`: NV header plus payload bytes per packet.
    pub packet_size: usize,
    /// FEC percentage (`x-nv-vqos[0].fec.*`), 0 to 255.
    pub fec_percent: u8,
    /// Fewest parity packets per block (`minRequiredFecPackets`), raised by raising the
    /// block's percentage.
    pub min_parity: usize,
}

impl Default for VideoConfig {
    fn default() -> Self {
        Self {
            packet_size: DEFAULT_PACKET_SIZE,
            fec_percent: 20,
            min_parity: 2,
        }
    }
}

impl VideoConfig {
    /// Bytes of every packet on the wire.
    pub fn wire_len(&self) -> usize {
        self.packet_size + RTP_PREFIX_LEN
    }

    /// Frame payload bytes each packet carries.
    pub fn payload_per_packet(&self) -> usize {
        self.packet_size - NV_HEADER_LEN
    }

    fn validate(&self) -> Result<(), VideoError> {
        if self.packet_size <= NV_HEADER_LEN + FRAME_HEADER_LEN || self.packet_size > 65_000 {
            return Err(VideoError::Config("packet size out of range"));
        }
        Ok(())
    }
}

/// One encoded frame handed to the packetizer.
#[derive(Debug, Clone, Copy)]
pub struct VideoFrame<'a> {
    /// The encoded bitstream (Annex B for H.264/HEVC, OBUs for AV1).
    pub data: &'a [u8],
    /// Frame number; the client expects them to increase by one.
    pub frame_index: u32,
    /// 90 kHz capture timestamp.
    pub rtp_timestamp: u32,
    /// Frame type for the frame header.
    pub frame_type: FrameType,
    /// Capture-to-send latency in 0.1 ms, shown by the client.
    pub host_latency: u16,
}

pub use crate::packet_run::{BlockInfo, PacketRun};

/// Splits a frame into FEC blocks and lays out its packets.
#[derive(Debug, Clone)]
pub struct VideoPacketizer {
    config: VideoConfig,
    fec: Gf8Rs,
    /// Count of packets sent on this stream: the RTP sequence number is its low 16 bits
    /// and `streamPacketIndex` carries it shifted left by 8.
    next_packet: u32,
}

/// How the packets of a frame split into blocks, computed before any byte is written.
/// Returns the blocks and how many of the array's entries are used.
fn plan_blocks(
    config: &VideoConfig,
    data_packets: usize,
) -> Result<([BlockInfo; MAX_FEC_BLOCKS], usize), VideoError> {
    let mut percent = usize::from(config.fec_percent);
    // D + ceil(D * F / 100) <= 255  <=>  D <= 255 * 100 / (100 + F)   (Sunshine's rule)
    let max_data = MAX_BLOCK_SHARDS * 100 / (100 + percent);
    let mut blocks = data_packets.div_ceil(max_data).max(1);
    if blocks > MAX_FEC_BLOCKS {
        // An enormous frame: send it without FEC, as Sunshine does.
        percent = 0;
        blocks = MAX_FEC_BLOCKS;
        if data_packets > MAX_FEC_BLOCKS * MAX_FEC_INFO_SHARDS {
            return Err(VideoError::FrameTooLarge(
                data_packets * (config.packet_size - NV_HEADER_LEN),
            ));
        }
    }
    let mut plan = [BlockInfo::default(); MAX_FEC_BLOCKS];
    let mut first = 0;
    for (b, info) in plan.iter_mut().enumerate().take(blocks) {
        let data = data_packets / blocks + usize::from(b < data_packets % blocks);
        let (parity, block_percent) = block_parity(config, data, percent);
        *info = BlockInfo {
            first_packet: first,
            data,
            parity,
            percent: block_percent,
        };
        first += data + parity;
    }
    Ok((plan, blocks))
}

/// Parity count and advertised percentage for a block of `data` packets. The count is
/// always what the client will compute back from the percentage
/// (`ceil(data * percent / 100)`), even after raising it to `min_parity`.
fn block_parity(config: &VideoConfig, data: usize, percent: usize) -> (usize, u8) {
    if percent == 0 {
        return (0, 0);
    }
    let mut pct = percent;
    let room = MAX_BLOCK_SHARDS.saturating_sub(data);
    if gamestream_parity_count(data, pct) < config.min_parity.min(room) {
        pct = (100 * config.min_parity.min(room)).div_ceil(data);
    }
    pct = pct.min(255);
    while pct > 0 && gamestream_parity_count(data, pct) > room {
        pct -= 1;
    }
    (gamestream_parity_count(data, pct), pct as u8)
}

impl VideoPacketizer {
    /// A packetizer for one stream. Its first packet has sequence number 0.
    pub fn new(config: VideoConfig) -> Result<Self, VideoError> {
        config.validate()?;
        Ok(Self {
            config,
            fec: Gf8Rs::cauchy(),
            next_packet: 0,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &VideoConfig {
        &self.config
    }

    /// The FEC percentage for the next frames. moonlight-common-c reads it from every
    /// packet's `fecInfo`, so it may change from one frame to the next.
    pub fn set_fec_percent(&mut self, percent: u8) {
        self.config.fec_percent = percent;
    }

    /// Lays out every packet of `frame`, parity included, into `out`.
    pub fn packetize(
        &mut self,
        frame: &VideoFrame<'_>,
        out: &mut PacketRun,
    ) -> Result<(), VideoError> {
        let cfg = self.config;
        let per_packet = cfg.payload_per_packet();
        let payload_len = FRAME_HEADER_LEN + frame.data.len();
        let data_packets = payload_len.div_ceil(per_packet);
        let (plan, block_count) = plan_blocks(&cfg, data_packets)?;
        let plan = &plan[..block_count];
        let total: usize = plan.iter().map(|b| b.data + b.parity).sum();
        let packet_len = cfg.wire_len();
        out.reset(packet_len, total);

        let last_len = match payload_len % per_packet {
            0 => per_packet,
            n => n,
        };
        let mut frame_header = [0u8; FRAME_HEADER_LEN];
        frame_header[0] = 0x01;
        frame_header[1..3].copy_from_slice(&frame.host_latency.to_le_bytes());
        frame_header[3] = frame.frame_type as u8;
        frame_header[4..6].copy_from_slice(&(last_len as u16).to_le_bytes());

        let last_block = (block_count - 1) as u8;
        let mut payload_offset = 0usize; // position in (frame header ++ data)
        for (b, block) in plan.iter().enumerate() {
            let common = CommonFields {
                timestamp: frame.rtp_timestamp,
                frame_index: frame.frame_index,
                block_bits: ((b as u8) << 4) | (last_block << 6),
                data_shards: block.data,
                percent: block.percent,
            };
            for x in 0..block.data {
                let seq = self.next_packet.wrapping_add(x as u32);
                let pkt = out.packet_mut(block.first_packet + x);
                pkt[RTP_HEADER_LEN..RTP_PREFIX_LEN].fill(0);
                let nv = &mut pkt[RTP_PREFIX_LEN..RTP_PREFIX_LEN + NV_HEADER_LEN];
                nv[0..4].copy_from_slice(&(seq << 8).to_le_bytes());
                let mut flags = FLAG_CONTAINS_PIC_DATA;
                if x == 0 {
                    flags |= FLAG_SOF;
                }
                if x == block.data - 1 {
                    flags |= FLAG_EOF;
                }
                nv[8] = flags;
                nv[9] = 0;
                nv[10] = MULTI_FEC_FLAGS;
                let payload = &mut pkt[RTP_PREFIX_LEN + NV_HEADER_LEN..];
                fill_payload(payload, payload_offset, &frame_header, frame.data);
                payload_offset += per_packet;
                common.write(pkt, seq, x);
            }
            let shape = BlockShape {
                data: block.data,
                parity: block.parity,
                shard_len: packet_len,
            };
            let start = block.first_packet * packet_len;
            self.fec
                .encode(shape, out.bytes_mut(start, shape.buffer_len()))?;
            // Parity packets get their headers written over the parity bytes in those
            // places, exactly the fields Sunshine rewrites; `flags` and
            // `streamPacketIndex` stay parity so the client rebuilds them correctly.
            for x in block.data..block.data + block.parity {
                let seq = self.next_packet.wrapping_add(x as u32);
                common.write(out.packet_mut(block.first_packet + x), seq, x);
            }
            self.next_packet = self
                .next_packet
                .wrapping_add((block.data + block.parity) as u32);
        }
        out.set_blocks(plan);
        Ok(())
    }
}

/// The header fields every packet of a block carries, data and parity alike.
struct CommonFields {
    timestamp: u32,
    frame_index: u32,
    block_bits: u8,
    data_shards: usize,
    percent: u8,
}

impl CommonFields {
    /// Writes the RTP header, `frameIndex`, `multiFecBlocks` and `fecInfo` of packet
    /// `index` of the block, with stream packet count `seq`.
    fn write(&self, pkt: &mut [u8], seq: u32, index: usize) {
        let rtp = RtpHeader {
            flags: RTP_VERSION_BITS | RTP_EXTENSION,
            payload_type: 0,
            sequence: seq as u16,
            timestamp: self.timestamp,
            ssrc: 0,
        };
        rtp.write_to(&mut pkt[..RTP_HEADER_LEN])
            .expect("packet is longer than an RTP header");
        let fec_info = ((index as u32) << 12)
            | ((self.data_shards as u32) << 22)
            | (u32::from(self.percent) << 4);
        let nv = &mut pkt[RTP_PREFIX_LEN..RTP_PREFIX_LEN + NV_HEADER_LEN];
        nv[4..8].copy_from_slice(&self.frame_index.to_le_bytes());
        nv[11] = self.block_bits;
        nv[12..16].copy_from_slice(&fec_info.to_le_bytes());
    }
}

/// Copies the part of `header ++ data` starting at `offset` into `dst`, zero-filling
/// whatever is past the end.
fn fill_payload(dst: &mut [u8], offset: usize, header: &[u8], data: &[u8]) {
    let mut written = 0;
    if offset < header.len() {
        let n = (header.len() - offset).min(dst.len());
        dst[..n].copy_from_slice(&header[offset..offset + n]);
        written = n;
    }
    let data_start = (offset + written).saturating_sub(header.len());
    if data_start < data.len() && written < dst.len() {
        let n = (data.len() - data_start).min(dst.len() - written);
        dst[written..written + n].copy_from_slice(&data[data_start..data_start + n]);
        written += n;
    }
    dst[written..].fill(0);
}

/// The headers of one received video packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoPacketHeader {
    /// The RTP header.
    pub rtp: RtpHeader,
    /// 24-bit stream packet index.
    pub stream_packet_index: u32,
    /// Frame number.
    pub frame_index: u32,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// Current FEC block (0..=3).
    pub block: u8,
    /// Last FEC block of the frame (0..=3).
    pub last_block: u8,
    /// Shard index within the block.
    pub shard_index: usize,
    /// Data shards in the block.
    pub data_shards: usize,
    /// FEC percentage of the block.
    pub fec_percent: u8,
}

impl VideoPacketHeader {
    /// Parity shards in the block, as the client computes them.
    pub fn parity_shards(&self) -> usize {
        gamestream_parity_count(self.data_shards, usize::from(self.fec_percent))
    }

    /// Parses the headers of `packet`. Never panics.
    pub fn parse(packet: &[u8]) -> Result<Self, VideoError> {
        let mut r = Reader::new(packet);
        let rtp = RtpHeader::read(&mut r)?;
        if rtp.flags & RTP_EXTENSION != 0 {
            r.skip(4)?;
        }
        let stream_packet_index = (r.u32_le()? >> 8) & 0xFF_FFFF;
        let frame_index = r.u32_le()?;
        let flags = r.u8()?;
        let _extra = r.u8()?;
        let _multi_fec_flags = r.u8()?;
        let blocks = r.u8()?;
        let fec_info = r.u32_le()?;
        let header = Self {
            rtp,
            stream_packet_index,
            frame_index,
            flags,
            block: (blocks >> 4) & 0x3,
            last_block: (blocks >> 6) & 0x3,
            shard_index: ((fec_info >> 12) & 0x3FF) as usize,
            data_shards: (fec_info >> 22) as usize,
            fec_percent: ((fec_info >> 4) & 0xFF) as u8,
        };
        if header.data_shards == 0 {
            return Err(VideoError::Malformed("block with no data shards"));
        }
        if header.block > header.last_block {
            return Err(VideoError::Malformed("block number past the last block"));
        }
        if header.shard_index >= header.data_shards + header.parity_shards() {
            return Err(VideoError::Malformed("shard index outside its block"));
        }
        Ok(header)
    }
}

/// A frame put back together by [`VideoReassembler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassembledFrame {
    /// Frame number.
    pub frame_index: u32,
    /// Frame type from the frame header.
    pub frame_type: Option<FrameType>,
    /// Host processing latency from the frame header, in 0.1 ms.
    pub host_latency: u16,
    /// The bitstream, exactly as the host's encoder produced it.
    pub data: Vec<u8>,
    /// Data packets rebuilt from parity.
    pub recovered_packets: usize,
}

/// Counters a receiver keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Packets that failed to parse or did not fit their frame; dropped.
    pub malformed: u64,
    /// Packets for frames already delivered or given up; dropped.
    pub stale: u64,
    /// Packets received twice; dropped.
    pub duplicate: u64,
    /// Frames delivered.
    pub frames: u64,
    /// Frames abandoned because a newer frame pushed them out unfinished.
    pub frames_lost: u64,
    /// Data packets rebuilt from parity.
    pub recovered_packets: u64,
}

#[derive(Debug, Clone)]
struct PendingBlock {
    data: usize,
    parity: usize,
    buf: Vec<u8>,
    present: Vec<bool>,
    received: usize,
    done: bool,
}

#[derive(Debug, Clone)]
struct PendingFrame {
    frame_index: u32,
    last_block: u8,
    blocks: [Option<PendingBlock>; MAX_FEC_BLOCKS],
    recovered: usize,
}

/// How many frames may be in progress at once; older ones are abandoned.
const MAX_PENDING_FRAMES: usize = 4;

/// Rebuilds frames from GameStream video packets the way moonlight-common-c does:
/// per block, as soon as the data shards are in or enough parity arrived to rebuild
/// them. Tolerates reordering, duplicates and loss; memory is bounded by
/// [`MAX_PENDING_FRAMES`] frames of at most 4 blocks of 255 packets.
#[derive(Debug)]
pub struct VideoReassembler {
    config: VideoConfig,
    fec: Gf8Rs,
    pending: Vec<PendingFrame>,
    last_done: Option<u32>,
    stats: ReassemblyStats,
}

impl VideoReassembler {
    /// A receiver for a stream with this configuration.
    pub fn new(config: VideoConfig) -> Result<Self, VideoError> {
        config.validate()?;
        Ok(Self {
            config,
            fec: Gf8Rs::cauchy(),
            pending: Vec::with_capacity(MAX_PENDING_FRAMES),
            last_done: None,
            stats: ReassemblyStats::default(),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    /// Feeds one packet; returns a frame when this packet completed one. Bad packets are
    /// counted in [`ReassemblyStats::malformed`] and dropped.
    pub fn push(&mut self, packet: &[u8]) -> Option<ReassembledFrame> {
        match self.try_push(packet) {
            Ok(frame) => frame,
            Err(_) => {
                self.stats.malformed += 1;
                None
            }
        }
    }

    fn try_push(&mut self, packet: &[u8]) -> Result<Option<ReassembledFrame>, VideoError> {
        let h = VideoPacketHeader::parse(packet)?;
        if h.rtp.flags & RTP_EXTENSION == 0 {
            return Err(VideoError::Malformed(
                "video packet without the RTP extension",
            ));
        }
        let wire_len = self.config.wire_len();
        if packet.len() > wire_len {
            return Err(VideoError::Malformed(
                "packet longer than the negotiated size",
            ));
        }
        let (data, parity) = (h.data_shards, h.parity_shards());
        if data + parity > MAX_BLOCK_SHARDS {
            return Err(VideoError::Malformed("block larger than 255 shards"));
        }
        if self
            .last_done
            .is_some_and(|d| !frame_before(d, h.frame_index))
        {
            self.stats.stale += 1;
            return Ok(None);
        }
        let pos = match self
            .pending
            .iter()
            .position(|f| f.frame_index == h.frame_index)
        {
            Some(p) => p,
            None => {
                if self.pending.len() == MAX_PENDING_FRAMES {
                    // Abandon the oldest frame in progress.
                    let oldest = (0..self.pending.len())
                        .min_by(|&a, &b| {
                            let (fa, fb) =
                                (self.pending[a].frame_index, self.pending[b].frame_index);
                            if frame_before(fa, fb) {
                                std::cmp::Ordering::Less
                            } else {
                                std::cmp::Ordering::Greater
                            }
                        })
                        .unwrap_or(0);
                    let f = self.pending.swap_remove(oldest);
                    if frame_before(f.frame_index, h.frame_index) {
                        self.stats.frames_lost += 1;
                    } else {
                        // The new packet is older than everything pending: drop it instead.
                        self.pending.push(f);
                        self.stats.stale += 1;
                        return Ok(None);
                    }
                }
                self.pending.push(PendingFrame {
                    frame_index: h.frame_index,
                    last_block: h.last_block,
                    blocks: Default::default(),
                    recovered: 0,
                });
                self.pending.len() - 1
            }
        };
        let frame = &mut self.pending[pos];
        if frame.last_block != h.last_block {
            return Err(VideoError::Malformed("block count changed within a frame"));
        }
        let block = frame.blocks[usize::from(h.block)].get_or_insert_with(|| PendingBlock {
            data,
            parity,
            buf: vec![0; (data + parity) * wire_len],
            present: vec![false; data + parity],
            received: 0,
            done: false,
        });
        if block.data != data || block.parity != parity {
            return Err(VideoError::Malformed("FEC shape changed within a block"));
        }
        if block.done {
            // Parity that arrived after the block was already rebuilt.
            self.stats.stale += 1;
            return Ok(None);
        }
        if block.present[h.shard_index] {
            self.stats.duplicate += 1;
            return Ok(None);
        }
        let slot = &mut block.buf[h.shard_index * wire_len..(h.shard_index + 1) * wire_len];
        slot[..packet.len()].copy_from_slice(packet);
        slot[packet.len()..].fill(0);
        block.present[h.shard_index] = true;
        block.received += 1;
        if block.received < data {
            return Ok(None);
        }
        let lost = block.present[..data].iter().filter(|p| !**p).count();
        if lost > 0 {
            let shape = BlockShape {
                data,
                parity,
                shard_len: wire_len,
            };
            self.fec
                .reconstruct(shape, &mut block.buf, &block.present)?;
            frame.recovered += lost;
        }
        block.done = true;
        let complete = (0..=usize::from(frame.last_block))
            .all(|b| frame.blocks[b].as_ref().is_some_and(|blk| blk.done));
        if !complete {
            return Ok(None);
        }
        let frame = self.pending.swap_remove(pos);
        self.last_done = Some(frame.frame_index);
        // Frames older than the one just delivered can no longer be shown.
        let before = self.pending.len();
        self.pending
            .retain(|f| frame_before(frame.frame_index, f.frame_index));
        self.stats.frames_lost += (before - self.pending.len()) as u64;
        self.stats.frames += 1;
        self.stats.recovered_packets += frame.recovered as u64;
        Ok(Some(self.assemble(frame)?))
    }

    fn assemble(&self, frame: PendingFrame) -> Result<ReassembledFrame, VideoError> {
        let per_packet = self.config.payload_per_packet();
        let wire_len = self.config.wire_len();
        let mut payload = Vec::new();
        for block in frame
            .blocks
            .iter()
            .take(usize::from(frame.last_block) + 1)
            .flatten()
        {
            for x in 0..block.data {
                let pkt = &block.buf[x * wire_len..(x + 1) * wire_len];
                payload.extend_from_slice(&pkt[RTP_PREFIX_LEN + NV_HEADER_LEN..]);
            }
        }
        if payload.len() < FRAME_HEADER_LEN || payload[0] != 0x01 {
            return Err(VideoError::Malformed(
                "frame does not start with a short frame header",
            ));
        }
        let host_latency = u16::from_le_bytes([payload[1], payload[2]]);
        let frame_type = FrameType::from_byte(payload[3]);
        let last_len = usize::from(u16::from_le_bytes([payload[4], payload[5]]));
        if last_len == 0 || last_len > per_packet {
            return Err(VideoError::Malformed("last payload length out of range"));
        }
        let exact = payload.len() - per_packet + last_len;
        payload.truncate(exact);
        payload.drain(..FRAME_HEADER_LEN);
        Ok(ReassembledFrame {
            frame_index: frame.frame_index,
            frame_type,
            host_latency,
            data: payload,
            recovered_packets: frame.recovered,
        })
    }
}

#[cfg(test)]
mod tests;
