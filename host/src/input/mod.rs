//! Input injection: every event a client sends goes to one `InputSink`.
//!
//! - [`uinput::UinputSink`], the real one: a virtual keyboard, a mouse with a relative
//!   and an absolute pointer, and one Xbox-style gamepad per controller with
//!   force-feedback rumble, through `/dev/uinput`.
//! - [`recording::RecordingSink`]: appends every event to a JSON-lines file. Used where
//!   the machine has no uinput (CI), and by the end-to-end tests to check what arrived.
//! - [`wayland::WaylandSink`]: a virtual keyboard and pointer in a sway session's own
//!   compositor, so keys and the mouse reach the session the client watches and
//!   nothing else; pads stay uinput ([`session::SessionSink`] joins the two).
//! - [`ei::EiSink`]: the same for a gamescope session, through gamescope's own libei
//!   server (its headless backend reads no input devices, so uinput cannot reach it).
//! - [`session::Nowhere`]: drops everything, for a stream whose session is gone.
//!
//! Which one a stream gets depends on the `[input] backend` and on the display session
//! the stream shows ([`SessionInput`]).

pub mod ei;
pub mod recording;
pub mod session;
pub mod uinput;
pub mod wayland;

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
    /// With a display backend: `session`. Without one (display `none`, where the
    /// client watches the box's own screen or a PipeWire source): uinput if
    /// `/dev/uinput` can be opened, else recording.
    #[default]
    Auto,
    /// Into the running display session only: its compositor's virtual keyboard and
    /// pointer, pads through uinput. With no session running, input goes nowhere.
    Session,
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

/// Where a stream's input can go, as the display session it shows says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SessionInput {
    /// No display backend (`none`): the client watches the box itself, whose own seat
    /// (uinput) is where its input belongs.
    #[default]
    Seat,
    /// A display backend, but no session runs (it ended, or never started): input
    /// goes nowhere.
    NoSession,
    /// A wlroots compositor (sway) on this Wayland socket (absolute path), with one
    /// output of this size.
    Wayland {
        /// The compositor's socket.
        socket: PathBuf,
        /// The output's width and height in pixels.
        output: (u32, u32),
    },
    /// A gamescope session. Its headless backend reads no input devices at all, so
    /// uinput keyboards and mice never reach it; its own libei server (the socket
    /// it exports to its children as `LIBEI_SOCKET`) is the way in.
    Gamescope {
        /// gamescope's EIS socket (absolute path).
        ei_socket: PathBuf,
        /// The output's width and height in pixels.
        output: (u32, u32),
    },
}

/// The `SS_FF_*` feature flags DESCRIBE may announce: pen and touch, and controller
/// touchpads, are offered only where they arrive somewhere. The recording backend
/// keeps them; uinput creates no touch, pen or touchpad devices yet, and wlroots has
/// no virtual touch or tablet device for the session backend, so a client told
/// otherwise would send input that silently goes nowhere.
pub fn feature_flags(config: &InputConfig) -> u32 {
    use punktfunk_core::gamestream::sdp::{SS_FF_CONTROLLER_TOUCH, SS_FF_PEN_TOUCH};
    match config.backend {
        Backend::Recording => SS_FF_PEN_TOUCH | SS_FF_CONTROLLER_TOUCH,
        Backend::Auto | Backend::Session | Backend::Uinput => 0,
    }
}

/// Opens the configured sink for a stream showing `target`. `default_recording` is
/// used when no path is configured.
pub fn open(
    config: &InputConfig,
    target: &SessionInput,
    default_recording: PathBuf,
) -> Result<Box<dyn InputSink>> {
    let path = config.recording_path.clone().unwrap_or(default_recording);
    match (config.backend, target) {
        (Backend::Recording, _) => Ok(Box::new(recording::RecordingSink::create(&path)?)),
        (Backend::Uinput, _) => Ok(Box::new(uinput::UinputSink::open()?)),
        (Backend::Session, _)
        | (
            Backend::Auto,
            SessionInput::NoSession | SessionInput::Wayland { .. } | SessionInput::Gamescope { .. },
        ) => Ok(Box::new(session::SessionSink::open(target))),
        (Backend::Auto, SessionInput::Seat) => match uinput::UinputSink::open() {
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
