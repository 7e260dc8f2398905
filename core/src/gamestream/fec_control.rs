//! Adaptive video FEC for GameStream: the client's loss feedback and time in, the
//! parity percentage of the next frame out.
//!
//! What the client tells us (moonlight-common-c `RtpVideoQueue.c`, `ControlStream.c`):
//! a Sunshine-class client sends no periodic loss statistics. It sends a frame FEC
//! status (0x5502) for each FEC block it had to *repair*, carrying how many packets of
//! the block were missing, and it asks for an IDR frame (0x0302) or invalidates
//! reference frames (0x0301) when a frame could not be repaired. A clean link is
//! therefore silence. The host knows what it sent, so the loss rate is the reported
//! missing packets over the packets sent in a sliding window.
//!
//! From a loss rate `p` the controller picks the least parity `r` for a typical frame
//! of `d` data packets such that the frame is lost (more than `r` of its `d + r`
//! packets lost, binomially) with probability at most [`FecTuning::frame_loss`]:
//! exact for random loss, and what the client's RS(`d`, `r`) can repair.
//!
//! Bursts: a repaired block that was missing `m` of its `d` data packets' worth sets
//! a floor of `100 * m / d` for the window, so parity that covers bursts of lost
//! packets stays while they come, though their average rate is low.
//!
//! Dynamics: raise at once (a lost frame costs an IDR round trip); lower only after
//! the target has stayed at least two 10-point steps lower (or at the minimum)
//! for [`FecTuning::hold`], straight to the target. A frame lost for good raises parity
//! by [`FecTuning::lost_frame_step`] on top. With the default 2 s window and 1 s hold,
//! a link that turns clean is back at the minimum within about 3 s; steady loss
//! keeps parity inside a narrow band instead of see-sawing.
//!
//! Sans-IO: no clock, no sockets; the caller passes `Instant`s.

use std::time::{Duration, Instant};

use super::video::MAX_BLOCK_SHARDS;

/// Tuning of [`FecController`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FecTuning {
    /// Lowest parity percentage (`[stream] fec_min_percent`).
    pub min_percent: u8,
    /// Highest parity percentage (`[stream] fec_max_percent`).
    pub max_percent: u8,
    /// Probability a typical frame may be lost at the estimated loss rate.
    pub frame_loss: f64,
    /// The loss rate is estimated over this window.
    pub window: Duration,
    /// How long the target must stay lower before parity falls.
    pub hold: Duration,
    /// Percentage points added for each frame the client could not repair.
    pub lost_frame_step: u8,
}

impl FecTuning {
    /// The defaults, within `min..=max` percent.
    pub fn new(min_percent: u8, max_percent: u8) -> Self {
        Self {
            min_percent,
            max_percent: max_percent.max(min_percent),
            frame_loss: 0.002,
            window: Duration::from_secs(2),
            hold: Duration::from_secs(1),
            lost_frame_step: 10,
        }
    }
}

/// Targets move in steps of this many percentage points.
const STEP: u8 = 10;

/// Buckets the window is kept in.
const BUCKETS: usize = 8;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Start of the bucket's span.
    start: Option<Instant>,
    sent: u64,
    lost: u64,
    /// The largest share of a block's data packets a repaired block was missing,
    /// percent: what a burst costs, which the average loss rate hides.
    burst_percent: u8,
    frames: u64,
    data_packets: u64,
}

/// The controller; see the module docs.
#[derive(Debug, Clone)]
pub struct FecController {
    tuning: FecTuning,
    percent: u8,
    buckets: [Bucket; BUCKETS],
    /// Since when the target has been clearly below the current percentage.
    lower_since: Option<Instant>,
    changes: u64,
}

impl FecController {
    /// Starts at `initial`, clamped to the bounds.
    pub fn new(tuning: FecTuning, initial: u8) -> Self {
        Self {
            tuning,
            percent: initial.clamp(tuning.min_percent, tuning.max_percent),
            buckets: [Bucket::default(); BUCKETS],
            lower_since: None,
            changes: 0,
        }
    }

    /// The parity percentage in use.
    pub fn percent(&self) -> u8 {
        self.percent
    }

    /// How often the percentage changed (for the no-oscillation check and stats).
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// The tuning in use.
    pub fn tuning(&self) -> &FecTuning {
        &self.tuning
    }

    fn bucket(&mut self, now: Instant) -> &mut Bucket {
        let span = self.tuning.window / BUCKETS as u32;
        let span_ns = span.as_nanos().max(1);
        // Buckets are aligned to the first instant seen, so their index is stable.
        let origin = self
            .buckets
            .iter()
            .filter_map(|b| b.start)
            .min()
            .unwrap_or(now);
        let origin = origin.min(now);
        let n = (now.saturating_duration_since(origin).as_nanos() / span_ns) as u64;
        let start = origin + Duration::from_nanos((n as u128 * span_ns) as u64);
        let b = &mut self.buckets[(n % BUCKETS as u64) as usize];
        if b.start != Some(start) {
            *b = Bucket {
                start: Some(start),
                ..Bucket::default()
            };
        }
        b
    }

    /// Sums of the buckets that started less than `span` before `now`.
    fn totals(&self, now: Instant, span: Duration) -> Bucket {
        let mut t = Bucket::default();
        for b in &self.buckets {
            if b.start
                .is_some_and(|s| now.saturating_duration_since(s) < span)
            {
                t.sent += b.sent;
                t.lost += b.lost;
                t.burst_percent = t.burst_percent.max(b.burst_percent);
                t.frames += b.frames;
                t.data_packets += b.data_packets;
            }
        }
        t
    }

    /// A frame went out: `data` data packets and `parity` parity packets.
    pub fn on_frame_sent(&mut self, now: Instant, data: usize, parity: usize) {
        let b = self.bucket(now);
        b.sent += (data + parity) as u64;
        b.frames += 1;
        b.data_packets += data as u64;
    }

    /// The client repaired a block of `data` data packets that was missing `missing`
    /// of its `total` packets.
    pub fn on_repair_report(&mut self, now: Instant, missing: u32, total: u32, data: u32) {
        let missing = missing.min(total);
        let share = (u64::from(missing) * 100)
            .checked_div(u64::from(data))
            .map_or(0, |s| s.min(255) as u8);
        self.on_feedback(now, u64::from(missing), share);
    }

    /// Repair reports pooled since the last call: `missing` packets in all, and the
    /// largest share of a block's data packets one block was missing, percent.
    pub fn on_feedback(&mut self, now: Instant, missing: u64, burst_percent: u8) {
        let b = self.bucket(now);
        b.lost += missing;
        b.burst_percent = b.burst_percent.max(burst_percent);
        self.update(now);
    }

    /// The client could not repair a frame (an IDR request or a reference-frame
    /// invalidation after the stream started): more parity at once.
    pub fn on_frame_lost(&mut self, now: Instant) {
        let bumped = self
            .percent
            .saturating_add(self.tuning.lost_frame_step)
            .min(self.tuning.max_percent);
        self.set(bumped);
        self.lower_since = None;
        self.update(now);
    }

    /// The estimated loss rate over the window (0 when nothing was sent).
    pub fn loss_rate(&self, now: Instant) -> f64 {
        rate(&self.totals(now, self.tuning.window))
    }

    /// Updates the percentage for time `now` and returns it. Call once per frame.
    pub fn poll(&mut self, now: Instant) -> u8 {
        self.update(now);
        self.percent
    }

    fn set(&mut self, percent: u8) {
        if percent != self.percent {
            self.percent = percent;
            self.changes += 1;
        }
    }

    fn update(&mut self, now: Instant) {
        let t = self.totals(now, self.tuning.window);
        // The whole window smooths the estimate; its newer half lets a sudden
        // loss count at once instead of diluted by the clean seconds before it.
        let recent = self.totals(now, self.tuning.window / 2);
        let p = rate(&t).max(rate(&recent));
        let typical = t
            .data_packets
            .checked_div(t.frames)
            .map_or(8, |d| d.max(1) as usize);
        // Whole steps of 10 points: noise in the estimate moves the target within a
        // step without changing what is sent.
        // A burst the client repaired in the window sets a floor: parity that just
        // covered it must not fall while bursts still come (random loss of the same
        // average would call for less).
        let target = quantize(percent_for(p, typical, self.tuning.frame_loss).max(t.burst_percent))
            .clamp(self.tuning.min_percent, self.tuning.max_percent);
        if target > self.percent {
            self.set(target);
            self.lower_since = None;
        } else if u16::from(target) + 2 * u16::from(STEP) <= u16::from(self.percent)
            || target == self.tuning.min_percent && target < self.percent
        {
            let since = *self.lower_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= self.tuning.hold {
                self.set(target);
                self.lower_since = None;
            }
        } else {
            self.lower_since = None;
        }
    }
}

/// Rounds up to a multiple of [`STEP`].
fn quantize(percent: u8) -> u8 {
    let p = u16::from(percent).div_ceil(u16::from(STEP)) * u16::from(STEP);
    p.min(255) as u8
}

/// Lost over sent (0 when nothing was sent).
fn rate(t: &Bucket) -> f64 {
    if t.sent == 0 {
        0.0
    } else {
        (t.lost as f64 / t.sent as f64).min(1.0)
    }
}

/// The least parity percentage (0..=255) for a block of `data` packets at random loss
/// rate `p` such that the block is lost with probability at most `frame_loss`.
pub fn percent_for(p: f64, data: usize, frame_loss: f64) -> u8 {
    if p <= 0.0 || data == 0 {
        return 0;
    }
    let p = p.min(0.9);
    let data = data.min(MAX_BLOCK_SHARDS - 1);
    for parity in 0..=MAX_BLOCK_SHARDS - data {
        if binomial_tail(data + parity, p, parity) <= frame_loss {
            let pct = (100 * parity).div_ceil(data);
            return pct.min(255) as u8;
        }
    }
    255
}

/// P(X > k) for X ~ Binomial(n, p).
fn binomial_tail(n: usize, p: f64, k: usize) -> f64 {
    if k >= n {
        return 0.0;
    }
    // Sum P(X = i) for i <= k in log space, then take the complement.
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let mut log_choose = 0.0f64; // ln C(n, 0)
    let mut below = 0.0;
    for i in 0..=k {
        if i > 0 {
            log_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        below += (log_choose + i as f64 * lp + (n - i) as f64 * lq).exp();
    }
    (1.0 - below).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A virtual link: frames of `data` packets at 60 fps through random loss `p`,
    /// the client reporting every repaired block, as moonlight-common-c does.
    struct Link {
        now: Instant,
        rng: u64,
        lost_frames: u32,
    }

    impl Link {
        fn new() -> Self {
            Self {
                now: Instant::now(),
                rng: 0x9E37_79B9_7F4A_7C15,
                lost_frames: 0,
            }
        }

        fn rand(&mut self) -> f64 {
            // xorshift64*: deterministic, no dependency.
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Runs `secs` seconds; returns the percentages used, one per frame.
        fn run(&mut self, fec: &mut FecController, secs: u32, p: f64, data: usize) -> Vec<u8> {
            let mut used = Vec::new();
            for _ in 0..secs * 60 {
                self.now += Duration::from_micros(16_667);
                let pct = fec.poll(self.now);
                used.push(pct);
                let parity = (data * usize::from(pct)).div_ceil(100);
                fec.on_frame_sent(self.now, data, parity);
                let missing = (0..data + parity).filter(|_| self.rand() < p).count();
                if missing > parity {
                    self.lost_frames += 1;
                    fec.on_frame_lost(self.now);
                } else if missing > 0 {
                    fec.on_repair_report(
                        self.now,
                        missing as u32,
                        (data + parity) as u32,
                        data as u32,
                    );
                }
            }
            used
        }
    }

    #[test]
    fn the_target_covers_the_loss_with_the_asked_margin() {
        assert_eq!(percent_for(0.0, 10, 0.002), 0);
        let low = percent_for(0.05, 15, 0.002);
        let high = percent_for(0.20, 15, 0.002);
        assert!((20..=60).contains(&low), "{low}");
        assert!((80..=160).contains(&high), "{high}");
        // Larger frames need a smaller share for the same loss.
        assert!(percent_for(0.20, 100, 0.002) < high);
        // Check the tail itself against a hand-computed value: P(X > 1), n = 3,
        // p = 0.5 is 0.5.
        assert!((binomial_tail(3, 0.5, 1) - 0.5).abs() < 1e-12);
        assert_eq!(binomial_tail(3, 0.5, 3), 0.0);
    }

    #[test]
    fn loss_raises_parity_within_the_bounds() {
        let mut fec = FecController::new(FecTuning::new(10, 150), 20);
        let mut link = Link::new();
        link.run(&mut fec, 2, 0.0, 12);
        assert_eq!(fec.percent(), 10, "a clean link sits at the minimum");
        let used = link.run(&mut fec, 10, 0.20, 12);
        // Within half a second the percentage has risen well above the minimum...
        assert!(used[30] >= 60, "after 0.5 s at 20% loss: {}", used[30]);
        // ...and it never leaves the bounds.
        assert!(used.iter().all(|p| (10..=150).contains(p)));
        // At the settled level few frames are lost: < 2% of the last 8 s.
        link.lost_frames = 0;
        link.run(&mut fec, 8, 0.20, 12);
        assert!(
            link.lost_frames < 10,
            "{} frames lost in 8 s",
            link.lost_frames
        );
    }

    #[test]
    fn a_clean_link_falls_back_to_the_minimum_within_5_s() {
        let mut fec = FecController::new(FecTuning::new(10, 150), 20);
        let mut link = Link::new();
        link.run(&mut fec, 5, 0.20, 12);
        assert!(fec.percent() > 50);
        let used = link.run(&mut fec, 5, 0.0, 12);
        let first_min = used
            .iter()
            .position(|&p| p == 10)
            .expect("back to the minimum");
        assert!(first_min < 5 * 60, "took {} frames", first_min);
        assert!(
            used[first_min..].iter().all(|&p| p == 10),
            "and stays there"
        );
        assert!(first_min <= 4 * 60, "well within 5 s: {first_min} frames");
    }

    #[test]
    fn steady_loss_does_not_oscillate() {
        let mut fec = FecController::new(FecTuning::new(10, 150), 20);
        let mut link = Link::new();
        link.run(&mut fec, 3, 0.05, 12);
        let before = fec.changes();
        let used = link.run(&mut fec, 30, 0.05, 12);
        let changes = fec.changes() - before;
        let (lo, hi) = (used.iter().min().unwrap(), used.iter().max().unwrap());
        // Changes at most every couple of seconds, in a band, never to the minimum.
        assert!(changes <= 15, "{changes} changes in 30 s: {used:?}");
        assert!(*lo > 10, "fell to the minimum under steady loss: {used:?}");
        assert!(u32::from(*hi) <= u32::from(*lo) * 2 + 10, "band {lo}..{hi}");
    }

    #[test]
    fn bursts_hold_parity_that_covers_them() {
        // 8 packets lost in a row 5 times a second: a low average loss rate (~4%),
        // but a frame a burst hits needs 8 parity packets.
        let mut fec = FecController::new(FecTuning::new(10, 150), 20);
        let (data, mut now, mut next_burst) = (12usize, Instant::now(), 0u32);
        let mut lost = Vec::new();
        for frame in 0..60 * 20u32 {
            now += Duration::from_micros(16_667);
            let pct = fec.poll(now);
            let parity = (data * usize::from(pct)).div_ceil(100);
            fec.on_frame_sent(now, data, parity);
            if frame == next_burst {
                next_burst += 12;
                let missing = 8.min(data + parity);
                if missing > parity {
                    lost.push(frame);
                    fec.on_frame_lost(now);
                } else {
                    fec.on_repair_report(now, missing as u32, (data + parity) as u32, data as u32);
                }
            }
        }
        // Frames are lost while parity climbs, then bursts are repaired for good.
        let late = lost.iter().filter(|&&f| f >= 60 * 5).count();
        assert_eq!(late, 0, "frames lost after the first 5 s: {lost:?}");
        assert!(fec.percent() >= 70, "{}", fec.percent());
    }

    #[test]
    fn a_lost_frame_raises_at_once_and_bounds_hold() {
        let t = Instant::now();
        let mut fec = FecController::new(FecTuning::new(20, 40), 0);
        assert_eq!(fec.percent(), 20, "initial clamped up");
        fec.on_frame_lost(t);
        assert_eq!(fec.percent(), 30);
        fec.on_frame_lost(t);
        fec.on_frame_lost(t);
        assert_eq!(fec.percent(), 40, "clamped to the maximum");
        // A hostile report (more missing than sent) cannot push past the bound either.
        fec.on_repair_report(t, u32::MAX, u32::MAX, 0);
        fec.on_repair_report(t, u32::MAX, u32::MAX, 1);
        assert_eq!(fec.poll(t), 40);
        // Min above max is taken as a fixed percentage.
        let fixed = FecController::new(FecTuning::new(20, 5), 50);
        assert_eq!(fixed.percent(), 20);
    }
}
