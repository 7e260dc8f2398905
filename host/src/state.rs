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
use crate::sessions::{EndReason, LiveSessions};
use crate::store::Store;
use crate::stream::StreamManager;

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
    /// The GameStream stream.
    pub streams: StreamManager,
    /// Streams running now, with their measurements; the streaming code registers
    /// them, the web console reads them and ends them when a device is revoked.
    pub sessions: LiveSessions,
    /// Recent log lines for the web console.
    pub logs: LogBuffer,
    /// Restart requests.
    pub lifecycle: Lifecycle,
    /// The display session (compositor and app) of the launched app.
    pub display: Arc<DisplayManager>,
    /// When the service started.
    pub started: Instant,
    /// Problems found at start-up that the admin must see (the console's dashboard
    /// shows them): a lost store, say.
    pub warnings: Mutex<Vec<String>>,
    apps: Mutex<AppState>,
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
        streams: StreamManager,
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
            sessions: streams.sessions().clone(),
            logs: crate::logbuf::global().clone(),
            lifecycle: Lifecycle::new(),
            started: Instant::now(),
            warnings: Mutex::new(Vec::new()),
            streams,
            apps: Mutex::new(AppState::new()),
            hostname,
        })
    }

    /// Ends the launched app because of `reason` (the app exited, the client timed
    /// out): the stream gets its termination and the display session ends.
    pub fn end_app(&self, reason: &str) {
        if let Some(app) = self.apps().cancel() {
            tracing::info!(app = app.app_id, reason, "the app's session ended");
        }
        self.streams.stop(reason);
        self.display.stop(reason);
    }

    /// The running-app state. Held only for short, synchronous updates.
    pub fn apps(&self) -> MutexGuard<'_, AppState> {
        self.apps.lock().unwrap_or_else(|e| e.into_inner())
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
    /// streams get their end signal and the app it launched is cancelled. Called after
    /// the device was removed from the store, so its next request is refused as well.
    /// Returns how many streams and apps were ended.
    pub fn end_device_sessions(&self, fingerprint: &str) -> usize {
        let mut ended = self.sessions.end_client(fingerprint, EndReason::Revoked);
        let mut apps = self.apps();
        if apps.current().is_some_and(|a| a.owner == fingerprint)
            && let Some(app) = apps.cancel()
        {
            tracing::info!(app = app.app_id, "cancelled the app of a revoked device");
            self.streams.stop("the device was revoked");
            // Ending the compositor and app takes up to STOP_GRACE: off the caller's task.
            let display = self.display.clone();
            std::thread::spawn(move || display.stop("the device was revoked"));
            ended += 1;
        }
        ended
    }
}
