//! Display sessions: one headless compositor per launch, at the client's mode, with
//! the app running inside it.
//!
//! One trait, [`Display`], with a backend per compositor, chosen by [`open`]:
//! - [`gamescope`]: the appliance's compositor (`gamescope --backend headless`),
//!   captured from its PipeWire node;
//! - [`sway`]: wlroots' headless backend with the pixman renderer, which needs no GPU
//!   (CI runs it for real), captured with wlr-screencopy;
//! - [`none`]: no compositor; the stream shows the built-in test pattern.
//!
//! Compositors and apps run as the session user ([`user`]): never as root, never in the
//! host's sandbox, each session in its own process group (or unit), so that ending a
//! session leaves none of its processes behind ([`process`]).

pub mod gamescope;
pub mod launch;
pub mod manager;
pub mod none;
pub mod process;
pub mod pw_nodes;
pub mod sway;
pub mod sway_ipc;
pub mod user;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::capture::CaptureSpec;
pub use manager::{DisplayManager, FirstFrame, SessionState, SessionStatus};
pub use punktfunk_core::gamestream::nvhttp::requests::DisplayMode as Mode;
pub use user::SessionUser;

/// How long a compositor may take to come up before `/launch` answers with an error.
/// Moonlight shows a launch error as soon as the reply arrives; its own HTTP timeout
/// is longer, but a user should not stare at a spinner for a compositor that is not
/// coming (sway is ready in ~150 ms here, gamescope in about a second).
pub const START_TIMEOUT: Duration = Duration::from_secs(4);

/// Why a session could not start or change.
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    /// The compositor's program is not installed (or not where the config says).
    #[error("the compositor {0} is not installed")]
    MissingCompositor(String),
    /// The compositor started but failed or exited before it was ready.
    #[error("the compositor failed to start: {0}")]
    CompositorFailed(String),
    /// The app's command could not be started, or exited at once with "not found".
    #[error("the app could not be started: {0}")]
    AppFailed(String),
    /// The session user is missing or the host may not act as it.
    #[error("the session user: {0}")]
    User(String),
    /// Anything else (I/O while preparing the session).
    #[error("{0}")]
    Other(String),
}

/// Which compositor runs sessions (`[display] backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// gamescope when it has a headless backend and a GPU is present, else sway when
    /// installed, else none. Decided once at start and logged.
    #[default]
    Auto,
    /// Headless gamescope (needs a GPU).
    Gamescope,
    /// Headless sway (CPU rendering).
    Sway,
    /// No compositor: the test pattern.
    None,
}

impl Backend {
    /// The name the config and logs use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Gamescope => "gamescope",
            Self::Sway => "sway",
            Self::None => "none",
        }
    }
}

/// `[display]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisplayConfig {
    /// The compositor.
    pub backend: Backend,
    /// The compositor's program [default: `gamescope` or `sway` on PATH].
    pub compositor_path: Option<PathBuf>,
    /// Extra arguments for gamescope (e.g. `--prefer-vk-device 1002:73bf`).
    pub gamescope_args: Vec<String>,
}

/// `[session]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// The user compositors and apps run as. The host switches to it when it runs as
    /// root; when it already runs as that user (the appliance) nothing changes user.
    pub user: String,
    /// How many clients may stream at once, each in its own session (default 2),
    /// Moonlight's and punktfunk/1's together. A session beyond it is refused with an
    /// error the client shows; the running sessions go on.
    pub max_sessions: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            user: "punktfunk".to_owned(),
            max_sessions: punktfunk_core::gamestream::apps::DEFAULT_MAX_SESSIONS,
        }
    }
}

/// What a launch asks for.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// A short unique id (`[a-z0-9-]+`): names the session's sockets, unit and files.
    pub id: String,
    /// The client's mode.
    pub mode: Mode,
    /// The app's command (`sh -c`), or `None` for an empty desktop.
    pub command: Option<String>,
    /// The client's audio channels (2, 6 or 8): the session's sink gets as many, at
    /// Moonlight's positions. 0: the session gets no sink.
    pub audio_channels: u8,
}

/// One running session: the compositor and the app in it.
///
/// Dropping a session ends it, like [`Display::stop`].
pub trait Display: Send {
    /// The backend's name ("sway").
    fn backend(&self) -> Backend;

    /// Starts the compositor at `spec.mode`, waits until it is ready (at most
    /// [`START_TIMEOUT`]), then starts the app inside it.
    fn start(&mut self, spec: &LaunchSpec) -> Result<(), DisplayError>;

    /// What the stream captures from this session.
    fn capture(&self) -> CaptureSpec;

    /// What the stream's audio captures from this session: its sink's monitor.
    /// `None` when the session has no sink (no PipeWire, or a backend without sound).
    fn audio(&self) -> Option<crate::audio::AudioSpec> {
        None
    }

    /// Where the client's keyboard and mouse go in this session. The default, for
    /// backends with no way in, is nowhere: never the box's own seat.
    fn input(&self) -> crate::input::SessionInput {
        crate::input::SessionInput::NoSession
    }

    /// Switches the running session to `mode` (a resume at another resolution): an
    /// output mode change where the compositor can, a restart where it cannot.
    fn set_mode(&mut self, mode: Mode) -> Result<(), DisplayError>;

    /// The app's exit status once it has exited by itself (`None` while it runs, or
    /// when the session has no app).
    fn app_exit(&mut self) -> Option<AppExit>;

    /// Whether the compositor is still running.
    fn compositor_alive(&mut self) -> bool;

    /// Ends the app, the compositor and every process they started.
    fn stop(&mut self);

    /// Process ids for status pages and benchmarks: (compositor, app).
    fn pids(&self) -> (Option<u32>, Option<u32>);
}

/// How an app ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppExit {
    /// It exited with this status.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl std::fmt::Display for AppExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(c) => write!(f, "exit code {c}"),
            Self::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

impl From<std::process::ExitStatus> for AppExit {
    fn from(s: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (s.code(), s.signal()) {
            (Some(c), _) => Self::Code(c),
            (None, Some(sig)) => Self::Signal(sig),
            (None, None) => Self::Code(-1),
        }
    }
}

/// The backend `auto` resolves to on this machine, and why.
pub fn resolve(config: &DisplayConfig) -> (Backend, String) {
    match config.backend {
        Backend::Auto => {}
        b => return (b, "configured".to_owned()),
    }
    let gamescope = gamescope::probe(config.compositor_path.as_deref());
    let gpu = !crate::sysinfo::gpus().is_empty();
    if let Some(g) = &gamescope
        && g.headless.is_some()
        && gpu
    {
        return (
            Backend::Gamescope,
            format!(
                "gamescope {} has a headless backend and a GPU is present",
                g.version
            ),
        );
    }
    if sway::installed(config.compositor_path.as_deref()).is_some() {
        let why = match (&gamescope, gpu) {
            (None, _) => "gamescope is not installed".to_owned(),
            (Some(g), _) if g.headless.is_none() => {
                format!("gamescope {} has no headless backend", g.version)
            }
            _ => "no GPU is present for gamescope".to_owned(),
        };
        return (Backend::Sway, format!("sway is installed ({why})"));
    }
    (
        Backend::None,
        "neither gamescope (headless, with a GPU) nor sway is installed: streams show the test pattern"
            .to_owned(),
    )
}

/// Opens a session of `backend` (already resolved, never `Auto`) for `user`.
pub fn open(
    backend: Backend,
    config: &DisplayConfig,
    user: &SessionUser,
) -> Result<Box<dyn Display>, DisplayError> {
    Ok(match backend {
        Backend::Sway => Box::new(sway::SwaySession::new(config, user.clone())?),
        Backend::Gamescope => Box::new(gamescope::GamescopeSession::new(config, user.clone())?),
        Backend::None | Backend::Auto => Box::new(none::NoDisplay::default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_gamestream_sends_them() {
        assert_eq!(
            Mode::parse("1280x720x60"),
            Some(Mode {
                width: 1280,
                height: 720,
                fps: 60
            })
        );
        assert_eq!(Mode::parse("1920x1080x120").map(|m| m.fps), Some(120));
        for bad in [
            "",
            "1280x720",
            "1280x720x",
            "0x720x60",
            "1280x720x0",
            "axbxc",
            "1x2x3x4",
        ] {
            assert_eq!(Mode::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn config_names_the_backend() {
        let c: DisplayConfig = toml::from_str("backend = \"sway\"").unwrap();
        assert_eq!(c.backend, Backend::Sway);
        assert!(toml::from_str::<DisplayConfig>("backend = \"x11\"").is_err());
        assert_eq!(SessionConfig::default().user, "punktfunk");
    }
}
