//! The audio thread: capture, Opus, GameStream RTP with RS(4,2) FEC and optional
//! AES-CBC, sent every packet duration to where the client's audio pings come from.
//!
//! The thread's own clock paces the packets, not the source: the capture hands out
//! one packet's samples at each deadline (silence when nothing plays or the source
//! is gone), so the client gets a packet every packet duration, as it expects, and
//! the encoder and sequence numbers stay continuous.

use std::time::{Duration, Instant};

use anyhow::Result;
use punktfunk_core::gamestream::audio::{AudioCrypto, AudioPacketizer, AudioPackets};
use punktfunk_core::gamestream::sdp::SS_ENC_AUDIO;
use punktfunk_core::gamestream::session::Channel;

use super::session::{Shared, StreamContext};
use crate::encode::audio::OpusEncoder;

/// Opus bitrate per channel count and quality (Sunshine's figures: high quality is
/// 256 kbit/s per mono stream).
fn bitrate(channels: u8, high_quality: bool) -> usize {
    match (channels, high_quality) {
        (6, false) => 256_000,
        (8, false) => 450_000,
        (6, true) => 1_536_000,
        (8, true) => 2_048_000,
        _ => 96_000,
    }
}

/// Runs the audio pipeline until the stream stops.
pub fn run(ctx: &StreamContext, shared: &Shared) -> Result<()> {
    let c = &ctx.config;
    let channels = usize::from(c.audio_channels);
    // Stereo has one layout; the client asks for high quality only for surround.
    let high_quality = c.audio_high_quality && channels > 2;
    let mut opus = OpusEncoder::open_layout(
        channels,
        c.audio_packet_ms,
        bitrate(c.audio_channels, high_quality),
        high_quality,
    )?;
    let crypto = (c.encryption & SS_ENC_AUDIO != 0).then_some(AudioCrypto {
        key: ctx.app.key,
        key_id: ctx.app.key_id,
    });
    // Tests read this line to know the stream really was encrypted.
    tracing::info!(
        channels,
        high_quality,
        packet_ms = c.audio_packet_ms,
        "audio: Opus, RS(4,2) FEC, {}",
        if crypto.is_some() {
            "AES-CBC encrypted"
        } else {
            "unencrypted"
        }
    );
    let mut packetizer = AudioPacketizer::new(crypto, c.audio_packet_ms)?;
    let mut packets = AudioPackets::new();
    let mut samples = vec![0f32; opus.samples_per_packet() * channels];
    let mut source = crate::audio::open(&ctx.audio, channels, opus.samples_per_packet());
    tracing::info!(source = source.describe(), "audio: streaming");
    let mut encoded = Vec::new();
    let socket = &ctx.sockets.audio;
    let interval = Duration::from_millis(u64::from(c.audio_packet_ms));
    let mut next = Instant::now();
    while !shared.stopping() {
        // Learned from the client's audio pings (the router hands them the session).
        let peer = shared.peer(Channel::Audio);
        let now = Instant::now();
        if now > next && now - next > interval * 20 {
            next = now;
        }
        // Sound keeps flowing whether or not anyone listens yet, so the encoder and
        // sequence numbers stay continuous. The capture waits until the packet is due.
        source.read(&mut samples, next);
        next += interval;
        opus.encode(&samples, &mut encoded)?;
        if encoded.is_empty() {
            continue;
        }
        packetizer.packetize(&encoded, &mut packets)?;
        if let Some(peer) = peer {
            for p in packets.iter() {
                if let Err(e) = socket.send_to(p, peer) {
                    tracing::debug!("audio send failed: {e}");
                }
            }
        }
    }
    Ok(())
}
