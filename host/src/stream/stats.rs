//! What a running stream reports: per-frame stage timings (for the benchmark and the
//! status API) and a summary of the live stream.

use std::collections::VecDeque;
use std::time::Instant;

/// Timings of one video frame through the host, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameTiming {
    /// BGRx to YUV conversion.
    pub convert_us: u64,
    /// Encoding.
    pub encode_us: u64,
    /// Packetization and FEC.
    pub packetize_us: u64,
    /// Sending, pacing included.
    pub send_us: u64,
    /// Capture until the first packet went out (what the frame header reports).
    pub first_packet_us: u64,
    /// Bytes on the wire.
    pub bytes: u64,
}

/// Frames kept for percentiles.
const WINDOW: usize = 600;

/// Counters of a stream.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    /// Frames sent.
    pub frames: u64,
    /// IDR frames sent.
    pub idr_frames: u64,
    /// Packets sent (video, parity included).
    pub packets: u64,
    /// Bytes sent (video).
    pub bytes: u64,
    /// FEC blocks the client reported rebuilding.
    pub fec_recoveries: u64,
    /// Data packets the client reported missing before recovery.
    pub lost_packets: u64,
    /// Data packets the client reported expecting.
    pub expected_packets: u64,
    /// Packets the client reported missing in the blocks it repaired (FEC status),
    /// what the adaptive FEC estimates the loss rate from.
    pub reported_missing: u64,
    /// The largest share of a block's data packets a repaired block was missing since
    /// the video thread last looked, percent (taken by it).
    pub repair_burst_percent: u8,
    /// IDR requests and reference-frame invalidations the client sent: frames it
    /// could not repair (and its first request at start).
    pub loss_requests: u64,
    /// Invalidations already covered by an IDR sent after the lost frames (ignored).
    pub covered_invalidations: u64,
    /// The frame number of the last IDR frame sent.
    pub last_idr_frame: u32,
    /// The parity percentage the last frame was sent with.
    pub fec_percent: u8,
    /// Recent frame timings.
    pub recent: VecDeque<FrameTiming>,
}

impl StreamStats {
    /// Records one frame.
    pub fn record(&mut self, t: FrameTiming, packets: usize, idr: bool) {
        self.frames += 1;
        self.idr_frames += u64::from(idr);
        self.packets += packets as u64;
        self.bytes += t.bytes;
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(t);
    }

    /// Video bitrate over the recent frames, kbit/s, for a stream at `fps`.
    pub fn bitrate_kbps(&self, fps: u32) -> u64 {
        let bytes: u64 = self.recent.iter().map(|t| t.bytes).sum();
        let secs = self.recent.len() as f64 / f64::from(fps.max(1));
        if secs > 0.0 {
            (bytes as f64 * 8.0 / 1000.0 / secs) as u64
        } else {
            0
        }
    }

    /// Median capture-to-first-packet latency over the recent frames, ms.
    pub fn median_latency_ms(&self) -> f64 {
        self.percentile(0.5, |t| t.first_packet_us) as f64 / 1000.0
    }

    /// Packets the client reported lost, percent of those it expected.
    pub fn loss_percent(&self) -> f64 {
        if self.expected_packets > 0 {
            100.0 * self.lost_packets as f64 / self.expected_packets as f64
        } else {
            0.0
        }
    }

    /// The `p`-th percentile (0..=1) of a timing field over recent frames.
    pub fn percentile(&self, p: f64, field: impl Fn(&FrameTiming) -> u64) -> u64 {
        let mut v: Vec<u64> = self.recent.iter().map(field).collect();
        if v.is_empty() {
            return 0;
        }
        v.sort_unstable();
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
}

/// A summary of the running stream, for status pages.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveStream {
    /// The app streaming.
    pub app_id: u32,
    /// Fingerprint of the client.
    pub client: String,
    /// Resolution and rate.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frames per second requested.
    pub fps: u32,
    /// Codec name.
    pub codec: &'static str,
    /// Video bitrate over the recent frames, kbit/s.
    pub bitrate_kbps: u64,
    /// Median capture-to-send latency, ms.
    pub latency_ms: f64,
    /// Packets the client reported lost, percent of expected.
    pub loss_percent: f64,
    /// When the stream started.
    pub started: Instant,
    /// Frames sent.
    pub frames: u64,
    /// IDR frames sent.
    pub idr_frames: u64,
    /// The parity percentage in use (adaptive FEC).
    pub fec_percent: u8,
    /// Malformed or forged packets dropped (RTSP excluded: it answers 400).
    pub malformed_packets: u64,
}
