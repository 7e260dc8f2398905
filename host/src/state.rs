//! What the host's services share.

use std::sync::{Arc, Mutex, MutexGuard};

use punktfunk_core::gamestream::apps::AppState;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::encode::probe::Encoders;
use crate::identity::HostIdentity;
use crate::pairing::PairingManager;
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
    /// The app catalog.
    pub catalog: Catalog,
    /// Encoders that open on this machine.
    pub encoders: Encoders,
    /// The GameStream stream.
    pub streams: StreamManager,
    apps: Mutex<AppState>,
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
        Arc::new(Self {
            config,
            identity,
            store,
            pairing,
            catalog,
            encoders,
            streams,
            apps: Mutex::new(AppState::new()),
        })
    }

    /// The running-app state. Held only for short, synchronous updates.
    pub fn apps(&self) -> MutexGuard<'_, AppState> {
        self.apps.lock().unwrap_or_else(|e| e.into_inner())
    }
}
