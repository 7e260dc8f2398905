//! Opus encoding through FFmpeg's libopus, in fixed-length packets.
//!
//! GameStream audio carries 5 ms (or 10 ms) Opus packets at 48 kHz, CBR so every packet
//! of an RS(4,2) FEC block has the same size (moonlight-common-c disables audio FEC
//! otherwise).

use anyhow::{Context, Result, anyhow, bail};
use ffmpeg::ChannelLayout;
use ffmpeg::format::Sample;
use ffmpeg::format::sample::Type as SampleType;
use ffmpeg_next as ffmpeg;

/// An open Opus encoder.
pub struct OpusEncoder {
    encoder: ffmpeg::encoder::audio::Encoder,
    frame: ffmpeg::frame::Audio,
    packet: ffmpeg::Packet,
    channels: usize,
    samples_per_packet: usize,
    pts: i64,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

fn layout(channels: usize) -> Result<ChannelLayout> {
    Ok(match channels {
        2 => ChannelLayout::STEREO,
        6 => ChannelLayout::_5POINT1,
        8 => ChannelLayout::_7POINT1,
        _ => bail!("unsupported channel count {channels}"),
    })
}

impl OpusEncoder {
    /// Opens an encoder for `channels` channels, `packet_ms` long packets and
    /// `bitrate_bps`.
    pub fn open(channels: usize, packet_ms: u32, bitrate_bps: usize) -> Result<Self> {
        let codec = ffmpeg::encoder::find_by_name("libopus")
            .ok_or_else(|| anyhow!("FFmpeg lacks libopus"))?;
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .context("allocating the Opus encoder")?;
        let layout = layout(channels)?;
        enc.set_rate(48_000);
        enc.set_channel_layout(layout);
        enc.set_channels(channels as i32);
        enc.set_format(Sample::F32(SampleType::Packed));
        enc.set_bit_rate(bitrate_bps);
        enc.set_time_base(ffmpeg::Rational::new(1, 48_000));
        let mut opts = ffmpeg::Dictionary::new();
        opts.set("frame_duration", &packet_ms.to_string());
        opts.set("vbr", "off");
        opts.set("application", "lowdelay");
        let encoder = enc.open_with(opts).context("opening libopus")?;
        let samples_per_packet = 48 * packet_ms as usize;
        let mut frame =
            ffmpeg::frame::Audio::new(Sample::F32(SampleType::Packed), samples_per_packet, layout);
        frame.set_rate(48_000);
        Ok(Self {
            encoder,
            frame,
            packet: ffmpeg::Packet::empty(),
            channels,
            samples_per_packet,
            pts: 0,
        })
    }

    /// Samples per channel in one packet.
    pub fn samples_per_packet(&self) -> usize {
        self.samples_per_packet
    }

    /// The `OpusHead` the encoder wrote (its channel mapping table describes
    /// multistream layouts).
    pub fn extradata(&self) -> Vec<u8> {
        // SAFETY: the context is open; extradata/extradata_size describe one buffer the
        // encoder owns for its lifetime.
        unsafe {
            let ctx = self.encoder.as_ptr();
            let ptr = (*ctx).extradata;
            let len = (*ctx).extradata_size;
            if ptr.is_null() || len <= 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(ptr, len as usize).to_vec()
            }
        }
    }

    /// Encodes one packet's worth of interleaved samples (`samples_per_packet *
    /// channels` floats) and returns the Opus packet.
    pub fn encode(&mut self, samples: &[f32], out: &mut Vec<u8>) -> Result<()> {
        let want = self.samples_per_packet * self.channels;
        if samples.len() != want {
            bail!("expected {want} samples, got {}", samples.len());
        }
        let bytes = self.frame.data_mut(0);
        for (dst, s) in bytes.chunks_exact_mut(4).zip(samples) {
            dst.copy_from_slice(&s.to_ne_bytes());
        }
        self.frame.set_pts(Some(self.pts));
        self.pts += self.samples_per_packet as i64;
        self.encoder
            .send_frame(&self.frame)
            .context("sending audio to libopus")?;
        out.clear();
        loop {
            match self.encoder.receive_packet(&mut self.packet) {
                Ok(()) => out.extend_from_slice(self.packet.data().unwrap_or_default()),
                Err(ffmpeg::Error::Other { errno }) if errno == libc::EAGAIN => break,
                Err(e) => return Err(e).context("receiving an Opus packet"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::AudioSource;
    use crate::source::tone::Tone;

    #[test]
    fn five_millisecond_cbr_packets_of_constant_size() {
        ffmpeg::init().unwrap();
        let mut enc = OpusEncoder::open(2, 5, 96_000).unwrap();
        assert_eq!(enc.samples_per_packet(), 240);
        let mut tone = Tone::new(440.0, 0.5);
        let mut buf = vec![0f32; 480];
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        for _ in 0..40 {
            tone.read(&mut buf, 2);
            enc.encode(&buf, &mut out).unwrap();
            if !out.is_empty() {
                sizes.push(out.len());
            }
        }
        assert!(sizes.len() >= 38, "a packet per 5 ms: {sizes:?}");
        // 96 kbit/s * 5 ms = 60 bytes, every packet the same.
        assert!(sizes.iter().all(|&s| s == sizes[0]), "{sizes:?}");
        assert!((50..=70).contains(&sizes[0]), "{sizes:?}");
        assert!(enc.encode(&buf[..10], &mut out).is_err());
    }
}
