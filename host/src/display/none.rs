//! No compositor: the stream shows the built-in test pattern at the client's mode and
//! no app runs (the demo default on a machine without a compositor).

use super::{AppExit, Backend, Display, DisplayError, LaunchSpec, Mode};
use crate::capture::CaptureSpec;

/// The test pattern instead of a session.
#[derive(Debug, Default)]
pub struct NoDisplay {
    mode: Option<Mode>,
}

impl Display for NoDisplay {
    fn backend(&self) -> Backend {
        Backend::None
    }

    fn start(&mut self, spec: &LaunchSpec) -> Result<(), DisplayError> {
        if let Some(command) = &spec.command {
            tracing::info!(
                command,
                "no compositor ([display] backend = \"none\"): the app's command is not run, \
                 the stream shows the test pattern"
            );
        }
        self.mode = Some(spec.mode);
        Ok(())
    }

    /// No compositor: the client watches the box's own screen (or a PipeWire source),
    /// whose seat is where its input belongs.
    fn input(&self) -> crate::input::SessionInput {
        crate::input::SessionInput::Seat
    }

    fn capture(&self) -> CaptureSpec {
        let m = self.mode.unwrap_or(Mode {
            width: 1280,
            height: 720,
            fps: 60,
        });
        CaptureSpec::TestPattern {
            width: m.width,
            height: m.height,
            fps: m.fps,
        }
    }

    fn set_mode(&mut self, mode: Mode) -> Result<(), DisplayError> {
        self.mode = Some(mode);
        Ok(())
    }

    fn app_exit(&mut self) -> Option<AppExit> {
        None
    }

    fn compositor_alive(&mut self) -> bool {
        true
    }

    fn stop(&mut self) {}

    fn pids(&self) -> (Option<u32>, Option<u32>) {
        (None, None)
    }
}
