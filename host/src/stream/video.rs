//! The video thread: the encode stage, GameStream packetizer with FEC, pacer, UDP.
//!
//! The encode stage ([`crate::encode::stage`], shared with punktfunk/1) opens the
//! stream's capture ([`StreamContext::capture`]) and follows it, repeating the last
//! picture of a still screen; this thread packetizes what it yields the GameStream
//! way and paces it out.
//!
//! It follows the stream's session logic, which the control thread drives: where to
//! send (learned from the client's pings, which the router hands the session), an IDR
//! frame first (the client waits for one) and whenever the client asks (on a still
//! screen, with the next repeat). It ends the stream when the source goes away (the
//! client then gets a termination with the reason).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use punktfunk_core::gamestream::fec_control::{FecController, FecTuning};
use punktfunk_core::gamestream::sdp::SS_ENC_VIDEO;
use punktfunk_core::gamestream::session::Channel;
use punktfunk_core::gamestream::video::VideoConfig;
use punktfunk_core::gamestream::video_crypto::{PREFIX_LEN, VideoSealer};
use punktfunk_core::pacing::{Pacer, PacerConfig};

use super::pipeline::FramePackets;
use super::session::{Shared, StreamContext};
use super::stats::{FrameTiming, StreamStats};
use super::video_send::{Outgoing, VideoSender};
use crate::encode::software::Tuning;
use crate::encode::stage::{EncodeStage, Next, StageConfig, StageError};
use crate::encode::video::VideoEncoderConfig;
use crate::session::EndReason;

pub use crate::encode::stage::REPEAT_INTERVAL;

/// The longest the thread waits for a frame before it looks at pings, IDR requests
/// and stop requests again.
pub const POLL: Duration = Duration::from_millis(10);

/// The bitrate the encoder gets: what is left of the client's figure once parity
/// (`fec_percent` of the video) is added, so video plus parity stays within what the
/// user chose, however high adaptive FEC goes.
pub fn encoder_kbps(configured_kbps: u32, fec_percent: u8) -> u32 {
    let kbps = u64::from(configured_kbps) * 100 / (100 + u64::from(fec_percent));
    (kbps as u32).max(500)
}

/// The FEC percentage of IDR frames: half as much again as P-frames, within the
/// maximum. Losing the recovery frame costs another round trip and another IDR.
pub fn idr_fec_percent(p_frame: u8, max: u8) -> u8 {
    let boosted = u16::from(p_frame) * 3 / 2;
    (boosted.min(u16::from(max)) as u8).max(p_frame)
}

/// Whether the encoder's bitrate is worth changing: more than 5% off.
fn bitrate_differs(current: u32, wanted: u32) -> bool {
    u64::from(current.abs_diff(wanted)) * 20 > u64::from(current)
}

/// Frames after which an IDR request counts as a lost frame: the client's first
/// request ("start A") and its requests until it decodes a picture are not loss.
const LOSS_REQUESTS_AFTER_FRAMES: u64 = 30;

/// Runs the video pipeline until the stream stops.
pub fn run(ctx: &StreamContext, shared: &Arc<Shared>) -> Result<()> {
    let c = &ctx.config;
    let fec_percent = c.fec_percent.unwrap_or(ctx.settings.fec_percent);
    let tuning = FecTuning::new(ctx.settings.fec_min_percent, ctx.settings.fec_max_percent);
    let mut fec = FecController::new(tuning, fec_percent);
    let fec_percent = fec.percent();
    let mut feedback = LossFeedback::default();
    let enc_cfg = VideoEncoderConfig {
        codec: c.codec,
        width: c.width,
        height: c.height,
        fps: c.fps,
        bitrate_kbps: encoder_kbps(c.bitrate_kbps, fec_percent),
        csc_mode: c.csc_mode,
    };
    let start = Instant::now();
    let mut encoder_kbps_now = enc_cfg.bitrate_kbps;
    let mut stage = EncodeStage::open(&StageConfig {
        capture: ctx.capture.clone(),
        encoder: enc_cfg,
        encoders: ctx.encoders.clone(),
        tuning: Tuning {
            filler: ctx.settings.x264_filler,
            ..Tuning::default()
        },
        yuv_source: ctx.settings.yuv_source,
        first_frame: ctx.first_frame.clone(),
    })?;
    let mut packets = FramePackets::new(
        VideoConfig {
            packet_size: c.packet_size,
            fec_percent,
            min_parity: c.min_fec_packets,
        },
        start,
    )?;
    // The client enabled encrypted video (SS_ENC_VIDEO) in its ANNOUNCE.
    let mut sealer = if c.encryption & SS_ENC_VIDEO != 0 {
        tracing::info!("video is encrypted (AES-GCM)");
        Some(VideoSealer::new(&ctx.app.key)?)
    } else {
        None
    };
    let interval = Duration::from_secs(1) / c.fps;
    let pacer = Pacer::new(
        PacerConfig {
            frame_interval: interval,
            spread: ctx.settings.pacing_spread,
            burst: 16,
            max_packets_per_sec: None,
        },
        Instant::now(),
    );
    let mut sender = VideoSender::start(ctx.sockets.clone(), shared.clone(), pacer)?;
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
        // Until the client's first ping there is nowhere to send: frames are
        // dropped unencoded, which hands their buffers back to the capture (and
        // keeps the encoder's first frame, an IDR, for the client).
        let Some(peer) = shared.peer(Channel::Video) else {
            match stage.skip(POLL) {
                Ok(()) => continue,
                Err(StageError::SourceEnded(reason)) => {
                    shared.end(&format!("the video source ended: {reason}"));
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        };
        // Parity for this frame from the loss the client reported, and the
        // encoder's share of the client's bitrate to match.
        let pct = fec.poll(Instant::now());
        packets.set_fec(pct, idr_fec_percent(pct, tuning.max_percent));
        let wanted_kbps = encoder_kbps(c.bitrate_kbps, pct);
        if bitrate_differs(encoder_kbps_now, wanted_kbps) {
            // An encoder that cannot change its bitrate keeps the one it opened with
            // (parity then rides on top); said once per change, not per frame.
            if let Err(e) = stage.set_bitrate(wanted_kbps) {
                tracing::warn!(fec_percent = pct, "video bitrate stays: {e:#}");
            }
            encoder_kbps_now = wanted_kbps;
        }
        // IDR requests come as `shared.idr`; the stage owes one until a frame or a
        // repeat carries it.
        if shared.idr.swap(false, Ordering::AcqRel) {
            stage.request_idr();
        }
        let info = match stage.next(POLL) {
            Ok(Next::Frame(info)) => info,
            Ok(Next::Idle) => continue,
            Ok(Next::Rejected(e)) => {
                rejected += 1;
                if rejected.is_power_of_two() {
                    tracing::warn!(rejected, "skipping a captured frame: {e:#}");
                }
                continue;
            }
            Err(StageError::SourceEnded(reason)) => {
                shared.end(&format!("the video source ended: {reason}"));
                break;
            }
            Err(e) => return Err(e.into()),
        };
        let prepared = match packets.packetize(stage.data(), &info, frame_index) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("dropping frame {frame_index}: {e}");
                shared.idr.store(true, Ordering::Release);
                continue;
            }
        };
        let batch = packets.batch();
        let mut wire = sender.buffer()?;
        let len = match sealer.as_mut() {
            Some(sealer) => {
                sealer.seal_batch(batch.as_bytes(), batch.packet_len(), frame_index, &mut wire)?;
                batch.packet_len() + PREFIX_LEN
            }
            None => {
                wire.clear();
                wire.extend_from_slice(batch.as_bytes());
                batch.packet_len()
            }
        };
        sender.send(Outgoing {
            wire,
            len,
            peer,
            captured_at: info.captured_at,
            timing: FrameTiming {
                convert_us: prepared.convert_us,
                encode_us: prepared.encode_us,
                packetize_us: prepared.packetize_us,
                ..FrameTiming::default()
            },
            packets: batch.len(),
            keyframe: prepared.keyframe,
            frame_index,
            fec_percent: pct,
        })?;
        feedback.apply(&mut shared.stats(), &mut fec, Instant::now());
        let (data, parity) = batch
            .blocks()
            .iter()
            .fold((0, 0), |(d, p), b| (d + b.data, p + b.parity));
        fec.on_frame_sent(Instant::now(), data, parity);
        frame_index = frame_index.wrapping_add(1).max(1);
        if inject_panic && frame_index > 30 {
            panic!("injected stream-thread panic (PUNKTFUNK_TEST_PANIC_STREAM)");
        }
    }
    Ok(())
}

/// What of the client's feedback (counted by the control thread in the stream's
/// stats) the FEC controller has seen.
#[derive(Debug, Default)]
struct LossFeedback {
    missing: u64,
    loss_requests: u64,
}

impl LossFeedback {
    /// Hands the controller what the client reported since the last call.
    fn apply(&mut self, stats: &mut StreamStats, fec: &mut FecController, now: Instant) {
        let missing = stats.reported_missing.saturating_sub(self.missing);
        let burst = std::mem::take(&mut stats.repair_burst_percent);
        if missing > 0 || burst > 0 {
            fec.on_feedback(now, missing, burst);
        }
        self.missing = stats.reported_missing;
        if stats.loss_requests > self.loss_requests && stats.frames > LOSS_REQUESTS_AFTER_FRAMES {
            fec.on_frame_lost(now);
        }
        self.loss_requests = stats.loss_requests;
    }
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
        s.codec = Some(c.codec.display_name().to_owned());
        s.bitrate_kbps = Some(stats.bitrate_kbps(c.fps).min(u64::from(u32::MAX)) as u32);
        s.latency_ms = Some(stats.median_latency_ms() as f32);
        s.loss_percent = Some(stats.loss_percent() as f32);
        s.frames = Some(stats.frames);
    });
    stats.frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_bitrate_leaves_room_for_fec() {
        assert_eq!(encoder_kbps(12_000, 20), 10_000);
        assert_eq!(encoder_kbps(10_000, 0), 10_000);
        assert_eq!(
            encoder_kbps(10_000, 150),
            4_000,
            "parity above 100% fits too"
        );
        assert_eq!(encoder_kbps(600, 50), 500, "floor");
    }

    #[test]
    fn idr_frames_get_more_parity_within_the_maximum() {
        assert_eq!(idr_fec_percent(20, 150), 30);
        assert_eq!(idr_fec_percent(120, 150), 150);
        assert_eq!(idr_fec_percent(200, 150), 200, "never less than P-frames");
        assert!(bitrate_differs(10_000, 9_000));
        assert!(!bitrate_differs(10_000, 9_800));
    }
}
