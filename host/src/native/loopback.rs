//! The data-plane bench (`punktfunk-host loopback`): a sender thread streams synthetic
//! frames through exactly the send path a session uses ([`FrameSender`]: FEC, AES-GCM,
//! pacing, GSO) to a receiver thread running the client's receive path
//! ([`PacketReceiver`]: recvmmsg/GRO, open, replay check, reassembly), over 127.0.0.1
//! or a veth pair between two namespaces. It prints goodput, CPU per Gbit on each side,
//! frame latency, drop counters and, with `--ceilings`, the raw GSO and sendmmsg
//! throughput of the same path measured in the same run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use punktfunk_core::native::packetizer::{NativeConfig, NativePacketizer};
use punktfunk_core::native::reassembly::{NativeStats, ReassemblyLimits};
use punktfunk_core::native::wire::{FLAG_KEYFRAME, PacketSealer, SALT_HOST_DATA};
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::bench::thread_cpu;
use super::netns::{BenchPath, SocketPair, VethPair};
use super::receiver::{PacketReceiver, RecvCounters};
use super::report::{Report, percentile};
use super::sender::{FrameSender, FrameTimes, SendPacing};
use super::synthetic::{FRAME_META, Pattern, sent_us};
use crate::clock;
use crate::net::udp_batch::{BatchSocket, SendStats};

/// Options of `punktfunk-host loopback`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoopbackArgs {
    /// How long to stream.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Frames per second (ignored with --frame-bytes).
    #[arg(long, default_value_t = 60)]
    pub fps: u32,
    /// Video bitrate in Mbit/s.
    #[arg(long, default_value_t = 200)]
    pub bitrate_mbps: u32,
    /// Fixed frame size in bytes; the frame rate then follows from the bitrate (the
    /// issue's bench: 2000000).
    #[arg(long)]
    pub frame_bytes: Option<usize>,
    /// Every n-th frame is a keyframe four times the size; 0 for none.
    #[arg(long, default_value_t = 60)]
    pub keyframe_every: u32,
    /// Parity shards as a percentage of data shards.
    #[arg(long, default_value_t = 10)]
    pub parity: u16,
    /// Percentage of packets the receiver drops on purpose.
    #[arg(long, default_value_t = 2.0)]
    pub loss: f64,
    /// Fraction of the frame interval each frame is paced over. Larger values smooth
    /// bursts further but add up to that much latency.
    #[arg(long, default_value_t = 0.25)]
    pub spread: f64,
    /// Send with sendmmsg instead of UDP GSO.
    #[arg(long)]
    pub no_gso: bool,
    /// Also measure the raw GSO and sendmmsg ceilings of the same path in this run.
    #[arg(long)]
    pub ceilings: bool,
    /// Run between two network namespaces over a veth pair instead of 127.0.0.1
    /// (needs root; the namespaces are removed afterwards).
    #[arg(long)]
    pub veth: bool,
    /// With --veth: turn off UDP segmentation offload on the sender's veth, so GSO
    /// batches are cut into single datagrams as a real NIC would.
    #[arg(long, requires = "veth")]
    pub veth_segment: bool,
    /// Pace by the spread alone, without the rate ceiling (the behaviour before it, to
    /// compare): every frame, keyframes too, is squeezed into the spread.
    #[arg(long)]
    pub no_rate_ceiling: bool,
    /// Keep the send and receive threads at normal priority (by default they pace
    /// and receive real-time where the process may: see `realtime.rs`).
    #[arg(long)]
    pub normal_priority: bool,
}

impl Default for LoopbackArgs {
    fn default() -> Self {
        Self {
            seconds: 10,
            fps: 60,
            bitrate_mbps: 200,
            frame_bytes: None,
            keyframe_every: 60,
            parity: 10,
            loss: 2.0,
            spread: 0.25,
            no_gso: false,
            ceilings: false,
            veth: false,
            veth_segment: false,
            no_rate_ceiling: false,
            normal_priority: false,
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopbackSummary {
    /// Frames the sender produced.
    pub frames_sent: u64,
    /// Frames that arrived and verified byte-exact.
    pub frames_intact: u64,
    /// Frames that arrived with wrong bytes (never expected).
    pub frames_corrupt: u64,
    /// Data shards rebuilt from parity.
    pub shards_recovered: u64,
    /// Packets refused as malformed (never expected on a clean path).
    pub packets_malformed: u64,
    /// Delivered frame payload, Gbit/s over the run.
    pub goodput_gbps: f64,
    /// p99 of delivery minus the moment the frame's last data packet left, ms.
    pub added_p99_ms: f64,
}

impl LoopbackArgs {
    /// Frames per second of the run.
    fn rate(&self) -> u32 {
        match self.frame_bytes {
            Some(b) => {
                let fps = f64::from(self.bitrate_mbps) * 1e6 / 8.0 / b.max(1) as f64;
                (fps.round() as u32).max(1)
            }
            None => self.fps.max(1),
        }
    }

    /// Bytes of an ordinary frame.
    fn frame_len(&self) -> usize {
        let bytes = self.frame_bytes.unwrap_or_else(|| {
            (u64::from(self.bitrate_mbps) * 1_000_000 / 8 / u64::from(self.fps.max(1))) as usize
        });
        bytes.max(FRAME_META)
    }

    /// Bytes of the largest frame the run sends.
    fn max_frame_len(&self) -> usize {
        self.frame_len() * if self.keyframe_every > 0 { 4 } else { 1 }
    }

    fn config(&self) -> NativeConfig {
        NativeConfig {
            parity_percent: self.parity,
            ..NativeConfig::default()
        }
    }
}

/// What the receiver publishes for the per-second lines.
#[derive(Debug, Default, Clone)]
struct Progress {
    frames: u64,
    corrupt: u64,
    bytes: u64,
    recovered: u64,
    latencies_us: Vec<u64>,
}

/// What the receiver thread hands back.
struct RxResult {
    stats: NativeStats,
    counters: RecvCounters,
    dropped_on_purpose: u64,
    /// (frame id, µs since the epoch) of every delivered, intact frame.
    delivered: Vec<(u32, u64)>,
    /// CPU of the receive path: the thread's total minus checking the frames.
    cpu: Duration,
}

/// What the sender thread hands back.
struct TxResult {
    frames: u64,
    sends: SendStats,
    times: Vec<FrameTimes>,
    /// CPU of the data plane: the thread's total minus making the synthetic frames.
    cpu: Duration,
}

/// Runs the bench and prints per-second status and a summary.
pub fn run(args: &LoopbackArgs) -> Result<LoopbackSummary> {
    if args.bitrate_mbps == 0 || !(0.0..100.0).contains(&args.loss) {
        bail!("bitrate must be positive and loss in [0, 100)");
    }
    if args.normal_priority {
        crate::realtime::disable();
    }
    let path = if args.veth {
        BenchPath::Veth(VethPair::create(args.veth_segment)?)
    } else {
        BenchPath::Loopback
    };
    let SocketPair { mut tx, rx, dest } = path.sockets()?;
    if args.no_gso {
        tx.disable_gso();
    }
    rx.socket()
        .set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut key = [0u8; 16];
    rand::rng().fill(&mut key);
    let config = args.config();
    let fps = args.rate();
    tracing::info!(
        fps,
        frame_bytes = args.frame_len(),
        parity = args.parity,
        loss = args.loss,
        gso = tx.uses_gso(),
        path = path.name(),
        "bench: streaming synthetic frames over the native data plane to {dest}"
    );
    let limits = receiver_limits(args, &config)?;
    let pattern = Pattern::new(args.max_frame_len());
    let epoch = clock::now();
    let done = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Mutex::new(Progress::default()));
    let total = args.seconds * u64::from(fps);
    let receiver = {
        let (done, progress, pattern) = (done.clone(), progress.clone(), pattern.clone());
        let loss = args.loss / 100.0;
        let rx = PacketReceiver::new(rx, &key, SALT_HOST_DATA, limits)?;
        thread::Builder::new()
            .name("pf-bench-rx".into())
            .spawn(move || receive(rx, &pattern, loss, epoch, total, &done, &progress))?
    };
    let sender = {
        let (args, pattern) = (args.clone(), pattern.clone());
        thread::Builder::new()
            .name("pf-bench-tx".into())
            .spawn(move || send(tx, dest, key, config, &args, &pattern, epoch))?
    };

    let start = clock::now();
    let mut last = Progress::default();
    let mut next_line = start + Duration::from_secs(1);
    println!("  t  | frames/s | Mbit/s | recovered | lat p50 | lat p99");
    while !sender.is_finished() {
        thread::sleep(Duration::from_millis(50));
        if clock::now() < next_line {
            continue;
        }
        next_line += Duration::from_secs(1);
        let now = progress.lock().expect("progress lock").clone();
        let mut lat = now.latencies_us[last.latencies_us.len()..].to_vec();
        lat.sort_unstable();
        println!(
            "{:4.0}s | {:8} | {:6.1} | {:9} | {:5.2}ms | {:5.2}ms",
            start.elapsed().as_secs_f64(),
            now.frames - last.frames,
            (now.bytes - last.bytes) as f64 * 8.0 / 1e6,
            now.recovered - last.recovered,
            percentile(&lat, 0.5) as f64 / 1000.0,
            percentile(&lat, 0.99) as f64 / 1000.0,
        );
        last = now;
    }
    let tx = sender.join().expect("sender thread")?;
    let run_time = start.elapsed();
    // Let the last frames land before the receiver is told to stop.
    thread::sleep(Duration::from_millis(200));
    done.store(true, Ordering::Release);
    let rx = receiver.join().expect("receiver thread")?;
    let progress = progress.lock().expect("progress lock").clone();

    let report = Report::new(
        path.name(),
        &tx.times,
        &rx.delivered,
        epoch,
        progress.bytes,
        run_time,
    );
    let ceilings = if args.ceilings {
        let packet_len = config.packet_len();
        let gso = super::bench::ceiling(&path, true, packet_len, Duration::from_secs(2))?;
        let mmsg = super::bench::ceiling(&path, false, packet_len, Duration::from_secs(2))?;
        Some((gso, mmsg))
    } else {
        None
    };
    report.print(
        tx.frames,
        progress.frames,
        progress.corrupt,
        (rx.counters, rx.dropped_on_purpose, rx.stats),
        tx.sends,
        (tx.cpu, rx.cpu),
        ceilings,
    );
    if progress.corrupt > 0 {
        bail!("{} frames arrived corrupted", progress.corrupt);
    }
    Ok(LoopbackSummary {
        frames_sent: tx.frames,
        frames_intact: progress.frames,
        frames_corrupt: progress.corrupt,
        shards_recovered: rx.stats.recovered_shards,
        packets_malformed: rx.stats.malformed,
        goodput_gbps: report.goodput_gbps,
        added_p99_ms: report.added_p99_ms,
    })
}

fn send(
    socket: BatchSocket,
    dest: std::net::SocketAddr,
    key: [u8; 16],
    config: NativeConfig,
    args: &LoopbackArgs,
    pattern: &Pattern,
    epoch: Instant,
) -> Result<TxResult> {
    let packetizer = NativePacketizer::new(config, PacketSealer::new(&key, SALT_HOST_DATA)?)?;
    let fps = args.rate();
    let mut sender = FrameSender::new(
        socket,
        dest,
        packetizer,
        SendPacing {
            fps,
            spread: args.spread,
            bitrate_kbps: if args.no_rate_ceiling {
                0
            } else {
                u64::from(args.bitrate_mbps) * 1000
            },
        },
    );
    let interval = Duration::from_secs(1) / fps;
    let frame_bytes = args.frame_len();
    let mut frame = vec![0u8; args.max_frame_len()];
    let total = args.seconds * u64::from(fps);
    let mut times = Vec::with_capacity(total as usize);
    let mut synth_cpu = Duration::ZERO;
    let start = clock::now();
    for n in 0..total {
        let due = start + interval * n as u32;
        if let Some(wait) = due.checked_duration_since(clock::now()) {
            thread::sleep(wait);
        }
        let keyframe = args.keyframe_every > 0 && n % u64::from(args.keyframe_every) == 0;
        let len = if keyframe { frame.len() } else { frame_bytes };
        // Making the frame stands in for the encoder: not the data plane's CPU.
        let before = thread_cpu();
        let now = clock::now();
        pattern.fill(
            &mut frame[..len],
            n as u32,
            now.duration_since(epoch).as_micros() as u64,
        );
        synth_cpu += thread_cpu().saturating_sub(before);
        let flags = if keyframe { FLAG_KEYFRAME } else { 0 };
        times.push(sender.send_frame(n as u32, flags, &frame[..len])?);
    }
    Ok(TxResult {
        frames: total,
        sends: sender.stats(),
        times,
        cpu: thread_cpu().saturating_sub(synth_cpu),
    })
}

/// What the receiver must be able to hold: the largest frame this run sends.
fn receiver_limits(args: &LoopbackArgs, config: &NativeConfig) -> Result<ReassemblyLimits> {
    ReassemblyLimits::for_max_frame(args.max_frame_len(), config)
        .context("the run's keyframes do not fit one FEC block")
}

fn receive(
    mut rx: PacketReceiver,
    pattern: &Pattern,
    loss: f64,
    epoch: Instant,
    total: u64,
    done: &AtomicBool,
    progress: &Mutex<Progress>,
) -> Result<RxResult> {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut dropped_on_purpose = 0u64;
    let mut delivered = Vec::with_capacity(total as usize);
    let mut verify_cpu = Duration::ZERO;
    while !done.load(Ordering::Acquire) {
        rx.poll(
            || {
                let drop = loss > 0.0 && rng.random_bool(loss);
                dropped_on_purpose += u64::from(drop);
                drop
            },
            |_| {},
            |frame| {
                let now = clock::now().duration_since(epoch).as_micros() as u64;
                // Checking the bytes is the bench's, not the data plane's, CPU.
                let before = thread_cpu();
                let intact = pattern.intact(frame.data);
                verify_cpu += thread_cpu().saturating_sub(before);
                let mut p = progress.lock().expect("progress lock");
                p.recovered += frame.recovered as u64;
                if intact {
                    p.frames += 1;
                    p.bytes += frame.data.len() as u64;
                    let sent = sent_us(frame.data).unwrap_or(now);
                    p.latencies_us.push(now.saturating_sub(sent));
                    delivered.push((frame.frame_id, now));
                } else {
                    p.corrupt += 1;
                }
            },
        )?;
    }
    Ok(RxResult {
        stats: rx.stats(),
        counters: rx.counters(),
        dropped_on_purpose,
        delivered,
        cpu: thread_cpu().saturating_sub(verify_cpu),
    })
}

#[cfg(test)]
mod tests;
