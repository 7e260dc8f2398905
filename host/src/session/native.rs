//! punktfunk/1 sessions in the session manager. A native client gets what a Moonlight
//! client gets: its own display session (a compositor at the client's exact mode with
//! the host's app inside, or the configured source where no compositor runs), captured
//! and encoded by the same encode stage ([`crate::encode::stage`]), with its input
//! going into that session and nowhere else. Only the packet sender differs.
//!
//! The connection task (`native::server`) drives it: [`SessionManager::start_native`]
//! when the first mode is accepted, [`SessionManager::native_stream`] for every stream
//! (a renegotiated mode moves the display first), and `HostState::end_session` when the
//! client leaves, which ends its display session like a Moonlight `/cancel`.
//! [`SessionManager::stop`] ends a native session from the host's side (its app
//! exited, shutdown): the connection hears it through [`NativeStart::ended`].

use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use anyhow::{Context, Result};
use punktfunk_core::codec::VideoCodec;
use punktfunk_core::gamestream::apps::AppError;
use punktfunk_core::gamestream::input::InputEvent;
use punktfunk_core::native::control::Mode;
use tokio::sync::watch;

use super::SessionManager;
use crate::capture::SourceSetting;
use crate::encode::software::Tuning;
use crate::encode::stage::StageConfig;
use crate::encode::video::VideoEncoderConfig;
use crate::input::{InputSink, SessionInput};

/// Native session ids count from here. GameStream's come from the launch state
/// (`AppState`) and count from 1, so the two kinds never share an id in the display
/// manager, the router or the session map.
pub const NATIVE_SESSION_BASE: u64 = 1 << 40;

/// The app a native session runs, resolved from the catalog by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeApp {
    /// Its catalog id.
    pub id: u32,
    /// Its title.
    pub title: String,
    /// Its command (`None`: an empty desktop).
    pub command: Option<String>,
}

/// A started native session.
#[derive(Debug)]
pub struct NativeStart {
    /// Its id (also its display session's).
    pub id: u64,
    /// Becomes `Some(reason)` when the host ends the session (its app exited, the
    /// compositor died, shutdown).
    pub ended: watch::Receiver<Option<String>>,
}

/// What a native stream opens on its send thread.
#[derive(Debug, Clone)]
pub struct NativeStream {
    /// The encode stage: the session's capture at the stream's mode.
    pub stage: StageConfig,
    /// Where the session's input goes.
    pub input: SessionInput,
}

fn display_mode(mode: &Mode) -> crate::display::Mode {
    crate::display::Mode {
        width: u32::from(mode.width),
        height: u32::from(mode.height),
        fps: u32::from(mode.fps),
    }
}

impl SessionManager {
    /// Starts a native client's session at `mode`: its own display session running
    /// `app` at exactly the client's width x height @ fps, unless `[stream] source`
    /// names a source to stream instead (as for Moonlight's launches). Blocks while the
    /// compositor starts: call it off the async runtime.
    ///
    /// Refused with [`AppError::SessionLimit`] (the client hears its message) when
    /// GameStream's and punktfunk/1's sessions together already reach `[session]
    /// max_sessions`. The place is taken before the compositor starts, so a flood of
    /// clients cannot start more compositors than the limit.
    pub fn start_native(&self, app: &NativeApp, mode: &Mode) -> Result<NativeStart> {
        let (id, ended) = self.admit_native()?;
        if let Some(d) = self.display.get()
            && self.config.stream.source == SourceSetting::TestPattern
        {
            // No sink: punktfunk/1 carries no sound yet.
            let launched = d
                .launch(id, display_mode(mode), app.command.clone(), 0)
                .with_context(|| format!("starting {:?} at {}", app.title, display_mode(mode)));
            if let Err(e) = launched {
                // Its place is free again.
                self.lock().remove(&id);
                return Err(e);
            }
        }
        tracing::info!(session = id, app = app.title, "native session started");
        Ok(NativeStart { id, ended })
    }

    /// Takes a place for a new native session, or refuses it at the limit.
    fn admit_native(&self) -> Result<(u64, watch::Receiver<Option<String>>), AppError> {
        // The launch state's lock first, then the sessions' (the one order): a
        // GameStream launch counting the native sessions waits for this one.
        let apps = self.apps();
        let mut sessions = self.lock();
        let natives = Self::native_count(&sessions);
        if apps.full_beside(natives) {
            let e = AppError::SessionLimit {
                max: apps.max_sessions(),
            };
            tracing::warn!(
                gamestream = apps.running().count(),
                native = natives,
                "native session refused: {e}"
            );
            return Err(e);
        }
        let id = NATIVE_SESSION_BASE + self.native_ids.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, ended) = watch::channel(None);
        sessions.entry(id).or_default().native = Some(tx);
        Ok((id, ended))
    }

    /// What native session `id`'s stream at `mode` captures and encodes, and where
    /// its input goes. A mode other than the display's moves the display first (a
    /// renegotiation). Blocks during a mode change: call it off the async runtime.
    pub fn native_stream(&self, id: u64, mode: &Mode, moved: bool) -> Result<NativeStream> {
        let dmode = display_mode(mode);
        let display = self.display.get();
        if moved && let Some(d) = display {
            d.resume(id, dmode)
                .with_context(|| format!("moving the session to {dmode}"))?;
        }
        let (display_capture, first_frame) = display.map_or((None, None), |d| d.capture(id));
        let capture = display_capture.unwrap_or_else(|| {
            self.config
                .stream
                .source
                .spec(dmode.width, dmode.height, dmode.fps)
        });
        Ok(NativeStream {
            stage: StageConfig {
                capture,
                encoder: VideoEncoderConfig {
                    codec: VideoCodec::from(mode.codec),
                    width: dmode.width,
                    height: dmode.height,
                    fps: dmode.fps,
                    bitrate_kbps: mode.bitrate_kbps,
                    // BT.709, limited range: what native clients decode.
                    csc_mode: 2,
                    ten_bit: false,
                },
                encoders: self.encoders.clone(),
                tuning: Tuning {
                    filler: self.config.stream.x264_filler,
                    ..Tuning::default()
                },
                yuv_source: self.config.stream.yuv_source,
                first_frame,
            },
            input: display.map_or(SessionInput::Seat, |d| d.input(id)),
        })
    }
}

impl SessionManager {
    /// The ids of the running punktfunk/1 sessions.
    pub fn native_sessions(&self) -> Vec<u64> {
        self.lock()
            .iter()
            .filter(|(_, s)| s.native.is_some())
            .map(|(id, _)| *id)
            .collect()
    }
}

/// Events a session's input thread buffers before new ones are dropped (a sink that
/// stalls must not hold up the control plane).
const INPUT_QUEUE: usize = 1024;

/// Feeds one session's input into its sink on a plain thread: sinks write devices or
/// files synchronously, and the native control plane is async.
#[derive(Debug)]
pub struct InputForwarder {
    tx: SyncSender<InputEvent>,
}

impl InputForwarder {
    /// Starts the thread; `open` makes the sink on the first event.
    pub fn start(
        open: impl FnOnce() -> Result<Box<dyn InputSink>> + Send + 'static,
    ) -> Result<Self> {
        let (tx, rx) = sync_channel::<InputEvent>(INPUT_QUEUE);
        std::thread::Builder::new()
            .name("pf-native-input".into())
            .spawn(move || {
                let Ok(first) = rx.recv() else { return };
                let mut sink = match open() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("native input has no sink: {e:#}");
                        return;
                    }
                };
                for event in std::iter::once(first).chain(rx) {
                    if let Err(e) = sink.handle(&event) {
                        tracing::debug!("native input event refused: {e:#}");
                    }
                }
            })
            .context("spawning the input thread")?;
        Ok(Self { tx })
    }

    /// Queues one event; dropped (and logged) when the sink lags. Never blocks.
    pub fn send(&self, event: InputEvent) {
        match self.tx.try_send(event) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => tracing::debug!("native input dropped: sink lagging"),
        }
    }
}
