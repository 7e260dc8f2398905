//! The native control plane inside `punktfunk-host serve`: binds the configured port
//! and gives every connection a session from the host's session manager: a display
//! session at the client's mode running `[native] app`, captured and encoded by the
//! encode stage GameStream streams from, with the client's input going into it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result, anyhow};
use punktfunk_core::crypto::rsa::sha256;
use punktfunk_core::gamestream::input::InputEvent;
use punktfunk_core::native::control::{Capabilities, Codec, Mode};
use tokio::sync::{mpsc, watch};

use super::data::{FrameSource, MakeFrameSource};
use super::lockout::PairingLockout;
use super::server::{NativeContext, NativeOptions, bind, serve};
use super::streaming::{BoxFuture, NativeSession, SessionSource};
use crate::encode::stage::EncodeStage;
use crate::session::SessionInfo;
use crate::session::native::{InputForwarder, NativeApp};
use crate::state::HostState;

/// The control plane of a running host (`serve`): binds the configured port and
/// serves until the host stops. A port already taken is logged and leaves the
/// native plane off rather than stopping GameStream.
pub async fn run(state: Arc<HostState>) -> Result<()> {
    use crate::encode::probe::Codec as Enc;
    let settings = &state.config.native;
    let codecs = state.encoders.chosen.iter().fold(0u8, |acc, a| {
        acc | match a.codec {
            Enc::H264 => Codec::H264 as u8,
            Enc::Hevc => Codec::H265 as u8,
            Enc::Av1 => Codec::Av1 as u8,
        }
    });
    let (events, mut rx) = mpsc::channel(1024);
    let ctx = Arc::new(NativeContext {
        options: NativeOptions {
            bind: SocketAddr::new(state.config.bind, settings.port),
            allow_tofu: settings.allow_tofu,
            host_name: state.identity.hostname.clone(),
            caps: Capabilities {
                codecs,
                max_width: 7680,
                max_height: 4320,
                max_fps: 240,
                max_bitrate_kbps: 10_000_000,
            },
            fec_bounds: (settings.fec_min_percent, settings.fec_max_percent),
            data_port: 0,
        },
        host_fp: sha256(&[&state.identity.cert.der]),
        store: state.store.clone(),
        pairing: state.native_pairing.clone(),
        lockout: Mutex::new(PairingLockout::default()),
        events,
        sessions: Some(Arc::new(HostSessions::new(state.clone()))),
        live: state.streams.registry().clone(),
    });
    let endpoint =
        match super::quic::server_config(&state.identity).and_then(|config| bind(&ctx, config)) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("the native punktfunk/1 plane is off: {e:#}");
                std::future::pending::<()>().await;
                return Ok(());
            }
        };
    tracing::info!(
        port = endpoint.local_addr()?.port(),
        tofu = settings.allow_tofu,
        "punktfunk/1 control plane listening (QUIC, ALPN punktfunk/1)"
    );
    // Input goes into each connection's own session; the event feed is for logs.
    tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            tracing::debug!(?e, "native event");
        }
    });
    serve(endpoint, ctx).await
}

/// The host's sessions for native connections: the session manager's.
#[derive(Debug)]
pub struct HostSessions {
    state: Arc<HostState>,
}

impl HostSessions {
    /// Sessions of the host `state`.
    pub fn new(state: Arc<HostState>) -> Self {
        Self { state }
    }
}

/// The catalog app `[native] app` names, or the catalog's first (Desktop).
async fn native_app(state: &HostState) -> Result<NativeApp> {
    let apps = state.catalog.list().await?;
    let wanted = state.config.native.app.as_deref();
    let app = match wanted {
        Some(title) => apps
            .into_iter()
            .find(|a| a.title.eq_ignore_ascii_case(title))
            .ok_or_else(|| anyhow!("[native] app {title:?} is not in the app catalog"))?,
        None => apps
            .into_iter()
            .next()
            .context("the app catalog is empty")?,
    };
    Ok(NativeApp {
        id: app.id,
        title: app.title,
        command: app.command,
    })
}

impl SessionSource for HostSessions {
    fn open<'a>(
        &'a self,
        client: &'a SessionInfo,
        mode: &'a Mode,
    ) -> BoxFuture<'a, Result<Arc<dyn NativeSession>>> {
        Box::pin(async move {
            let app = native_app(&self.state).await?;
            let (state, mode) = (self.state.clone(), *mode);
            let start = {
                let app = app.clone();
                tokio::task::spawn_blocking(move || state.streams.start_native(&app, &mode))
                    .await??
            };
            tracing::info!(
                session = start.id,
                client = client.client_name,
                app = app.title,
                "native session running"
            );
            Ok(Arc::new(HostSession {
                state: self.state.clone(),
                id: start.id,
                app: (app.id, app.title.clone()),
                mode: Mutex::new(mode),
                ended: start.ended,
                input: Mutex::new(None),
                done: AtomicBool::new(false),
            }) as Arc<dyn NativeSession>)
        })
    }
}

/// One native client's session in the session manager.
struct HostSession {
    state: Arc<HostState>,
    id: u64,
    /// The app it runs: catalog id and title.
    app: (u32, String),
    /// The mode the session's display is at.
    mode: Mutex<Mode>,
    ended: watch::Receiver<Option<String>>,
    /// Feeds the session's input sink; replaced when the display moves.
    input: Mutex<Option<InputForwarder>>,
    /// [`NativeSession::end`] ran.
    done: AtomicBool,
}

impl Drop for HostSession {
    /// A connection task that died without ending its session (a panic) must not
    /// leave the compositor and app running: they end on a thread of their own, as
    /// drop may run on the async runtime.
    fn drop(&mut self) {
        if !self.done.load(Ordering::Acquire) {
            let (state, id) = (self.state.clone(), self.id);
            let _ = std::thread::Builder::new()
                .name("pf-native-end".into())
                .spawn(move || state.end_session(id, "the connection went away"));
        }
    }
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl NativeSession for HostSession {
    fn stream(&self, mode: &Mode) -> Result<MakeFrameSource> {
        let moved = {
            let mut current = locked(&self.mode);
            let moved =
                (current.width, current.height, current.fps) != (mode.width, mode.height, mode.fps);
            *current = *mode;
            moved
        };
        let stream = self.state.streams.native_stream(self.id, mode, moved)?;
        let (config, recording) = (
            self.state.config.input.clone(),
            self.state.config.input_recording(),
        );
        let target = stream.input;
        *locked(&self.input) = Some(InputForwarder::start(move || {
            crate::input::open(&config, &target, recording)
        })?);
        let stage = stream.stage;
        Ok(Box::new(move || {
            Ok(Box::new(EncodeStage::open(&stage)?) as Box<dyn FrameSource>)
        }))
    }

    fn input(&self, event: InputEvent) {
        if let Some(f) = locked(&self.input).as_ref() {
            f.send(event);
        }
    }

    fn ended(&self) -> watch::Receiver<Option<String>> {
        self.ended.clone()
    }

    fn end(&self, reason: &str) {
        self.done.store(true, Ordering::Release);
        locked(&self.input).take();
        self.state.end_session(self.id, reason);
    }

    fn app(&self) -> (u32, String) {
        self.app.clone()
    }
}
