//! GameStream sessions in the session manager: a Moonlight client's `/launch` (counted
//! against the one limit), its RTSP handshake, and the stream RTSP PLAY starts (its
//! display session's capture, input and sound, the console's settings), plus what the
//! running streams report and take (their counters, rumble).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use punktfunk_core::gamestream::apps::{AppError, Launched, LaunchedApp};
use punktfunk_core::gamestream::handshake::{HandshakeEvent, HandshakeParams, StreamPorts};
use punktfunk_core::gamestream::nvhttp::requests::LaunchRequest;
use punktfunk_core::gamestream::ping::payload_from;
use punktfunk_core::gamestream::rtsp::{RtspRequest, RtspResponse};
use punktfunk_core::gamestream::sdp::{self, StreamConfig};

use super::{SessionInfo, SessionManager, Stopping, StreamProtocol};
use crate::capture::CaptureSpec;
use crate::input::Feedback;
use crate::settings::HostSettings;
use crate::stream::session::{ActiveStream, StreamContext};
use crate::stream::{LiveStream, capabilities, codecs};

/// A handshake in progress for one launch generation.
#[derive(Debug)]
pub(super) struct Prepared {
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

impl SessionManager {
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
