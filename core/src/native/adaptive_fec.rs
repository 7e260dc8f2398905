//! Adaptive FEC: the parity percentage follows the loss the client reports.
//!
//! The client sends a [`LossReport`] every interval. Loss rises fast and falls slowly,
//! so the controller raises parity at once when a report shows more loss than the
//! current parity covers with margin, and lowers it only after [`FecPolicy::hold`]
//! without a raise, one [`FecPolicy::step_down`] at a time. A report with an
//! unrecoverable frame raises parity by a further step on top. Everything stays
//! within the host's configured bounds. Time is passed in; there is no clock here.
//!
//! The target for a loss rate `p` is the parity that makes the expected surviving
//! shards of a frame cover its data shards with [`FecPolicy::margin`] to spare:
//! `m/k >= p / (1 - p) * margin`, in percent, plus [`FecPolicy::floor`] percentage
//! points for the randomness of small frames.

use std::time::{Duration, Instant};

use super::control::LossReport;

/// The controller's tuning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FecPolicy {
    /// Lowest parity percentage.
    pub min_percent: u8,
    /// Highest parity percentage.
    pub max_percent: u8,
    /// Multiplier on the loss-derived parity (1.75: a frame of ~60 shards at 20% loss
    /// fails well under 1% of the time).
    pub margin: f64,
    /// Percentage points added to the loss-derived parity.
    pub floor: f64,
    /// How long after a raise before parity may fall.
    pub hold: Duration,
    /// Percentage points parity falls per report once the hold has passed.
    pub step_down: u8,
    /// Percentage points added when a report shows a frame lost for good.
    pub lost_frame_bump: u8,
    /// Reports are pooled until they cover this many expected packets (fewer are too
    /// noisy), unless one shows a lost frame.
    pub min_packets: u32,
}

impl Default for FecPolicy {
    fn default() -> Self {
        Self {
            min_percent: 5,
            max_percent: 50,
            margin: 1.75,
            floor: 3.0,
            hold: Duration::from_secs(3),
            step_down: 2,
            lost_frame_bump: 5,
            min_packets: 200,
        }
    }
}

/// The controller; see the module docs.
#[derive(Debug, Clone)]
pub struct AdaptiveFec {
    policy: FecPolicy,
    percent: u8,
    last_raise: Option<Instant>,
    pooled_expected: u64,
    pooled_lost: u64,
}

impl AdaptiveFec {
    /// Starts at `initial` (clamped to the policy's bounds).
    pub fn new(policy: FecPolicy, initial: u8) -> Self {
        let (lo, hi) = (
            policy.min_percent,
            policy.max_percent.max(policy.min_percent),
        );
        Self {
            policy: FecPolicy {
                max_percent: hi,
                ..policy
            },
            percent: initial.clamp(lo, hi),
            last_raise: None,
            pooled_expected: 0,
            pooled_lost: 0,
        }
    }

    /// The parity percentage to use now.
    pub fn percent(&self) -> u8 {
        self.percent
    }

    /// The parity percentage that loss rate `p` (0..1) calls for, unclamped.
    pub fn target_for(&self, p: f64) -> f64 {
        let p = p.clamp(0.0, 0.95);
        p / (1.0 - p) * self.policy.margin * 100.0 + if p > 0.0 { self.policy.floor } else { 0.0 }
    }

    /// Takes a client report received at `now`; returns the new percentage.
    pub fn on_report(&mut self, now: Instant, report: &LossReport) -> u8 {
        let pol = self.policy;
        self.pooled_expected += u64::from(report.packets_expected);
        self.pooled_lost += u64::from(report.packets_lost.min(report.packets_expected));
        if self.pooled_expected < u64::from(pol.min_packets) && report.frames_lost == 0 {
            return self.percent;
        }
        let p = if self.pooled_expected == 0 {
            0.0
        } else {
            self.pooled_lost as f64 / self.pooled_expected as f64
        };
        self.pooled_expected = 0;
        self.pooled_lost = 0;
        let mut target = self.target_for(p).ceil();
        if report.frames_lost > 0 {
            target = target.max(f64::from(self.percent) + f64::from(pol.lost_frame_bump));
        }
        let target = target.clamp(f64::from(pol.min_percent), f64::from(pol.max_percent)) as u8;
        if target > self.percent {
            self.percent = target;
            self.last_raise = Some(now);
        } else if target < self.percent
            && self
                .last_raise
                .is_none_or(|t| now.saturating_duration_since(t) >= pol.hold)
        {
            self.percent = self.percent.saturating_sub(pol.step_down).max(target);
        }
        self.percent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(expected: u32, lost: u32, frames_lost: u32) -> LossReport {
        LossReport {
            interval_ms: 500,
            packets_expected: expected,
            packets_lost: lost,
            frames_delivered: 30,
            frames_lost,
            frames_recovered: 0,
        }
    }

    #[test]
    fn loss_raises_parity_at_once_and_it_decays_after_the_hold() {
        let t0 = Instant::now();
        let mut fec = AdaptiveFec::new(FecPolicy::default(), 10);
        // Clean reports: parity falls towards the minimum, one step per report.
        assert_eq!(fec.on_report(t0, &report(10_000, 0, 0)), 8);
        // 20% loss: at once to the loss-derived target (0.25 * 1.75 * 100 + 3 = 46.75).
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(fec.on_report(t1, &report(10_000, 2_000, 0)), 47);
        // Loss gone: held for 3 s...
        let mut t = t1;
        for _ in 0..5 {
            t += Duration::from_millis(500);
            assert_eq!(fec.on_report(t, &report(10_000, 0, 0)), 47);
        }
        // ...then down a step per report, to the floor.
        t += Duration::from_millis(500);
        assert_eq!(fec.on_report(t, &report(10_000, 0, 0)), 45);
        for _ in 0..40 {
            t += Duration::from_millis(500);
            fec.on_report(t, &report(10_000, 0, 0));
        }
        assert_eq!(fec.percent(), 5);
    }

    #[test]
    fn bounds_hold_and_lost_frames_bump_and_noise_is_ignored() {
        let t0 = Instant::now();
        let policy = FecPolicy {
            min_percent: 10,
            max_percent: 30,
            ..FecPolicy::default()
        };
        let mut fec = AdaptiveFec::new(policy, 99);
        assert_eq!(fec.percent(), 30);
        // 60% loss asks for far more than the bound.
        assert_eq!(fec.on_report(t0, &report(10_000, 6_000, 3)), 30);
        let mut fec = AdaptiveFec::new(policy, 10);
        // A handful of packets says nothing yet...
        assert_eq!(fec.on_report(t0, &report(50, 40, 0)), 10);
        // ...but pooled with the next ones (80% loss over 200 packets) it does.
        assert_eq!(fec.on_report(t0, &report(150, 120, 0)), 30);
        // A lost frame always counts: one bump above the current value.
        let mut fec = AdaptiveFec::new(policy, 10);
        assert_eq!(fec.on_report(t0, &report(50, 0, 1)), 15);
    }

    #[test]
    fn target_covers_the_loss_rate() {
        let fec = AdaptiveFec::new(FecPolicy::default(), 10);
        for p in [0.01, 0.05, 0.2] {
            let m_over_k = fec.target_for(p) / 100.0;
            // Expected surviving shards of k + m exceed k.
            assert!((1.0 + m_over_k) * (1.0 - p) > 1.0, "p = {p}");
        }
        assert_eq!(fec.target_for(0.0), 0.0);
    }
}
