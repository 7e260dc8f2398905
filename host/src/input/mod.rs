//! Input injection: every event a client sends goes to one `InputSink`.
//!
//! - [`uinput::UinputSink`], the real one: a virtual keyboard, a mouse with a relative
//!   and an absolute pointer, and one Xbox-style gamepad per controller with
//!   force-feedback rumble, through `/dev/uinput`.
//! - [`recording::RecordingSink`]: appends every event to a JSON-lines file. Used where
//!   the machine has no uinput (CI), and by the end-to-end tests to check what arrived.

pub mod recording;
pub mod uinput;

use std::path::PathBuf;

use anyhow::Result;
use punktfunk_core::gamestream::input::InputEvent;
use serde::Deserialize;

/// Feedback the virtual devices ask to send back to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// Rumble a controller's motors (0 = off, 65535 = full).
    Rumble {
        /// Controller number.
        controller: u16,
        /// Low-frequency (strong) motor.
        low: u16,
        /// High-frequency (weak) motor.
        high: u16,
    },
}

/// Where input goes.
pub trait InputSink: Send {
    /// Applies one event.
    fn handle(&mut self, event: &InputEvent) -> Result<()>;

    /// Moves feedback the devices produced (rumble) into `out`.
    fn poll_feedback(&mut self, out: &mut Vec<Feedback>) {
        let _ = out;
    }

    /// Asks for feedback as a game would (the recording sink's stand-in for a game
    /// writing force-feedback to a virtual pad). Real devices get it from the game.
    fn request_feedback(&mut self, feedback: Feedback) {
        let _ = feedback;
    }
}

/// Which backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// uinput if `/dev/uinput` can be opened, else recording.
    #[default]
    Auto,
    /// uinput; fail if unavailable.
    Uinput,
    /// Record to a file.
    Recording,
}

/// `[input]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// The backend.
    pub backend: Backend,
    /// Where the recording backend writes (default: `input-events.jsonl` in the state
    /// directory).
    pub recording_path: Option<PathBuf>,
}

/// Opens the configured sink. `default_recording` is used when no path is configured.
pub fn open(config: &InputConfig, default_recording: PathBuf) -> Result<Box<dyn InputSink>> {
    let path = config.recording_path.clone().unwrap_or(default_recording);
    match config.backend {
        Backend::Recording => Ok(Box::new(recording::RecordingSink::create(&path)?)),
        Backend::Uinput => Ok(Box::new(uinput::UinputSink::open()?)),
        Backend::Auto => match uinput::UinputSink::open() {
            Ok(sink) => Ok(Box::new(sink)),
            Err(e) => {
                tracing::warn!(
                    "uinput is unavailable ({e:#}); client input is recorded to {} instead of injected",
                    path.display()
                );
                Ok(Box::new(recording::RecordingSink::create(&path)?))
            }
        },
    }
}
