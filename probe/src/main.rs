//! punktfunk-probe: the headless punktfunk/1 reference client.
//!
//! `pair` pairs with the PIN the host shows and pins the host's certificate;
//! `stream` connects (pinned), negotiates a mode, receives, reassembles, optionally
//! decodes with FFmpeg and reads the test pattern's barcode, then prints per-frame
//! latency, loss, recovery and goodput as a table or JSON. The client's certificate
//! and the host pin live in `--state-dir`.

mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use punktfunk_core::native::control::{Capabilities, Codec, Message, Mode};
use punktfunk_core::native::wire::FLAG_KEYFRAME;
use punktfunk_host::native::client::{NativeClient, PairOutcome};
use punktfunk_host::native::data::{DataKeys, DataReceiver};
use punktfunk_host::native::decode::VideoDecoder;
use punktfunk_host::native::quic::ClientCert;

use report::{Report, percentiles};

#[derive(Debug, Parser)]
#[command(
    name = "punktfunk-probe",
    version,
    about = "punktfunk/1 reference client"
)]
struct Cli {
    /// The host's native address, e.g. 192.0.2.7:9777.
    #[arg(long, global = true, default_value = "127.0.0.1:9777")]
    host: SocketAddr,
    /// Where the client keeps its certificate and the host pin.
    #[arg(long, global = true, default_value = ".punktfunk-probe")]
    state_dir: PathBuf,
    /// The device name the host shows.
    #[arg(long, global = true, default_value = "punktfunk-probe")]
    name: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pair with the PIN the host shows (`punktfunk-host pair-native`).
    Pair {
        /// The 6-digit PIN.
        pin: String,
    },
    /// Stream and measure.
    Stream {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 1280)]
        width: u16,
        #[arg(long, default_value_t = 720)]
        height: u16,
        #[arg(long, default_value_t = 60)]
        fps: u16,
        #[arg(long, default_value_t = 20_000)]
        bitrate_kbps: u32,
        #[arg(long, default_value_t = 10)]
        fec_percent: u8,
        /// Decode with FFmpeg and read the barcode.
        #[arg(long)]
        decode: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

const CAPS: Capabilities = Capabilities {
    codecs: Codec::H264 as u8 | Codec::H265 as u8 | Codec::Av1 as u8,
    max_width: 7680,
    max_height: 4320,
    max_fps: 240,
    max_bitrate_kbps: 10_000_000,
};

fn load_cert(dir: &Path, name: &str) -> Result<ClientCert> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (c, k) = (dir.join("client.der"), dir.join("client.key"));
    if c.exists() && k.exists() {
        return Ok(ClientCert {
            cert_der: std::fs::read(&c)?,
            key_der: std::fs::read(&k)?,
        });
    }
    let cert = ClientCert::generate(name)?;
    std::fs::write(&c, &cert.cert_der)?;
    std::fs::write(&k, &cert.key_der)?;
    Ok(cert)
}

fn load_pin(dir: &Path) -> Result<Option<[u8; 32]>> {
    let p = dir.join("host.pin");
    if !p.exists() {
        return Ok(None);
    }
    let hex_fp = std::fs::read_to_string(&p)?;
    let mut fp = [0u8; 32];
    hex::decode_to_slice(hex_fp.trim(), &mut fp).context("host.pin is not a fingerprint")?;
    Ok(Some(fp))
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let cert = load_cert(&cli.state_dir, &cli.name)?;
    match cli.command {
        Command::Pair { pin } => {
            let mut c = NativeClient::connect(cli.host, &cert, None, &cli.name, CAPS).await?;
            match c.pair(&pin).await? {
                PairOutcome::Paired => {
                    std::fs::write(
                        cli.state_dir.join("host.pin"),
                        hex::encode(c.host_fingerprint()),
                    )?;
                    println!("paired with {}", c.host().name);
                    c.close().await;
                    Ok(())
                }
                PairOutcome::Refused(why) => bail!("the host refused pairing: {why:?}"),
            }
        }
        Command::Stream {
            seconds,
            width,
            height,
            fps,
            bitrate_kbps,
            fec_percent,
            decode,
            json,
        } => {
            let pin = load_pin(&cli.state_dir)?;
            let mut c = NativeClient::connect(cli.host, &cert, pin, &cli.name, CAPS).await?;
            let mode = Mode {
                codec: Codec::H264,
                width,
                height,
                fps,
                bitrate_kbps,
                fec_percent,
            };
            let granted = c.request_mode(mode).await?;
            let keys = DataKeys::export(c.connection())?;
            let addr = SocketAddr::new(cli.host.ip(), granted.data_port);
            let (tx, mut reports) = tokio::sync::mpsc::channel(16);
            let run = tokio::task::spawn_blocking(move || {
                receive(
                    addr,
                    keys,
                    granted.max_frame_bytes as usize,
                    seconds,
                    decode,
                    mode.codec,
                    tx,
                )
            });
            while let Some(msg) = reports.recv().await {
                c.send(&msg).await?;
            }
            let report = run.await??;
            c.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", report.table());
            }
            Ok(())
        }
    }
}

fn receive(
    addr: SocketAddr,
    keys: DataKeys,
    max_frame: usize,
    seconds: u64,
    decode: bool,
    codec: Codec,
    to_host: tokio::sync::mpsc::Sender<Message>,
) -> Result<Report> {
    let mut rx = DataReceiver::connect(addr, keys, max_frame)?;
    let mut dec = if decode {
        Some(VideoDecoder::open(codec)?)
    } else {
        None
    };
    let mut rep = Report {
        numbers_in_order: true,
        ..Report::default()
    };
    let mut last_number = None;
    let (mut reassembled, mut decoded) = (Vec::new(), Vec::new());
    let mut bytes = 0u64;
    let start = Instant::now();
    let mut last_report = start;
    let mut frames = Vec::new();
    // After a lost frame or a decode error, references are broken: ask for a keyframe
    // and feed the decoder nothing until it arrives.
    let mut need_key = false;
    let mut lost_seen = 0;
    let mut last_idr = start;
    while start.elapsed() < Duration::from_secs(seconds) {
        if rep.frames == 0 {
            rx.send_announce()?;
        }
        rx.poll(
            || false,
            |f| frames.push((f.data.to_vec(), f.flags & FLAG_KEYFRAME != 0, unix_us())),
        )?;
        if rx.stats().frames_lost > lost_seen {
            lost_seen = rx.stats().frames_lost;
            need_key = true;
        }
        // Ask again if the keyframe itself was lost.
        if need_key && (rep.idr_requests == 0 || last_idr.elapsed() >= Duration::from_millis(250)) {
            rep.idr_requests += 1;
            last_idr = Instant::now();
            let _ = to_host.blocking_send(Message::RequestIdr);
        }
        for (data, keyframe, at) in frames.drain(..) {
            rep.frames += 1;
            bytes += data.len() as u64;
            let Some(dec) = dec.as_mut() else { continue };
            if need_key && !keyframe {
                rep.skipped_until_keyframe += 1;
                continue;
            }
            need_key = false;
            let pictures = match dec.decode(&data) {
                Ok(p) => p,
                Err(_) => {
                    rep.decode_errors += 1;
                    need_key = true;
                    continue;
                }
            };
            for pic in pictures {
                rep.decoded += 1;
                if !rep.sizes.contains(&(pic.width, pic.height)) {
                    rep.sizes.push((pic.width, pic.height));
                }
                if let Some(tag) = pic.tag.filter(|t| !rep.tags.contains(t)) {
                    rep.tags.push(tag);
                }
                if let Some((capture_us, number)) = pic.barcode {
                    // A repeat of a still screen shows the same number again.
                    rep.numbers_in_order &= last_number.is_none_or(|n| number >= n);
                    last_number = Some(number);
                    rep.barcodes += 1;
                    reassembled.push(at.saturating_sub(capture_us));
                    decoded.push(unix_us().saturating_sub(capture_us));
                }
            }
        }
        if last_report.elapsed() >= Duration::from_millis(50) {
            let _ = to_host.blocking_send(Message::Loss(rx.loss_report(last_report.elapsed())));
            last_report = Instant::now();
        }
    }
    let s = rx.stats();
    rep.seconds = start.elapsed().as_secs_f64();
    rep.frames_lost = s.frames_lost;
    rep.frames_recovered = s.recovered_frames;
    rep.shards_recovered = s.recovered_shards;
    rep.malformed = s.malformed;
    rep.stale = s.stale;
    rep.goodput_gbps = bytes as f64 * 8.0 / rep.seconds / 1e9;
    rep.reassembled_us = percentiles(&mut reassembled);
    rep.decoded_us = percentiles(&mut decoded);
    Ok(rep)
}
