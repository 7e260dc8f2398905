//! One running stream: its threads, and what they share.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result};
use punktfunk_core::gamestream::apps::LaunchedApp;
use punktfunk_core::gamestream::handshake::HandshakeParams;
use punktfunk_core::gamestream::sdp::StreamConfig;
use punktfunk_core::gamestream::session::{Channel, Ended, SessionParams, StreamSession};

use super::stats::{LiveStream, StreamStats};
use super::{audio, control, video};
use crate::capture::CaptureSpec;
use crate::config::StreamSettings;
use crate::encode::probe::Encoders;
use crate::input::{Feedback, InputConfig};
use crate::session::SessionHandle;
use crate::session::router::{ControlInbox, MediaSockets, Route, Router};

/// Everything a stream is started with.
#[derive(Debug, Clone)]
pub struct StreamContext {
    /// The session (launch) this stream belongs to.
    pub session_id: u64,
    /// The app and its keys.
    pub app: LaunchedApp,
    /// Ports, ping payload, connect data.
    pub params: HandshakeParams,
    /// What the client announced.
    pub config: StreamConfig,
    /// Host settings.
    pub settings: StreamSettings,
    /// Input backend.
    pub input: InputConfig,
    /// Where the input goes: the display session this stream shows.
    pub input_target: crate::input::SessionInput,
    /// Default recording path of the recording input backend.
    pub input_recording: PathBuf,
    /// The launching client's address (its `/launch` and its RTSP handshake came
    /// from it). Pings and control packets from any other address are dropped: a
    /// client that moves re-attaches with an authenticated `/resume`.
    pub client_ip: IpAddr,
    /// Encoders that open.
    pub encoders: Encoders,
    /// What the video thread captures: a display session's capture when the app was
    /// launched in one (see [`crate::session::SessionManager::set_capture`]), else the
    /// configured `[stream] source` at the client's mode.
    pub capture: CaptureSpec,
    /// What the audio thread captures: the display session's sink when the app runs
    /// in one (and `[stream] audio_source` is `session`), else the configured source.
    pub audio: crate::audio::AudioSpec,
    /// The media sockets (shared by every session: streams send on them; the
    /// [`Router`] alone reads them).
    pub sockets: Arc<MediaSockets>,
    /// Sorts the shared ports' datagrams to their sessions.
    pub router: Arc<Router>,
    /// The stream's entry in the live-session registry: the web console reads what
    /// the video thread reports there, and ends the stream through it (revoke).
    pub session: Arc<SessionHandle>,
    /// Marks the session's first captured frame (launch-to-first-frame time).
    pub first_frame: Option<Arc<crate::display::FirstFrame>>,
    /// Where a panicking stream thread is recorded, for `status` to show.
    pub panics: Arc<ThreadPanics>,
}

/// Panics of stream threads since the host started. A panic ends its stream (the
/// other threads stop too) instead of leaving a half-running stream, and is counted
/// here so that `punktfunk-host status` shows it, not only the log.
#[derive(Debug, Default)]
pub struct ThreadPanics {
    count: AtomicU64,
    last: Mutex<Option<String>>,
}

impl ThreadPanics {
    /// Records one panic of thread `thread`.
    pub fn record(&self, thread: &str, message: &str) {
        self.count.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{thread}: {message}"));
    }

    /// How many stream threads panicked.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The last panic, as "thread: message".
    pub fn last(&self) -> Option<String> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The message a panic payload carries (`panic!` with a literal or a format string).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// State the stream's threads share.
#[derive(Debug)]
pub struct Shared {
    stop: AtomicBool,
    reason: Mutex<Option<String>>,
    /// The next frame must be an IDR.
    pub idr: AtomicBool,
    /// Counters.
    pub stats: Mutex<StreamStats>,
    /// The sans-IO session logic: peers learned from pings, IDR requests, input,
    /// rumble, timeouts. The router feeds it pings, the control thread control
    /// messages and rumble (from the input devices and [`ActiveStream::request_feedback`]);
    /// the control thread drives its timer and acts on its events (injects input, sends
    /// rumble, flags IDRs, ends the stream); the video and audio threads read where
    /// to send ([`Shared::peer`]).
    session: Mutex<StreamSession>,
    /// Packets dropped because they were malformed, forged or from a stranger:
    /// network input never ends a stream, it is counted here.
    pub malformed: AtomicU64,
}

impl Shared {
    /// A stream that starts at `now` with an IDR frame and nothing counted.
    pub fn new(now: Instant, params: SessionParams) -> Self {
        Self {
            stop: AtomicBool::new(false),
            reason: Mutex::new(None),
            idr: AtomicBool::new(false),
            stats: Mutex::new(StreamStats::default()),
            session: Mutex::new(StreamSession::new(now, params)),
            malformed: AtomicU64::new(0),
        }
    }

    /// The session logic, locked (briefly: never across I/O).
    pub fn session(&self) -> std::sync::MutexGuard<'_, StreamSession> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the client receives `channel`, once learned.
    pub fn peer(&self, channel: Channel) -> Option<SocketAddr> {
        self.session().peer(channel)
    }

    /// Whether the stream is ending.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Ends the stream (first reason wins).
    pub fn end(&self, reason: &str) {
        self.session().end(Ended::Host(reason.to_owned()));
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason.to_owned());
            tracing::info!(reason, "stream ending");
        }
        self.stop.store(true, Ordering::Release);
    }

    /// Counts one dropped malformed packet.
    pub fn count_malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
    }

    /// Locks the counters.
    pub fn stats(&self) -> std::sync::MutexGuard<'_, StreamStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running stream.
#[derive(Debug)]
pub struct ActiveStream {
    shared: Arc<Shared>,
    threads: Vec<(String, JoinHandle<()>)>,
    panics: Arc<ThreadPanics>,
    app: LaunchedApp,
    config: StreamConfig,
    started: Instant,
    route: Arc<Route>,
    router: Arc<Router>,
}

/// A stopped stream's threads, to be joined off the async runtime and outside any
/// lock (they finish within a frame or the control stream's goodbye, ~0.5 s).
#[derive(Debug)]
#[must_use = "join the threads (off the async runtime)"]
pub struct Stopping {
    threads: Vec<(String, JoinHandle<()>)>,
    panics: Arc<ThreadPanics>,
}

impl Stopping {
    /// Waits for the threads. Blocks: call from a plain thread or `spawn_blocking`.
    pub fn join(self) {
        for (name, t) in self.threads {
            // The threads catch their panics; one escaping (a panic in the catch
            // itself) is still reported rather than dropped.
            if let Err(payload) = t.join() {
                let message = panic_message(payload.as_ref());
                tracing::error!(thread = name, "stream thread panicked: {message}");
                self.panics.record(&name, &message);
            }
        }
    }
}

fn spawn(
    name: &str,
    shared: &Arc<Shared>,
    panics: &Arc<ThreadPanics>,
    f: impl FnOnce() -> Result<()> + Send + 'static,
) -> Result<(String, JoinHandle<()>)> {
    let shared = shared.clone();
    let panics = panics.clone();
    let label = name.to_owned();
    let handle = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            // The panic hook has already printed the panic and its location to
            // stderr; this ends the stream and makes the panic visible in `status`.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(thread = label, "stream thread failed: {e:#}");
                    shared.end(&format!("{label} failed: {e:#}"));
                }
                Err(payload) => {
                    let message = panic_message(payload.as_ref());
                    tracing::error!(thread = label, "stream thread panicked: {message}");
                    panics.record(&label, &message);
                    shared.end(&format!("{label} panicked: {message}"));
                }
            }
        })
        .with_context(|| format!("spawning {name}"))?;
    Ok((name.to_owned(), handle))
}

impl ActiveStream {
    /// Starts the video, audio and control threads, and routes the shared ports'
    /// datagrams of this stream (its pings, its ENet peer) to them.
    pub fn start(ctx: StreamContext) -> Result<Self> {
        let shared = Arc::new(Shared::new(
            Instant::now(),
            SessionParams {
                ping_payload: ctx.params.ping_payload,
                client_ip: ctx.client_ip,
                timeout: std::time::Duration::from_secs(ctx.settings.client_timeout_secs),
            },
        ));
        // The route must exist before PLAY is answered: the client pings and
        // connects right after.
        let (route, inbox): (Arc<Route>, ControlInbox) = ctx.router.add(
            ctx.session_id,
            ctx.client_ip,
            ctx.params.connect_data,
            shared.clone(),
        );
        let control = control::ControlStream::new(&ctx, inbox)?;
        let mut threads = Vec::new();
        let panics = ctx.panics.clone();
        let started = (|| {
            let (c, s) = (ctx.clone(), shared.clone());
            threads.push(spawn("pf-control", &shared, &panics, move || {
                control.run(&c, &s)
            })?);
            let (c, s) = (ctx.clone(), shared.clone());
            threads.push(spawn("pf-video", &shared, &panics, move || {
                video::run(&c, &s)
            })?);
            let (c, s) = (ctx.clone(), shared.clone());
            threads.push(spawn("pf-audio", &shared, &panics, move || {
                audio::run(&c, &s)
            })?);
            Ok::<_, anyhow::Error>(())
        })();
        if let Err(e) = started {
            ctx.router.remove(&route);
            shared.end("the stream could not start");
            Stopping { threads, panics }.join();
            return Err(e);
        }
        tracing::info!(
            app = ctx.app.app_id,
            session = ctx.session_id,
            "stream started"
        );
        Ok(Self {
            shared,
            threads,
            panics: ctx.panics.clone(),
            app: ctx.app,
            config: ctx.config,
            started: Instant::now(),
            route,
            router: ctx.router,
        })
    }

    /// Why the stream ended, once it did.
    pub fn reason(&self) -> Option<String> {
        self.shared
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether a thread ended the stream (client gone, failure).
    pub fn finished(&self) -> bool {
        self.shared.stopping()
    }

    /// Tells the threads to stop and takes the stream off the shared ports at once
    /// (nothing more reaches it); returns the threads to join. Never blocks.
    pub fn stop(self, reason: &str) -> Stopping {
        self.shared.end(reason);
        self.router.remove(&self.route);
        Stopping {
            threads: self.threads,
            panics: self.panics,
        }
    }

    /// Queues feedback for the client (the control thread sends it). Returns
    /// whether the stream takes it: not once it is ending.
    pub fn request_feedback(&self, feedback: Feedback) -> bool {
        if self.shared.stopping() {
            return false;
        }
        let Feedback::Rumble {
            controller,
            low,
            high,
        } = feedback;
        self.shared.session().handle_rumble(controller, low, high)
    }

    /// A summary for status pages.
    pub fn live(&self) -> LiveStream {
        let stats = self.shared.stats();
        LiveStream {
            app_id: self.app.app_id,
            client: self.app.owner.clone(),
            width: self.config.width,
            height: self.config.height,
            fps: self.config.fps,
            codec: self.config.codec.display_name(),
            bitrate_kbps: stats.bitrate_kbps(self.config.fps),
            latency_ms: stats.median_latency_ms(),
            loss_percent: stats.loss_percent(),
            started: self.started,
            frames: stats.frames,
            idr_frames: stats.idr_frames,
            fec_percent: stats.fec_percent,
            malformed_packets: self.shared.malformed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn test_params() -> SessionParams {
        SessionParams {
            ping_payload: *b"0102030405060708",
            client_ip: "127.0.0.1".parse().unwrap(),
            timeout: std::time::Duration::from_secs(10),
        }
    }

    fn shared() -> Arc<Shared> {
        Arc::new(Shared::new(Instant::now(), test_params()))
    }

    #[test]
    fn a_panicking_stream_thread_ends_the_stream_and_is_counted() {
        let (s, panics) = (shared(), Arc::new(ThreadPanics::default()));
        let (name, t) = spawn("pf-test", &s, &panics, || panic!("boom {}", 7)).unwrap();
        assert!(t.join().is_ok(), "the panic is caught in the thread");
        assert_eq!(name, "pf-test");
        assert_eq!(panics.count(), 1);
        assert_eq!(panics.last().as_deref(), Some("pf-test: boom 7"));
        assert!(s.stopping(), "the other threads are told to stop");
        let reason = s.reason.lock().unwrap().clone();
        assert_eq!(reason.as_deref(), Some("pf-test panicked: boom 7"));
    }

    #[test]
    fn a_failing_stream_thread_ends_the_stream_without_counting_a_panic() {
        let (s, panics) = (shared(), Arc::new(ThreadPanics::default()));
        let (_, t) = spawn("pf-test", &s, &panics, || anyhow::bail!("no encoder")).unwrap();
        t.join().unwrap();
        assert_eq!(panics.count(), 0);
        assert!(s.stopping());
    }
}
