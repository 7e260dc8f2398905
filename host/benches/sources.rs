//! Each video source through the real pipeline, as a stream runs it: capture ->
//! conversion straight from the capture's memory -> x264 -> GameStream packets with FEC
//! -> UDP, at 1280x720@60 and 1920x1080@60, paced by the source itself.
//!
//! Sources: the built-in test pattern (the baseline), the PipeWire test producer
//! (`pf-pw-producer`, BGRx MemFd buffers, in a private PipeWire session this bench
//! starts and stops), and a headless sway session with the painter app inside, started
//! through `DisplayManager` as the host starts it and captured with wlr-screencopy
//! (needs root, sway and the session user; the row says why when it is skipped). The difference between
//! a source's row and the test pattern's, measured in the same run, is the cost of
//! capturing it.
//!
//! Columns: host latency p50/p99 (frame captured -> its last packet sent: what the
//! frame header reports, plus the send), handoff p50 (captured -> in the pipeline's
//! hands: the wait capturing adds), paint-to-sent p50 from the barcode the
//! picture carries (includes the trip through PipeWire), the conversion p50, frames
//! that arrived, and CPU milliseconds per frame for this process (all threads:
//! capture, encoder, PipeWire's) and for the source's processes: the producer, or sway
//! and the painter (every process carrying the session's PUNKTFUNK_SESSION mark).
//!
//!   cargo build --release -p pw-producer -p punktfunk-painter
//!   cargo bench -p punktfunk-host --bench sources
//!   PF_BENCH_FRAMES=600 cargo bench -p punktfunk-host --bench sources

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use punktfunk_core::gamestream::video::VideoConfig;
use punktfunk_host::capture::{self, CaptureSpec, NodeTarget, Pixels};
use punktfunk_host::display::{
    Backend, DisplayConfig, DisplayManager, Mode, SessionConfig, SessionUser, process,
};
use punktfunk_host::encode::probe::{Codec, Encoders};
use punktfunk_host::encode::video::{VideoEncoder, VideoEncoderConfig};
use punktfunk_host::net::udp_batch::{BatchSocket, SendStats};
use punktfunk_host::source::test_pattern::read_barcode;
use punktfunk_host::stream::pipeline::{FramePipeline, Outcome};
use punktfunk_host::stream::video::encoder_kbps;

mod support;
use support::{percentile, process_cpu};

const PACKET_SIZE: usize = 1392;
const FEC_PERCENT: u8 = 20;

/// utime + stime of another process, from /proc/<pid>/stat.
fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// Summed CPU time of `pids` (those still alive).
fn cpu_of_all(pids: &[u32]) -> Option<Duration> {
    if pids.is_empty() {
        return None;
    }
    Some(pids.iter().filter_map(|&p| cpu_of(p)).sum())
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A private PipeWire session (dbus-daemon, pipewire, wireplumber) in its own runtime
/// directory; everything it started is killed on drop.
struct PipeWireSession {
    dir: PathBuf,
    children: Vec<Child>,
}

impl PipeWireSession {
    fn start() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("pf-bench-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let mut s = Self {
            dir,
            children: Vec::new(),
        };
        let bus = format!("unix:path={}", s.dir.join("bus").display());
        s.spawn(
            "dbus-daemon",
            &["--session", "--nofork", &format!("--address={bus}")],
        )?;
        s.wait_for(&s.dir.join("bus"))?;
        s.spawn("pipewire", &[])?;
        s.wait_for(&s.dir.join("pipewire-0"))?;
        s.spawn("wireplumber", &[])?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = s.command("pw-cli").args(["ls", "Client"]).output()?;
            if String::from_utf8_lossy(&out.stdout).contains("WirePlumber") {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!("wireplumber did not come up");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("XDG_RUNTIME_DIR", &self.dir)
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}", self.dir.join("bus").display()),
            )
            .env_remove("PIPEWIRE_REMOTE")
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    fn spawn(&mut self, program: &str, args: &[&str]) -> Result<()> {
        let child = self
            .command(program)
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        self.children.push(child);
        Ok(())
    }

    fn wait_for(&self, path: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            if Instant::now() > deadline {
                bail!("{} did not appear", path.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for PipeWireSession {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child process killed on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn producer_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PF_PRODUCER_BIN") {
        return Some(p.into());
    }
    sibling_bin("pf-pw-producer")
}

/// A workspace binary next to this bench, else in the other profile's directory.
fn sibling_bin(name: &str) -> Option<PathBuf> {
    // target/<profile>/deps/sources-* -> target/<profile>/<name>, else the other
    // profile's.
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let target = profile_dir.parent()?;
    [
        profile_dir.join(name),
        target.join("release").join(name),
        target.join("debug").join(name),
    ]
    .into_iter()
    .find(|p| p.exists())
}

#[derive(Default)]
struct Row {
    host: Vec<u64>,
    /// Captured -> the frame in the pipeline's hands (what capturing adds).
    handoff: Vec<u64>,
    paint_to_sent: Vec<u64>,
    convert: Vec<u64>,
    frames: usize,
    cpu_ms: f64,
    /// CPU of the source's own processes: the producer, or the compositor and the app.
    source_cpu_ms: Option<f64>,
}

/// Streams `frames` frames of `spec` through the pipeline to a local sink.
fn run(
    spec: &CaptureSpec,
    (width, height, kbps): (u32, u32, u32),
    encoder: &'static str,
    frames: usize,
    source_pids: &dyn Fn() -> Vec<u32>,
) -> Result<Row> {
    let cfg = VideoEncoderConfig {
        codec: Codec::H264,
        width,
        height,
        fps: 60,
        bitrate_kbps: encoder_kbps(kbps, FEC_PERCENT),
        csc_mode: 0,
        ten_bit: false,
    };
    let mut pipeline = FramePipeline::new(
        VideoEncoder::open_named(encoder, &cfg)?,
        VideoConfig {
            packet_size: PACKET_SIZE,
            fec_percent: FEC_PERCENT,
            min_parity: 2,
        },
        Instant::now(),
    )?;
    let mut capture = capture::open(spec).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    let dest: SocketAddr = sink.local_addr()?;
    let socket = BatchSocket::bind("127.0.0.1:0".parse()?)?;
    let mut stats = SendStats::default();
    let mut row = Row::default();
    let warmup = 30;
    let mut pids = source_pids();
    let (mut cpu0, mut prod0) = (process_cpu(), cpu_of_all(&pids));
    let deadline = Instant::now()
        + Duration::from_secs(30)
        + Duration::from_millis(20 * (frames + warmup) as u64);
    let mut n = 0u32;
    while row.frames < frames {
        if Instant::now() > deadline {
            bail!("only {} frames arrived", row.frames);
        }
        let Some(frame) = capture
            .next_frame(Duration::from_millis(50))
            .map_err(|e| anyhow::anyhow!("{e}"))?
        else {
            continue;
        };
        n += 1;
        let painted_us = match &frame.pixels {
            Pixels::Cpu(cpu) => {
                read_barcode(cpu.planes[0].data, cpu.planes[0].stride, 4).map(|(us, _)| us)
            }
            Pixels::DmaBuf(_) => None,
        };
        let captured_at = frame.captured_at;
        let handoff = captured_at.elapsed();
        let prepared = match pipeline.process(&frame, n, n == 1)? {
            Outcome::Ready(p) => p,
            Outcome::Held => continue,
            Outcome::Dropped(e) => bail!("frame {n} dropped: {e}"),
            Outcome::Rejected(e) => bail!("frame {n} refused: {e:#}"),
        };
        let batch = pipeline.batch();
        socket.send_packets(dest, batch.as_bytes(), batch.packet_len(), &mut stats)?;
        let sent = Instant::now();
        if (n as usize) == warmup {
            cpu0 = process_cpu();
            pids = source_pids();
            prod0 = cpu_of_all(&pids);
        }
        if (n as usize) <= warmup {
            continue;
        }
        row.frames += 1;
        row.host.push((sent - captured_at).as_micros() as u64);
        row.handoff.push(handoff.as_micros() as u64);
        if let Some(us) = painted_us {
            row.paint_to_sent.push(unix_us().saturating_sub(us));
        }
        row.convert.push(prepared.convert_us);
    }
    let per_frame = |d: Duration| d.as_secs_f64() * 1000.0 / row.frames.max(1) as f64;
    row.cpu_ms = per_frame(process_cpu() - cpu0);
    row.source_cpu_ms = cpu_of_all(&pids)
        .zip(prod0)
        .map(|(b, a)| per_frame(b.saturating_sub(a)));
    Ok(row)
}

fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this once without
    // it: a short smoke run then.
    let full = std::env::args().any(|a| a == "--bench");
    let frames: usize = std::env::var("PF_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 600 } else { 20 });
    let encoders = Encoders::probe();
    let encoder = encoders
        .chosen
        .iter()
        .find(|a| a.codec == Codec::H264)
        .map(|a| a.name)
        .context("no H.264 encoder opens here")?;
    let cases: &[(u32, u32, u32)] = if full {
        &[(1280, 720, 10_000), (1920, 1080, 20_000)]
    } else {
        &[(1280, 720, 10_000)]
    };
    let session = match PipeWireSession::start() {
        Ok(s) => Some(s),
        Err(e) => {
            println!("(no PipeWire rows: {e:#})");
            None
        }
    };
    let producer_bin = producer_bin();
    let sway = sway_ready();
    println!();
    println!(
        "video sources through the pipeline, {encoder}, {frames} frames a row after 30 warm-up, paced by the source"
    );
    println!(
        "{:<16} {:<26} {:>15} {:>12} {:>12} {:>12} {:>7} {:>11} {:>14}",
        "stream",
        "source",
        "host p50/p99",
        "handoff p50",
        "paint->sent",
        "convert p50",
        "frames",
        "host CPU/f",
        "source CPU/f"
    );
    for &(w, h, kbps) in cases {
        let mode = format!("{w}x{h}@60");
        let mut rows: Vec<(String, Result<Row>)> = Vec::new();
        rows.push((
            "test pattern".into(),
            run(
                &CaptureSpec::TestPattern {
                    width: w,
                    height: h,
                    fps: 60,
                },
                (w, h, kbps),
                encoder,
                frames,
                &Vec::new,
            ),
        ));
        match (&session, &producer_bin) {
            (Some(s), Some(bin)) => {
                let name = format!("pf-bench-{}-{w}", std::process::id());
                let child = s
                    .command(bin.to_str().unwrap_or("pf-pw-producer"))
                    .args([
                        "--name",
                        &name,
                        "--width",
                        &w.to_string(),
                        "--height",
                        &h.to_string(),
                        "--fps",
                        "60",
                    ])
                    .stdout(Stdio::null())
                    .spawn()
                    .context("starting pf-pw-producer")?;
                let producer = Reaped(child);
                let spec = CaptureSpec::PipeWire {
                    node: NodeTarget::Name(name),
                    runtime_dir: Some(s.dir.clone()),
                };
                rows.push((
                    "PipeWire producer (MemFd)".into(),
                    run(&spec, (w, h, kbps), encoder, frames, &|| {
                        vec![producer.0.id()]
                    }),
                ));
            }
            (None, _) => {}
            (_, None) => {
                println!("(no PipeWire producer row: cargo build --release -p pw-producer first)")
            }
        }
        // The display-session row: a headless sway at this mode with the painter
        // inside, started as the host starts it, captured with wlr-screencopy.
        match &sway {
            Ok(painter) => rows.push((
                "sway session (screencopy)".into(),
                sway_row(painter, (w, h, kbps), encoder, frames),
            )),
            Err(why) => println!("(no sway row: {why})"),
        }
        for (name, row) in rows {
            match row {
                Ok(r) => println!(
                    "{:<16} {:<26} {:>15} {:>12.2} {:>12.2} {:>12.2} {:>7} {:>11.2} {:>14}",
                    mode,
                    name,
                    format!(
                        "{:.2}/{:.2}",
                        percentile(&r.host, 0.5),
                        percentile(&r.host, 0.99)
                    ),
                    percentile(&r.handoff, 0.5),
                    percentile(&r.paint_to_sent, 0.5),
                    percentile(&r.convert, 0.5),
                    r.frames,
                    r.cpu_ms,
                    r.source_cpu_ms.map_or("-".into(), |c| format!("{c:.2}")),
                ),
                Err(e) => println!("{mode:<16} {name:<26} failed: {e:#}"),
            }
        }
    }
    println!(
        "(ms; host = captured -> last packet sent; paint->sent from the frame's barcode; CPU per frame, all threads; source CPU = producer, or sway + painter)"
    );
    Ok(())
}

/// Why the sway row cannot run here, or the painter copied where the session user can
/// run it.
fn sway_ready() -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("sway").is_file()))
        .unwrap_or(false);
    if !on_path {
        return Err("sway is not installed".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("needs root to start the session as its user".into());
    }
    let user = SessionConfig::default().user;
    SessionUser::resolve(&user)
        .map_err(|e| format!("session user {user:?}: {e} (scripts/session-user creates it)"))?;
    let bin = sibling_bin("punktfunk-painter")
        .ok_or("no punktfunk-painter: cargo build --release -p punktfunk-painter first")?;
    let dir = std::env::temp_dir().join(format!("pf-bench-painter-{}", std::process::id()));
    let copy = || -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let dst = dir.join("punktfunk-painter");
        std::fs::copy(&bin, &dst)?;
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755))?;
        Ok(dst)
    };
    copy().map_err(|e| format!("copying the painter to {}: {e}", dir.display()))
}

/// A sway session with the painter at `w`x`h`@60, streamed, then stopped; fails if any
/// process of the session remains.
fn sway_row(
    painter: &Path,
    (w, h, kbps): (u32, u32, u32),
    encoder: &'static str,
    frames: usize,
) -> Result<Row> {
    let mgr = DisplayManager::new(
        &DisplayConfig {
            backend: Backend::Sway,
            ..Default::default()
        },
        &SessionConfig::default(),
    );
    let mode = Mode {
        width: w,
        height: h,
        fps: 60,
    };
    let result = mgr
        .launch(1, mode, Some(painter.display().to_string()), 0)
        .map_err(|e| anyhow::anyhow!("launch: {e}"))
        .and_then(|(spec, _first)| {
            let id = mgr.status().context("no session after launch")?.id;
            run(&spec, (w, h, kbps), encoder, frames, &|| {
                process::marked(&id).into_iter().map(|p| p as u32).collect()
            })
            .map(|r| (r, id))
        });
    let id = mgr.status().map(|s| s.id);
    mgr.stop(1, "bench done");
    if let Some(id) = id {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut left = process::marked(&id);
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            left = process::marked(&id);
        }
        if !left.is_empty() {
            bail!("session {id}: processes {left:?} remain after stop");
        }
    }
    result.map(|(r, _)| r)
}
