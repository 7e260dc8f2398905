//! GameStream streaming: the RTSP handshake, then video, audio and the control stream
//! for the running app, until the client leaves or the app is cancelled.
//!
//! One stream runs at a time (GameStream runs one app). `/launch` or `/resume` picks
//! the keys; the RTSP handshake (see [`rtsp_server`]) prepares the stream and starts
//! it at PLAY; [`session`] owns its threads: plain threads for the per-frame paths
//! ([`video`], [`audio`]) and one for the ENet control stream ([`control`]).

pub mod audio;
pub mod control;
pub mod peer_filter;
pub mod pipeline;
pub mod rtsp_server;
pub mod session;
pub mod stats;
pub mod video;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use punktfunk_core::gamestream::apps::LaunchedApp;
use punktfunk_core::gamestream::handshake::{HandshakeEvent, HandshakeParams, StreamPorts};
use punktfunk_core::gamestream::ping::payload_from;
use punktfunk_core::gamestream::rtsp::{RtspRequest, RtspResponse};
use punktfunk_core::gamestream::sdp::{
    self, HostCapabilities, SS_ENC_AUDIO, SS_ENC_CONTROL_V2, SS_ENC_VIDEO, StreamConfig,
    SurroundOffer, VideoCodec,
};

use crate::capture::CaptureSpec;
use crate::config::Config;
use crate::encode::probe::{Codec, Encoders};
use crate::input::Feedback;
use crate::net::udp_batch::BatchSocket;
use crate::sessions::{LiveSessions, SessionInfo, StreamProtocol};
use crate::settings::HostSettings;
use session::{ActiveStream, StreamContext, ThreadPanics};

pub use stats::{LiveStream, StreamStats};

/// The UDP sockets streams use, bound once at start-up: client pings are never
/// refused, and no other program (a client's ephemeral port, say) can take a port
/// between two streams.
#[derive(Debug)]
pub struct MediaSockets {
    /// The video port.
    pub video: BatchSocket,
    /// The audio port.
    pub audio: UdpSocket,
    /// The control port; each stream's ENet host runs on a clone of it.
    pub control: UdpSocket,
}

impl MediaSockets {
    /// Binds the video, audio and control ports.
    pub fn bind(config: &Config) -> Result<Self> {
        let at = |port| SocketAddr::new(config.bind, port);
        Self::bind_at(
            at(config.ports.video),
            at(config.ports.audio),
            at(config.ports.control),
        )
    }

    /// Binds ports the system picks (tests).
    pub fn bind_ephemeral() -> Result<Self> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::bind_at(any, any, any)
    }

    fn bind_at(video: SocketAddr, audio: SocketAddr, control: SocketAddr) -> Result<Self> {
        let video =
            BatchSocket::bind(video).with_context(|| format!("binding the video port {video}"))?;
        let audio =
            UdpSocket::bind(audio).with_context(|| format!("binding the audio port {audio}"))?;
        let control = UdpSocket::bind(control)
            .with_context(|| format!("binding the control port {control}"))?;
        // The stream threads read pings between frames without blocking.
        video.socket().set_nonblocking(true)?;
        audio.set_nonblocking(true)?;
        control.set_nonblocking(true)?;
        Ok(Self {
            video,
            audio,
            control,
        })
    }

    /// The ports the handshake announces: where the sockets really are.
    pub fn ports(&self) -> Result<StreamPorts> {
        Ok(StreamPorts {
            video: self.video.socket().local_addr()?.port(),
            audio: self.audio.local_addr()?.port(),
            control: self.control.local_addr()?.port(),
        })
    }
}

/// A handshake in progress for one launch generation.
#[derive(Debug)]
struct Prepared {
    app: LaunchedApp,
    params: HandshakeParams,
    config: Option<StreamConfig>,
}

#[derive(Debug, Default)]
struct Inner {
    prepared: Option<Prepared>,
    active: Option<ActiveStream>,
    /// Names and settings of the current launch (generation, label), set by
    /// `/launch` and `/resume`.
    label: Option<(u64, LaunchLabel)>,
    /// Why the last stream that ended by itself ended, until [`StreamManager::take_ended`].
    ended: Option<String>,
    /// What the streams of a launch capture (generation, spec), set by the display
    /// session that launch started.
    capture: Option<(u64, CaptureSpec)>,
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

/// Prepares, starts and stops the one stream.
#[derive(Debug)]
pub struct StreamManager {
    config: Config,
    encoders: Encoders,
    sockets: Arc<MediaSockets>,
    sessions: LiveSessions,
    panics: Arc<ThreadPanics>,
    inner: Mutex<Inner>,
    display: std::sync::OnceLock<Arc<crate::display::DisplayManager>>,
}

/// The capabilities DESCRIBE announces.
pub fn capabilities(config: &Config, encoders: &Encoders) -> HostCapabilities {
    let has = |c: Codec| encoders.chosen.iter().any(|a| a.codec == c);
    let mut encryption_supported = SS_ENC_CONTROL_V2;
    let mut encryption_requested = SS_ENC_CONTROL_V2;
    if config.stream.audio_encryption {
        encryption_supported |= SS_ENC_AUDIO;
    }
    if config.stream.video_encryption {
        // Requested, not just supported: moonlight-common-c then encrypts even when
        // its user did not opt in, since the host asks for it.
        encryption_supported |= SS_ENC_VIDEO;
        encryption_requested |= SS_ENC_VIDEO;
    }
    HostCapabilities {
        hevc: has(Codec::Hevc),
        av1: has(Codec::Av1),
        encryption_supported,
        encryption_requested,
        // Touch and pen are offered only where they arrive somewhere.
        feature_flags: crate::input::feature_flags(&config.input),
        // RFI requests are answered with an IDR frame.
        ref_pic_invalidation: true,
        // The Opus encoder does 5.1 and 7.1 at both qualities; the session's sink is
        // made at the client's channel count.
        surround: [6, 8]
            .into_iter()
            .filter_map(SurroundOffer::for_channels)
            .collect(),
    }
}

fn codecs(encoders: &Encoders) -> Vec<VideoCodec> {
    encoders
        .chosen
        .iter()
        .map(|a| match a.codec {
            Codec::H264 => VideoCodec::H264,
            Codec::Hevc => VideoCodec::Hevc,
            Codec::Av1 => VideoCodec::Av1,
        })
        .collect()
}

impl StreamManager {
    /// A manager sending from `sockets`.
    pub fn new(config: Config, encoders: Encoders, sockets: MediaSockets) -> Self {
        Self {
            config,
            encoders,
            sockets: Arc::new(sockets),
            sessions: LiveSessions::new(),
            panics: Arc::new(ThreadPanics::default()),
            inner: Mutex::new(Inner::default()),
            display: std::sync::OnceLock::new(),
        }
    }

    /// The display sessions streams capture from (set once, by the host state).
    pub fn attach_display(&self, display: Arc<crate::display::DisplayManager>) {
        let _ = self.display.set(display);
    }

    /// The live-session registry streams register in (shared with the web console).
    pub fn sessions(&self) -> &LiveSessions {
        &self.sessions
    }

    /// Panics of stream threads since the host started (shown by `status`).
    pub fn thread_panics(&self) -> &ThreadPanics {
        &self.panics
    }

    /// Labels the stream of launch `generation` (the launch handler looks it up).
    pub fn label_launch(&self, generation: u64, label: LaunchLabel) {
        self.lock().label = Some((generation, label));
    }

    /// Sets what the streams of launch `generation` capture: the display session the
    /// launch started (a sway output through wlr-screencopy, gamescope's PipeWire
    /// node). Streams of launches without one capture the configured `[stream]
    /// source` at the client's mode. Set it before the client's RTSP PLAY (the
    /// `/launch` or `/resume` handler, once the compositor is up); a stream already
    /// running keeps what it opened.
    pub fn set_capture(&self, generation: u64, spec: CaptureSpec) {
        self.lock().capture = Some((generation, spec));
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The handshake parameters for `app`'s current launch, created on first use.
    fn prepared<'a>(&self, inner: &'a mut Inner, app: &LaunchedApp) -> &'a mut Prepared {
        if inner
            .prepared
            .as_ref()
            .is_none_or(|p| p.app.generation != app.generation)
        {
            let caps = capabilities(&self.config, &self.encoders);
            let ports = self.sockets.ports().unwrap_or(StreamPorts {
                audio: self.config.ports.audio,
                video: self.config.ports.video,
                control: self.config.ports.control,
            });
            inner.prepared = Some(Prepared {
                app: app.clone(),
                params: HandshakeParams {
                    ports,
                    ping_payload: payload_from(rand::random()),
                    connect_data: rand::random::<u32>() | 1,
                    describe: sdp::describe(&caps),
                    codecs: codecs(&self.encoders),
                    encryption_requested: caps.encryption_requested,
                    encryption_supported: caps.encryption_supported,
                },
                config: None,
            });
        }
        inner.prepared.as_mut().expect("just set")
    }

    /// Answers one RTSP request for the running `app`; PLAY starts the stream.
    pub fn handle_rtsp(
        &self,
        app: &LaunchedApp,
        req: &RtspRequest,
        client: SocketAddr,
    ) -> RtspResponse {
        let mut inner = self.lock();
        let label = inner
            .label
            .clone()
            .filter(|(g, _)| *g == app.generation)
            .map(|(_, l)| l);
        let session_capture = inner
            .capture
            .clone()
            .filter(|(g, _)| *g == app.generation)
            .map(|(_, spec)| spec);
        let prepared = self.prepared(&mut inner, app);
        let (mut response, event) =
            punktfunk_core::gamestream::handshake::respond(req, &prepared.params);
        match event {
            Some(HandshakeEvent::Announced(config)) => {
                tracing::info!(
                    width = config.width,
                    height = config.height,
                    fps = config.fps,
                    kbps = config.bitrate_kbps,
                    codec = ?config.codec,
                    packet_size = config.packet_size,
                    "client announced its stream"
                );
                prepared.config = Some(config);
            }
            Some(HandshakeEvent::Play) => {
                let Some(mut config) = prepared.config.clone() else {
                    return RtspResponse::new(455, req.cseq());
                };
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
                // The console's default encoder, where it opened here (else logged).
                let encoders = label.as_ref().map_or_else(
                    || self.encoders.clone(),
                    |l| self.encoders.preferring(&l.settings.default_encoder),
                );
                let app = prepared.app.clone();
                let session = Arc::new(self.sessions.start(SessionInfo {
                    client_fingerprint: app.owner.clone(),
                    client_name: label.as_ref().map_or_else(
                        || format!("Moonlight {}", app.owner.get(..8).unwrap_or("")),
                        |l| l.client_name.clone(),
                    ),
                    app_id: app.app_id,
                    app_title: label.map_or_else(|| format!("App {}", app.app_id), |l| l.app_title),
                    protocol: StreamProtocol::GameStream,
                }));
                // A resume announces its mode only here (moonlight's /resume carries
                // none): the session follows the client's mode before capture starts.
                if let Some(d) = self.display.get() {
                    let mode = crate::display::Mode {
                        width: config.width,
                        height: config.height,
                        fps: config.fps,
                    };
                    if let Err(e) = d.resume(mode) {
                        tracing::error!("the session could not change to {mode}: {e}");
                        return RtspResponse::new(500, req.cseq());
                    }
                }
                // The launch's display session (a compositor with the app in it)
                // decides what is captured; without one, `[stream] source`.
                let (display_capture, first_frame) =
                    self.display.get().map_or((None, None), |d| d.capture());
                let capture = display_capture.or(session_capture).unwrap_or_else(|| {
                    self.config
                        .stream
                        .source
                        .spec(config.width, config.height, config.fps)
                });
                // The app's sound: its session's sink, unless configured otherwise.
                let audio = crate::audio::AudioSpec::choose(
                    &self.config.stream.audio_source,
                    self.display.get().and_then(|d| d.audio()),
                );
                let ctx = StreamContext {
                    audio,
                    first_frame,
                    app,
                    params: prepared.params.clone(),
                    config,
                    settings,
                    input: self.config.input.clone(),
                    input_target: self
                        .display
                        .get()
                        .map_or(crate::input::SessionInput::Seat, |d| d.input()),
                    input_recording: self.config.input_recording(),
                    client_ip: client.ip().to_canonical(),
                    encoders,
                    sockets: self.sockets.clone(),
                    session,
                    capture,
                    panics: self.panics.clone(),
                };
                if let Some(old) = inner.active.take() {
                    old.stop("replaced by a new stream");
                }
                match ActiveStream::start(ctx) {
                    Ok(stream) => inner.active = Some(stream),
                    Err(e) => {
                        tracing::error!("could not start the stream: {e:#}");
                        response = RtspResponse::new(500, req.cseq());
                    }
                }
            }
            None => {}
        }
        response
    }

    /// Stops the stream (cancel, revoke, shutdown).
    pub fn stop(&self, reason: &str) {
        let mut inner = self.lock();
        inner.prepared = None;
        if let Some(active) = inner.active.take() {
            active.stop(reason);
        }
    }

    /// Forgets a stream that ended by itself (client gone), joining its threads.
    pub fn reap(&self) {
        let mut inner = self.lock();
        if inner.active.as_ref().is_some_and(ActiveStream::finished)
            && let Some(active) = inner.active.take()
        {
            inner.ended = active.reason();
            active.stop("ended");
        }
    }

    /// Why the last stream that ended by itself ended (once).
    pub fn take_ended(&self) -> Option<String> {
        self.reap();
        self.lock().ended.take()
    }

    /// The live stream, if one runs.
    pub fn live(&self) -> Option<LiveStream> {
        self.reap();
        self.lock().active.as_ref().map(ActiveStream::live)
    }

    /// Queues feedback (rumble) for the client, as a game writing force feedback to a
    /// virtual pad would. Returns whether a stream takes it.
    pub fn send_feedback(&self, feedback: Feedback) -> bool {
        self.lock()
            .active
            .as_ref()
            .is_some_and(|a| a.request_feedback(feedback))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigArgs, FileConfig};
    use crate::input::Backend;
    use punktfunk_core::gamestream::sdp::{SS_FF_CONTROLLER_TOUCH, SS_FF_PEN_TOUCH};

    fn config(backend: Backend, video_encryption: bool) -> Config {
        let mut file = FileConfig::default();
        file.input.backend = backend;
        file.stream.video_encryption = video_encryption;
        Config::resolve(file, &ConfigArgs::default()).unwrap()
    }

    #[test]
    fn describe_offers_only_what_the_host_does() {
        let encoders = Encoders::default();
        for backend in [Backend::Auto, Backend::Session, Backend::Uinput] {
            let caps = capabilities(&config(backend, true), &encoders);
            assert_eq!(caps.feature_flags, 0, "{backend:?} injects no touch or pen");
        }
        let caps = capabilities(&config(Backend::Recording, true), &encoders);
        assert_eq!(caps.feature_flags, SS_FF_PEN_TOUCH | SS_FF_CONTROLLER_TOUCH);
        // Video encryption is requested unless switched off for a trusted LAN.
        assert_ne!(caps.encryption_requested & SS_ENC_VIDEO, 0);
        let plain = capabilities(&config(Backend::Auto, false), &encoders);
        assert_eq!(plain.encryption_requested & SS_ENC_VIDEO, 0);
        assert_eq!(plain.encryption_supported & SS_ENC_VIDEO, 0);
        // 5.1 and 7.1, each at both qualities: what the Opus encoder does.
        let text = sdp::describe(&caps);
        for params in ["642014235", "660012345", "85301645237", "88001234567"] {
            assert!(
                text.contains(&format!("surround-params={params}\n")),
                "{text}"
            );
        }
    }
}
