//! The video pipeline as a stream runs it, stage by stage: test pattern -> BGRx to
//! YUV -> encode -> GameStream packetization with FEC -> UDP send (GSO or sendmmsg),
//! at 1280x720@60 and 1920x1080@60 with the encoder the host would pick.
//!
//! Prints p50/p99 per stage, capture-to-sent latency and CPU milliseconds per frame
//! (getrusage over all threads, encoder threads included). Frames are pushed as fast as
//! they go (no pacing, no waiting for the next frame time), so the figures are the
//! host's processing cost, not the frame interval. The send stage is compared with
//! one `sendto` per packet over the same packets, measured in the same run.
//!
//!   cargo bench -p punktfunk-host --bench pipeline
//!   PF_BENCH_FRAMES=300 PF_BENCH_CODECS=h264,hevc cargo bench -p punktfunk-host --bench pipeline

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use punktfunk_core::gamestream::video::VideoConfig;
use punktfunk_host::encode::probe::{Codec, Encoders};
use punktfunk_host::encode::video::{VideoEncoder, VideoEncoderConfig};
use punktfunk_host::net::udp_batch::{BatchSocket, SendStats};
use punktfunk_host::source::test_pattern::TestPattern;
use punktfunk_host::source::{CapturedFrame, VideoSource};
use punktfunk_host::stream::pipeline::{FramePipeline, Outcome};
use punktfunk_host::stream::video::encoder_kbps;

/// Moonlight's default packet size and the host's default FEC share.
const PACKET_SIZE: u32 = 1392;
const FEC_PERCENT: u8 = 20;

struct Case {
    width: u32,
    height: u32,
    fps: u32,
    kbps: u32,
}

#[derive(Default)]
struct Samples {
    capture: Vec<u64>,
    convert: Vec<u64>,
    encode: Vec<u64>,
    packetize: Vec<u64>,
    send: Vec<u64>,
    total: Vec<u64>,
    sendto_baseline: Vec<u64>,
    bytes: u64,
    packets: u64,
}

fn percentile(v: &[u64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    if s.is_empty() {
        return 0.0;
    }
    let i = ((s.len() - 1) as f64 * p).round() as usize;
    s[i] as f64 / 1000.0
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

fn run(
    case: &Case,
    codec: Codec,
    encoders: &Encoders,
    frames: usize,
) -> Result<Option<(String, Samples, f64)>> {
    let Some(chosen) = encoders.chosen.iter().find(|a| a.codec == codec) else {
        return Ok(None);
    };
    let cfg = VideoEncoderConfig {
        codec,
        width: case.width,
        height: case.height,
        fps: case.fps,
        bitrate_kbps: encoder_kbps(case.kbps, FEC_PERCENT),
        csc_mode: 0,
    };
    let encoder = VideoEncoder::open_named(chosen.name, &cfg)?;
    let packets = VideoConfig {
        packet_size: PACKET_SIZE as usize,
        fec_percent: FEC_PERCENT,
        min_parity: 2,
    };
    let start = Instant::now();
    let mut pipeline = FramePipeline::new(encoder, packets, start)?;
    let mut source = TestPattern::new(case.width, case.height);
    let mut frame = CapturedFrame::new(case.width, case.height);
    // A receiver that never reads: the kernel drops what overflows its buffer, as a
    // slow client would, and the sender's cost stays what it is.
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    let dest: SocketAddr = sink.local_addr()?;
    let socket = BatchSocket::bind("127.0.0.1:0".parse()?)?;
    let plain = UdpSocket::bind("127.0.0.1:0")?;
    let mut stats = SendStats::default();
    let mut s = Samples::default();
    let warmup = 30;
    let mut cpu_start = cpu_time();
    let mut measured = 0usize;
    for n in 0..(warmup + frames) as u32 {
        if n as usize == warmup {
            cpu_start = cpu_time();
        }
        let t0 = Instant::now();
        source.capture(u64::from(n + 1), &mut frame)?;
        let captured = t0.elapsed();
        let prepared = match pipeline.process(&frame.as_frame(), n + 1, n == 0)? {
            Outcome::Ready(p) => p,
            Outcome::Held => continue,
            Outcome::Dropped(e) => anyhow::bail!("frame {n} dropped: {e}"),
            Outcome::Rejected(e) => anyhow::bail!("frame {n} refused: {e:#}"),
        };
        let batch = pipeline.batch();
        let t_send = Instant::now();
        socket
            .send_packets(dest, batch.as_bytes(), batch.packet_len(), &mut stats)
            .context("sending")?;
        let sent = t_send.elapsed();
        let total = frame.captured_at.elapsed();
        // The baseline: the same packets, one sendto each.
        let t_plain = Instant::now();
        for p in batch.as_bytes().chunks(batch.packet_len()) {
            plain.send_to(p, dest)?;
        }
        let plain_us = us(t_plain.elapsed());
        if (n as usize) < warmup {
            continue;
        }
        measured += 1;
        s.capture.push(us(captured));
        s.convert.push(prepared.convert_us);
        s.encode.push(prepared.encode_us);
        s.packetize.push(prepared.packetize_us);
        s.send.push(us(sent));
        s.total.push(us(total));
        s.sendto_baseline.push(plain_us);
        s.bytes += batch.as_bytes().len() as u64;
        s.packets += batch.len() as u64;
    }
    // The baseline's sends are excluded from the CPU figure by subtracting their time
    // (they run on this thread, in user+system time, one syscall per packet).
    let baseline_cpu: u64 = s.sendto_baseline.iter().sum();
    let cpu = (cpu_time() - cpu_start).saturating_sub(Duration::from_micros(baseline_cpu));
    let cpu_ms = cpu.as_secs_f64() * 1000.0 / measured.max(1) as f64;
    Ok(Some((chosen.name.to_owned(), s, cpu_ms)))
}

fn main() -> Result<()> {
    let frames: usize = std::env::var("PF_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let codecs: Vec<Codec> = std::env::var("PF_BENCH_CODECS")
        .unwrap_or_else(|_| "h264".into())
        .split(',')
        .filter_map(|c| match c.trim() {
            "h264" => Some(Codec::H264),
            "hevc" => Some(Codec::Hevc),
            "av1" => Some(Codec::Av1),
            _ => None,
        })
        .collect();
    // `cargo bench` passes --bench; a filter argument is ignored.
    let encoders = Encoders::probe();
    let cases = [
        Case {
            width: 1280,
            height: 720,
            fps: 60,
            kbps: 10_000,
        },
        Case {
            width: 1920,
            height: 1080,
            fps: 60,
            kbps: 20_000,
        },
    ];
    println!();
    println!(
        "video pipeline, {frames} frames per row after 30 warm-up, FEC {FEC_PERCENT}%, packets {PACKET_SIZE} B"
    );
    println!(
        "{:<18} {:<11} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15} {:>9} {:>8} {:>14}",
        "stream",
        "encoder",
        "capture p50/99",
        "convert",
        "encode",
        "packet+FEC",
        "send",
        "total",
        "CPU ms/f",
        "pkts/f",
        "send vs sendto"
    );
    for case in &cases {
        for &codec in &codecs {
            let Some((name, s, cpu_ms)) = run(case, codec, &encoders, frames)? else {
                println!(
                    "{}x{}@{} {codec:?}: no encoder opens here",
                    case.width, case.height, case.fps
                );
                continue;
            };
            let cell = |v: &[u64]| format!("{:.2}/{:.2}", percentile(v, 0.5), percentile(v, 0.99));
            let n = s.total.len().max(1) as f64;
            let send_mean = s.send.iter().sum::<u64>() as f64 / n;
            let base_mean = s.sendto_baseline.iter().sum::<u64>() as f64 / n;
            println!(
                "{:<18} {:<11} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15} {:>9.2} {:>8.1} {:>13.2}x",
                format!(
                    "{}x{}@{} {}M",
                    case.width,
                    case.height,
                    case.fps,
                    case.kbps / 1000
                ),
                name,
                cell(&s.capture),
                cell(&s.convert),
                cell(&s.encode),
                cell(&s.packetize),
                cell(&s.send),
                cell(&s.total),
                cpu_ms,
                s.packets as f64 / n,
                base_mean / send_mean.max(1e-9),
            );
        }
    }
    println!(
        "(ms; 'send vs sendto' is how many times faster the batched send is than one sendto per packet)"
    );
    Ok(())
}
