//! Loss harness: how many frames each FEC flavour brings through random and bursty
//! loss, for loss rates from 0 to 30% and parity from 0 to 50%.
//!
//! `cargo run --release -p punktfunk-core --example loss-harness [-- --frames N
//! --frame-bytes B --burst L --seed S]`
//!
//! Each cell is the percentage of frames delivered byte-exact out of `--frames`. The
//! GameStream flavour cuts a frame into up to 4 GF(2^8) blocks of at most 255 packets
//! and a block is lost when its own loss exceeds its own parity; the native flavour
//! protects the whole frame as one GF(2^16) block, so parity anywhere covers loss
//! anywhere. Burst loss follows a Gilbert-Elliott channel with mean burst `--burst`
//! packets and the same average loss rate.

use punktfunk_core::gamestream::video::{
    FrameType, PacketRun, VideoConfig, VideoFrame, VideoPacketizer, VideoReassembler,
};
use punktfunk_core::native::packetizer::{NativeConfig, NativePacketizer};
use punktfunk_core::native::reassembly::{Reassembler, ReassemblyLimits};
use punktfunk_core::native::wire::{PacketOpener, PacketSealer, SALT_HOST_DATA};
use rand::{Rng, SeedableRng, rngs::StdRng};

const LOSS_PERCENT: [f64; 9] = [0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0];
const PARITY_PERCENT: [u16; 7] = [0, 5, 10, 20, 30, 40, 50];

#[derive(Debug, Clone, Copy)]
struct Args {
    frames: usize,
    frame_bytes: usize,
    burst: f64,
    seed: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        frames: 200,
        // ~1 MB frames (480 Mbps at 60 fps): GameStream needs all 4 of its blocks.
        frame_bytes: 1_000_000,
        burst: 8.0,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--frames" => args.frames = value.parse().expect("--frames N"),
            "--frame-bytes" => args.frame_bytes = value.parse().expect("--frame-bytes B"),
            "--burst" => args.burst = value.parse().expect("--burst L"),
            "--seed" => args.seed = value.parse().expect("--seed S"),
            other => panic!("unknown flag {other}; see the doc comment"),
        }
    }
    args
}

/// Decides, packet by packet, whether the network drops it.
#[derive(Debug, Clone)]
enum Channel {
    /// Independent loss with probability `p`.
    Random { p: f64 },
    /// Gilbert-Elliott: every packet in the bad state is lost.
    Burst {
        good_to_bad: f64,
        bad_to_good: f64,
        bad: bool,
    },
}

impl Channel {
    fn random(p: f64) -> Self {
        Channel::Random { p }
    }

    /// A two-state channel with stationary loss `p` and mean burst length `burst`.
    fn burst(p: f64, burst: f64) -> Self {
        let bad_to_good = 1.0 / burst;
        let good_to_bad = if p >= 1.0 {
            1.0
        } else {
            p * bad_to_good / (1.0 - p)
        };
        Channel::Burst {
            good_to_bad,
            bad_to_good,
            bad: false,
        }
    }

    fn drops(&mut self, rng: &mut StdRng) -> bool {
        match self {
            Channel::Random { p } => rng.random_bool(*p),
            Channel::Burst {
                good_to_bad,
                bad_to_good,
                bad,
            } => {
                let flip = if *bad { *bad_to_good } else { *good_to_bad };
                if rng.random_bool(flip.clamp(0.0, 1.0)) {
                    *bad = !*bad;
                }
                *bad
            }
        }
    }
}

fn frame_data(len: usize, n: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(131) ^ n.wrapping_mul(7)) as u8)
        .collect()
}

fn gamestream_cell(args: &Args, parity: u16, mut channel: Channel, rng: &mut StdRng) -> f64 {
    let config = VideoConfig {
        fec_percent: parity.min(255) as u8,
        min_parity: 0,
        ..VideoConfig::default()
    };
    let mut tx = VideoPacketizer::new(config).expect("valid config");
    let mut rx = VideoReassembler::new(config).expect("valid config");
    let mut batch = PacketRun::new();
    let mut ok = 0;
    for n in 0..args.frames {
        let data = frame_data(args.frame_bytes, n);
        let frame = VideoFrame {
            data: &data,
            frame_index: n as u32 + 1,
            rtp_timestamp: n as u32 * 1500,
            frame_type: FrameType::P,
            host_latency: 0,
        };
        tx.packetize(&frame, &mut batch).expect("frame fits");
        for packet in batch.packets() {
            if channel.drops(rng) {
                continue;
            }
            if let Some(f) = rx.push(packet) {
                ok += usize::from(f.data == data);
            }
        }
    }
    100.0 * ok as f64 / args.frames as f64
}

fn native_cell(args: &Args, parity: u16, mut channel: Channel, rng: &mut StdRng) -> f64 {
    let key = [9u8; 16];
    let config = NativeConfig {
        parity_percent: parity,
        min_parity: 0,
        ..NativeConfig::default()
    };
    let sealer = PacketSealer::new(&key, SALT_HOST_DATA).expect("key");
    let mut tx = NativePacketizer::new(config, sealer).expect("valid config");
    let mut opener = PacketOpener::new(&key, SALT_HOST_DATA).expect("key");
    let mut rx = Reassembler::new(ReassemblyLimits::default());
    let mut batch = PacketRun::new();
    let mut buf = Vec::new();
    let mut ok = 0;
    for n in 0..args.frames {
        let data = frame_data(args.frame_bytes, n);
        tx.packetize(n as u32 + 1, 0, &data, &mut batch)
            .expect("frame fits");
        for packet in batch.packets() {
            if channel.drops(rng) {
                continue;
            }
            buf.clear();
            buf.extend_from_slice(packet);
            let Ok((header, shard)) = opener.open(&mut buf) else {
                rx.count_malformed();
                continue;
            };
            if let Some(f) = rx.push(&header, shard) {
                ok += usize::from(f.data == data.as_slice());
            }
        }
    }
    100.0 * ok as f64 / args.frames as f64
}

type Cell = fn(&Args, u16, Channel, &mut StdRng) -> f64;

fn table(args: &Args, title: &str, cell: Cell, burst: bool) {
    println!("\n{title}");
    print!("| loss      ");
    for p in PARITY_PERCENT {
        print!("| {:>5}% par ", p);
    }
    println!("|");
    print!("|-----------");
    for _ in PARITY_PERCENT {
        print!("|-----------");
    }
    println!("|");
    for loss in LOSS_PERCENT {
        print!("| {:>6.1}%   ", loss);
        for parity in PARITY_PERCENT {
            let mut rng =
                StdRng::seed_from_u64(args.seed ^ (loss.to_bits() >> 3) ^ u64::from(parity));
            let p = loss / 100.0;
            let channel = if burst {
                Channel::burst(p, args.burst)
            } else {
                Channel::random(p)
            };
            print!("| {:>9.1} ", cell(args, parity, channel, &mut rng));
        }
        println!("|");
    }
}

fn main() {
    let args = parse_args();
    println!(
        "Frames recovered byte-exact (%), {} frames of {} bytes each; burst loss has mean burst {} packets.",
        args.frames, args.frame_bytes, args.burst
    );
    table(
        &args,
        "GameStream GF(2^8), random loss",
        gamestream_cell,
        false,
    );
    table(&args, "Native GF(2^16), random loss", native_cell, false);
    table(
        &args,
        "GameStream GF(2^8), burst loss",
        gamestream_cell,
        true,
    );
    table(&args, "Native GF(2^16), burst loss", native_cell, true);
}
