//! What one native connection streams: its session on the host (a display session
//! with the host's app, through the shared encode stage; see
//! [`crate::session::native`]) and the data stream that sends it.
//!
//! The session starts with the connection's first accepted mode, at exactly that
//! mode; a renegotiated mode stops the data stream, moves the session's display and
//! starts a new data stream. When the connection ends, so does its session: the
//! compositor and app stop, nothing is left running for a client that is gone.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Result;
use punktfunk_core::gamestream::input::InputEvent;
use punktfunk_core::native::adaptive_fec::FecPolicy;
use punktfunk_core::native::control::Mode;
use tokio::sync::watch;

use super::data::{DataKeys, DataStream, MakeFrameSource, StreamCmd};
use crate::session::SessionInfo;

/// A boxed future, for the async method of the object-safe [`SessionSource`].
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Where native connections get their sessions: the host's session manager (see
/// [`super::service`]), or a test's stand-in. Without one the host negotiates modes
/// but streams nothing.
pub trait SessionSource: Send + Sync + std::fmt::Debug {
    /// Starts the session of the authenticated client `client` at its first `mode`.
    fn open<'a>(
        &'a self,
        client: &'a SessionInfo,
        mode: &'a Mode,
    ) -> BoxFuture<'a, Result<Arc<dyn NativeSession>>>;
}

/// One native client's session on the host.
pub trait NativeSession: Send + Sync {
    /// How the stream at `mode` opens its frame source on the send thread; moves the
    /// session's display to `mode` first where it differs. Blocks: call it off the
    /// async runtime.
    fn stream(&self, mode: &Mode) -> Result<MakeFrameSource>;
    /// Feeds one input event into the session's input (never blocks).
    fn input(&self, event: InputEvent);
    /// Becomes `Some(reason)` when the host ends the session (its app exited).
    fn ended(&self) -> watch::Receiver<Option<String>>;
    /// Ends the session and everything it runs. Blocks: call it off the runtime.
    fn end(&self, reason: &str);
    /// The app it runs: catalog id and title.
    fn app(&self) -> (u32, String);
}

/// A connection's session and its current data stream.
#[derive(Default)]
pub struct Streaming {
    session: Option<Arc<dyn NativeSession>>,
    ended: Option<watch::Receiver<Option<String>>>,
    stream: Option<DataStream>,
}

impl std::fmt::Debug for Streaming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("session", &self.session.is_some())
            .field("stream", &self.stream)
            .finish()
    }
}

/// Where and how a data stream is started.
#[derive(Debug, Clone, Copy)]
pub struct StreamTarget {
    /// The host address the data socket binds.
    pub ip: IpAddr,
    /// The connection's data keys.
    pub keys: DataKeys,
    /// Adaptive FEC's bounds.
    pub policy: FecPolicy,
}

impl Streaming {
    /// Streams `mode`: the session starts (first mode) or moves (renegotiation), a
    /// new data stream replaces the old one. Returns the new data port.
    pub async fn start(
        &mut self,
        source: &dyn SessionSource,
        client: &SessionInfo,
        mode: Mode,
        target: StreamTarget,
    ) -> Result<u16> {
        // A new mode is a new stream: the old one stops, a new port opens.
        stop_stream(self.stream.take()).await;
        let session = match &self.session {
            Some(s) => s.clone(),
            None => {
                let s = source.open(client, &mode).await?;
                self.ended = Some(s.ended());
                self.session = Some(s.clone());
                s
            }
        };
        let make = tokio::task::spawn_blocking(move || session.stream(&mode)).await??;
        let s = DataStream::start(target.ip, target.keys, mode, target.policy, make)?;
        let port = s.port();
        self.stream = Some(s);
        Ok(port)
    }

    /// Forwards a command to the data stream, if one runs.
    pub fn command(&self, cmd: StreamCmd) {
        if let Some(s) = &self.stream {
            s.command(cmd);
        }
    }

    /// The app the session runs, once it has one.
    pub fn app(&self) -> Option<(u32, String)> {
        self.session.as_ref().map(|s| s.app())
    }

    /// Feeds input into the session, once it has one.
    pub fn input(&self, event: InputEvent) {
        if let Some(s) = &self.session {
            s.input(event);
        }
    }

    /// Resolves when the host ends the session (never without one); gives the reason.
    pub async fn ended_by_host(&mut self) -> String {
        let Some(rx) = self.ended.as_mut() else {
            return std::future::pending().await;
        };
        match rx.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The manager forgot the session without a word: treat as ended.
            Err(_) => "the session ended".to_owned(),
        }
    }

    /// Stops the data stream and ends the session, off the runtime.
    pub async fn finish(&mut self, reason: &str) {
        stop_stream(self.stream.take()).await;
        self.ended = None;
        if let Some(s) = self.session.take() {
            let reason = reason.to_owned();
            if let Err(e) = tokio::task::spawn_blocking(move || s.end(&reason)).await {
                tracing::warn!("ending the native session failed: {e}");
            }
        }
    }
}

/// Stops a stream's send thread off the runtime.
async fn stop_stream(stream: Option<DataStream>) {
    if let Some(s) = stream {
        match tokio::task::spawn_blocking(move || s.stop()).await {
            Ok(Ok(summary)) => tracing::info!(?summary, "native stream ended"),
            Ok(Err(e)) => tracing::warn!("native stream failed: {e:#}"),
            Err(e) => tracing::warn!("native stream join failed: {e}"),
        }
    }
}
