//! The encode stage both protocols stream from: a capture, colour conversion and the
//! encoder, yielding encoded frames with their capture time, keyframe flag and host
//! latency. Only what happens to a frame afterwards differs: GameStream's video thread
//! ([`crate::stream::video`]) packetizes it with Moonlight's FEC and sends it to the
//! client's pings; punktfunk/1's send thread ([`crate::native::data`]) seals it into
//! one GF(2^16) block.
//!
//! Keeping one stage means a fix or a speed-up in capture or encoding reaches both
//! protocols at once, and the pipeline benches (`host/benches/pipeline.rs`,
//! `sessions.rs`) measure what both stream: they drive [`FrameEncoder`], the part of
//! the stage that turns one captured picture into one access unit.
//!
//! The stage follows its capture: a frame is encoded when the capture delivers one,
//! so the source sets the frame rate (a game at 60, a variable-rate compositor slower
//! when little moves). When the screen is still, the last picture is encoded again
//! every [`REPEAT_INTERVAL`]. An IDR asked for rides on the next frame or repeat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::probe::Encoders;
use super::software::Tuning;
use super::video::{Encode, EncodedFrame, VideoEncoder, VideoEncoderConfig};
use crate::capture::{self, CaptureError, CaptureSpec, Frame, VideoCapture};
use crate::display::FirstFrame;

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

/// What an encoded frame carries beside its bitstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedInfo {
    /// Whether it is an IDR / key frame.
    pub keyframe: bool,
    /// When its picture was captured (now, for a repeat).
    pub captured_at: Instant,
    /// The capture's wall-clock time in Unix microseconds (0 for a repeat).
    pub captured_unix_us: u64,
    /// The captured picture to the encoder's YUV (0 for a repeat).
    pub convert_us: u64,
    /// Encoding.
    pub encode_us: u64,
    /// Capture until the access unit was out of the encoder (Sunshine's end points).
    pub host_latency_us: u64,
    /// Whether this is the last picture encoded again (a still screen).
    pub repeat: bool,
}

/// What came of encoding one picture.
#[derive(Debug)]
pub enum Encoded {
    /// The access unit is in [`FrameEncoder::data`].
    Ready(EncodedInfo),
    /// The encoder produced nothing for this picture.
    Held,
    /// The captured frame was refused (its planes do not hold its picture, or it is
    /// in memory the encoder cannot read); the previous picture stays.
    Rejected(anyhow::Error),
}

/// An open encoder with the buffer it reuses every frame: one captured picture in,
/// one access unit out.
#[derive(Debug)]
pub struct FrameEncoder {
    encoder: VideoEncoder,
    encoded: EncodedFrame,
}

impl FrameEncoder {
    /// Wraps an open encoder.
    pub fn new(encoder: VideoEncoder) -> Self {
        Self {
            encoder,
            encoded: EncodedFrame::default(),
        }
    }

    /// Converts and encodes `frame` (as an IDR when `force_idr`).
    pub fn encode(&mut self, frame: &Frame<'_>, force_idr: bool) -> anyhow::Result<Encoded> {
        let convert_us = match self.encoder.convert(frame) {
            Ok(us) => us,
            Err(e) => return Ok(Encoded::Rejected(e)),
        };
        if !self
            .encoder
            .encode_picture(force_idr, convert_us, &mut self.encoded)?
        {
            return Ok(Encoded::Held);
        }
        Ok(Encoded::Ready(self.info(
            frame.captured_at,
            frame.captured_unix_us,
            false,
        )))
    }

    /// Encodes the last picture again (a still screen); its capture time is now.
    pub fn repeat(&mut self, force_idr: bool) -> anyhow::Result<Encoded> {
        let now = Instant::now();
        if !self.encoder.repeat(force_idr, &mut self.encoded)? {
            return Ok(Encoded::Held);
        }
        Ok(Encoded::Ready(self.info(now, 0, true)))
    }

    fn info(&self, captured_at: Instant, captured_unix_us: u64, repeat: bool) -> EncodedInfo {
        EncodedInfo {
            keyframe: self.encoded.keyframe,
            captured_at,
            captured_unix_us,
            convert_us: self.encoded.convert_us,
            encode_us: self.encoded.encode_us,
            host_latency_us: captured_at.elapsed().as_micros() as u64,
            repeat,
        }
    }

    /// The last access unit's bitstream.
    pub fn data(&self) -> &[u8] {
        &self.encoded.data
    }

    /// Whether a picture was encoded yet (what [`FrameEncoder::repeat`] needs).
    pub fn has_picture(&self) -> bool {
        self.encoder.has_picture()
    }

    /// The encoder's new target bitrate, without reopening it.
    pub fn set_bitrate(&mut self, kbps: u32) -> anyhow::Result<()> {
        self.encoder.set_bitrate(kbps)
    }

    /// The encoder itself.
    pub fn encoder_mut(&mut self) -> &mut VideoEncoder {
        &mut self.encoder
    }
}

/// What a stream's stage is opened with.
#[derive(Debug, Clone)]
pub struct StageConfig {
    /// What is captured: a display session's capture, or the configured source.
    pub capture: CaptureSpec,
    /// The encoder's codec, size, rate, bitrate and colour.
    pub encoder: VideoEncoderConfig,
    /// The encoders the start-up probe chose.
    pub encoders: Encoders,
    /// Encoder tuning (`[stream] x264_filler`).
    pub tuning: Tuning,
    /// `[stream] yuv_source`: let a source that paints YUV hand over NV12.
    pub yuv_source: bool,
    /// Marks the session's first captured frame (launch-to-first-frame time).
    pub first_frame: Option<Arc<FirstFrame>>,
}

/// Why the stage stopped giving frames.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The source went away (node removed, compositor exited): the stream ends with
    /// this reason, the host goes on.
    #[error("the video source ended: {0}")]
    SourceEnded(String),
    /// The capture could not be opened or failed.
    #[error("the video source: {0}")]
    Capture(CaptureError),
    /// The encoder could not be opened or failed.
    #[error("the video encoder: {0:#}")]
    Encoder(anyhow::Error),
}

impl From<CaptureError> for StageError {
    fn from(e: CaptureError) -> Self {
        match e {
            CaptureError::Ended(reason) => Self::SourceEnded(reason),
            other => Self::Capture(other),
        }
    }
}

/// What [`EncodeStage::next`] yields.
#[derive(Debug)]
pub enum Next {
    /// A frame is in [`EncodeStage::data`].
    Frame(EncodedInfo),
    /// Nothing new in time, and no repeat due.
    Idle,
    /// A captured frame was refused; nothing was encoded for it.
    Rejected(anyhow::Error),
}

/// A capture and the encoder it feeds.
pub struct EncodeStage {
    capture: Box<dyn VideoCapture>,
    frames: FrameEncoder,
    /// An IDR is owed: the next frame or repeat carries it.
    idr: bool,
    /// When the last frame left the encoder.
    last_out: Option<Instant>,
    first_frame: Option<Arc<FirstFrame>>,
}

impl std::fmt::Debug for EncodeStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodeStage")
            .field("capture", &self.capture.describe())
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl EncodeStage {
    /// Opens the chosen encoder, then the capture (an encoder that cannot open fails
    /// the stream before anything is captured).
    pub fn open(cfg: &StageConfig) -> Result<Self, StageError> {
        let encoder = VideoEncoder::open_chosen(&cfg.encoder, &cfg.encoders, &cfg.tuning)
            .map_err(StageError::Encoder)?;
        let mut capture = capture::open(&cfg.capture).map_err(StageError::Capture)?;
        tracing::info!(source = capture.describe(), "capturing video");
        // A source that paints YUV (the test pattern) does so in the client's matrix:
        // the host then converts nothing (the pipeline bench's "NV12 from the source").
        if cfg.yuv_source && capture.offer_nv12(&cfg.encoder.yuv_matrix()) {
            tracing::info!("the source hands over NV12: no colour conversion");
        }
        Ok(Self::new(capture, encoder, cfg.first_frame.clone()))
    }

    /// A stage over an open capture and encoder.
    pub fn new(
        capture: Box<dyn VideoCapture>,
        encoder: VideoEncoder,
        first_frame: Option<Arc<FirstFrame>>,
    ) -> Self {
        Self {
            capture,
            frames: FrameEncoder::new(encoder),
            idr: false,
            last_out: None,
            first_frame,
        }
    }

    /// The next encoded frame: waits at most `wait` for the capture (less when a
    /// repeat of a still screen falls due sooner), encodes what came, or repeats the
    /// last picture when [`REPEAT_INTERVAL`] passed without one.
    pub fn next(&mut self, wait: Duration) -> Result<Next, StageError> {
        let since = self.last_out.map(|t| t.elapsed());
        let wait = match since {
            Some(since) if self.frames.has_picture() => {
                wait.min(REPEAT_INTERVAL.saturating_sub(since))
            }
            _ => wait,
        };
        let encoded = match self.capture.next_frame(wait)? {
            Some(frame) => {
                if let Some(first) = &self.first_frame {
                    first.mark();
                }
                let idr = std::mem::take(&mut self.idr);
                let encoded = self
                    .frames
                    .encode(&frame, idr)
                    .map_err(StageError::Encoder)?;
                if matches!(encoded, Encoded::Rejected(_)) {
                    self.idr |= idr;
                }
                encoded
            }
            None => {
                // A still screen. An IDR asked for rides on the next frame or on this
                // repeat, whichever comes first (repeating at once instead would show
                // a live source's last frame twice).
                let due = since.is_some_and(|s| s >= REPEAT_INTERVAL);
                if !self.frames.has_picture() || !due {
                    return Ok(Next::Idle);
                }
                let idr = std::mem::take(&mut self.idr);
                self.frames.repeat(idr).map_err(StageError::Encoder)?
            }
        };
        Ok(match encoded {
            Encoded::Ready(info) => {
                self.last_out = Some(Instant::now());
                Next::Frame(info)
            }
            Encoded::Held => Next::Idle,
            Encoded::Rejected(e) => Next::Rejected(e),
        })
    }

    /// Takes the next captured frame, if one comes within `wait`, and drops it
    /// unencoded (nobody to send to yet), handing its buffer back to the capture.
    pub fn skip(&mut self, wait: Duration) -> Result<(), StageError> {
        self.capture.next_frame(wait)?;
        Ok(())
    }

    /// Makes the next frame (or repeat) an IDR.
    pub fn request_idr(&mut self) {
        self.idr = true;
    }

    /// The encoder's new target bitrate, without reopening it.
    pub fn set_bitrate(&mut self, kbps: u32) -> anyhow::Result<()> {
        self.frames.set_bitrate(kbps)
    }

    /// The last frame's bitstream.
    pub fn data(&self) -> &[u8] {
        self.frames.data()
    }

    /// What is captured, for logs.
    pub fn describe(&self) -> String {
        self.capture.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::probe::Codec;

    fn stage(fps: u32) -> EncodeStage {
        ffmpeg_next::init().unwrap();
        let cfg = VideoEncoderConfig {
            codec: Codec::H264,
            width: 320,
            height: 240,
            fps,
            bitrate_kbps: 2000,
            csc_mode: 2,
            ten_bit: false,
        };
        let capture = capture::open(&CaptureSpec::TestPattern {
            width: 320,
            height: 240,
            fps,
        })
        .unwrap();
        EncodeStage::new(
            capture,
            VideoEncoder::open_named("libx264", &cfg).unwrap(),
            None,
        )
    }

    #[test]
    fn frames_follow_the_capture_and_an_idr_rides_on_the_next_one() {
        let mut s = stage(100);
        let mut frames = Vec::new();
        while frames.len() < 6 {
            if let Next::Frame(info) = s.next(Duration::from_millis(50)).unwrap() {
                assert!(!s.data().is_empty());
                assert!(info.captured_unix_us > 0 && !info.repeat);
                assert!(info.host_latency_us >= info.encode_us);
                frames.push(info.keyframe);
                if frames.len() == 3 {
                    s.request_idr();
                }
            }
        }
        assert_eq!(frames, [true, false, false, true, false, false]);
    }

    #[test]
    fn a_still_screen_repeats_the_last_picture_every_interval() {
        // One picture a second: in between, the stage repeats every 100 ms.
        let mut s = stage(1);
        let start = Instant::now();
        let mut kinds = Vec::new();
        while start.elapsed() < Duration::from_millis(550) {
            match s.next(Duration::from_millis(10)).unwrap() {
                Next::Frame(info) => kinds.push(info.repeat),
                Next::Idle => {}
                Next::Rejected(e) => panic!("{e:#}"),
            }
        }
        assert_eq!(kinds.first(), Some(&false), "the captured picture first");
        let repeats = kinds.iter().filter(|r| **r).count();
        assert!((3..=6).contains(&repeats), "{kinds:?}");
        // An IDR asked on a still screen comes with the next repeat.
        s.request_idr();
        let info = loop {
            if let Next::Frame(info) = s.next(Duration::from_millis(10)).unwrap() {
                break info;
            }
        };
        assert!(info.keyframe && info.repeat);
    }
}
