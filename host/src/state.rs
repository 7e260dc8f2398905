//! What the host's services share.

use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use punktfunk_core::gamestream::apps::AppState;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::display::DisplayManager;
use crate::encode::probe::Encoders;
use crate::identity::HostIdentity;
use crate::lifecycle::Lifecycle;
use crate::logbuf::LogBuffer;
use crate::pairing::PairingManager;
use crate::pairing::native::NativePairing;
use crate::session::EndReason;
use crate::session::SessionManager;
use crate::store::Store;

/// The host's shared state, one per process.
#[derive(Debug)]
pub struct HostState {
    /// The resolved configuration.
    pub config: Config,
    /// Certificate, key, unique id, host name.
    pub identity: HostIdentity,
    /// The SQLite store.
    pub store: Store,
    /// Pairing in progress.
    pub pairing: PairingManager,
    /// The native protocol's pairing window (armed from the web console).
    pub native_pairing: Arc<NativePairing>,
    /// The app catalog.
    pub catalog: Catalog,
    /// Encoders that open on this machine.
    pub encoders: Encoders,
    /// Every client's session: its stream, its handshake, its route on the ports,
    /// and the one registry of live streams the web console lists and ends.
    pub streams: SessionManager,
    /// Recent log lines for the web console.
    pub logs: LogBuffer,
    /// Restart requests.
    pub lifecycle: Lifecycle,
    /// The display sessions (compositor and app) of the launched apps, by session.
    pub display: Arc<DisplayManager>,
    /// When the service started.
    pub started: Instant,
    /// Problems found at start-up that the admin must see (the console's dashboard
    /// shows them): a lost store, say.
    pub warnings: Mutex<Vec<String>>,
    hostname: RwLock<String>,
}

impl HostState {
    /// Bundles the services' shared parts.
    pub fn new(
        config: Config,
        identity: HostIdentity,
        store: Store,
        pairing: PairingManager,
        catalog: Catalog,
        encoders: Encoders,
        streams: SessionManager,
    ) -> Arc<Self> {
        let hostname = RwLock::new(identity.hostname.clone());
        let display = Arc::new(DisplayManager::new(&config.display, &config.session));
        streams.attach_display(display.clone());
        Arc::new(Self {
            display,
            config,
            identity,
            store,
            pairing,
            native_pairing: Arc::new(NativePairing::default()),
            catalog,
            encoders,
            logs: crate::logbuf::global().clone(),
            lifecycle: Lifecycle::new(),
            started: Instant::now(),
            warnings: Mutex::new(Vec::new()),
            streams,
            hostname,
        })
    }

    /// Ends session `session` because of `reason` (its app exited, its client timed
    /// out): its stream gets its termination and its display session ends; other
    /// sessions go on. Blocks (threads join, processes stop): call it off the async
    /// runtime.
    pub fn end_session(&self, session: u64, reason: &str) {
        if let Some(stopping) = self.streams.stop(session, reason) {
            stopping.join();
        }
        self.display.stop(session, reason);
        // Last: once the app is gone from the state, nothing of it runs any more
        // (what `status` and the console show agree with the processes).
        if let Some(app) = self.apps().end_session(session) {
            tracing::info!(app = app.app_id, session, reason, "the app's session ended");
        }
    }

    /// The running-app state (the session manager's). Held only for short,
    /// synchronous updates; a launch goes through [`SessionManager::launch`], which
    /// counts punktfunk/1's sessions against the same limit.
    pub fn apps(&self) -> MutexGuard<'_, AppState> {
        self.streams.apps()
    }

    /// The host name clients are shown now (the web console can change it while the
    /// service runs).
    pub fn hostname(&self) -> String {
        self.hostname
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the host name clients are shown (the caller stores it).
    pub fn set_hostname(&self, name: &str) {
        *self.hostname.write().unwrap_or_else(|e| e.into_inner()) = name.to_owned();
    }

    /// Ends everything the device with `fingerprint` is doing right now: its live
    /// streams get their end signal and the app it launched is cancelled; other
    /// devices' sessions go on. Called after the device was removed from the store, so
    /// its next request is refused as well. Returns how many streams and apps were
    /// ended. Never blocks: the stream's threads and the compositor are ended on a
    /// thread of their own.
    pub fn end_device_sessions(self: &Arc<Self>, fingerprint: &str) -> usize {
        let mut ended = self.streams.end_client(fingerprint, EndReason::Revoked);
        let cancelled = self.apps().cancel_owned(fingerprint);
        if let Some(app) = cancelled {
            tracing::info!(
                app = app.app_id,
                session = app.session,
                "cancelled the app of a revoked device"
            );
            let state = self.clone();
            std::thread::spawn(move || state.end_session(app.session, "the device was revoked"));
            ended += 1;
        }
        ended
    }
}
