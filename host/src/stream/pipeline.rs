//! One video frame through the host, from captured pixels to wire packets: colour
//! conversion and encoding, then GameStream packetization with FEC.
//!
//! The stream's video thread and the pipeline benchmark (`host/benches/pipeline.rs`)
//! both drive this, so the benchmark measures exactly the code that streams.

use std::time::Instant;

use anyhow::Result;
use punktfunk_core::gamestream::video::{
    FrameType, PacketRun, VideoConfig, VideoError, VideoFrame, VideoPacketizer,
};
use punktfunk_core::time::{rtp_90khz, tenths_of_ms};

use crate::capture::Frame;
use crate::encode::video::{Encode, EncodedFrame, VideoEncoder};

/// What one frame cost, stage by stage, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreparedFrame {
    /// The captured picture to the encoder's YUV (0 for a repeat).
    pub convert_us: u64,
    /// Encoding.
    pub encode_us: u64,
    /// Packetization and FEC.
    pub packetize_us: u64,
    /// Whether the frame is an IDR.
    pub keyframe: bool,
    /// Capture until the encoded frame was handed to packetization: the host latency
    /// the frame header reports (Sunshine's end points).
    pub host_latency_us: u64,
}

/// What came out of [`FramePipeline::process`].
#[derive(Debug)]
pub enum Outcome {
    /// Packets are in [`FramePipeline::batch`].
    Ready(PreparedFrame),
    /// The encoder produced nothing for this frame.
    Held,
    /// The captured frame was refused (its planes do not hold its picture, or it is
    /// in memory the encoder cannot read); nothing was sent for it.
    Rejected(anyhow::Error),
    /// The frame could not be packetized (too large for the FEC shape); the caller
    /// should send an IDR next.
    Dropped(VideoError),
}

/// An open encoder plus the packetizer, with the buffers they reuse every frame.
pub struct FramePipeline {
    encoder: VideoEncoder,
    packetizer: VideoPacketizer,
    encoded: EncodedFrame,
    batch: PacketRun,
    start: Instant,
    /// The capture time of the last packetized frame.
    captured_at: Instant,
    /// FEC percentages for P-frames and for IDR frames.
    fec: (u8, u8),
}

impl std::fmt::Debug for FramePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramePipeline")
            .field("encoder", &self.encoder)
            .field("packets", &self.batch.len())
            .finish_non_exhaustive()
    }
}

impl FramePipeline {
    /// A pipeline whose RTP clock starts at `start`.
    pub fn new(encoder: VideoEncoder, packets: VideoConfig, start: Instant) -> Result<Self> {
        Ok(Self {
            encoder,
            packetizer: VideoPacketizer::new(packets)?,
            encoded: EncodedFrame::default(),
            batch: PacketRun::new(),
            start,
            captured_at: start,
            fec: (packets.fec_percent, packets.fec_percent),
        })
    }

    /// Encodes `frame` (as an IDR when `force_idr`) and packetizes it as
    /// `frame_index`. The frame header carries the host latency so far: capture until
    /// packetization starts, the moment the first packet is about to exist.
    pub fn process(
        &mut self,
        frame: &Frame<'_>,
        frame_index: u32,
        force_idr: bool,
    ) -> Result<Outcome> {
        let convert_us = match self.encoder.convert(frame) {
            Ok(us) => us,
            Err(e) => return Ok(Outcome::Rejected(e)),
        };
        if !self
            .encoder
            .encode_picture(force_idr, convert_us, &mut self.encoded)?
        {
            return Ok(Outcome::Held);
        }
        self.packetize(frame.captured_at, frame_index)
    }

    /// Encodes the last picture again as `frame_index` (a still screen: see
    /// [`crate::stream::video::REPEAT_INTERVAL`]); its capture time is now.
    pub fn repeat(&mut self, frame_index: u32, force_idr: bool) -> Result<Outcome> {
        let now = Instant::now();
        if !self.encoder.repeat(force_idr, &mut self.encoded)? {
            return Ok(Outcome::Held);
        }
        self.packetize(now, frame_index)
    }

    /// The FEC percentages of the next frames: `p_frame` for P-frames, `idr` for IDR
    /// frames (the recovery frame gets more: losing it costs another round trip).
    pub fn set_fec(&mut self, p_frame: u8, idr: u8) {
        self.fec = (p_frame, idr);
    }

    /// The encoder's new target bitrate, without reopening it.
    pub fn set_bitrate(&mut self, kbps: u32) -> Result<()> {
        self.encoder.set_bitrate(kbps)
    }

    /// Whether a picture was encoded yet (what [`FramePipeline::repeat`] needs).
    pub fn has_picture(&self) -> bool {
        self.encoder.has_picture()
    }

    fn packetize(&mut self, captured_at: Instant, frame_index: u32) -> Result<Outcome> {
        self.captured_at = captured_at;
        let t_pkt = Instant::now();
        let video_frame = VideoFrame {
            data: &self.encoded.data,
            frame_index,
            rtp_timestamp: rtp_90khz(captured_at.saturating_duration_since(self.start)),
            frame_type: if self.encoded.keyframe {
                FrameType::Idr
            } else {
                FrameType::P
            },
            host_latency: tenths_of_ms(t_pkt.saturating_duration_since(captured_at)),
        };
        self.packetizer.set_fec_percent(if self.encoded.keyframe {
            self.fec.1
        } else {
            self.fec.0
        });
        if let Err(e) = self.packetizer.packetize(&video_frame, &mut self.batch) {
            return Ok(Outcome::Dropped(e));
        }
        Ok(Outcome::Ready(PreparedFrame {
            convert_us: self.encoded.convert_us,
            encode_us: self.encoded.encode_us,
            packetize_us: t_pkt.elapsed().as_micros() as u64,
            keyframe: self.encoded.keyframe,
            host_latency_us: t_pkt.saturating_duration_since(captured_at).as_micros() as u64,
        }))
    }

    /// When the last [`Outcome::Ready`] frame was captured (now, for a repeat).
    pub fn captured_at(&self) -> Instant {
        self.captured_at
    }

    /// The packets of the last [`Outcome::Ready`] frame.
    pub fn batch(&self) -> &PacketRun {
        &self.batch
    }

    /// The encoder, for bitrate changes and IDR requests between frames.
    pub fn encoder_mut(&mut self) -> &mut VideoEncoder {
        &mut self.encoder
    }

    /// The last encoded frame's bitstream (the bench decodes it for the PSNR).
    pub fn encoded(&self) -> &[u8] {
        &self.encoded.data
    }

    /// Size of the last encoded frame, bytes.
    pub fn encoded_len(&self) -> usize {
        self.encoded.data.len()
    }
}
