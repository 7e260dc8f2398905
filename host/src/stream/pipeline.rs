//! One video frame through GameStream's half of the host: the encode stage's access
//! unit becomes Moonlight's packets with FEC ([`FramePackets`]).
//!
//! The video thread runs [`crate::encode::stage::EncodeStage`] and then
//! [`FramePackets`]; the pipeline benchmarks (`host/benches/pipeline.rs`,
//! `sessions.rs`, `sources.rs`) feed their own pictures to [`FramePipeline`], which is
//! the stage's [`FrameEncoder`] followed by the same [`FramePackets`], so they measure
//! exactly the code that streams.

use std::time::Instant;

use anyhow::Result;
use punktfunk_core::gamestream::video::{
    FrameType, PacketRun, VideoConfig, VideoError, VideoFrame, VideoPacketizer,
};
use punktfunk_core::time::{rtp_90khz, tenths_of_ms};

use crate::capture::Frame;
use crate::encode::stage::{Encoded, EncodedInfo, FrameEncoder};
use crate::encode::video::VideoEncoder;

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

/// GameStream's packetizer with the packet run it reuses every frame.
#[derive(Debug)]
pub struct FramePackets {
    packetizer: VideoPacketizer,
    batch: PacketRun,
    start: Instant,
    /// The capture time of the last packetized frame.
    captured_at: Instant,
    /// FEC percentages for P-frames and for IDR frames.
    fec: (u8, u8),
}

impl FramePackets {
    /// A packetizer whose RTP clock starts at `start`.
    pub fn new(packets: VideoConfig, start: Instant) -> Result<Self> {
        Ok(Self {
            packetizer: VideoPacketizer::new(packets)?,
            batch: PacketRun::new(),
            start,
            captured_at: start,
            fec: (packets.fec_percent, packets.fec_percent),
        })
    }

    /// The FEC percentages of the next frames: `p_frame` for P-frames, `idr` for IDR
    /// frames (the recovery frame gets more: losing it costs another round trip).
    pub fn set_fec(&mut self, p_frame: u8, idr: u8) {
        self.fec = (p_frame, idr);
    }

    /// Packetizes the access unit `data` as `frame_index`. The frame header carries
    /// the host latency so far: capture until packetization starts, the moment the
    /// first packet is about to exist.
    pub fn packetize(
        &mut self,
        data: &[u8],
        info: &EncodedInfo,
        frame_index: u32,
    ) -> Result<PreparedFrame, VideoError> {
        let captured_at = info.captured_at;
        self.captured_at = captured_at;
        let t_pkt = Instant::now();
        let video_frame = VideoFrame {
            data,
            frame_index,
            rtp_timestamp: rtp_90khz(captured_at.saturating_duration_since(self.start)),
            frame_type: if info.keyframe {
                FrameType::Idr
            } else {
                FrameType::P
            },
            host_latency: tenths_of_ms(t_pkt.saturating_duration_since(captured_at)),
        };
        self.packetizer.set_fec_percent(if info.keyframe {
            self.fec.1
        } else {
            self.fec.0
        });
        self.packetizer.packetize(&video_frame, &mut self.batch)?;
        Ok(PreparedFrame {
            convert_us: info.convert_us,
            encode_us: info.encode_us,
            packetize_us: t_pkt.elapsed().as_micros() as u64,
            keyframe: info.keyframe,
            host_latency_us: t_pkt.saturating_duration_since(captured_at).as_micros() as u64,
        })
    }

    /// When the last packetized frame was captured (now, for a repeat).
    pub fn captured_at(&self) -> Instant {
        self.captured_at
    }

    /// The packets of the last packetized frame.
    pub fn batch(&self) -> &PacketRun {
        &self.batch
    }
}

/// The stage's encoder plus GameStream's packetizer, for callers that bring their own
/// pictures (the benches): what the video thread runs, minus the capture.
#[derive(Debug)]
pub struct FramePipeline {
    frames: FrameEncoder,
    packets: FramePackets,
}

impl FramePipeline {
    /// A pipeline whose RTP clock starts at `start`.
    pub fn new(encoder: VideoEncoder, packets: VideoConfig, start: Instant) -> Result<Self> {
        Ok(Self {
            frames: FrameEncoder::new(encoder),
            packets: FramePackets::new(packets, start)?,
        })
    }

    /// Encodes `frame` (as an IDR when `force_idr`) and packetizes it as
    /// `frame_index`.
    pub fn process(
        &mut self,
        frame: &Frame<'_>,
        frame_index: u32,
        force_idr: bool,
    ) -> Result<Outcome> {
        let encoded = self.frames.encode(frame, force_idr)?;
        Ok(self.packetize(encoded, frame_index))
    }

    /// Encodes the last picture again as `frame_index` (a still screen: see
    /// [`crate::encode::stage::REPEAT_INTERVAL`]); its capture time is now.
    pub fn repeat(&mut self, frame_index: u32, force_idr: bool) -> Result<Outcome> {
        let encoded = self.frames.repeat(force_idr)?;
        Ok(self.packetize(encoded, frame_index))
    }

    fn packetize(&mut self, encoded: Encoded, frame_index: u32) -> Outcome {
        match encoded {
            Encoded::Ready(info) => {
                match self
                    .packets
                    .packetize(self.frames.data(), &info, frame_index)
                {
                    Ok(p) => Outcome::Ready(p),
                    Err(e) => Outcome::Dropped(e),
                }
            }
            Encoded::Held => Outcome::Held,
            Encoded::Rejected(e) => Outcome::Rejected(e),
        }
    }

    /// The FEC percentages of the next frames (see [`FramePackets::set_fec`]).
    pub fn set_fec(&mut self, p_frame: u8, idr: u8) {
        self.packets.set_fec(p_frame, idr);
    }

    /// The encoder's new target bitrate, without reopening it.
    pub fn set_bitrate(&mut self, kbps: u32) -> Result<()> {
        self.frames.set_bitrate(kbps)
    }

    /// Whether a picture was encoded yet (what [`FramePipeline::repeat`] needs).
    pub fn has_picture(&self) -> bool {
        self.frames.has_picture()
    }

    /// When the last [`Outcome::Ready`] frame was captured (now, for a repeat).
    pub fn captured_at(&self) -> Instant {
        self.packets.captured_at()
    }

    /// The packets of the last [`Outcome::Ready`] frame.
    pub fn batch(&self) -> &PacketRun {
        self.packets.batch()
    }

    /// The encoder, for bitrate changes and IDR requests between frames.
    pub fn encoder_mut(&mut self) -> &mut VideoEncoder {
        self.frames.encoder_mut()
    }

    /// The last encoded frame's bitstream (the bench decodes it for the PSNR).
    pub fn encoded(&self) -> &[u8] {
        self.frames.data()
    }

    /// Size of the last encoded frame, bytes.
    pub fn encoded_len(&self) -> usize {
        self.frames.data().len()
    }
}
