//! The audio thread: source, Opus, GameStream RTP with RS(4,2) FEC and optional
//! AES-CBC, sent every packet duration to where the client's audio pings come from.

use std::time::{Duration, Instant};

use anyhow::Result;
use punktfunk_core::gamestream::audio::{AudioCrypto, AudioPacketizer, AudioPackets};
use punktfunk_core::gamestream::sdp::SS_ENC_AUDIO;
use punktfunk_core::gamestream::session::Channel;

use super::session::{Shared, StreamContext};
use crate::encode::audio::OpusEncoder;
use crate::source::AudioSource;
use crate::source::tone::Tone;

/// Opus bitrate per channel count (Sunshine's normal-quality figures).
fn bitrate(channels: u8) -> usize {
    match channels {
        6 => 256_000,
        8 => 450_000,
        _ => 96_000,
    }
}

/// Runs the audio pipeline until the stream stops.
pub fn run(ctx: &StreamContext, shared: &Shared) -> Result<()> {
    let c = &ctx.config;
    if c.audio_channels != 2 {
        tracing::warn!(
            channels = c.audio_channels,
            "surround was requested; the demo source sends stereo in every channel pair"
        );
    }
    let channels = usize::from(c.audio_channels);
    let mut opus = OpusEncoder::open(channels, c.audio_packet_ms, bitrate(c.audio_channels))?;
    let crypto = (c.encryption & SS_ENC_AUDIO != 0).then_some(AudioCrypto {
        key: ctx.app.key,
        key_id: ctx.app.key_id,
    });
    // Tests read this line to know the stream really was encrypted.
    tracing::info!(
        channels,
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
    let mut source = Tone::new(440.0, 0.4);
    let mut samples = vec![0f32; opus.samples_per_packet() * channels];
    let mut encoded = Vec::new();
    let socket = &ctx.sockets.audio;
    let interval = Duration::from_millis(u64::from(c.audio_packet_ms));
    let mut next = Instant::now();
    while !shared.stopping() {
        // Learned from the client's audio pings (the router hands them the session).
        let peer = shared.peer(Channel::Audio);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > interval * 20 {
            next = now;
        }
        next += interval;
        // Sound keeps flowing whether or not anyone listens yet, so the encoder and
        // sequence numbers stay continuous.
        source.read(&mut samples, channels);
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
