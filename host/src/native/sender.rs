//! The host's per-frame send path for punktfunk/1, shared by the network data plane
//! ([`super::data`]) and the loopback bench ([`super::loopback`]): packetize (FEC and
//! AES-GCM into one reused [`PacketRun`]), then pace the run out in GSO batches.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Result;
use punktfunk_core::native::packetizer::NativePacketizer;
use punktfunk_core::pacing::{Pacer, PacerConfig};
use punktfunk_core::packet_run::PacketRun;

use crate::clock;
use crate::net::pace::release_paced;
use crate::net::udp_batch::{BatchSocket, MAX_GSO_BYTES, SendStats};
use crate::realtime::Realtime;

/// When a frame's packets left.
#[derive(Debug, Clone, Copy)]
pub struct FrameTimes {
    /// The frame was handed to the sender.
    pub start: Instant,
    /// The send that carried the last data packet returned: from here on the receiver
    /// has everything it needs, so delivery minus this is the latency the path adds.
    pub data_sent: Instant,
    /// The last parity packet left.
    pub all_sent: Instant,
    /// Packets of the frame, parity included.
    pub packets: usize,
}

/// How a sender spreads its frames out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendPacing {
    /// Frames per second of the stream.
    pub fps: u32,
    /// Fraction of the frame interval an average frame is spread over.
    pub spread: f64,
    /// The stream's bitrate (video, before parity), kbit/s; 0 for no rate ceiling.
    pub bitrate_kbps: u64,
}

/// Packetizes and paces frames to one destination.
#[derive(Debug)]
pub struct FrameSender {
    socket: BatchSocket,
    dest: SocketAddr,
    packetizer: NativePacketizer,
    pacer: Pacer,
    pacing: SendPacing,
    run: PacketRun,
    stats: SendStats,
    /// Pacing runs real-time where the process may (see [`crate::realtime`]).
    realtime: Realtime,
}

/// How much faster than an average frame's rate a frame may go: frames up to this
/// much above the average keep the spread; the ceiling only stretches frames beyond
/// it. Without headroom a stream whose every frame is average (spread 1.0) falls
/// behind by its packetizing time each frame.
const CEILING_HEADROOM: f64 = 1.25;

/// The packet rate at which a frame [`CEILING_HEADROOM`] times the average size
/// (`bitrate_kbps` at `fps`, plus `parity_percent`) fills `spread` of the frame
/// interval: the ceiling every frame is paced under. A keyframe four times the average
/// then takes about three times the spread instead of arriving four times as fast, so
/// it never bursts past the receiver's socket buffer. `None` without a bitrate.
pub fn rate_ceiling(pacing: &SendPacing, shard_len: usize, parity_percent: u16) -> Option<u64> {
    if pacing.bitrate_kbps == 0 || shard_len == 0 {
        return None;
    }
    let bytes_per_sec = pacing.bitrate_kbps as f64 * 1000.0 / 8.0;
    let packets_per_sec =
        bytes_per_sec / shard_len as f64 * (100.0 + f64::from(parity_percent)) / 100.0;
    let spread = pacing.spread.clamp(0.01, 1.0);
    Some((packets_per_sec * CEILING_HEADROOM / spread).ceil() as u64)
}

impl FrameSender {
    /// A sender that spreads each frame over `pacing.spread` of the frame interval,
    /// never faster than [`rate_ceiling`]. Call it on the thread that will send: it
    /// tightens that thread's timer slack so the pacer's short sleeps end when asked.
    pub fn new(
        socket: BatchSocket,
        dest: SocketAddr,
        packetizer: NativePacketizer,
        pacing: SendPacing,
    ) -> Self {
        tighten_timer_slack();
        let config = *packetizer.config();
        // One pacer burst is one full GSO send.
        let burst = (MAX_GSO_BYTES / config.packet_len()).max(1);
        let pacer = Pacer::new(
            PacerConfig {
                spread: pacing.spread,
                burst,
                max_packets_per_sec: rate_ceiling(&pacing, config.shard_len, config.parity_percent),
                ..PacerConfig::for_fps(pacing.fps.max(1))
            },
            clock::now(),
        );
        Self {
            socket,
            dest,
            packetizer,
            pacer,
            pacing,
            run: PacketRun::new(),
            stats: SendStats::default(),
            realtime: Realtime::default(),
        }
    }

    /// Changes the parity percentage from the next frame on (adaptive FEC); the rate
    /// ceiling follows, since parity packets travel too.
    pub fn set_parity_percent(&mut self, percent: u16) {
        self.packetizer.set_parity_percent(percent);
        self.update_ceiling();
    }

    fn update_ceiling(&mut self) {
        let config = self.packetizer.config();
        self.pacer.set_max_packets_per_sec(rate_ceiling(
            &self.pacing,
            config.shard_len,
            config.parity_percent,
        ));
    }

    /// Send counters so far.
    pub fn stats(&self) -> SendStats {
        self.stats
    }

    /// The socket (the data plane also receives the client's announce on it).
    pub fn socket(&self) -> &BatchSocket {
        &self.socket
    }

    /// Packetizes `data` as frame `frame_id` and paces its packets out; returns when
    /// the last one has left.
    pub fn send_frame(&mut self, frame_id: u32, flags: u8, data: &[u8]) -> Result<FrameTimes> {
        let start = clock::now();
        self.packetizer
            .packetize(frame_id, flags, data, &mut self.run)?;
        let data_packets = self.run.blocks().first().map_or(0, |b| b.data);
        let total = self.run.len();
        self.pacer.begin_frame(start, total);
        // Packetizing (FEC, sealing) above is the heavy part and runs at normal
        // priority; only pacing, which mostly sleeps, runs real-time.
        let mut realtime = std::mem::take(&mut self.realtime);
        let paced = realtime.run(|| self.pace_out(start, data_packets, total));
        self.realtime = realtime;
        let data_sent = paced?;
        Ok(FrameTimes {
            start,
            data_sent,
            all_sent: clock::now(),
            packets: total,
        })
    }

    /// Sends the packetized run as the pacer releases it; returns when the send that
    /// carried the last data packet returned.
    fn pace_out(&mut self, start: Instant, data_packets: usize, total: usize) -> Result<Instant> {
        let mut data_sent = start;
        let (socket, dest, run, stats) = (&self.socket, self.dest, &self.run, &mut self.stats);
        release_paced(&mut self.pacer, total, |burst| {
            socket.send_packets(dest, run.slice(burst.clone()), run.packet_len(), stats)?;
            if burst.start < data_packets && burst.end >= data_packets {
                data_sent = clock::now();
            }
            Ok::<_, anyhow::Error>(())
        })?;
        Ok(data_sent)
    }
}

/// Asks the kernel to wake this thread within 1 µs of a sleep's end, not the default
/// 50 µs: at several Gbit/s the pacer sleeps for tens of microseconds between bursts.
fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only affects the
    // calling thread; the trailing zeros are the unused variadic arguments.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use punktfunk_core::pacing::Release;

    #[test]
    fn an_average_frame_keeps_the_spread_and_a_keyframe_is_stretched_past_it() {
        // 60 fps at 3 Gbit/s: 6.25 MB frames; 10% parity; half the interval.
        let pacing = SendPacing {
            fps: 60,
            spread: 0.5,
            bitrate_kbps: 3_000_000,
        };
        let shard = 1000;
        let rate = rate_ceiling(&pacing, shard, 10).unwrap();
        let avg_packets = 6_250_000.0 / 1000.0 * 1.1;
        let window = avg_packets * CEILING_HEADROOM / rate as f64;
        assert!((window - 0.5 / 60.0).abs() < 1e-5, "window {window}");
        let mut pacer = Pacer::new(
            PacerConfig {
                spread: 0.5,
                burst: 16,
                max_packets_per_sec: Some(rate),
                ..PacerConfig::for_fps(60)
            },
            clock::now(),
        );
        // A keyframe four times the average takes 4 / 1.25 times the spread: 1.6
        // intervals, not a burst into the receiver's buffer.
        let t0 = clock::now();
        pacer.begin_frame(t0, (avg_packets * 4.0) as usize);
        let mut now = t0;
        loop {
            match pacer.poll(now) {
                Release::Send(n) => pacer.sent(n),
                Release::WaitUntil(t) => now = t,
                Release::Idle => break,
            }
        }
        let took = now - t0;
        assert!(
            took.as_secs_f64() > 1.55 / 60.0 && took.as_secs_f64() < 1.65 / 60.0,
            "{took:?}"
        );
    }

    #[test]
    fn no_bitrate_no_ceiling() {
        let pacing = SendPacing {
            fps: 60,
            spread: 0.25,
            bitrate_kbps: 0,
        };
        assert_eq!(rate_ceiling(&pacing, 1000, 10), None);
    }
}
