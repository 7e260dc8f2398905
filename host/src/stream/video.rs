//! The video thread: capture, encoder, GameStream packetizer with FEC, pacer, UDP.
//!
//! It opens the stream's capture ([`StreamContext::capture`]) and follows it: a frame
//! is encoded when the capture delivers one, so the source sets the frame rate (a
//! game at 60, a variable-rate compositor slower when little moves). When the screen
//! is still, the last picture is encoded again every [`REPEAT_INTERVAL`].
//!
//! It drives the stream's session logic ([`Shared::drive`]): where to send (learned
//! from the client's pings, which the router hands the session), an IDR frame first
//! (the client waits for one) and whenever the client asks (on a still screen, with
//! the next repeat), and the end of the stream when the client goes silent. It also
//! ends the stream when the source goes away (the client then gets a termination with
//! the reason).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use punktfunk_core::gamestream::sdp::{SS_ENC_VIDEO, VideoCodec};
use punktfunk_core::gamestream::video::VideoConfig;
use punktfunk_core::gamestream::video_crypto::{PREFIX_LEN, VideoSealer};
use punktfunk_core::pacing::{Pacer, PacerConfig, Release};

use super::pipeline::{FramePipeline, Outcome};
use super::session::{Shared, StreamContext, codec_name};
use super::stats::FrameTiming;
use crate::capture::{self, CaptureError};
use crate::encode::probe::Codec;
use crate::encode::video::{VideoEncoder, VideoEncoderConfig};
use crate::net::udp_batch::SendStats;
use crate::sessions::EndReason;

/// How often the last picture is encoded again while the source delivers nothing new
/// (a still desktop, a paused game, a variable-rate compositor that only sends
/// damage): 10 a second.
///
/// Why repeat at all: the client's decoder and its frame-rate and loss statistics
/// only move when frames arrive; a stream that goes silent for seconds looks dead to
/// the user (and to Moonlight's connection-quality warning), and an IDR the client
/// asks for after loss has to travel in a frame. Why this slowly: a repeated picture
/// encodes to skip blocks of a few hundred bytes, so 10 a second costs next to no
/// bandwidth or CPU, yet the client never waits more than 100 ms for a frame.
pub const REPEAT_INTERVAL: Duration = Duration::from_millis(100);

/// The longest the thread waits for a frame before it looks at pings, IDR requests
/// and stop requests again.
pub const POLL: Duration = Duration::from_millis(10);

/// The bitrate the encoder gets: the client's figure minus the FEC overhead (as
/// Sunshine computes it), so video plus parity stays within what the user chose.
pub fn encoder_kbps(configured_kbps: u32, fec_percent: u8) -> u32 {
    let fec = u32::from(fec_percent.min(80));
    (configured_kbps * (100 - fec) / 100).max(500)
}

fn codec_of(c: VideoCodec) -> Codec {
    match c {
        VideoCodec::H264 => Codec::H264,
        VideoCodec::Hevc => Codec::Hevc,
        VideoCodec::Av1 => Codec::Av1,
    }
}

/// Runs the video pipeline until the stream stops.
pub fn run(ctx: &StreamContext, shared: &Shared) -> Result<()> {
    let c = &ctx.config;
    let fec_percent = c.fec_percent.unwrap_or(ctx.settings.fec_percent);
    let enc_cfg = VideoEncoderConfig {
        codec: codec_of(c.codec),
        width: c.width,
        height: c.height,
        fps: c.fps,
        bitrate_kbps: encoder_kbps(c.bitrate_kbps, fec_percent),
        csc_mode: c.csc_mode,
    };
    let start = Instant::now();
    let mut pipeline = FramePipeline::new(
        VideoEncoder::open(&enc_cfg, &ctx.encoders)?,
        VideoConfig {
            packet_size: c.packet_size,
            fec_percent,
            min_parity: c.min_fec_packets,
        },
        start,
    )?;
    let mut capture = capture::open(&ctx.capture)
        .map_err(|e| anyhow::anyhow!("opening the video source: {e}"))?;
    tracing::info!(source = capture.describe(), "capturing video");
    // The client enabled encrypted video (SS_ENC_VIDEO) in its ANNOUNCE.
    let mut sealer = if c.encryption & SS_ENC_VIDEO != 0 {
        tracing::info!("video is encrypted (AES-GCM)");
        Some(VideoSealer::new(&ctx.app.key)?)
    } else {
        None
    };
    let mut sealed = Vec::new();
    let mut send_stats = SendStats::default();
    let interval = Duration::from_secs(1) / c.fps;
    let mut pacer = Pacer::new(
        PacerConfig {
            frame_interval: interval,
            spread: ctx.settings.pacing_spread,
            burst: 16,
            max_packets_per_sec: None,
        },
        Instant::now(),
    );
    let mut last_sent = Instant::now();
    let mut frame_index: u32 = 1;
    let mut rejected = 0u64;

    let mut last_report = Instant::now();
    let mut frames_at_report = 0u64;
    let inject_panic = inject_panic();
    while !shared.stopping() {
        if let Some(reason) = ctx.session.end_reason() {
            shared.end(match reason {
                EndReason::Revoked => "the device was revoked",
                EndReason::Shutdown => "the host is shutting down",
            });
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            frames_at_report = report(ctx, shared, last_report.elapsed(), frames_at_report);
            last_report = Instant::now();
        }
        // The session logic: pings (fed by the router), IDR requests, timeouts.
        let peer = shared.drive(Instant::now());
        if shared.stopping() {
            break;
        }
        // Wait for a frame, but no longer than until a repeat is due.
        let wait = POLL.min(REPEAT_INTERVAL.saturating_sub(last_sent.elapsed()));
        let frame = match capture.next_frame(wait) {
            Ok(frame) => frame,
            Err(CaptureError::Ended(reason)) => {
                shared.end(&format!("the video source ended: {reason}"));
                break;
            }
            Err(e) => return Err(e.into()),
        };
        // Until the client's first ping there is nowhere to send; the frame is
        // dropped here, which hands its buffer back to the capture.
        let Some(peer) = peer else {
            continue;
        };
        let outcome = match frame {
            Some(frame) => {
                if let Some(first) = &ctx.first_frame {
                    first.mark();
                }
                let force_idr = shared.idr.swap(false, Ordering::AcqRel);
                let outcome = pipeline.process(&frame, frame_index, force_idr)?;
                if matches!(outcome, Outcome::Rejected(_)) && force_idr {
                    shared.idr.store(true, Ordering::Release);
                }
                outcome
            }
            None => {
                // A still screen: repeat the last picture. An IDR the client asked
                // for rides on the next frame or on this repeat, whichever comes
                // first (repeating at once instead would show a live source's last
                // frame twice).
                if !pipeline.has_picture() || last_sent.elapsed() < REPEAT_INTERVAL {
                    continue;
                }
                let force_idr = shared.idr.swap(false, Ordering::AcqRel);
                pipeline.repeat(frame_index, force_idr)?
            }
        };
        let prepared = match outcome {
            Outcome::Ready(p) => p,
            Outcome::Held => continue,
            Outcome::Rejected(e) => {
                rejected += 1;
                if rejected.is_power_of_two() {
                    tracing::warn!(rejected, "skipping a captured frame: {e:#}");
                }
                continue;
            }
            Outcome::Dropped(e) => {
                tracing::warn!("dropping frame {frame_index}: {e}");
                shared.idr.store(true, Ordering::Release);
                continue;
            }
        };
        let captured_at = pipeline.captured_at();
        let batch = pipeline.batch();
        let t_send = Instant::now();
        let wire = match sealer.as_mut() {
            Some(sealer) => {
                sealer.seal_batch(
                    batch.as_bytes(),
                    batch.packet_len(),
                    frame_index,
                    &mut sealed,
                )?;
                Wire {
                    bytes: &sealed,
                    len: batch.packet_len() + PREFIX_LEN,
                }
            }
            None => Wire {
                bytes: batch.as_bytes(),
                len: batch.packet_len(),
            },
        };
        let first_packet_us = send_paced(ctx, &mut pacer, &wire, peer, &mut send_stats)?
            .map_or(0, |first| (first - captured_at).as_micros() as u64);
        last_sent = Instant::now();
        let timing = FrameTiming {
            convert_us: prepared.convert_us,
            encode_us: prepared.encode_us,
            packetize_us: prepared.packetize_us,
            send_us: t_send.elapsed().as_micros() as u64,
            first_packet_us,
            bytes: wire.bytes.len() as u64,
        };
        shared
            .stats()
            .record(timing, batch.len(), prepared.keyframe);
        frame_index = frame_index.wrapping_add(1).max(1);
        if inject_panic && frame_index > 30 {
            panic!("injected stream-thread panic (PUNKTFUNK_TEST_PANIC_STREAM)");
        }
    }
    Ok(())
}

/// Whether the runner's self-test asked this stream's video thread to panic (after
/// 30 frames, mid-stream), to show that the test suite fails on a panicking stream
/// thread. Read only in debug builds: a release build never panics on purpose.
fn inject_panic() -> bool {
    cfg!(debug_assertions) && std::env::var_os("PUNKTFUNK_TEST_PANIC_STREAM").is_some()
}

/// Reports the stream's measurements to the live-session registry (the web console's
/// dashboard); returns the frame count to measure the next interval from.
fn report(ctx: &StreamContext, shared: &Shared, interval: Duration, frames_before: u64) -> u64 {
    let stats = shared.stats();
    let fps = (stats.frames - frames_before) as f64 / interval.as_secs_f64().max(1e-3);
    let c = &ctx.config;
    ctx.session.update(|s| {
        s.width = Some(c.width);
        s.height = Some(c.height);
        s.fps = Some(fps as f32);
        s.codec = Some(codec_name(c.codec).to_owned());
        s.bitrate_kbps = Some(stats.bitrate_kbps(c.fps).min(u64::from(u32::MAX)) as u32);
        s.latency_ms = Some(stats.median_latency_ms() as f32);
        s.loss_percent = Some(stats.loss_percent() as f32);
    });
    stats.frames
}

/// A frame's packets as they go on the wire (encrypted or not), `len` bytes apart.
struct Wire<'a> {
    bytes: &'a [u8],
    len: usize,
}

/// Sends `wire` to `peer` under the pacer; returns when the first packet left.
fn send_paced(
    ctx: &StreamContext,
    pacer: &mut Pacer,
    wire: &Wire<'_>,
    peer: SocketAddr,
    stats: &mut SendStats,
) -> Result<Option<Instant>> {
    let len = wire.len;
    pacer.begin_frame(Instant::now(), wire.bytes.len() / len.max(1));
    let mut sent = 0;
    let mut first = None;
    loop {
        match pacer.poll(Instant::now()) {
            Release::Send(n) => {
                let bytes = &wire.bytes[sent * len..(sent + n) * len];
                if let Err(e) = ctx.sockets.video.send_packets(peer, bytes, len, stats) {
                    // A full or unreachable path loses this burst; FEC or an IDR recovers.
                    tracing::debug!("video send failed: {e}");
                }
                first.get_or_insert_with(Instant::now);
                pacer.sent(n);
                sent += n;
            }
            Release::WaitUntil(t) => {
                let now = Instant::now();
                if t > now {
                    std::thread::sleep(t - now);
                }
            }
            Release::Idle => return Ok(first),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_bitrate_leaves_room_for_fec() {
        assert_eq!(encoder_kbps(10_000, 20), 8_000);
        assert_eq!(encoder_kbps(10_000, 0), 10_000);
        assert_eq!(encoder_kbps(600, 50), 500, "floor");
    }
}
