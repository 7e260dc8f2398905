//! Video capture: where a stream's pictures come from.
//!
//! One trait, [`VideoCapture`], with a backend per source, chosen by [`open`]:
//! the built-in test pattern (the demo default where no compositor runs), an existing
//! PipeWire Video/Source node (gamescope's, a desktop portal's, a test producer), and
//! wlr-screencopy from a headless sway session. Each hands out [`Frame`]s that borrow
//! its buffer, so the encoder converts straight from capture memory.
//!
//! The contract every backend keeps:
//! - [`VideoCapture::next_frame`] never blocks longer than its timeout and returns
//!   `Ok(None)` when nothing new arrived: the caller decides when to repeat the last
//!   picture (a still screen) and when to give up.
//! - A source that goes away (node removed, compositor gone) is
//!   [`CaptureError::Ended`] with a reason, never a panic, so the stream can end
//!   cleanly and the host keeps serving.
//! - Sizes may change between frames (renegotiation after a mode change); every frame
//!   carries its own.

pub mod frame;
pub mod pattern;
pub mod pipewire;
pub mod screencopy;
pub mod source;

use std::time::Duration;

pub use frame::{CpuFrame, DmaBufFrame, DmaBufPlane, Frame, PixelFormat, Pixels, Plane};
pub use source::SourceSetting;

/// Why a capture stopped giving frames.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The source went away (node removed, compositor exited, output gone).
    #[error("the video source ended: {0}")]
    Ended(String),
    /// The source could not be opened or failed while running.
    #[error("video capture failed: {0}")]
    Failed(String),
}

/// A source of pictures.
pub trait VideoCapture: Send {
    /// The next picture newer than the last one returned, waiting at most `timeout`.
    ///
    /// `Ok(None)` means nothing new arrived in time (the screen is still). The frame
    /// borrows the capture's buffer until it is dropped.
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<Frame<'_>>, CaptureError>;

    /// What this capture reads, for logs and status ("PipeWire node 42 (gamescope)").
    fn describe(&self) -> String;

    /// Asks the capture to hand over NV12 in the colour matrix `m` from now on, where
    /// it can produce YUV itself (so the host has no colour conversion to do); returns
    /// whether it will. Captures of RGB buffers keep what they have.
    fn offer_nv12(&mut self, m: &punktfunk_yuv::Matrix) -> bool {
        let _ = m;
        false
    }
}

/// Which PipeWire node to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeTarget {
    /// The node with this object id (what gamescope announces for its own stream).
    Id(u32),
    /// The node with this `node.name` (`--source pipewire:<name>`).
    Name(String),
}

/// What a stream captures; [`open`] turns it into a running capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureSpec {
    /// The built-in moving colour bars with a frame barcode, paced at `fps`.
    TestPattern {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Frames a second.
        fps: u32,
    },
    /// A PipeWire Video/Source node.
    PipeWire {
        /// The node.
        node: NodeTarget,
        /// The PipeWire daemon's runtime directory (`XDG_RUNTIME_DIR` of the session
        /// user whose PipeWire runs the node); `None` for the host's own.
        runtime_dir: Option<std::path::PathBuf>,
    },
    /// wlr-screencopy of a wlroots compositor's output (headless sway).
    Screencopy {
        /// The compositor's Wayland socket (absolute path).
        wayland_socket: std::path::PathBuf,
        /// The output to capture; `None` for the first one.
        output: Option<String>,
    },
}

/// Opens the capture `spec` names.
///
/// Called on the stream's video thread when a stream starts; the capture lives as long
/// as the stream. Errors say what could not be opened and why ("no PipeWire node named
/// X; video sources: ..."), and end that stream only.
pub fn open(spec: &CaptureSpec) -> Result<Box<dyn VideoCapture>, CaptureError> {
    match spec {
        CaptureSpec::TestPattern { width, height, fps } => Ok(Box::new(
            pattern::TestPatternCapture::new(*width, *height, *fps)?,
        )),
        CaptureSpec::PipeWire { node, runtime_dir } => Ok(Box::new(
            pipewire::PipeWireCapture::open(node, runtime_dir.as_deref())?,
        )),
        CaptureSpec::Screencopy {
            wayland_socket,
            output,
        } => Ok(Box::new(screencopy::Screencopy::open(
            wayland_socket,
            output.as_deref(),
        )?)),
    }
}
