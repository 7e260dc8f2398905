//! The host's display sessions, one per streaming client, keyed by the session id
//! of its launch (`LaunchedApp::session`): started by `/launch`, changed by `/resume`,
//! ended by `/cancel`, a client timeout, a revoke, shutdown, or the app exiting by
//! itself. Each has its own compositor (own socket, own mode) with its app inside.
//!
//! Every method blocks (processes start and stop), so async callers use
//! `spawn_blocking`. The status of the current session, or of the last one once it
//! ended (how it ended, the app's exit code), is what `status` and the console show.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{
    AppExit, Backend, Display, DisplayConfig, DisplayError, LaunchSpec, Mode, SessionConfig,
    SessionUser,
};
use crate::capture::CaptureSpec;

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// The compositor and app run.
    Running,
    /// The app exited by itself; the session ended.
    AppExited,
    /// The compositor died under the app.
    CompositorExited,
    /// Ended by cancel, timeout, revoke or shutdown.
    Ended,
    /// It never started (see `reason`).
    Failed,
}

/// What status pages show about the display session.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionStatus {
    /// The session's id (names its sockets and processes' marker).
    pub id: String,
    /// "gamescope", "sway" or "none".
    pub backend: &'static str,
    /// Where it is in its life.
    pub state: SessionState,
    /// The compositor's mode, `WxHxFPS`.
    pub mode: String,
    /// The app's command, if it has one.
    pub command: Option<String>,
    /// The compositor's process id.
    pub compositor_pid: Option<u32>,
    /// The app's process id.
    pub app_pid: Option<u32>,
    /// Milliseconds from `/launch` to the first captured frame of the stream.
    pub launch_to_first_frame_ms: Option<f64>,
    /// The app's exit code, once it exited by itself.
    pub exit_code: Option<i32>,
    /// The signal that ended the app, if one did.
    pub exit_signal: Option<i32>,
    /// Why it ended or failed.
    pub reason: Option<String>,
}

/// Marks the first captured frame of a launch, once: the video thread calls
/// [`FirstFrame::mark`] for every frame and only the first one counts.
#[derive(Debug)]
pub struct FirstFrame {
    launched: Instant,
    at: OnceLock<Duration>,
}

impl FirstFrame {
    /// A marker for a launch that began at `launched`.
    pub fn new(launched: Instant) -> Self {
        Self {
            launched,
            at: OnceLock::new(),
        }
    }

    /// Notes a captured frame; the first one is logged with the launch-to-first-frame
    /// time.
    pub fn mark(&self) {
        if self.at.get().is_none() {
            let elapsed = self.launched.elapsed();
            if self.at.set(elapsed).is_ok() {
                tracing::info!(
                    launch_to_first_frame_ms = elapsed.as_secs_f64() * 1000.0,
                    "first frame of the session captured"
                );
            }
        }
    }

    /// The launch-to-first-frame time, once a frame came.
    pub fn elapsed(&self) -> Option<Duration> {
        self.at.get().copied()
    }
}

struct Running {
    display: Box<dyn Display>,
    status: SessionStatus,
    first_frame: Arc<FirstFrame>,
}

#[derive(Default)]
struct Inner {
    running: std::collections::BTreeMap<u64, Running>,
    last: Option<SessionStatus>,
}

/// The display sessions of this host.
pub struct DisplayManager {
    backend: Backend,
    config: DisplayConfig,
    session: SessionConfig,
    inner: Mutex<Inner>,
}

static SESSION_COUNTER: AtomicU64 = AtomicU64::new(0);

impl std::fmt::Debug for DisplayManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisplayManager")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl DisplayManager {
    /// Resolves `[display] backend` (logged once) for sessions of `[session] user`.
    pub fn new(config: &DisplayConfig, session: &SessionConfig) -> Self {
        super::process::reap_orphans();
        let (backend, why) = super::resolve(config);
        tracing::info!(
            backend = backend.name(),
            configured = config.backend.name(),
            user = session.user,
            "display backend: {why}"
        );
        Self {
            backend,
            config: config.clone(),
            session: session.clone(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The backend sessions use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refresh(running: &mut Running) {
        let (c, a) = running.display.pids();
        running.status.compositor_pid = c;
        running.status.app_pid = a;
        running.status.launch_to_first_frame_ms = running
            .first_frame
            .elapsed()
            .map(|d| d.as_secs_f64() * 1000.0);
    }

    /// Starts session `session` at `mode` running `command`, with a sink of
    /// `audio_channels` for its sound; ends that session's earlier compositor, if any
    /// (other sessions go on). Returns what the stream captures.
    pub fn launch(
        &self,
        session: u64,
        mode: Mode,
        command: Option<String>,
        audio_channels: u8,
    ) -> Result<(CaptureSpec, Arc<FirstFrame>), DisplayError> {
        let launched = Instant::now();
        self.stop(session, "replaced by a new launch");
        // Unique in the process (tests run several managers) and across hosts on one
        // machine (the process id): the id marks the session's processes.
        let n = SESSION_COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("{}-{n}", std::process::id());
        let mut status = SessionStatus {
            id: id.clone(),
            backend: self.backend.name(),
            state: SessionState::Failed,
            mode: mode.to_string(),
            command: command.clone(),
            compositor_pid: None,
            app_pid: None,
            launch_to_first_frame_ms: None,
            exit_code: None,
            exit_signal: None,
            reason: None,
        };
        let started = (|| {
            let user = match self.backend {
                Backend::None | Backend::Auto => None,
                _ => Some(SessionUser::resolve(&self.session.user)?),
            };
            let mut display: Box<dyn Display> = match &user {
                Some(u) => super::open(self.backend, &self.config, u)?,
                None => Box::new(super::none::NoDisplay::default()),
            };
            display.start(&LaunchSpec {
                id: id.clone(),
                mode,
                command: command.clone(),
                audio_channels,
            })?;
            Ok::<_, DisplayError>(display)
        })();
        match started {
            Ok(display) => {
                status.state = SessionState::Running;
                let first_frame = Arc::new(FirstFrame::new(launched));
                let capture = display.capture();
                let mut running = Running {
                    display,
                    status,
                    first_frame: first_frame.clone(),
                };
                Self::refresh(&mut running);
                tracing::info!(
                    session = id,
                    backend = self.backend.name(),
                    %mode,
                    ms = launched.elapsed().as_secs_f64() * 1000.0,
                    "display session ready"
                );
                self.lock().running.insert(session, running);
                Ok((capture, first_frame))
            }
            Err(e) => {
                tracing::warn!(session = id, "the session could not start: {e}");
                status.reason = Some(e.to_string());
                self.lock().last = Some(status);
                Err(e)
            }
        }
    }

    /// Moves session `session` to `mode` (a resume at another resolution). Returns
    /// what the stream captures now, or `None` when that session does not run.
    pub fn resume(&self, session: u64, mode: Mode) -> Result<Option<CaptureSpec>, DisplayError> {
        let mut inner = self.lock();
        let Some(running) = inner.running.get_mut(&session) else {
            return Ok(None);
        };
        running.display.set_mode(mode)?;
        running.status.mode = mode.to_string();
        Self::refresh(running);
        Ok(Some(running.display.capture()))
    }

    /// What session `session`'s stream captures (`None` without a compositor: the
    /// stream then shows `[stream] source`), and its first-frame marker.
    pub fn capture(&self, session: u64) -> (Option<CaptureSpec>, Option<Arc<FirstFrame>>) {
        let inner = self.lock();
        let Some(r) = inner.running.get(&session) else {
            return (None, None);
        };
        let spec = (r.display.backend() != Backend::None).then(|| r.display.capture());
        (spec, Some(r.first_frame.clone()))
    }

    /// What session `session`'s stream hears: its sink's monitor; silence for a
    /// compositor session that got no sink (never the demo tone over a game); `None`
    /// without a compositor session.
    pub fn audio(&self, session: u64) -> Option<crate::audio::AudioSpec> {
        let inner = self.lock();
        let display = &inner.running.get(&session)?.display;
        (display.backend() != Backend::None)
            .then(|| display.audio().unwrap_or(crate::audio::AudioSpec::Silence))
    }

    /// Where session `session`'s input goes: its compositor, nowhere when a display
    /// backend has no such session running, the box's seat without a display
    /// backend. Read when a stream starts; the sink it opens notices by itself when
    /// the session ends under it.
    pub fn input(&self, session: u64) -> crate::input::SessionInput {
        if self.backend == Backend::None {
            return crate::input::SessionInput::Seat;
        }
        self.lock()
            .running
            .get(&session)
            .map_or(crate::input::SessionInput::NoSession, |r| r.display.input())
    }

    /// Ends session `session`, if it runs, for `reason`.
    pub fn stop(&self, session: u64, reason: &str) {
        let running = self.lock().running.remove(&session);
        if let Some(mut r) = running {
            r.display.stop();
            Self::refresh(&mut r);
            r.status.state = SessionState::Ended;
            r.status.reason = Some(reason.to_owned());
            r.status.compositor_pid = None;
            r.status.app_pid = None;
            tracing::info!(session = r.status.id, reason, "display session ended");
            self.lock().last = Some(r.status);
        }
    }

    /// Ends every session (shutdown).
    pub fn stop_all(&self, reason: &str) {
        let ids: Vec<u64> = self.lock().running.keys().copied().collect();
        for id in ids {
            self.stop(id, reason);
        }
    }

    /// Checks on the running sessions: where an app exited by itself or a compositor
    /// died, ends that session and returns it with why (the caller ends its app and
    /// stream).
    pub fn poll(&self) -> Vec<(u64, String)> {
        let ids: Vec<u64> = self.lock().running.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.poll_one(id).map(|why| (id, why)))
            .collect()
    }

    fn poll_one(&self, session: u64) -> Option<String> {
        let mut inner = self.lock();
        let running = inner.running.get_mut(&session)?;
        Self::refresh(running);
        let (state, reason, exit) = if let Some(exit) = running.display.app_exit() {
            (
                SessionState::AppExited,
                format!("the app exited by itself ({exit})"),
                Some(exit),
            )
        } else if !running.display.compositor_alive() {
            (
                SessionState::CompositorExited,
                "the compositor exited".to_owned(),
                None,
            )
        } else {
            return None;
        };
        let mut r = inner.running.remove(&session).expect("checked above");
        drop(inner);
        r.display.stop();
        r.status.state = state;
        r.status.reason = Some(reason.clone());
        r.status.compositor_pid = None;
        r.status.app_pid = None;
        match exit {
            Some(AppExit::Code(c)) => r.status.exit_code = Some(c),
            Some(AppExit::Signal(s)) => r.status.exit_signal = Some(s),
            None => {}
        }
        tracing::info!(session = r.status.id, "{reason}");
        self.lock().last = Some(r.status);
        Some(reason)
    }

    /// Session `session`'s status while it runs.
    pub fn session_status(&self, session: u64) -> Option<SessionStatus> {
        let mut inner = self.lock();
        let r = inner.running.get_mut(&session)?;
        Self::refresh(r);
        Some(r.status.clone())
    }

    /// The newest running session's status, else the last ended one's.
    pub fn status(&self) -> Option<SessionStatus> {
        let mut inner = self.lock();
        if let Some(r) = inner.running.values_mut().next_back() {
            Self::refresh(r);
            return Some(r.status.clone());
        }
        inner.last.clone()
    }
}

impl Drop for DisplayManager {
    fn drop(&mut self) {
        self.stop_all("the host is shutting down");
    }
}
