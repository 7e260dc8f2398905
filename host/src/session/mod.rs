//! The session manager: every client that streams has a session, keyed by the
//! session id of its launch (`LaunchedApp::session`), and each session owns what it
//! streams with: its RTSP handshake state, its display session (compositor and app,
//! in [`DisplayManager`] under the same id), its running stream (capture, encoder,
//! the video, audio and control threads, its stats and end signal), and its route on
//! the shared ports ([`router`]).
//!
//! Sessions are independent: starting, resuming or stopping one never touches
//! another. Stopping never blocks the async runtime: [`SessionManager::stop`] signals
//! the stream's threads and hands back a [`Stopping`] to join off the runtime
//! (`spawn_blocking` or a plain thread), never while a lock is held.
//!
//! The manager also holds the one registry of live streams ([`live`]): what the web
//! console's dashboard and the admin API list, with each stream's own figures, and
//! how a revoked device's streams are told to end. GameStream streams register in it
//! when they start; a stream of another protocol (punktfunk/1) registers with
//! [`SessionManager::register`] and keeps the handle for as long as it runs.
//!
//! GameStream's launch, RTSP handshake and stream start are in `gamestream`;
//! punktfunk/1 sessions live here too ([`native`]): each gets a display session and
//! the same encode stage, and [`SessionManager::stop`] ends either kind.
//!
//! `[session] max_sessions` limits both kinds together: the manager holds the launch
//! state ([`AppState`], GameStream's sessions) beside its native sessions, and admits a
//! new session of either kind ([`SessionManager::launch`],
//! [`SessionManager::start_native`]) only while the two counts together are under
//! the limit. Both are counted under the launch state's lock, taken before the
//! sessions' lock (always in that order), so two clients starting at once cannot
//! both take the last place.

mod gamestream;
pub mod live;
pub mod native;
pub mod router;
#[cfg(test)]
mod tests;

pub use gamestream::LaunchLabel;
pub use live::LiveSessions;
pub use live::{
    EndReason, LiveSession, SessionEnded, SessionHandle, SessionInfo, SessionStats, StreamProtocol,
};

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use anyhow::Result;
use punktfunk_core::gamestream::apps::AppState;

use crate::capture::CaptureSpec;
use crate::config::Config;
use crate::display::DisplayManager;
use crate::encode::probe::Encoders;
pub use crate::stream::session::Stopping;
use crate::stream::session::{ActiveStream, ThreadPanics};
use gamestream::Prepared;
use router::{MediaSockets, Router};

/// One client's session.
#[derive(Debug, Default)]
struct Session {
    prepared: Option<Prepared>,
    active: Option<ActiveStream>,
    /// Names and settings of the current launch (generation, label).
    label: Option<(u64, LaunchLabel)>,
    /// What the streams of a launch capture (generation, spec), when set by hand
    /// rather than by the session's display.
    capture: Option<(u64, CaptureSpec)>,
    /// A punktfunk/1 session's end signal (its connection watches it).
    native: Option<tokio::sync::watch::Sender<Option<String>>>,
}

/// Whether a stream's end reason means the client vanished (its pings or control
/// traffic stopped) rather than leaving: the app's session then ends too, as on
/// `/cancel`, so nothing keeps running for a client that is gone.
pub fn is_client_timeout(reason: &str) -> bool {
    [
        "went silent",
        "stopped pinging",
        "no ping from the client",
        "never connected",
    ]
    .iter()
    .any(|s| reason.contains(s))
}

/// Prepares, starts and stops every session's stream.
#[derive(Debug)]
pub struct SessionManager {
    config: Config,
    encoders: Encoders,
    sockets: Arc<MediaSockets>,
    router: Arc<Router>,
    live: LiveSessions,
    panics: Arc<ThreadPanics>,
    /// GameStream's launch state: which app each Moonlight client runs. Locked before
    /// `sessions` whenever both are held.
    apps: Mutex<AppState>,
    sessions: Mutex<BTreeMap<u64, Session>>,
    display: OnceLock<Arc<DisplayManager>>,
    /// Native sessions started, for their ids ([`native::NATIVE_SESSION_BASE`]).
    native_ids: AtomicU64,
}

impl SessionManager {
    /// A manager whose streams share `sockets` (a reader thread per port routes them).
    pub fn new(config: Config, encoders: Encoders, sockets: MediaSockets) -> Result<Self> {
        let router = Router::start(&sockets)?;
        Ok(Self {
            apps: Mutex::new(AppState::with_limit(config.session.max_sessions)),
            config,
            encoders,
            sockets: Arc::new(sockets),
            router,
            live: LiveSessions::new(),
            panics: Arc::new(ThreadPanics::default()),
            sessions: Mutex::new(BTreeMap::new()),
            display: OnceLock::new(),
            native_ids: AtomicU64::new(0),
        })
    }

    /// The display sessions streams capture from (set once, by the host state).
    pub fn attach_display(&self, display: Arc<DisplayManager>) {
        let _ = self.display.set(display);
    }

    /// Registers a stream that does not come through [`Self::handle_rtsp`] (a
    /// punktfunk/1 stream): it is listed with the others (the console's dashboard,
    /// the devices' "streaming" flag) and is ended with them (a revoked device,
    /// shutdown). Keep the handle while the stream runs, report its figures with
    /// [`SessionHandle::update`], watch [`SessionHandle::ended`] (or poll
    /// [`SessionHandle::end_reason`]) to end it; dropping the handle unlists it.
    pub fn register(&self, info: SessionInfo) -> SessionHandle {
        self.live.start(info)
    }

    /// A handle to the one registry of live streams (cloning shares it), for a
    /// service that registers its streams itself (punktfunk/1's server context).
    pub fn registry(&self) -> &LiveSessions {
        &self.live
    }

    /// Every live stream of every protocol, oldest first, with its latest figures.
    pub fn list(&self) -> Vec<LiveSession> {
        self.live.list()
    }

    /// Tells every stream of the device with `fingerprint` to end (it was revoked);
    /// returns how many. Never blocks: the streams end on their own threads.
    pub fn end_client(&self, fingerprint: &str, reason: EndReason) -> usize {
        self.live.end_client(fingerprint, reason)
    }

    /// Tells every stream to end (shutdown, restart); returns how many.
    pub fn end_all(&self, reason: EndReason) -> usize {
        self.live.end_all(reason)
    }

    /// Streams ended from outside (revoked, shutdown), as it happens.
    pub fn subscribe_ended(&self) -> tokio::sync::broadcast::Receiver<SessionEnded> {
        self.live.subscribe()
    }

    /// The shared ports' router (its unmatched-datagram counts).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Panics of stream threads since the host started (shown by `status`).
    pub fn thread_panics(&self) -> &ThreadPanics {
        &self.panics
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// GameStream's launch state (which app each client runs). Held only for short,
    /// synchronous updates; a new session starts through [`Self::launch`], which
    /// counts the native sessions too.
    pub fn apps(&self) -> MutexGuard<'_, AppState> {
        self.apps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The punktfunk/1 sessions running (or starting), counted against the limit.
    fn native_count(sessions: &BTreeMap<u64, Session>) -> usize {
        sessions.values().filter(|s| s.native.is_some()).count()
    }
    /// Ends `session`'s stream and forgets the session (cancel, revoke, its app
    /// exiting), of either protocol. Returns a GameStream stream's threads to join,
    /// off the async runtime; a native session's connection is told and ends itself.
    pub fn stop(&self, session: u64, reason: &str) -> Option<Stopping> {
        let removed = self.lock().remove(&session)?;
        Self::end(removed, reason)
    }

    /// Ends every session (shutdown). Join the returned threads off the runtime.
    pub fn stop_all(&self, reason: &str) -> Vec<Stopping> {
        let all = std::mem::take(&mut *self.lock());
        all.into_values()
            .filter_map(|s| Self::end(s, reason))
            .collect()
    }

    fn end(session: Session, reason: &str) -> Option<Stopping> {
        if let Some(native) = &session.native {
            native.send_replace(Some(reason.to_owned()));
        }
        session.active.map(|a| a.stop(reason))
    }
}
