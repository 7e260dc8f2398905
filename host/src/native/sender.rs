//! The host's per-frame send path for punktfunk/1, shared by the network data plane
//! ([`super::data`]) and the loopback bench ([`super::loopback`]): packetize (FEC and
//! AES-GCM into one reused [`PacketRun`]), then pace the run out in GSO batches.

use std::net::SocketAddr;
use std::thread;
use std::time::Instant;

use anyhow::Result;
use punktfunk_core::native::packetizer::NativePacketizer;
use punktfunk_core::pacing::{Pacer, PacerConfig, Release};
use punktfunk_core::packet_run::PacketRun;

use crate::clock;
use crate::net::udp_batch::{BatchSocket, MAX_GSO_BYTES, SendStats};

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

/// Packetizes and paces frames to one destination.
#[derive(Debug)]
pub struct FrameSender {
    socket: BatchSocket,
    dest: SocketAddr,
    packetizer: NativePacketizer,
    pacer: Pacer,
    run: PacketRun,
    stats: SendStats,
}

impl FrameSender {
    /// A sender that spreads each frame over `spread` of the frame interval at `fps`.
    /// Call it on the thread that will send: it tightens that thread's timer slack so
    /// the pacer's short sleeps end when asked.
    pub fn new(
        socket: BatchSocket,
        dest: SocketAddr,
        packetizer: NativePacketizer,
        fps: u32,
        spread: f64,
    ) -> Self {
        tighten_timer_slack();
        // One pacer burst is one full GSO send.
        let burst = (MAX_GSO_BYTES / packetizer.config().packet_len()).max(1);
        let pacer = Pacer::new(
            PacerConfig {
                spread,
                burst,
                ..PacerConfig::for_fps(fps.max(1))
            },
            clock::now(),
        );
        Self {
            socket,
            dest,
            packetizer,
            pacer,
            run: PacketRun::new(),
            stats: SendStats::default(),
        }
    }

    /// Changes the parity percentage from the next frame on (adaptive FEC).
    pub fn set_parity_percent(&mut self, percent: u16) {
        self.packetizer.set_parity_percent(percent);
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
        let mut sent = 0;
        let mut data_sent = start;
        loop {
            match self.pacer.poll(clock::now()) {
                Release::Send(count) => {
                    let count = count.min(total - sent);
                    self.socket.send_packets(
                        self.dest,
                        self.run.slice(sent..sent + count),
                        self.run.packet_len(),
                        &mut self.stats,
                    )?;
                    self.pacer.sent(count);
                    let before = sent;
                    sent += count;
                    if before < data_packets && sent >= data_packets {
                        data_sent = clock::now();
                    }
                }
                Release::WaitUntil(t) => {
                    if let Some(wait) = t.checked_duration_since(clock::now()) {
                        thread::sleep(wait);
                    }
                }
                Release::Idle => break,
            }
        }
        Ok(FrameTimes {
            start,
            data_sent,
            all_sent: clock::now(),
            packets: total,
        })
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
