//! Spreading a frame's packets over part of the frame interval.
//!
//! An encoder hands over a whole frame at once; sent back to back, a 1 MB frame is a
//! burst of ~750 packets that overflows switch buffers and NIC rings and is lost in a
//! clump no FEC can repair. The [`Pacer`] schedules the packets of each frame evenly
//! over a configurable fraction of the frame interval, released in small bursts so the
//! sender can still batch them (sendmmsg, GSO).
//!
//! Sans-IO: the pacer never sleeps or reads a clock. The send loop calls
//! [`Pacer::poll`] with the current time and either sends what it is told or sleeps
//! until the instant it is given.

use std::time::{Duration, Instant};

/// Pacing parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacerConfig {
    /// Time between frames (1 / fps).
    pub frame_interval: Duration,
    /// Fraction of the frame interval a frame's packets are spread over, in `0.0..=1.0`.
    /// `0.0` sends each frame as one burst.
    pub spread: f64,
    /// Packets released together (one sendmmsg / GSO batch).
    pub burst: usize,
    /// Optional link-rate ceiling in packets per second; a frame's window grows to stay
    /// under it.
    pub max_packets_per_sec: Option<u64>,
}

impl PacerConfig {
    /// Spread over 80% of the interval at `fps`, in bursts of 16 packets.
    pub fn for_fps(fps: u32) -> Self {
        Self {
            frame_interval: Duration::from_secs(1) / fps.max(1),
            spread: 0.8,
            burst: 16,
            max_packets_per_sec: None,
        }
    }
}

/// What the send loop should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Send this many packets now, then call [`Pacer::sent`] and poll again.
    Send(usize),
    /// Nothing is due before this instant.
    WaitUntil(Instant),
    /// Every scheduled packet has been released.
    Idle,
}

/// Schedules packet releases; see the module docs.
#[derive(Debug, Clone)]
pub struct Pacer {
    config: PacerConfig,
    start: Instant,
    window: Duration,
    total: usize,
    released: usize,
}

impl Pacer {
    /// A pacer with nothing scheduled.
    pub fn new(config: PacerConfig, now: Instant) -> Self {
        let mut config = config;
        config.spread = config.spread.clamp(0.0, 1.0);
        config.burst = config.burst.max(1);
        Self {
            config,
            start: now,
            window: Duration::ZERO,
            total: 0,
            released: 0,
        }
    }

    /// Changes the link-rate ceiling from the next [`Pacer::begin_frame`] on (a
    /// sender whose bitrate or parity changed).
    pub fn set_max_packets_per_sec(&mut self, rate: Option<u64>) {
        self.config.max_packets_per_sec = rate;
    }

    /// The configuration in use.
    pub fn config(&self) -> &PacerConfig {
        &self.config
    }

    /// Schedules a new frame of `packets` packets starting at `now`. Packets of the
    /// previous frame not yet released are folded into the new schedule rather than
    /// dropped, so a frame larger than the link can carry delays the next one instead of
    /// being cut.
    pub fn begin_frame(&mut self, now: Instant, packets: usize) {
        let carried = self.total - self.released;
        self.total = carried + packets;
        self.released = 0;
        self.start = now;
        let mut window = self.config.frame_interval.mul_f64(self.config.spread);
        if let Some(rate) = self.config.max_packets_per_sec.filter(|r| *r > 0) {
            let min = Duration::from_secs_f64(self.total as f64 / rate as f64);
            window = window.max(min);
        }
        self.window = window;
    }

    /// Packets scheduled but not yet released.
    pub fn pending(&self) -> usize {
        self.total - self.released
    }

    /// Offset of burst `group` from the frame start: `ceil(window * first / total)` in
    /// whole nanoseconds, so that [`Self::groups_due`] agrees with it exactly.
    fn offset_ns(&self, group: usize) -> u128 {
        let first_packet = (group * self.config.burst) as u128;
        (self.window.as_nanos() * first_packet).div_ceil(self.total.max(1) as u128)
    }

    /// Bursts due `elapsed_ns` after the frame start: every `g` with
    /// `window * g * burst <= elapsed * total`.
    fn groups_due(&self, elapsed_ns: u128) -> usize {
        let window = self.window.as_nanos();
        if window == 0 {
            return usize::MAX;
        }
        let per_group = window * self.config.burst as u128;
        usize::try_from(elapsed_ns * self.total as u128 / per_group + 1).unwrap_or(usize::MAX)
    }

    /// What to do at `now`.
    #[must_use]
    pub fn poll(&self, now: Instant) -> Release {
        if self.released >= self.total {
            return Release::Idle;
        }
        let burst = self.config.burst;
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        let due_packets = self
            .groups_due(elapsed)
            .saturating_mul(burst)
            .min(self.total);
        if due_packets > self.released {
            return Release::Send(due_packets - self.released);
        }
        let next = self.offset_ns(self.released / burst);
        Release::WaitUntil(self.start + Duration::from_nanos(next as u64))
    }

    /// Records that `n` packets went out.
    pub fn sent(&mut self, n: usize) {
        self.released = (self.released + n).min(self.total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(p: &mut Pacer, mut now: Instant) -> Vec<(Duration, usize)> {
        let start = now;
        let mut log = Vec::new();
        loop {
            match p.poll(now) {
                Release::Send(n) => {
                    log.push((now - start, n));
                    p.sent(n);
                }
                Release::WaitUntil(t) => {
                    assert!(t > now);
                    now = t;
                }
                Release::Idle => return log,
            }
        }
    }

    #[test]
    fn spreads_a_frame_over_the_configured_fraction() {
        let t0 = Instant::now();
        let cfg = PacerConfig {
            frame_interval: Duration::from_micros(16_667),
            spread: 0.6,
            burst: 10,
            max_packets_per_sec: None,
        };
        let mut p = Pacer::new(cfg, t0);
        p.begin_frame(t0, 100);
        let log = drain(&mut p, t0);
        assert_eq!(log.iter().map(|(_, n)| n).sum::<usize>(), 100);
        assert_eq!(log.len(), 10, "ten bursts of ten: {log:?}");
        assert!(log.iter().all(|(_, n)| *n == 10));
        let last = log.last().unwrap().0;
        // The last burst is due at 90% of the 10 ms window.
        assert!(
            last >= Duration::from_micros(8_999) && last <= Duration::from_micros(9_001),
            "{last:?}"
        );
    }

    #[test]
    fn zero_spread_is_one_burst_and_late_polls_catch_up() {
        let t0 = Instant::now();
        let mut cfg = PacerConfig::for_fps(60);
        cfg.spread = 0.0;
        let mut p = Pacer::new(cfg, t0);
        p.begin_frame(t0, 50);
        assert_eq!(p.poll(t0), Release::Send(50));

        let mut p = Pacer::new(PacerConfig::for_fps(60), t0);
        p.begin_frame(t0, 64);
        // A sender that wakes late gets everything that fell due meanwhile.
        assert_eq!(p.poll(t0 + Duration::from_secs(1)), Release::Send(64));
    }

    #[test]
    fn unsent_packets_carry_into_the_next_frame_and_rate_cap_stretches_window() {
        let t0 = Instant::now();
        let cfg = PacerConfig {
            max_packets_per_sec: Some(10_000),
            ..PacerConfig::for_fps(60)
        };
        let mut p = Pacer::new(cfg, t0);
        p.begin_frame(t0, 32);
        p.sent(16);
        p.begin_frame(t0 + Duration::from_millis(1), 100);
        assert_eq!(p.pending(), 116);
        // At 1k pps, 100 packets need 100 ms: the cap stretches the 13.3 ms window.
        let mut q = Pacer::new(
            PacerConfig {
                max_packets_per_sec: Some(1_000),
                ..cfg
            },
            t0,
        );
        q.begin_frame(t0, 100);
        let log = drain(&mut q, t0);
        assert!(log.last().unwrap().0 >= Duration::from_millis(90));
    }
}
