//! Media clocks. There is no clock in this crate: callers pass `Instant`s or elapsed
//! `Duration`s, and these helpers turn them into the units the wire formats carry.

use std::time::Duration;

/// RTP video timestamp (90 kHz clock), wrapping like the 32-bit field it fills.
pub fn rtp_90khz(since_stream_start: Duration) -> u32 {
    (since_stream_start.as_micros() * 9 / 100) as u32
}

/// RTP audio timestamp (48 kHz clock), wrapping like the 32-bit field it fills.
pub fn rtp_48khz(since_stream_start: Duration) -> u32 {
    (since_stream_start.as_micros() * 48 / 1000) as u32
}

/// A latency in the 0.1 ms units of the GameStream frame header, rounded to nearest and
/// saturating at `u16::MAX` (6.5 s), as Sunshine reports it.
pub fn tenths_of_ms(latency: Duration) -> u16 {
    let tenths = (latency.as_micros() + 50) / 100;
    tenths.min(u128::from(u16::MAX)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_and_latency_units() {
        assert_eq!(rtp_90khz(Duration::from_secs(1)), 90_000);
        assert_eq!(rtp_90khz(Duration::from_millis(16)), 1_440);
        assert_eq!(rtp_48khz(Duration::from_millis(5)), 240);
        // 2^32 ticks at 90 kHz is about 13.25 hours; the field wraps.
        assert_eq!(
            rtp_90khz(Duration::from_secs(47_722)),
            4_294_980_000u64 as u32
        );
        assert_eq!(tenths_of_ms(Duration::from_micros(1_249)), 12);
        assert_eq!(tenths_of_ms(Duration::from_micros(1_250)), 13);
        assert_eq!(tenths_of_ms(Duration::from_secs(3600)), u16::MAX);
    }
}
