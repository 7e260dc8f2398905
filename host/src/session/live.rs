//! The registry of live streams: who is streaming what, and how well. The
//! [`SessionManager`](super::SessionManager) owns it; nothing else holds one.
//!
//! The streaming code registers a session when a stream starts ([`LiveSessions::start`])
//! and keeps its [`SessionHandle`] for as long as the stream runs; it reports what the
//! client asked for and what the encoder and network measure with
//! [`SessionHandle::update`]. Dropping the handle removes the session. The web console's
//! status endpoint reads [`LiveSessions::list`].
//!
//! Revoking a device must end its stream at once, not at its next HTTP request: the
//! management API calls [`LiveSessions::end_client`], which flips every matching
//! session's end signal. Stream tasks wait on [`SessionHandle::ended`] (or poll
//! [`SessionHandle::end_reason`] from a per-frame thread) and tear down when it fires;
//! [`LiveSessions::subscribe`] tells anything else (RTSP, the control channel) which
//! client's sessions ended.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{broadcast, watch};

/// Why a session was ended from outside the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The device was unpaired (revoked) in the web console or the CLI.
    Revoked,
    /// The host is stopping or restarting.
    Shutdown,
}

/// Which protocol a stream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamProtocol {
    /// Moonlight's GameStream.
    GameStream,
    /// punktfunk/1.
    Native,
}

/// What is known about a session when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Lowercase hex SHA-256 of the client certificate (the store's fingerprint).
    pub client_fingerprint: String,
    /// The device's name, as paired.
    pub client_name: String,
    /// The app being streamed.
    pub app_id: u32,
    /// Its title.
    pub app_title: String,
    /// The protocol.
    pub protocol: StreamProtocol,
}

/// Measurements of a running stream. `None` until the streaming code first reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SessionStats {
    /// Encoded width in pixels.
    pub width: Option<u32>,
    /// Encoded height in pixels.
    pub height: Option<u32>,
    /// Frames per second actually sent (not just requested).
    pub fps: Option<f32>,
    /// The codec in use, as people name it ("H.264", "HEVC", "AV1").
    pub codec: Option<String>,
    /// Video bitrate sent, in kbit/s.
    pub bitrate_kbps: Option<u32>,
    /// Round-trip or end-to-end latency the host measures, in milliseconds.
    pub latency_ms: Option<f32>,
    /// Packets lost on the way to the client, in percent (0-100).
    pub loss_percent: Option<f32>,
    /// Video frames sent since the stream started.
    pub frames: Option<u64>,
}

/// One live session, as the status endpoint reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveSession {
    /// Registry id (unique while the process runs).
    pub id: u64,
    /// Device fingerprint.
    pub client_fingerprint: String,
    /// Device name.
    pub client_name: String,
    /// App id.
    pub app_id: u32,
    /// App title.
    pub app_title: String,
    /// Protocol.
    pub protocol: StreamProtocol,
    /// Unix seconds when the stream started.
    pub started_at: i64,
    /// Unix milliseconds of the last [`SessionHandle::update`], if any.
    pub updated_at_ms: Option<i64>,
    /// The latest measurements.
    pub stats: SessionStats,
}

/// A session that was ended from outside (see [`LiveSessions::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnded {
    /// Registry id.
    pub id: u64,
    /// The device whose session ended.
    pub client_fingerprint: String,
    /// Why.
    pub reason: EndReason,
}

struct Entry {
    session: LiveSession,
    end: watch::Sender<Option<EndReason>>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    sessions: BTreeMap<u64, Entry>,
}

/// The registry. Cloning shares it.
#[derive(Clone)]
pub struct LiveSessions {
    inner: Arc<Mutex<Inner>>,
    ended: broadcast::Sender<SessionEnded>,
}

impl std::fmt::Debug for LiveSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSessions")
            .field("count", &self.lock().sessions.len())
            .finish()
    }
}

impl Default for LiveSessions {
    fn default() -> Self {
        Self::new()
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl LiveSessions {
    /// An empty registry.
    pub fn new() -> Self {
        let (ended, _) = broadcast::channel(64);
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            ended,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a stream that just started. Keep the handle for the stream's lifetime.
    pub fn start(&self, info: SessionInfo) -> SessionHandle {
        let (end, end_rx) = watch::channel(None);
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.sessions.insert(
            id,
            Entry {
                session: LiveSession {
                    id,
                    client_fingerprint: info.client_fingerprint,
                    client_name: info.client_name,
                    app_id: info.app_id,
                    app_title: info.app_title,
                    protocol: info.protocol,
                    started_at: unix_ms() / 1000,
                    updated_at_ms: None,
                    stats: SessionStats::default(),
                },
                end,
            },
        );
        SessionHandle {
            id,
            registry: self.clone(),
            end: end_rx,
        }
    }

    /// Every live session, oldest first.
    pub fn list(&self) -> Vec<LiveSession> {
        self.lock()
            .sessions
            .values()
            .map(|e| e.session.clone())
            .collect()
    }

    /// Ends every session of the device with this fingerprint; returns how many.
    pub fn end_client(&self, fingerprint: &str, reason: EndReason) -> usize {
        let inner = self.lock();
        let mut n = 0;
        for e in inner
            .sessions
            .values()
            .filter(|e| e.session.client_fingerprint == fingerprint)
        {
            e.end.send_replace(Some(reason));
            // Nobody listening is fine: the per-session signal is what streams use.
            let _ = self.ended.send(SessionEnded {
                id: e.session.id,
                client_fingerprint: e.session.client_fingerprint.clone(),
                reason,
            });
            n += 1;
        }
        n
    }

    /// Ends every session (shutdown, restart).
    pub fn end_all(&self, reason: EndReason) -> usize {
        let inner = self.lock();
        for e in inner.sessions.values() {
            e.end.send_replace(Some(reason));
            let _ = self.ended.send(SessionEnded {
                id: e.session.id,
                client_fingerprint: e.session.client_fingerprint.clone(),
                reason,
            });
        }
        inner.sessions.len()
    }

    /// Sessions ended from outside, as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEnded> {
        self.ended.subscribe()
    }
}

/// A registered stream. Dropping it removes the session from the registry.
#[derive(Debug)]
pub struct SessionHandle {
    id: u64,
    registry: LiveSessions,
    end: watch::Receiver<Option<EndReason>>,
}

impl SessionHandle {
    /// The registry id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Records new measurements (cheap: one short lock; call it about once a second).
    pub fn update(&self, f: impl FnOnce(&mut SessionStats)) {
        let mut inner = self.registry.lock();
        if let Some(e) = inner.sessions.get_mut(&self.id) {
            f(&mut e.session.stats);
            e.session.updated_at_ms = Some(unix_ms());
        }
    }

    /// Names the app the session streams, once known (a punktfunk/1 session learns
    /// it when its first mode starts the app, after it registered).
    pub fn set_app(&self, app_id: u32, app_title: &str) {
        let mut inner = self.registry.lock();
        if let Some(e) = inner.sessions.get_mut(&self.id) {
            e.session.app_id = app_id;
            app_title.clone_into(&mut e.session.app_title);
        }
    }

    /// Why the session was ended from outside, if it was (for a per-frame thread).
    pub fn end_reason(&self) -> Option<EndReason> {
        *self.end.borrow()
    }

    /// Resolves when the session is ended from outside.
    pub async fn ended(&mut self) -> EndReason {
        loop {
            if let Some(reason) = *self.end.borrow_and_update() {
                return reason;
            }
            if self.end.changed().await.is_err() {
                // The registry entry is gone without a reason: treat as shutdown.
                return EndReason::Shutdown;
            }
        }
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        self.registry.lock().sessions.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(fp: &str, name: &str) -> SessionInfo {
        SessionInfo {
            client_fingerprint: fp.into(),
            client_name: name.into(),
            app_id: 1,
            app_title: "Desktop".into(),
            protocol: StreamProtocol::GameStream,
        }
    }

    #[tokio::test]
    async fn start_update_list_and_drop() {
        let reg = LiveSessions::new();
        let a = reg.start(info("aa", "Deck"));
        let b = reg.start(info("bb", "Phone"));
        assert_ne!(a.id(), b.id());
        a.update(|s| {
            s.width = Some(1920);
            s.height = Some(1080);
            s.fps = Some(59.9);
            s.bitrate_kbps = Some(20_000);
            s.latency_ms = Some(7.5);
            s.loss_percent = Some(0.2);
        });
        let list = reg.list();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].client_name, "Deck");
        assert_eq!(list[0].stats.bitrate_kbps, Some(20_000));
        assert!(list[0].updated_at_ms.is_some());
        assert_eq!(list[1].stats, SessionStats::default());
        drop(a);
        let list = reg.list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].client_name, "Phone");
    }

    #[tokio::test]
    async fn end_client_signals_only_that_clients_sessions() {
        let reg = LiveSessions::new();
        let mut events = reg.subscribe();
        let mut deck = reg.start(info("aa", "Deck"));
        let phone = reg.start(info("bb", "Phone"));
        assert_eq!(deck.end_reason(), None);
        assert_eq!(reg.end_client("aa", EndReason::Revoked), 1);
        assert_eq!(
            tokio::time::timeout(std::time::Duration::from_secs(1), deck.ended())
                .await
                .unwrap(),
            EndReason::Revoked
        );
        assert_eq!(deck.end_reason(), Some(EndReason::Revoked));
        assert_eq!(phone.end_reason(), None);
        let ev = events.try_recv().unwrap();
        assert_eq!(ev.client_fingerprint, "aa");
        assert_eq!(ev.reason, EndReason::Revoked);
        assert!(events.try_recv().is_err());
        assert_eq!(reg.end_client("zz", EndReason::Revoked), 0);
        assert_eq!(reg.end_all(EndReason::Shutdown), 2);
        assert_eq!(phone.end_reason(), Some(EndReason::Shutdown));
    }

    #[test]
    fn stats_serialize_as_the_status_endpoint_shows_them() {
        let s = SessionStats {
            bitrate_kbps: Some(5000),
            ..Default::default()
        };
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["bitrate_kbps"], 5000);
        assert!(json["latency_ms"].is_null());
    }
}
