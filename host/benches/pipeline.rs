//! The video pipeline against a reference path, measured in the same run.
//!
//! - **Reference** (what the host did before, and about what Sunshine does): swscale
//!   BGRx to YUV420P, single-threaded, default flags (bicubic); then libx264
//!   superfast/zerolatency at the same bitrate and VBV, with FFmpeg's default
//!   threading.
//! - **Ours**: the host's pipeline as a stream runs it ([`FramePipeline`]: conversion
//!   straight from the capture's memory, the encoder, GameStream packetization with
//!   FEC), with the host's default tuning, also superfast.
//! - **Ours, NV12 from the source**: the same, fed by a source that paints NV12 itself
//!   in the encoder's matrix (the host's test pattern does when streaming; a PipeWire
//!   producer negotiated to NV12 would): no colour conversion, a plane copy.
//! - **Levers**: ours with one knob at a time moved (conversion path and bands, NV12,
//!   x264 threads and options), so each lever's effect is a same-run ratio. Each path's
//!   stream is decoded afterwards and its colour bars compared with the source as the
//!   interop tests do (PSNR, dB), so no lever buys speed with quality unseen.
//!
//! Latency has Sunshine's end points: the frame captured (the test pattern painted)
//! until the encoded frame is handed to packetization. CPU is milliseconds per frame
//! over all threads (getrusage), less the painting and the packetization (which the
//! reference does not do). Paths run interleaved in blocks of 30 frames so load from
//! others on the machine falls on all of them alike. Frames are pushed back to back
//! (no pacing), so the figures are processing cost, not the frame interval.
//!
//!   cargo bench -p punktfunk-host --bench pipeline
//!   PF_BENCH_FRAMES=300 PF_BENCH_JSON=/tmp/pipeline.json PF_BENCH_LEVERS=0 \
//!     PF_BENCH_BLOCK=5 cargo bench -p punktfunk-host --bench pipeline

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ffmpeg_next as ffmpeg;
use punktfunk_core::gamestream::video::VideoConfig;
use punktfunk_host::encode::probe::Codec;
use punktfunk_host::encode::software::Tuning;
use punktfunk_host::encode::video::{VideoEncoder, VideoEncoderConfig};
use punktfunk_host::source::test_pattern::{Nv12Pattern, TestPattern};
use punktfunk_host::source::{CapturedFrame, VideoSource};
use punktfunk_host::stream::pipeline::{FramePipeline, Outcome};
use punktfunk_host::stream::video::encoder_kbps;
use serde_json::json;

mod support;
use support::{percentile, process_cpu, thread_cpu};

#[path = "pipeline/quality.rs"]
mod quality;
#[path = "pipeline/reference.rs"]
mod reference;
use reference::Reference;
#[path = "pipeline/conversion.rs"]
mod conversion;
use conversion::conversion_table;
#[path = "pipeline/levers.rs"]
mod levers;
use levers::levers;

/// Moonlight's default packet size and the host's default FEC share.
const PACKET_SIZE: u32 = 1392;
const FEC_PERCENT: u8 = 20;
/// Frames a path runs before the next takes over (`PF_BENCH_BLOCK`): smaller blocks
/// spread others' load on the machine more evenly over the paths.
const BLOCK: usize = 30;
/// Frames before measuring starts (the IDR and x264's first frames).
const WARM_UP: usize = 30;

struct Case {
    width: u32,
    height: u32,
    fps: u32,
    kbps: u32,
}

enum Path {
    Reference(Box<Reference>),
    Ours(Box<FramePipeline>),
}

struct Runner {
    name: String,
    path: Path,
    source: TestPattern,
    frame: CapturedFrame,
    /// The source paints NV12 itself (a producer that offers YUV).
    nv12: Option<Nv12Pattern>,
    /// Every frame's access unit, for the PSNR afterwards.
    stream: Vec<Vec<u8>>,
    n: u32,
    latency: Vec<u64>,
    convert: Vec<u64>,
    encode: Vec<u64>,
    cpu: Duration,
    bytes: u64,
    measured: usize,
    /// Min and mean bars PSNR of the decoded stream, dB.
    psnr: (f64, f64),
}

impl Runner {
    fn new(name: &str, path: Path, case: &Case, nv12_source: bool) -> Self {
        Self {
            name: name.to_owned(),
            path,
            source: TestPattern::new(case.width, case.height),
            frame: CapturedFrame::new(case.width, case.height),
            nv12: nv12_source.then(|| {
                Nv12Pattern::new(
                    case.width,
                    case.height,
                    &punktfunk_yuv::Matrix::bt601(false),
                )
            }),
            stream: Vec::new(),
            n: 0,
            latency: Vec::new(),
            convert: Vec::new(),
            encode: Vec::new(),
            cpu: Duration::ZERO,
            bytes: 0,
            measured: 0,
            psnr: (0.0, 0.0),
        }
    }

    /// Runs `frames` frames; `measure` records them.
    fn block(&mut self, frames: usize, measure: bool) -> Result<()> {
        let cpu0 = process_cpu();
        let mut excluded = Duration::ZERO;
        for _ in 0..frames {
            self.n += 1;
            let t = thread_cpu();
            match &mut self.nv12 {
                Some(nv) => nv.draw(u64::from(self.n), 0),
                None => self.source.capture(u64::from(self.n), &mut self.frame)?,
            }
            excluded += thread_cpu() - t;
            // Captured = painted and ready, as a compositor's frame would be.
            self.frame.captured_at = Instant::now();
            let idr = self.n == 1;
            let (latency, bytes) = match &mut self.path {
                Path::Reference(r) => {
                    let bytes = r.process(&self.frame, idr)?;
                    (self.frame.captured_at.elapsed(), bytes)
                }
                Path::Ours(p) => {
                    let frame = match &self.nv12 {
                        Some(nv) => nv.as_frame(self.frame.captured_at, 0),
                        None => self.frame.as_frame(),
                    };
                    let prepared = match p.process(&frame, self.n, idr)? {
                        Outcome::Ready(prepared) => prepared,
                        other => bail!("{}: frame {} not sent: {other:?}", self.name, self.n),
                    };
                    excluded += Duration::from_micros(prepared.packetize_us);
                    if measure {
                        self.convert.push(prepared.convert_us);
                        self.encode.push(prepared.encode_us);
                    }
                    (
                        Duration::from_micros(prepared.host_latency_us),
                        p.encoded_len(),
                    )
                }
            };
            let t = thread_cpu();
            self.stream.push(match &self.path {
                Path::Reference(r) => r.out.clone(),
                Path::Ours(p) => p.encoded().to_vec(),
            });
            excluded += thread_cpu() - t;
            if measure {
                self.latency.push(latency.as_micros() as u64);
                self.bytes += bytes as u64;
                self.measured += 1;
            }
        }
        if measure {
            self.cpu += (process_cpu() - cpu0).saturating_sub(excluded);
        }
        Ok(())
    }

    fn cpu_ms(&self) -> f64 {
        self.cpu.as_secs_f64() * 1000.0 / self.measured.max(1) as f64
    }

    fn summary(&self) -> serde_json::Value {
        json!({
            "latency_p50_ms": percentile(&self.latency, 0.5),
            "latency_p99_ms": percentile(&self.latency, 0.99),
            "cpu_ms_per_frame": self.cpu_ms(),
            "kbit_per_s": self.bytes as f64 * 8.0 * 60.0 / 1000.0 / self.measured.max(1) as f64,
            "psnr_min_db": self.psnr.0,
            "psnr_mean_db": self.psnr.1,
        })
    }
}

fn main() -> Result<()> {
    ffmpeg::init()?;
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this once without
    // it (unoptimised): a short smoke run then, without the levers.
    let full = std::env::args().any(|a| a == "--bench");
    let frames: usize = std::env::var("PF_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 600 } else { 30 });
    let with_levers = std::env::var("PF_BENCH_LEVERS").map_or(full, |v| v != "0");
    let block: usize = std::env::var("PF_BENCH_BLOCK")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&b| b > 0)
        .unwrap_or(BLOCK);
    let blocks = frames.div_ceil(block);
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
        "video pipeline vs reference, {} frames a path after {WARM_UP} warm-up, interleaved in blocks of {block}; FEC {FEC_PERCENT}%",
        blocks * block
    );
    let mut streams = Vec::new();
    for case in &cases {
        let cfg = VideoEncoderConfig {
            codec: Codec::H264,
            width: case.width,
            height: case.height,
            fps: case.fps,
            bitrate_kbps: encoder_kbps(case.kbps, FEC_PERCENT),
            csc_mode: 0,
            ten_bit: false,
        };
        let packets = VideoConfig {
            packet_size: PACKET_SIZE as usize,
            fec_percent: FEC_PERCENT,
            min_parity: 2,
        };
        let ours = |tuning: &Tuning| -> Result<Path> {
            let enc = VideoEncoder::open_tuned("libx264", &cfg, tuning)?;
            Ok(Path::Ours(Box::new(FramePipeline::new(
                enc,
                packets,
                Instant::now(),
            )?)))
        };
        let mut runners = vec![
            Runner::new(
                "reference",
                Path::Reference(Box::new(Reference::open(&cfg)?)),
                case,
                false,
            ),
            Runner::new("ours", ours(&Tuning::default())?, case, false),
            Runner::new(
                "ours, NV12 from the source (test pattern)",
                ours(&Tuning::default())?,
                case,
                true,
            ),
        ];
        if with_levers {
            for (name, t, nv12) in levers() {
                runners.push(Runner::new(name, ours(&t)?, case, nv12));
            }
        }
        for r in &mut runners {
            r.block(WARM_UP, false)?;
        }
        for _ in 0..blocks {
            for r in &mut runners {
                r.block(block, true)?;
            }
        }
        for r in &mut runners {
            r.psnr = quality::stream_psnr(&r.stream, case.width, case.height, WARM_UP)?;
            r.stream = Vec::new();
            // What the interop tests assert of a stream: a path below it is broken.
            if r.psnr.0 < 30.0 {
                bail!("{}: colour bars PSNR {:.1} dB, under 30", r.name, r.psnr.0);
            }
        }
        let stream = format!(
            "{}x{}@{} {}M",
            case.width,
            case.height,
            case.fps,
            case.kbps / 1000
        );
        let reference = &runners[0];
        let (ref_p50, ref_cpu) = (percentile(&reference.latency, 0.5), reference.cpu_ms());
        println!();
        println!(
            "{stream}, libx264 superfast/zerolatency at {} kbit/s",
            cfg.bitrate_kbps
        );
        println!(
            "{:<50} {:>13} {:>9} {:>9} {:>9} {:>9} {:>11} {:>8} {:>8}",
            "path",
            "latency p50/99",
            "convert",
            "encode",
            "CPU ms/f",
            "kbit/s",
            "PSNR min/avg",
            "lat x",
            "CPU x"
        );
        for r in &runners {
            let p50 = percentile(&r.latency, 0.5);
            println!(
                "{:<50} {:>13} {:>9} {:>9} {:>9.2} {:>9.0} {:>11} {:>8.2} {:>8.2}",
                r.name,
                format!("{:.2}/{:.2}", p50, percentile(&r.latency, 0.99)),
                if r.convert.is_empty() {
                    "-".into()
                } else {
                    format!("{:.2}", percentile(&r.convert, 0.5))
                },
                if r.encode.is_empty() {
                    "-".into()
                } else {
                    format!("{:.2}", percentile(&r.encode, 0.5))
                },
                r.cpu_ms(),
                r.summary()["kbit_per_s"].as_f64().unwrap_or(0.0),
                format!("{:.1}/{:.1}", r.psnr.0, r.psnr.1),
                p50 / ref_p50.max(1e-9),
                r.cpu_ms() / ref_cpu.max(1e-9),
            );
        }
        let conversion = conversion_table(case, frames)?;
        let ours = &runners[1];
        let mut entry = ours.summary();
        entry["conversion"] = json!(conversion);
        entry["stream"] = json!(stream);
        entry["encoder"] = json!("libx264 superfast");
        entry["reference"] = reference.summary();
        entry["latency_p50_ratio"] = json!(percentile(&ours.latency, 0.5) / ref_p50.max(1e-9));
        entry["cpu_ratio"] = json!(ours.cpu_ms() / ref_cpu.max(1e-9));
        let nv12 = &runners[2];
        entry["nv12_source"] = nv12.summary();
        entry["nv12_source"]["latency_p50_ratio"] =
            json!(percentile(&nv12.latency, 0.5) / ref_p50.max(1e-9));
        entry["nv12_source"]["cpu_ratio"] = json!(nv12.cpu_ms() / ref_cpu.max(1e-9));
        entry["levers"] = runners[3..]
            .iter()
            .map(|r| {
                let mut v = r.summary();
                v["lever"] = json!(r.name);
                v
            })
            .collect();
        streams.push(entry);
    }
    println!("(ms; 'lat x' and 'CPU x' are ratios to the reference in this run)");
    if let Some(path) = std::env::var_os("PF_BENCH_JSON") {
        let doc = json!({ "frames_per_path": blocks * block, "block": block, "streams": streams });
        std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.to_string_lossy()))?;
        println!("summary written to {}", path.to_string_lossy());
    }
    Ok(())
}
