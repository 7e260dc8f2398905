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
//! punktfunk/1 sessions live here too ([`native`]): each gets a display session and the
//! same encode stage, and [`SessionManager::stop`] ends either kind.
//!
//! `[session] max_sessions` limits both kinds together: the manager holds the launch
//! state ([`AppState`], GameStream's sessions) beside its native sessions, and admits a
//! new session of either kind ([`SessionManager::launch`],
//! [`SessionManager::start_native`]) only while the two counts together are under
//! the limit. Both are counted under the launch state's lock, taken before the
//! sessions' lock (always in that order), so two clients starting at once cannot
//! both take the last place.

pub mod live;
pub mod native;
pub mod router;
#[cfg(test)]
mod tests;

pub use live::LiveSessions;
pub use live::{
    EndReason, LiveSession, SessionEnded, SessionHandle, SessionInfo, SessionStats, StreamProtocol,
};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use anyhow::Result;
use punktfunk_core::gamestream::apps::{AppError, AppState, Launched, LaunchedApp};
use punktfunk_core::gamestream::handshake::{HandshakeEvent, HandshakeParams, StreamPorts};
use punktfunk_core::gamestream::nvhttp::requests::LaunchRequest;
use punktfunk_core::gamestream::ping::payload_from;
use punktfunk_core::gamestream::rtsp::{RtspRequest, RtspResponse};
use punktfunk_core::gamestream::sdp::{self, StreamConfig};

use crate::capture::CaptureSpec;
use crate::config::Config;
use crate::display::DisplayManager;
use crate::encode::probe::Encoders;
use crate::input::Feedback;
use crate::settings::HostSettings;
pub use crate::stream::session::Stopping;
use crate::stream::session::{ActiveStream, StreamContext, ThreadPanics};
use crate::stream::{LiveStream, capabilities, codecs};
use router::{MediaSockets, Router};

/// A handshake in progress for one launch generation.
#[derive(Debug)]
struct Prepared {
    generation: u64,
    params: HandshakeParams,
    config: Option<StreamConfig>,
}

/// What `/launch` and `/resume` know about a stream before its handshake: how status
/// pages name it, and the console's settings it streams with.
#[derive(Debug, Clone)]
pub struct LaunchLabel {
    /// The paired device's name.
    pub client_name: String,
    /// The app's title.
    pub app_title: String,
    /// Bitrate cap and FEC share from the web console (or their defaults).
    pub settings: HostSettings,
}

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

    /// `/launch` by the client `owner` (see [`AppState::launch`]): a new session is
    /// refused with [`AppError::SessionLimit`] when GameStream's and punktfunk/1's
    /// sessions together reach `[session] max_sessions`.
    pub fn launch(
        &self,
        req: &LaunchRequest,
        owner: &str,
        owner_ip: std::net::IpAddr,
        known_app: bool,
    ) -> Result<(LaunchedApp, Launched), AppError> {
        let mut apps = self.apps();
        let natives = Self::native_count(&self.lock());
        apps.launch_beside(req, owner, owner_ip, known_app, natives)
            .map(|(app, how)| (app.clone(), how))
    }

    /// Labels the stream of `session`'s launch `generation`.
    pub fn label_launch(&self, session: u64, generation: u64, label: LaunchLabel) {
        self.lock().entry(session).or_default().label = Some((generation, label));
    }

    /// Sets what the streams of `session`'s launch `generation` capture, when no
    /// display session decides it (tests). A stream already running keeps what it
    /// opened.
    pub fn set_capture(&self, session: u64, generation: u64, spec: CaptureSpec) {
        self.lock().entry(session).or_default().capture = Some((generation, spec));
    }

    fn new_params(&self) -> HandshakeParams {
        let caps = capabilities(&self.config, &self.encoders);
        let ports = self.sockets.ports().unwrap_or(StreamPorts {
            audio: self.config.ports.audio,
            video: self.config.ports.video,
            control: self.config.ports.control,
        });
        HandshakeParams {
            ports,
            ping_payload: payload_from(rand::random()),
            connect_data: rand::random::<u32>() | 1,
            describe: sdp::describe(&caps),
            codecs: codecs(&self.encoders),
            encryption_requested: caps.encryption_requested,
            encryption_supported: caps.encryption_supported,
        }
    }

    /// Whether `app`'s session has finished its handshake (its stream was started
    /// for this generation): the RTSP server prefers a session still negotiating
    /// when several clients share an address.
    pub fn negotiating(&self, app: &LaunchedApp) -> bool {
        self.lock().get(&app.session).is_none_or(|s| {
            s.prepared
                .as_ref()
                .is_none_or(|p| p.generation != app.generation)
                || s.active.is_none()
        })
    }

    /// Answers one RTSP request of `app`'s session; PLAY starts its stream. Blocks
    /// briefly at PLAY (a display mode change, the stream's threads starting): call
    /// it off the async runtime.
    pub fn handle_rtsp(
        &self,
        app: &LaunchedApp,
        req: &RtspRequest,
        client: SocketAddr,
    ) -> RtspResponse {
        let mut sessions = self.lock();
        let session = sessions.entry(app.session).or_default();
        if session
            .prepared
            .as_ref()
            .is_none_or(|p| p.generation != app.generation)
        {
            session.prepared = Some(Prepared {
                generation: app.generation,
                params: self.new_params(),
                config: None,
            });
        }
        let prepared = session.prepared.as_mut().expect("just set");
        let (response, event) =
            punktfunk_core::gamestream::handshake::respond(req, &prepared.params);
        match event {
            Some(HandshakeEvent::Announced(config)) => {
                tracing::info!(
                    session = app.session,
                    width = config.width,
                    height = config.height,
                    fps = config.fps,
                    kbps = config.bitrate_kbps,
                    codec = ?config.codec,
                    packet_size = config.packet_size,
                    "client announced its stream"
                );
                prepared.config = Some(config);
                response
            }
            Some(HandshakeEvent::Play) => {
                let Some(config) = prepared.config.clone() else {
                    return RtspResponse::new(455, req.cseq());
                };
                let params = prepared.params.clone();
                let label = session
                    .label
                    .clone()
                    .filter(|(g, _)| *g == app.generation)
                    .map(|(_, l)| l);
                let capture = session
                    .capture
                    .clone()
                    .filter(|(g, _)| *g == app.generation)
                    .map(|(_, spec)| spec);
                // The old stream of this session (a resume) goes first: it is taken
                // off the ports before the new one is routed.
                let old = session.active.take();
                drop(sessions);
                if let Some(old) = old {
                    retire(old.stop("replaced by a new stream"));
                }
                match self.play(app, params, config, label, capture, client) {
                    Ok(stream) => {
                        let replaced = self
                            .lock()
                            .entry(app.session)
                            .or_default()
                            .active
                            .replace(stream);
                        if let Some(old) = replaced {
                            retire(old.stop("replaced by a new stream"));
                        }
                        response
                    }
                    Err(e) => {
                        tracing::error!(session = app.session, "could not start the stream: {e:#}");
                        RtspResponse::new(500, req.cseq())
                    }
                }
            }
            None => response,
        }
    }

    /// Starts `app`'s stream (RTSP PLAY). Called without the sessions lock.
    fn play(
        &self,
        app: &LaunchedApp,
        params: HandshakeParams,
        mut config: StreamConfig,
        label: Option<LaunchLabel>,
        capture: Option<CaptureSpec>,
        client: SocketAddr,
    ) -> Result<ActiveStream> {
        let mut settings = self.config.stream.clone();
        if let Some(l) = &label {
            settings.fec_percent = l.settings.fec_percent;
            if config.bitrate_kbps > l.settings.bitrate_cap_kbps {
                tracing::info!(
                    asked = config.bitrate_kbps,
                    cap = l.settings.bitrate_cap_kbps,
                    "the client's bitrate is capped by the host's setting"
                );
                config.bitrate_kbps = l.settings.bitrate_cap_kbps;
            }
        }
        // A resume announces its mode only here (moonlight's /resume carries none):
        // the session follows the client's mode before capture starts.
        if let Some(d) = self.display.get() {
            let mode = crate::display::Mode {
                width: config.width,
                height: config.height,
                fps: config.fps,
            };
            d.resume(app.session, mode)
                .map_err(|e| anyhow::anyhow!("the session could not change to {mode}: {e}"))?;
        }
        // The session's display (a compositor with the app in it) decides what is
        // captured; without one, `[stream] source`.
        let (display_capture, first_frame) = self
            .display
            .get()
            .map_or((None, None), |d| d.capture(app.session));
        let capture = display_capture.or(capture).unwrap_or_else(|| {
            self.config
                .stream
                .source
                .spec(config.width, config.height, config.fps)
        });
        // The console's default encoder, where it opened here (else logged).
        let encoders = label.as_ref().map_or_else(
            || self.encoders.clone(),
            |l| self.encoders.preferring(&l.settings.default_encoder),
        );
        let handle = Arc::new(self.register(SessionInfo {
            client_fingerprint: app.owner.clone(),
            client_name: label.as_ref().map_or_else(
                || format!("Moonlight {}", app.owner.get(..8).unwrap_or("")),
                |l| l.client_name.clone(),
            ),
            app_id: app.app_id,
            app_title: label.map_or_else(|| format!("App {}", app.app_id), |l| l.app_title),
            protocol: StreamProtocol::GameStream,
        }));
        // The app's sound: its session's sink, unless configured otherwise.
        let audio = crate::audio::AudioSpec::choose(
            &self.config.stream.audio_source,
            self.display.get().and_then(|d| d.audio(app.session)),
        );
        ActiveStream::start(StreamContext {
            session_id: app.session,
            audio,
            // Input goes to this session's compositor, never another's.
            input_target: self
                .display
                .get()
                .map_or(crate::input::SessionInput::Seat, |d| d.input(app.session)),
            first_frame,
            app: app.clone(),
            params,
            config,
            settings,
            input: self.config.input.clone(),
            input_recording: self.config.input_recording(),
            client_ip: client.ip().to_canonical(),
            encoders,
            sockets: self.sockets.clone(),
            router: self.router.clone(),
            session: handle,
            capture,
            panics: self.panics.clone(),
        })
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

    /// Takes the streams that ended by themselves (client gone, source ended), with
    /// their sessions and reasons; their threads are joined here, so call it off the
    /// async runtime.
    pub fn take_ended(&self) -> Vec<(u64, String)> {
        let finished: Vec<(u64, ActiveStream)> = {
            let mut sessions = self.lock();
            sessions
                .iter_mut()
                .filter(|(_, s)| s.active.as_ref().is_some_and(ActiveStream::finished))
                .filter_map(|(id, s)| s.active.take().map(|a| (*id, a)))
                .collect()
        };
        finished
            .into_iter()
            .map(|(id, a)| {
                let reason = a.reason().unwrap_or_default();
                a.stop("ended").join();
                (id, reason)
            })
            .collect()
    }

    /// The GameStream streams' counters, by session (the `status` command's detail:
    /// frames, IDR frames, FEC share, malformed packets).
    pub fn streams(&self) -> Vec<(u64, LiveStream)> {
        self.lock()
            .iter()
            .filter_map(|(id, s)| s.active.as_ref().map(|a| (*id, a.live())))
            .collect()
    }

    /// Queues feedback (rumble) for every streaming client, as a game writing force
    /// feedback to a virtual pad would. Returns whether a stream takes it.
    pub fn send_feedback(&self, feedback: Feedback) -> bool {
        let sessions = self.lock();
        let mut taken = false;
        for a in sessions.values().filter_map(|s| s.active.as_ref()) {
            taken |= a.request_feedback(feedback);
        }
        taken
    }
}

/// Joins a replaced stream's threads on a plain thread of their own: the caller may
/// be on the async runtime, and nothing waits for them.
fn retire(stopping: Stopping) {
    let spawned = std::thread::Builder::new()
        .name("pf-retire".into())
        .spawn(move || stopping.join());
    if let Err(e) = spawned {
        tracing::error!("could not spawn a thread to join a stopped stream: {e}");
    }
}
