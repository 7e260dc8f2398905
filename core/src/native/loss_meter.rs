//! The client's loss accounting for [`LossReport`]s: packets expected (every shard of
//! every frame seen) against packets that arrived, per report interval.

use super::control::LossReport;
use super::reassembly::NativeStats;
use super::wire::PacketHeader;
use crate::gamestream::rtp::frame_before;

/// Counts expected and received packets between reports.
#[derive(Debug, Default, Clone)]
pub struct LossMeter {
    newest_frame: Option<u32>,
    expected: u64,
    received: u64,
    last_stats: NativeStats,
}

impl LossMeter {
    /// A meter with nothing counted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts an authenticated packet. A frame's shards are expected once, when its
    /// first packet arrives; frames skipped entirely count through the next one's
    /// header only as lost frames (the reassembler counts those).
    pub fn on_packet(&mut self, h: &PacketHeader) {
        self.received += 1;
        if self
            .newest_frame
            .is_none_or(|n| frame_before(n, h.frame_id))
        {
            self.newest_frame = Some(h.frame_id);
            self.expected += u64::from(h.data_shards) + u64::from(h.parity_shards);
        }
    }

    /// The report for the interval since the last one, with frame counts taken from
    /// the reassembler's `stats`.
    pub fn report(&mut self, interval_ms: u32, stats: NativeStats) -> LossReport {
        let sat = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let prev = self.last_stats;
        let report = LossReport {
            interval_ms,
            packets_expected: sat(self.expected),
            packets_lost: sat(self.expected.saturating_sub(self.received)),
            frames_delivered: sat(stats.frames - prev.frames),
            frames_lost: sat(stats.frames_lost - prev.frames_lost),
            frames_recovered: sat(stats.recovered_frames - prev.recovered_frames),
        };
        self.expected = 0;
        self.received = 0;
        self.last_stats = stats;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(frame_id: u32) -> PacketHeader {
        PacketHeader {
            kind: 0,
            flags: 0,
            counter: 0,
            frame_id,
            shard_index: 0,
            data_shards: 8,
            parity_shards: 2,
            frame_len: 100,
        }
    }

    #[test]
    fn expected_counts_each_frame_once_and_reports_reset() {
        let mut m = LossMeter::new();
        for _ in 0..9 {
            m.on_packet(&h(1));
        }
        for _ in 0..8 {
            m.on_packet(&h(2));
        }
        let stats = NativeStats {
            frames: 2,
            recovered_frames: 1,
            ..NativeStats::default()
        };
        let r = m.report(100, stats);
        assert_eq!((r.packets_expected, r.packets_lost), (20, 3));
        assert_eq!((r.frames_delivered, r.frames_recovered), (2, 1));
        let r = m.report(100, stats);
        assert_eq!((r.packets_expected, r.frames_delivered), (0, 0));
    }
}
