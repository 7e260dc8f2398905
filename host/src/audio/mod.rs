//! Audio capture: where a stream's sound comes from.
//!
//! One trait, [`AudioCapture`], with a backend per source, chosen by [`open`], as
//! [`crate::capture`] does for pictures:
//! - the demo tone (440 Hz on every channel), where no display session runs;
//! - a PipeWire node ([`pipewire`]): the monitor of the display session's own null
//!   sink ([`sink`], the default), or any Audio/Sink or Audio/Source named in
//!   `[stream] audio_source = "pipewire:<node>"`;
//! - silence, where the configured source cannot be opened: the client still gets
//!   its packets (it expects one every packet duration) and the video goes on.
//!
//! The contract every backend keeps: [`AudioCapture::read`] hands out exactly one
//! packet's samples each call, returning at the packet's deadline, and never fails.
//! Sound that stops (nothing plays, the sink vanished) becomes silence, since a
//! missing audio source must never end a stream whose picture is fine.

pub mod layout;
pub mod pipewire;
pub mod setting;
pub mod sink;

use std::path::PathBuf;
use std::time::Instant;

use crate::capture::NodeTarget;
use crate::source::AudioSource;
use crate::source::tone::Tone;

pub use setting::AudioSourceSetting;

/// A source of sound, read one packet at a time on the stream's audio thread.
///
/// Not `Send`: it is opened on the audio thread and lives there (the PipeWire loop
/// it may own has its callbacks tied to that thread).
pub trait AudioCapture {
    /// Fills `out` (48 kHz float samples, interleaved, the stream's channels in
    /// Moonlight's order) with the next packet's sound, returning no earlier than
    /// `deadline`, the moment the packet is due. Waits (sleeping, or running the
    /// capture's event loop) until then.
    fn read(&mut self, out: &mut [f32], deadline: Instant);

    /// What this capture reads, for logs ("PipeWire sink monitor punktfunk-1-1").
    fn describe(&self) -> String;
}

/// What a stream's audio thread captures; [`open`] turns it into a running capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioSpec {
    /// The demo tone.
    Tone,
    /// Silence (a session without sound, or a source that is gone).
    Silence,
    /// A PipeWire node: a sink's monitor (the session's own sink) or a source.
    PipeWire {
        /// The node.
        node: NodeTarget,
        /// The PipeWire daemon's runtime directory (the session user's); `None` for
        /// the host's own.
        runtime_dir: Option<PathBuf>,
    },
}

impl AudioSpec {
    /// The spec of `setting` for a stream whose display session offers `session`
    /// (its sink's monitor, `None` without a display session).
    pub fn choose(setting: &AudioSourceSetting, session: Option<AudioSpec>) -> Self {
        match setting {
            AudioSourceSetting::Tone => Self::Tone,
            AudioSourceSetting::PipeWire(node) => Self::PipeWire {
                node: node.clone(),
                runtime_dir: None,
            },
            // No display session (backend none, or a configured video source): the
            // demo tone, so a plain demo host still sounds. A session without a sink
            // offers silence, not the tone.
            AudioSourceSetting::Session => session.unwrap_or(Self::Tone),
        }
    }
}

/// Opens the capture `spec` names for a stream of `channels` channels and packets of
/// `samples_per_packet` samples per channel.
///
/// Never fails: a PipeWire node that cannot be opened is logged and becomes
/// silence, so the stream (and its video) goes on.
pub fn open(spec: &AudioSpec, channels: usize, samples_per_packet: usize) -> Box<dyn AudioCapture> {
    match spec {
        AudioSpec::Tone => Box::new(ToneCapture {
            tone: Tone::new(440.0, 0.4),
            channels,
        }),
        AudioSpec::Silence => Box::new(Silence),
        AudioSpec::PipeWire { node, runtime_dir } => {
            match pipewire::PipeWireAudio::open(
                node,
                runtime_dir.as_deref(),
                channels,
                samples_per_packet,
            ) {
                Ok(capture) => Box::new(capture),
                Err(e) => {
                    tracing::error!("audio: {e}; the stream sends silence");
                    Box::new(Silence)
                }
            }
        }
    }
}

/// Sleeps until `deadline`.
fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
}

/// The demo tone as a capture.
struct ToneCapture {
    tone: Tone,
    channels: usize,
}

impl AudioCapture for ToneCapture {
    fn read(&mut self, out: &mut [f32], deadline: Instant) {
        sleep_until(deadline);
        self.tone.read(out, self.channels);
    }

    fn describe(&self) -> String {
        "the 440 Hz demo tone".into()
    }
}

/// Silence, paced like any other source.
struct Silence;

impl AudioCapture for Silence {
    fn read(&mut self, out: &mut [f32], deadline: Instant) {
        sleep_until(deadline);
        out.fill(0.0);
    }

    fn describe(&self) -> String {
        "silence".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_setting_follows_the_display_session() {
        let sink = AudioSpec::PipeWire {
            node: NodeTarget::Name("punktfunk.session-1".into()),
            runtime_dir: Some("/run/user/1000".into()),
        };
        assert_eq!(
            AudioSpec::choose(&AudioSourceSetting::Session, Some(sink.clone())),
            sink
        );
        assert_eq!(
            AudioSpec::choose(&AudioSourceSetting::Session, None),
            AudioSpec::Tone,
            "no display session: the demo tone"
        );
        assert_eq!(
            AudioSpec::choose(&AudioSourceSetting::Tone, Some(sink)),
            AudioSpec::Tone
        );
        assert_eq!(
            AudioSpec::choose(&AudioSourceSetting::Session, Some(AudioSpec::Silence)),
            AudioSpec::Silence,
            "a session whose sink failed is silent"
        );
        assert_eq!(
            AudioSpec::choose(&AudioSourceSetting::PipeWire(NodeTarget::Id(7)), None),
            AudioSpec::PipeWire {
                node: NodeTarget::Id(7),
                runtime_dir: None
            }
        );
    }

    #[test]
    fn tone_and_silence_fill_whole_packets() {
        let mut out = vec![1.0f32; 480];
        let mut s = open(&AudioSpec::Silence, 2, 240);
        s.read(&mut out, Instant::now());
        assert!(out.iter().all(|&v| v == 0.0));
        let mut t = open(&AudioSpec::Tone, 2, 240);
        t.read(&mut out, Instant::now());
        assert!(out.iter().any(|&v| v.abs() > 0.1));
        assert_eq!(out[0], out[1], "every channel carries the tone");
    }
}
