//! Input for a display session: keyboard, mouse and text to the session's compositor,
//! gamepads to uinput, and nothing anywhere once the session is gone.

use anyhow::Result;
use punktfunk_core::gamestream::input::InputEvent;

use super::uinput::UinputSink;
use super::wayland::WaylandSink;
use super::{Feedback, InputSink, SessionInput};

/// Drops every event: the sink of a stream whose session is not running. Nothing
/// else may receive its input (least of all the box's own seat), and a client that
/// keeps typing must cost nothing but the count.
#[derive(Debug, Default)]
pub struct Nowhere {
    dropped: u64,
}

impl Nowhere {
    /// Events dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl InputSink for Nowhere {
    fn handle(&mut self, _: &InputEvent) -> Result<()> {
        self.dropped += 1;
        Ok(())
    }
}

/// Whether an event belongs to a gamepad (which games read from `/dev/input`
/// themselves, whatever the compositor).
fn is_pad(event: &InputEvent) -> bool {
    matches!(
        event,
        InputEvent::Controller(_)
            | InputEvent::ControllerArrival { .. }
            | InputEvent::ControllerTouch { .. }
            | InputEvent::Motion { .. }
            | InputEvent::Battery { .. }
            | InputEvent::HapticsEnabled
    )
}

/// A session's input: the desktop part (keys, pointer, text) to its compositor, pads
/// to uinput.
pub struct SessionSink {
    desktop: Box<dyn InputSink>,
    pads: Option<UinputSink>,
}

impl std::fmt::Debug for SessionSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSink")
            .field("pads", &self.pads.is_some())
            .finish_non_exhaustive()
    }
}

impl SessionSink {
    /// Opens the sink for `target`. Never fails: whatever cannot be opened is logged
    /// and its events go nowhere, so a stream still starts (its video is worth having
    /// even when input cannot reach the session).
    pub fn open(target: &SessionInput) -> Self {
        let desktop: Box<dyn InputSink> = match target {
            SessionInput::Wayland { socket, output } => match WaylandSink::open(socket, *output) {
                Ok(sink) => Box::new(sink),
                Err(e) => {
                    tracing::warn!("keyboard and mouse cannot reach the session: {e:#}");
                    Box::new(Nowhere::default())
                }
            },
            SessionInput::Gamescope { ei_socket, output } => {
                match super::ei::EiSink::open(ei_socket, *output) {
                    Ok(sink) => Box::new(sink),
                    Err(e) => {
                        tracing::warn!("keyboard and mouse cannot reach the session: {e:#}");
                        Box::new(Nowhere::default())
                    }
                }
            }
            SessionInput::Seat | SessionInput::NoSession => {
                tracing::info!("no display session runs: client input goes nowhere");
                Box::new(Nowhere::default())
            }
        };
        let pads = match target {
            SessionInput::Wayland { .. } | SessionInput::Gamescope { .. } => {
                match UinputSink::pads_only() {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::info!("gamepads cannot be created ({e:#}); pad input is dropped");
                        None
                    }
                }
            }
            SessionInput::Seat | SessionInput::NoSession => None,
        };
        Self { desktop, pads }
    }

    /// A sink from parts (tests).
    pub fn from_parts(desktop: Box<dyn InputSink>, pads: Option<UinputSink>) -> Self {
        Self { desktop, pads }
    }
}

impl InputSink for SessionSink {
    fn handle(&mut self, event: &InputEvent) -> Result<()> {
        if is_pad(event) {
            match &mut self.pads {
                Some(p) => p.handle(event),
                None => Ok(()),
            }
        } else {
            self.desktop.handle(event)
        }
    }

    fn poll_feedback(&mut self, out: &mut Vec<Feedback>) {
        if let Some(p) = &mut self.pads {
            p.poll_feedback(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::recording::RecordingSink;
    use punktfunk_core::gamestream::input::{ControllerState, MouseButton};

    #[test]
    fn without_a_session_input_goes_nowhere() {
        let mut sink = SessionSink::open(&SessionInput::NoSession);
        for e in [
            InputEvent::Key {
                code: 0x41,
                down: true,
                modifiers: 0,
                flags: 0,
            },
            InputEvent::Text("hello".into()),
            InputEvent::MouseButton {
                button: MouseButton::Left,
                down: true,
            },
        ] {
            sink.handle(&e).unwrap();
        }
        let mut fb = Vec::new();
        sink.poll_feedback(&mut fb);
        assert!(fb.is_empty());
    }

    #[test]
    fn a_compositor_that_is_not_there_drops_input_without_failing() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = SessionSink::open(&SessionInput::Wayland {
            socket: dir.path().join("wayland-gone"),
            output: (1280, 720),
        });
        sink.handle(&InputEvent::MouseMove { dx: 3, dy: 4 })
            .unwrap();
        sink.handle(&InputEvent::Text("x".into())).unwrap();
    }

    #[test]
    fn pads_and_desktop_input_are_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desktop.jsonl");
        let mut sink =
            SessionSink::from_parts(Box::new(RecordingSink::create(&path).unwrap()), None);
        sink.handle(&InputEvent::Controller(ControllerState {
            number: 0,
            active_mask: 1,
            buttons: 0x1000,
            left_trigger: 0,
            right_trigger: 0,
            left_x: 0,
            left_y: 0,
            right_x: 0,
            right_y: 0,
        }))
        .unwrap();
        sink.handle(&InputEvent::Scroll { amount: 120 }).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "only the scroll: {text}");
        assert!(text.contains("\"scroll\""));
    }
}
