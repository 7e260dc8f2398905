//! One streaming session against two at once, measured in the same run.
//!
//! Each session is what a stream's video thread runs ([`FramePipeline`]: colour
//! conversion from the captured frame, libx264 with the host's default tuning,
//! GameStream packetization with FEC) on a thread of its own, fed the test pattern
//! at the session's frame rate, as a compositor would feed it. The two-session case
//! runs two such threads at once (1280x720@60 each); the one-session case runs one.
//! The cases alternate in rounds so load from others on the machine falls on both.
//!
//! Figures: host latency (frame captured until it is packetized, as the stream
//! reports it) p50/p99 over every session's frames, and CPU milliseconds per frame
//! over all threads of the process (getrusage), less the painting of the pattern.
//!
//!   cargo bench -p punktfunk-host --bench sessions
//!   PF_BENCH_FRAMES=240 PF_BENCH_ROUNDS=3 cargo bench -p punktfunk-host --bench sessions

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use punktfunk_core::gamestream::video::VideoConfig;
use punktfunk_host::encode::probe::Codec;
use punktfunk_host::encode::software::Tuning;
use punktfunk_host::encode::video::{VideoEncoder, VideoEncoderConfig};
use punktfunk_host::source::test_pattern::TestPattern;
use punktfunk_host::source::{CapturedFrame, VideoSource};
use punktfunk_host::stream::pipeline::{FramePipeline, Outcome};
use punktfunk_host::stream::video::encoder_kbps;

mod support;
use support::{percentile, process_cpu, thread_cpu};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u32 = 60;
const KBPS: u32 = 10_000;

/// What one session's thread measured.
struct Measured {
    latency_us: Vec<u64>,
    painting: Duration,
}

/// One session: `frames` frames at the session's rate through its own pipeline.
fn session(frames: u32) -> Result<Measured> {
    let cfg = VideoEncoderConfig {
        codec: Codec::H264,
        width: WIDTH,
        height: HEIGHT,
        fps: FPS,
        bitrate_kbps: encoder_kbps(KBPS, 20),
        csc_mode: 0,
        ten_bit: false,
    };
    let enc = VideoEncoder::open_tuned("libx264", &cfg, &Tuning::default())?;
    let mut pipeline = FramePipeline::new(
        enc,
        VideoConfig {
            packet_size: 1392,
            fec_percent: 20,
            min_parity: 2,
        },
        Instant::now(),
    )?;
    let mut source = TestPattern::new(WIDTH, HEIGHT);
    let mut frame = CapturedFrame::new(WIDTH, HEIGHT);
    let interval = Duration::from_secs(1) / FPS;
    let mut next = Instant::now();
    let mut out = Measured {
        latency_us: Vec::with_capacity(frames as usize),
        painting: Duration::ZERO,
    };
    for n in 1..=frames {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += interval;
        let t = thread_cpu();
        source.capture(u64::from(n), &mut frame)?;
        out.painting += thread_cpu() - t;
        frame.captured_at = Instant::now();
        match pipeline.process(&frame.as_frame(), n, n == 1)? {
            Outcome::Ready(p) => {
                // The encoder's warm-up (first frames) is not the steady state.
                if n > 30 {
                    out.latency_us.push(p.host_latency_us);
                }
            }
            other => bail!("frame {n} not sent: {other:?}"),
        }
    }
    Ok(out)
}

/// Runs `count` sessions at once; returns their latencies and the CPU per frame.
fn run(count: usize, frames: u32) -> Result<(Vec<u64>, Duration, u64)> {
    let cpu0 = process_cpu();
    let threads: Vec<_> = (0..count)
        .map(|_| std::thread::spawn(move || session(frames)))
        .collect();
    let mut latency = Vec::new();
    let mut painting = Duration::ZERO;
    for t in threads {
        let m = t
            .join()
            .map_err(|_| anyhow::anyhow!("a session panicked"))??;
        latency.extend(m.latency_us);
        painting += m.painting;
    }
    let cpu = (process_cpu() - cpu0).saturating_sub(painting);
    Ok((latency, cpu, u64::from(frames) * count as u64))
}

fn main() -> Result<()> {
    ffmpeg_next::init()?;
    let frames: u32 = std::env::var("PF_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(240);
    let rounds: u32 = std::env::var("PF_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut totals = [
        (Vec::new(), Duration::ZERO, 0u64),
        (Vec::new(), Duration::ZERO, 0u64),
    ];
    for _ in 0..rounds {
        for (i, count) in [1usize, 2].into_iter().enumerate() {
            let (lat, cpu, n) = run(count, frames)?;
            totals[i].0.extend(lat);
            totals[i].1 += cpu;
            totals[i].2 += n;
        }
    }
    println!(
        "{WIDTH}x{HEIGHT}@{FPS} test pattern, libx264 (host tuning), {frames} frames per session, {rounds} rounds"
    );
    println!(
        "| sessions | host latency p50 ms | p99 ms | CPU ms/frame | ratio to one (CPU/frame) |"
    );
    println!("|---|---|---|---|---|");
    let one_cpu = totals[0].1.as_secs_f64() * 1000.0 / totals[0].2.max(1) as f64;
    for (count, (lat, cpu, n)) in [1, 2].iter().zip(&totals) {
        let cpu_ms = cpu.as_secs_f64() * 1000.0 / (*n).max(1) as f64;
        println!(
            "| {count} | {:.2} | {:.2} | {:.2} | {:.2} |",
            percentile(lat, 0.5),
            percentile(lat, 0.99),
            cpu_ms,
            cpu_ms / one_cpu
        );
    }
    Ok(())
}
