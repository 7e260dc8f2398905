//! What the probe measured, as a table and as JSON.

use serde::Serialize;

/// One run's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Seconds streamed.
    pub seconds: f64,
    /// Frames reassembled.
    pub frames: u64,
    /// Frames lost for good.
    pub frames_lost: u64,
    /// Frames that needed parity.
    pub frames_recovered: u64,
    /// Data shards rebuilt.
    pub shards_recovered: u64,
    /// Packets refused (parse, auth, replay).
    pub malformed: u64,
    /// Shards after their frame was done.
    pub stale: u64,
    /// Reassembled frame payload, Gbit/s.
    pub goodput_gbps: f64,
    /// Pictures decoded (0 without --decode).
    pub decoded: u64,
    /// Barcodes read back.
    pub barcodes: u64,
    /// Every size a decoded picture had, `[width, height]`, in order of appearance.
    pub sizes: Vec<(u32, u32)>,
    /// Every value of barcode row 2 read back (a session painter's tag of its
    /// session id), in order of appearance.
    pub tags: Vec<u64>,
    /// Whether the barcodes' frame numbers never went backwards.
    pub numbers_in_order: bool,
    /// Frames the decoder refused (then a keyframe is requested).
    pub decode_errors: u64,
    /// Keyframes requested after a lost frame or a decode error.
    pub idr_requests: u64,
    /// Frames not decoded while waiting for the requested keyframe.
    pub skipped_until_keyframe: u64,
    /// Capture to reassembled, microseconds (p50, p99), from the barcode's capture time.
    pub reassembled_us: (u64, u64),
    /// Capture to decoded, microseconds (p50, p99).
    pub decoded_us: (u64, u64),
}

/// `(p50, p99)` of `v`.
pub fn percentiles(v: &mut [u64]) -> (u64, u64) {
    if v.is_empty() {
        return (0, 0);
    }
    v.sort_unstable();
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99))
}

impl Report {
    /// A human-readable table.
    pub fn table(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "frames reassembled / lost / recovered : {} / {} / {}\n\
             shards rebuilt by FEC                 : {}\n\
             malformed / stale packets             : {} / {}\n\
             goodput                               : {:.3} Gbit/s over {:.1} s\n\
             pictures decoded / barcodes read      : {} / {}\n\
             decode errors / IDR requests / skipped: {} / {} / {}\n\
             capture -> reassembled p50 / p99      : {:.2} / {:.2} ms\n\
             capture -> decoded p50 / p99          : {:.2} / {:.2} ms",
            self.frames,
            self.frames_lost,
            self.frames_recovered,
            self.shards_recovered,
            self.malformed,
            self.stale,
            self.goodput_gbps,
            self.seconds,
            self.decoded,
            self.barcodes,
            self.decode_errors,
            self.idr_requests,
            self.skipped_until_keyframe,
            ms(self.reassembled_us.0),
            ms(self.reassembled_us.1),
            ms(self.decoded_us.0),
            ms(self.decoded_us.1),
        )
    }
}
