//! Opus encoding through FFmpeg's libopus, in fixed-length packets.
//!
//! GameStream audio carries 5 ms (or 10 ms) Opus packets at 48 kHz, CBR so every packet
//! of an RS(4,2) FEC block has the same size (moonlight-common-c disables audio FEC
//! otherwise).
//!
//! Surround input comes in Moonlight's channel order (FL FR C LFE BL BR SL SR), and the
//! encoder's stream layout must be exactly what DESCRIBE announced
//! ([`SurroundLayout`]), since the client builds its decoder from that announcement
//! alone and never sees the encoder's own header:
//! - normal quality uses FFmpeg's default mapping family, whose fixed table couples
//!   FL/FR and BL/BR (and SL/SR) and takes input in that order:
//!   [`SurroundLayout::normal`];
//! - high quality uses mapping family 255, one mono stream per channel in input
//!   order: [`SurroundLayout::high_quality`].
//!
//! The tests decode with the announced layout, as the client does, and check that
//! each channel comes out where it went in.

use anyhow::{Context, Result, anyhow, bail};
use ffmpeg::ChannelLayout;
use ffmpeg::format::Sample;
use ffmpeg::format::sample::Type as SampleType;
use ffmpeg_next as ffmpeg;
use punktfunk_core::gamestream::sdp::SurroundLayout;

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

/// FFmpeg's layout for `channels`. libopus takes only Vorbis layouts, whose 5.1 is
/// FFmpeg's "5.1(back)": FL FR FC LFE BL BR, Moonlight's own 5.1 (mask 0x3F), in the
/// same order. 7.1 (FL FR FC LFE BL BR SL SR) is Moonlight's 0x63F likewise.
fn layout(channels: usize) -> Result<ChannelLayout> {
    Ok(match channels {
        2 => ChannelLayout::STEREO,
        6 => ChannelLayout::_5POINT1_BACK,
        8 => ChannelLayout::_7POINT1,
        _ => bail!("unsupported channel count {channels}"),
    })
}

impl OpusEncoder {
    /// Opens an encoder for `channels` channels, `packet_ms` long packets and
    /// `bitrate_bps`, in the normal-quality layout.
    pub fn open(channels: usize, packet_ms: u32, bitrate_bps: usize) -> Result<Self> {
        Self::open_layout(channels, packet_ms, bitrate_bps, false)
    }

    /// Opens an encoder; `high_quality` picks the one-stream-per-channel layout for
    /// surround (ignored for stereo, which has one layout).
    pub fn open_layout(
        channels: usize,
        packet_ms: u32,
        bitrate_bps: usize,
        high_quality: bool,
    ) -> Result<Self> {
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
        if high_quality && channels > 2 {
            opts.set("mapping_family", "255");
        }
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

/// The layout a stream of `channels` at `high_quality` is encoded in (`None`: stereo).
pub fn layout_of(channels: u8, high_quality: bool) -> Option<SurroundLayout> {
    SurroundLayout::for_stream(channels, high_quality)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::AudioSource;
    use crate::source::tone::Tone;

    /// An OpusHead (RFC 7845) with mapping family 255: FFmpeg's native decoder then
    /// outputs channel i from decoded channel `mapping[i]` with no reordering, exactly
    /// as `opus_multistream_decoder_create` does in moonlight-common-c's clients.
    /// (Not FFmpeg's libopus decoder: it moves channels from Vorbis order whatever
    /// the mapping family, which would hide a swapped pair.)
    fn opus_head(layout: &SurroundLayout) -> Vec<u8> {
        let mut h = b"OpusHead".to_vec();
        h.push(1);
        h.push(layout.channels);
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(&48_000u32.to_le_bytes());
        h.extend_from_slice(&0i16.to_le_bytes());
        h.push(255);
        h.push(layout.streams);
        h.push(layout.coupled);
        h.extend_from_slice(&layout.mapping);
        h
    }

    /// Decodes `packets` as a Moonlight client given `layout` would; returns one
    /// sample vector per output channel.
    fn decode_as_client(layout: &SurroundLayout, packets: &[Vec<u8>]) -> Vec<Vec<f32>> {
        let codec = ffmpeg::decoder::find_by_name("opus").expect("FFmpeg's Opus decoder");
        let mut ctx = ffmpeg::codec::context::Context::new_with_codec(codec);
        let head = opus_head(layout);
        // SAFETY: the context is fresh and not open; extradata gets a buffer from
        // av_mallocz (with the padding FFmpeg requires) that the context owns and
        // frees.
        unsafe {
            let raw = ctx.as_mut_ptr();
            let buf = ffmpeg::ffi::av_mallocz(head.len() + 64) as *mut u8;
            std::ptr::copy_nonoverlapping(head.as_ptr(), buf, head.len());
            (*raw).extradata = buf;
            (*raw).extradata_size = head.len() as i32;
            (*raw).sample_rate = 48_000;
        }
        let mut dec = ctx.decoder().audio().expect("audio decoder");
        let mut out = vec![Vec::new(); usize::from(layout.channels)];
        let mut frame = ffmpeg::frame::Audio::empty();
        for p in packets {
            dec.send_packet(&ffmpeg::Packet::copy(p)).expect("decodes");
            while dec.receive_frame(&mut frame).is_ok() {
                let n = frame.samples();
                let ch = usize::from(layout.channels);
                assert!(
                    matches!(frame.format(), Sample::F32(_)),
                    "float output: {:?}",
                    frame.format()
                );
                if frame.is_planar() {
                    for (c, o) in out.iter_mut().enumerate() {
                        o.extend_from_slice(&frame.plane::<f32>(c)[..n]);
                    }
                } else {
                    let data = frame.data(0);
                    let all: Vec<f32> = data[..n * ch * 4]
                        .chunks_exact(4)
                        .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    for (i, v) in all.into_iter().enumerate() {
                        out[i % ch].push(v);
                    }
                }
            }
        }
        out
    }

    /// The strongest frequency in `pcm` (48 kHz), to the nearest 5 Hz.
    fn dominant_hz(pcm: &[f32]) -> f64 {
        (20..=2000)
            .step_by(5)
            .map(|f| {
                let w = std::f64::consts::TAU * f64::from(f) / 48_000.0;
                let (mut re, mut im) = (0.0, 0.0);
                for (n, &v) in pcm.iter().enumerate() {
                    re += f64::from(v) * (w * n as f64).cos();
                    im += f64::from(v) * (w * n as f64).sin();
                }
                (f64::from(f), re * re + im * im)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(0.0, |(f, _)| f)
    }

    #[test]
    fn surround_channels_come_out_where_they_went_in() {
        ffmpeg::init().unwrap();
        for (channels, hq) in [(6u8, false), (6, true), (8, false), (8, true)] {
            let layout = layout_of(channels, hq).unwrap();
            let ch = usize::from(channels);
            let bitrate = if hq { 256_000 * ch } else { 96_000 * ch / 2 };
            let mut enc = OpusEncoder::open_layout(ch, 5, bitrate, hq)
                .unwrap_or_else(|e| panic!("{channels} channels, high quality {hq}: {e:#}"));
            // A tone per channel, 100 Hz apart, LFE lowest (as a game's would be).
            let freqs: Vec<f64> = (0..ch)
                .map(|c| {
                    if c == 3 {
                        100.0
                    } else {
                        300.0 + 150.0 * c as f64
                    }
                })
                .collect();
            let spp = enc.samples_per_packet();
            let mut packets = Vec::new();
            let mut buf = vec![0f32; spp * ch];
            let mut out = Vec::new();
            for p in 0..100 {
                for (i, s) in buf.iter_mut().enumerate() {
                    let (n, c) = (p * spp + i / ch, i % ch);
                    let t = n as f64 / 48_000.0;
                    *s = (0.3 * (std::f64::consts::TAU * freqs[c] * t).sin()) as f32;
                }
                enc.encode(&buf, &mut out).unwrap();
                if !out.is_empty() {
                    packets.push(out.clone());
                }
            }
            let decoded = decode_as_client(&layout, &packets);
            for (c, pcm) in decoded.iter().enumerate() {
                // Skip the encoder's start-up; 200 ms of steady tone remain.
                let pcm = &pcm[pcm.len() - 9600..];
                let got = dominant_hz(pcm);
                assert!(
                    (got - freqs[c]).abs() <= 5.0,
                    "{channels} channels, high quality {hq}: channel {c} carries {got} Hz, \
                     sent {} Hz",
                    freqs[c]
                );
            }
        }
    }

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
