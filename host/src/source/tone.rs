//! The demo sound: a continuous sine tone.

use super::AudioSource;

/// A sine tone at a fixed frequency, the same on every channel.
#[derive(Debug, Clone)]
pub struct Tone {
    frequency: f64,
    amplitude: f32,
    phase: f64,
}

/// The sample rate of everything GameStream carries.
pub const SAMPLE_RATE: u32 = 48_000;

impl Tone {
    /// A tone at `frequency` Hz and `amplitude` (0..1).
    pub fn new(frequency: f64, amplitude: f32) -> Self {
        Self {
            frequency,
            amplitude,
            phase: 0.0,
        }
    }
}

impl AudioSource for Tone {
    fn read(&mut self, samples: &mut [f32], channels: usize) {
        let step = std::f64::consts::TAU * self.frequency / f64::from(SAMPLE_RATE);
        for frame in samples.chunks_exact_mut(channels.max(1)) {
            let v = (self.phase.sin() as f32) * self.amplitude;
            frame.fill(v);
            self.phase = (self.phase + step) % std::f64::consts::TAU;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_has_the_right_period_and_is_continuous() {
        let mut t = Tone::new(440.0, 0.5);
        let mut a = vec![0f32; 480 * 2];
        let mut b = vec![0f32; 480 * 2];
        t.read(&mut a, 2);
        t.read(&mut b, 2);
        // Zero crossings upward over 20 ms of mono: 440 Hz -> ~8.8 per 20 ms.
        let mono: Vec<f32> = a.iter().chain(&b).step_by(2).copied().collect();
        let ups = mono
            .windows(2)
            .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
            .count();
        assert!((8..=9).contains(&ups), "{ups}");
        assert!(mono.iter().all(|v| v.abs() <= 0.5));
        assert_eq!(a[0], a[1], "both channels carry the tone");
    }
}
