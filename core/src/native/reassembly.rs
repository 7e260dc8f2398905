//! punktfunk/1 packets -> frames.
//!
//! A frame is delivered the moment any `k` of its `k + m` shards are in; missing data
//! shards are rebuilt from parity. Frames are delivered in order: when a frame
//! completes, unfinished older frames can no longer be decoded and are dropped, and
//! shards that arrive for delivered or dropped frames are counted as stale.
//!
//! Memory is bounded no matter what arrives: at most [`ReassemblyLimits::max_frames`]
//! frames are in progress, each at most [`ReassemblyLimits::max_frame_bytes`]; a new
//! frame beyond that evicts the least recently touched one. Buffers are reused.
//!
//! The per-frame limit must fit the stream: a keyframe of a 3 Gbps, 60 fps stream is
//! ~25 MB (~27.5 MB with parity), so a receiver sizes its limits from the largest
//! frame the mode allows ([`ReassemblyLimits::for_max_frame`]). A frame over the limit
//! is a configuration mismatch, not a malformed packet, and is counted as
//! [`NativeStats::oversized`].

use super::packetizer::NativeConfig;
use super::wire::{NativeError, PacketHeader};
use crate::fec::{BlockShape, ErasureCode, Gf16Rs};
use crate::gamestream::rtp::frame_before;

/// Bounds on what the reassembler holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Frames in progress at once.
    pub max_frames: usize,
    /// Largest block (data and parity shards) one frame may occupy, in bytes.
    pub max_frame_bytes: usize,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        Self {
            max_frames: 8,
            // A 4K intra frame at very high bitrate is a few MB; leave room for parity.
            max_frame_bytes: 16 << 20,
        }
    }
}

impl ReassemblyLimits {
    /// Limits that hold frames of up to `max_frame_len` bytes, cut and protected as
    /// `config` does, and never less than the default.
    pub fn for_max_frame(max_frame_len: usize, config: &NativeConfig) -> Result<Self, NativeError> {
        let block = config.shape_for(max_frame_len.max(1))?.buffer_len();
        let default = Self::default();
        Ok(Self {
            max_frame_bytes: block.max(default.max_frame_bytes),
            ..default
        })
    }
}

/// Counters a receiver keeps; every dropped packet lands in one of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NativeStats {
    /// Packets refused before reassembly (parse, auth, replay, limits).
    pub malformed: u64,
    /// Shards of frames larger than [`ReassemblyLimits::max_frame_bytes`]: well-formed,
    /// but the receiver was sized for smaller frames.
    pub oversized: u64,
    /// Shards for frames dropped unfinished, or older than the last one delivered.
    pub stale: u64,
    /// Shards of the frame just delivered that arrived after it was complete: the
    /// parity it did not need. Expected on every clean path (about the parity share
    /// of all packets), so kept apart from `stale`.
    pub surplus: u64,
    /// Shards received twice.
    pub duplicate: u64,
    /// Frames delivered.
    pub frames: u64,
    /// Frames dropped unfinished.
    pub frames_lost: u64,
    /// Data shards rebuilt from parity.
    pub recovered_shards: u64,
    /// Frames that needed parity to complete.
    pub recovered_frames: u64,
}

/// A delivered frame, borrowed from the reassembler's buffer until the next push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Frame id.
    pub frame_id: u32,
    /// Header flags.
    pub flags: u8,
    /// The frame's bytes.
    pub data: &'a [u8],
    /// Data shards that were rebuilt from parity.
    pub recovered: usize,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    active: bool,
    frame_id: u32,
    flags: u8,
    shape: Option<BlockShape>,
    frame_len: usize,
    received: usize,
    present: Vec<bool>,
    buf: Vec<u8>,
    touched: u64,
}

/// Rebuilds frames; see the module docs.
#[derive(Debug)]
pub struct Reassembler {
    limits: ReassemblyLimits,
    slots: Vec<Slot>,
    fec: Gf16Rs,
    last_delivered: Option<u32>,
    tick: u64,
    stats: NativeStats,
}

impl Reassembler {
    /// A reassembler within `limits`.
    pub fn new(limits: ReassemblyLimits) -> Self {
        let limits = ReassemblyLimits {
            max_frames: limits.max_frames.max(1),
            ..limits
        };
        Self {
            limits,
            slots: vec![Slot::default(); limits.max_frames],
            fec: Gf16Rs::new(),
            last_delivered: None,
            tick: 0,
            stats: NativeStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> NativeStats {
        self.stats
    }

    /// Counts a packet refused before it got here (bad parse, failed authentication,
    /// replay), so all drops show up in one place.
    pub fn count_malformed(&mut self) {
        self.stats.malformed += 1;
    }

    /// Bytes of frame buffers currently allocated.
    pub fn memory_bytes(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.buf.capacity() + s.present.capacity())
            .sum()
    }

    /// Counts and returns `true` for a shard of a frame that is already delivered or
    /// dropped. Only for authenticated headers: the loss meter counts every opened
    /// packet as received, so late ones must be opened too.
    fn skip_late(&mut self, h: &PacketHeader) -> bool {
        match self.last_delivered {
            Some(d) if d == h.frame_id => {
                self.stats.surplus += 1;
                true
            }
            Some(d) if !frame_before(d, h.frame_id) => {
                self.stats.stale += 1;
                true
            }
            _ => false,
        }
    }

    /// Feeds one opened packet; returns the frame it completed, if any.
    pub fn push(&mut self, header: &PacketHeader, shard: &[u8]) -> Option<Frame<'_>> {
        match self.try_push(header, shard) {
            Ok(Some(slot)) => {
                let s = &self.slots[slot];
                Some(Frame {
                    frame_id: s.frame_id,
                    flags: s.flags,
                    data: &s.buf[..s.frame_len],
                    recovered: s
                        .present
                        .iter()
                        .take(s.shape.map_or(0, |sh| sh.data))
                        .filter(|p| !**p)
                        .count(),
                })
            }
            Ok(None) => None,
            Err(_) => {
                self.stats.malformed += 1;
                None
            }
        }
    }

    fn try_push(&mut self, h: &PacketHeader, shard: &[u8]) -> Result<Option<usize>, NativeError> {
        let shape = BlockShape {
            data: usize::from(h.data_shards),
            parity: usize::from(h.parity_shards),
            shard_len: shard.len(),
        };
        h.check_shard_len(shard.len())?;
        if shape.buffer_len() > self.limits.max_frame_bytes {
            self.stats.oversized += 1;
            return Ok(None);
        }
        if self.skip_late(h) {
            return Ok(None);
        }
        self.tick += 1;
        let idx = match self
            .slots
            .iter()
            .position(|s| s.active && s.frame_id == h.frame_id)
        {
            Some(i) => i,
            None => self.claim_slot(h, shape),
        };
        let slot = &mut self.slots[idx];
        slot.touched = self.tick;
        if slot.shape != Some(shape) || slot.frame_len != h.frame_len as usize {
            return Err(NativeError::Malformed(
                "shard disagrees with its frame's shape",
            ));
        }
        let i = usize::from(h.shard_index);
        if slot.present[i] {
            self.stats.duplicate += 1;
            return Ok(None);
        }
        slot.buf[i * shape.shard_len..(i + 1) * shape.shard_len].copy_from_slice(shard);
        slot.present[i] = true;
        slot.received += 1;
        if slot.received < shape.data {
            return Ok(None);
        }
        let lost = slot.present[..shape.data].iter().filter(|p| !**p).count();
        if lost > 0 {
            let block = &mut slot.buf[..shape.buffer_len()];
            self.fec
                .reconstruct(shape, block, &slot.present)
                .map_err(|_| NativeError::Malformed("FEC could not rebuild the frame"))?;
            self.stats.recovered_shards += lost as u64;
            self.stats.recovered_frames += 1;
        }
        // Deliver; drop every unfinished frame older than this one.
        let id = h.frame_id;
        self.last_delivered = Some(id);
        self.stats.frames += 1;
        for (j, s) in self.slots.iter_mut().enumerate() {
            if j != idx && s.active && frame_before(s.frame_id, id) {
                s.active = false;
                self.stats.frames_lost += 1;
            }
        }
        self.slots[idx].active = false;
        Ok(Some(idx))
    }

    /// Finds a slot for a new frame: a free one, else the least recently touched.
    fn claim_slot(&mut self, h: &PacketHeader, shape: BlockShape) -> usize {
        let idx = self
            .slots
            .iter()
            .position(|s| !s.active)
            .unwrap_or_else(|| {
                let lru = (0..self.slots.len())
                    .min_by_key(|&i| self.slots[i].touched)
                    .unwrap_or(0);
                self.stats.frames_lost += 1;
                lru
            });
        let slot = &mut self.slots[idx];
        slot.active = true;
        slot.frame_id = h.frame_id;
        slot.flags = h.flags;
        slot.shape = Some(shape);
        slot.frame_len = h.frame_len as usize;
        slot.received = 0;
        slot.present.clear();
        slot.present.resize(shape.total(), false);
        if slot.buf.len() < shape.buffer_len() {
            // Exact growth keeps every buffer within `max_frame_bytes`.
            slot.buf.reserve_exact(shape.buffer_len() - slot.buf.len());
            slot.buf.resize(shape.buffer_len(), 0);
        }
        idx
    }
}

#[cfg(test)]
mod tests;
