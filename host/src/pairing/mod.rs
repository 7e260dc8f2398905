//! Host-side pairing: pending attempts, one per client address, a PIN typed on the
//! host for one of them, an outcome the PIN's submitter can wait for.
//!
//! A Moonlight client's first pairing request (`getservercert`) waits here until the
//! user enters the PIN the client shows, through `punktfunk-host pin` or the
//! management API. The protocol exchange itself is `punktfunk_core::gamestream::pairing`;
//! this module holds the pending attempts between HTTP requests (the later phases are
//! matched to their attempt by the client's address), bounds them, times them out,
//! stores the client when it succeeds, and tells whoever entered the PIN how it ended.
//! Several attempts may wait at once, so that one unauthenticated request cannot hold
//! pairing for everyone; a PIN goes to exactly one of them, picked by the user when
//! more than one waits. The client, not the host, notices a wrong PIN (after phase 3):
//! it then sends `/unpair` instead of phase 4, which ends its attempt as a mismatch.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use punktfunk_core::gamestream::pairing::{
    AwaitingClientChallenge, AwaitingClientPairingSecret, AwaitingPin, AwaitingServerChallengeResp,
    PairingError, ServerIdentity, validate_pin,
};
use thiserror::Error;
use tokio::sync::oneshot;

use crate::crash_point::{self, CrashPoint};
use crate::store::{NewClient, Protocol, Store};

pub mod native;

/// Why a pairing request from a client was refused.
#[derive(Debug, Error)]
pub enum PairRequestError {
    /// Too many pairings are waiting for their PIN or under way.
    #[error("too many pairings are in progress on this host; finish or cancel one first")]
    AlreadyInProgress,
    /// Nobody entered the PIN in time.
    #[error("timed out waiting for the PIN to be entered on the host")]
    PinTimeout,
    /// A phase arrived that does not follow the previous one.
    #[error("out of order pairing request: no pairing is at this step")]
    OutOfOrder,
    /// The request's parameters or certificate were unusable.
    #[error(transparent)]
    Protocol(#[from] PairingError),
    /// The paired client could not be stored.
    #[error("storing the paired client failed: {0}")]
    Store(String),
}

impl PairRequestError {
    /// The GameStream `status_code` for this error.
    pub fn status_code(&self) -> u32 {
        match self {
            PairRequestError::AlreadyInProgress => 409,
            PairRequestError::PinTimeout => 408,
            PairRequestError::OutOfOrder | PairRequestError::Protocol(_) => 400,
            PairRequestError::Store(_) => 500,
        }
    }
}

/// Why entering a PIN did not pair a device.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PinError {
    /// No client is waiting for a PIN.
    #[error("no pairing is waiting for a PIN: start pairing in Moonlight first")]
    NoPairingWaiting,
    /// The PIN is not 4 to 8 digits.
    #[error("the PIN must be 4 to 8 digits, as Moonlight shows it")]
    BadPin,
    /// The client reported that the PIN does not match.
    #[error("the PIN does not match the one Moonlight shows; start pairing again")]
    WrongPin,
    /// The client stopped answering.
    #[error("the client did not finish pairing in time")]
    Timeout,
    /// Something else ended the attempt.
    #[error("pairing failed: {0}")]
    Failed(String),
    /// The chosen request is not (or no longer) waiting for a PIN.
    #[error("pairing request {0} is not waiting for a PIN (finished, cancelled or timed out)")]
    NoSuchRequest(u64),
    /// Several clients wait: the user must say which one the PIN is for.
    #[error("several devices are waiting to pair; choose one: {0}")]
    Ambiguous(String),
}

/// A pairing attempt waiting for its PIN, as the console and `punktfunk-host pin`
/// list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingPairing {
    /// Its id, to choose it when several wait.
    pub id: u64,
    /// The client's address.
    pub address: IpAddr,
    /// The name the client gave (`devicename`), if any.
    pub device: Option<String>,
    /// Seconds until it times out.
    pub expires_in_secs: u64,
}

impl std::fmt::Display for WaitingPairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "request {} from {} ({})",
            self.id,
            self.address,
            self.device.as_deref().unwrap_or("unnamed device")
        )
    }
}

/// At most this many attempts wait at once (one per address).
pub const MAX_PENDING: usize = 8;

/// A device that paired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairedDevice {
    /// Its name.
    pub name: String,
    /// Its certificate fingerprint.
    pub fingerprint: String,
}

/// How an attempt ended, as reported to whoever entered its PIN.
pub type Outcome = Result<PairedDevice, PinError>;

enum Stage {
    Pin(AwaitingPin),
    Challenge(AwaitingClientChallenge),
    ChallengeResp(AwaitingServerChallengeResp),
    Secret(AwaitingClientPairingSecret),
}

/// What one phase step did to the pending attempt.
enum Step<T> {
    /// Advanced to the next stage, with the phase's reply.
    Next(Stage, T),
    /// The request is for another phase; the attempt is unchanged.
    WrongStage(Stage),
    /// The request failed; the attempt ends.
    Failed(PairingError),
}

struct PinEntry {
    pin: String,
    name: Option<String>,
}

struct Pending {
    id: u64,
    address: IpAddr,
    device: Option<String>,
    stage: Option<Stage>,
    pin_tx: Option<oneshot::Sender<PinEntry>>,
    outcome_tx: Option<oneshot::Sender<Outcome>>,
    name: Option<String>,
    deadline: Instant,
}

impl Pending {
    fn finish(mut self, outcome: Outcome) {
        if let Some(tx) = self.outcome_tx.take() {
            let _ = tx.send(outcome);
        }
    }
}

struct Inner {
    pending: Vec<Pending>,
    next_id: u64,
}

impl Inner {
    fn index_of(&self, f: impl Fn(&Pending) -> bool) -> Option<usize> {
        self.pending.iter().position(f)
    }
}

/// The pairing state of one host.
pub struct PairingManager {
    inner: Mutex<Inner>,
    identity: Arc<ServerIdentity>,
    store: Store,
    pin_timeout: Duration,
    exchange_timeout: Duration,
}

impl std::fmt::Debug for PairingManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairingManager").finish_non_exhaustive()
    }
}

/// Removes a pending attempt still waiting for its PIN when the request that started
/// it goes away (the client hung up or the PIN timed out).
struct PinWaitGuard<'a> {
    manager: &'a PairingManager,
    id: u64,
    armed: bool,
}

impl Drop for PinWaitGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut inner = self.manager.lock();
        if let Some(i) =
            inner.index_of(|p| p.id == self.id && matches!(p.stage, Some(Stage::Pin(_))))
        {
            inner.pending.swap_remove(i).finish(Err(PinError::Timeout));
        }
    }
}

impl PairingManager {
    /// A manager signing with `identity` and storing paired clients in `store`.
    pub fn new(
        identity: Arc<ServerIdentity>,
        store: Store,
        pin_timeout: Duration,
        exchange_timeout: Duration,
    ) -> Self {
        Self {
            inner: Mutex::new(Inner {
                pending: Vec::new(),
                next_id: 1,
            }),
            identity,
            store,
            pin_timeout,
            exchange_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops attempts whose deadline passed, reporting a timeout.
    fn expire(inner: &mut Inner, now: Instant) {
        while let Some(i) = inner.index_of(|p| p.deadline <= now) {
            inner.pending.swap_remove(i).finish(Err(PinError::Timeout));
        }
    }

    /// Whether a client is waiting for its PIN right now.
    pub fn waiting_for_pin(&self) -> bool {
        !self.waiting().is_empty()
    }

    /// The attempts waiting for their PIN, oldest first.
    pub fn waiting(&self) -> Vec<WaitingPairing> {
        let mut inner = self.lock();
        let now = Instant::now();
        Self::expire(&mut inner, now);
        let mut list: Vec<_> = inner
            .pending
            .iter()
            .filter(|p| matches!(p.stage, Some(Stage::Pin(_))) && p.pin_tx.is_some())
            .map(|p| WaitingPairing {
                id: p.id,
                address: p.address,
                device: p.device.clone(),
                expires_in_secs: p.deadline.saturating_duration_since(now).as_secs(),
            })
            .collect();
        list.sort_by_key(|w| w.id);
        list
    }

    /// Phase 1 from the client at `address` (calling itself `device`): registers the
    /// attempt, waits for the PIN, returns `plaincert`. A new request from an address
    /// replaces that address's earlier attempt (the client started over).
    pub async fn get_server_cert(
        &self,
        salt_hex: &str,
        client_cert_hex: &str,
        address: IpAddr,
        device: Option<String>,
    ) -> Result<String, PairRequestError> {
        let awaiting = AwaitingPin::new(salt_hex, client_cert_hex)?;
        let address = address.to_canonical();
        let (pin_tx, pin_rx) = oneshot::channel();
        let id = {
            let mut inner = self.lock();
            Self::expire(&mut inner, Instant::now());
            if let Some(i) = inner.index_of(|p| p.address == address) {
                inner.pending.swap_remove(i).finish(Err(PinError::Failed(
                    "the device started pairing again".into(),
                )));
            }
            if inner.pending.len() >= MAX_PENDING {
                return Err(PairRequestError::AlreadyInProgress);
            }
            let id = inner.next_id;
            inner.next_id += 1;
            inner.pending.push(Pending {
                id,
                address,
                device: device.clone(),
                stage: Some(Stage::Pin(awaiting)),
                pin_tx: Some(pin_tx),
                outcome_tx: None,
                name: None,
                deadline: Instant::now() + self.pin_timeout,
            });
            id
        };
        tracing::info!(
            id,
            %address,
            device = device.as_deref().unwrap_or(""),
            "a Moonlight client wants to pair: enter the PIN it shows with `punktfunk-host pin <PIN>` \
             or in the web console (waiting {} s)",
            self.pin_timeout.as_secs()
        );
        let mut guard = PinWaitGuard {
            manager: self,
            id,
            armed: true,
        };
        let entry = match tokio::time::timeout(self.pin_timeout, pin_rx).await {
            Ok(Ok(entry)) => entry,
            Ok(Err(_)) | Err(_) => {
                drop(guard);
                tracing::warn!("pairing request timed out waiting for its PIN");
                return Err(PairRequestError::PinTimeout);
            }
        };
        guard.armed = false;
        let mut inner = self.lock();
        let Some(i) = inner.index_of(|p| p.id == id) else {
            return Err(PairRequestError::OutOfOrder);
        };
        let p = &mut inner.pending[i];
        let Some(Stage::Pin(awaiting)) = p.stage.take() else {
            return Err(PairRequestError::OutOfOrder);
        };
        match awaiting.enter_pin(&entry.pin, &self.identity) {
            Ok((next, plaincert)) => {
                p.stage = Some(Stage::Challenge(next));
                p.name = entry.name;
                p.deadline = Instant::now() + self.exchange_timeout;
                Ok(plaincert)
            }
            Err(e) => {
                inner.pending.swap_remove(i).finish(Err(PinError::BadPin));
                Err(e.into())
            }
        }
    }

    /// Runs one synchronous phase step on the attempt of the client at `address`.
    fn step<T>(
        &self,
        address: IpAddr,
        f: impl FnOnce(Stage) -> Step<T>,
    ) -> Result<T, PairRequestError> {
        let address = address.to_canonical();
        let mut inner = self.lock();
        Self::expire(&mut inner, Instant::now());
        let Some(i) = inner.index_of(|p| p.address == address) else {
            return Err(PairRequestError::OutOfOrder);
        };
        let p = &mut inner.pending[i];
        let Some(stage) = p.stage.take() else {
            return Err(PairRequestError::OutOfOrder);
        };
        match f(stage) {
            Step::Next(next, out) => {
                p.stage = Some(next);
                Ok(out)
            }
            // Wrong phase for this stage: leave the attempt as it was.
            Step::WrongStage(stage) => {
                p.stage = Some(stage);
                Err(PairRequestError::OutOfOrder)
            }
            Step::Failed(e) => {
                inner
                    .pending
                    .swap_remove(i)
                    .finish(Err(PinError::Failed(e.to_string())));
                Err(e.into())
            }
        }
    }

    /// Phase 2, from the client at `address`.
    pub fn client_challenge(
        &self,
        address: IpAddr,
        challenge_hex: &str,
    ) -> Result<String, PairRequestError> {
        let identity = self.identity.clone();
        self.step(address, |stage| match stage {
            Stage::Challenge(s) => {
                match s.client_challenge(challenge_hex, &identity, rand::random()) {
                    Ok((n, out)) => Step::Next(Stage::ChallengeResp(n), out),
                    Err(e) => Step::Failed(e),
                }
            }
            other => Step::WrongStage(other),
        })
    }

    /// Phase 3, from the client at `address`.
    pub fn server_challenge_resp(
        &self,
        address: IpAddr,
        resp_hex: &str,
    ) -> Result<String, PairRequestError> {
        let identity = self.identity.clone();
        self.step(address, |stage| match stage {
            Stage::ChallengeResp(s) => match s.server_challenge_resp(resp_hex, &identity) {
                Ok((n, out)) => Step::Next(Stage::Secret(n), out),
                Err(e) => Step::Failed(e),
            },
            other => Step::WrongStage(other),
        })
    }

    /// Phase 4: on success the client is stored before this returns `Ok(true)`; a
    /// mismatch returns `Ok(false)` (GameStream answers `paired=0`).
    pub async fn client_pairing_secret(
        &self,
        address: IpAddr,
        secret_hex: &str,
    ) -> Result<bool, PairRequestError> {
        let address = address.to_canonical();
        let (attempt, name) = {
            let mut inner = self.lock();
            Self::expire(&mut inner, Instant::now());
            let Some(i) = inner
                .index_of(|p| p.address == address && matches!(p.stage, Some(Stage::Secret(_))))
            else {
                return Err(PairRequestError::OutOfOrder);
            };
            let mut p = inner.pending.swap_remove(i);
            let Some(Stage::Secret(s)) = p.stage.take() else {
                unreachable!("checked above");
            };
            let name = p.name.take();
            match s.client_pairing_secret(secret_hex) {
                Ok(cert) => ((p, cert), name),
                Err(PairingError::Mismatch) => {
                    tracing::warn!("pairing failed: the PIN did not match");
                    p.finish(Err(PinError::WrongPin));
                    return Ok(false);
                }
                Err(e) => {
                    p.finish(Err(PinError::Failed(e.to_string())));
                    return Err(e.into());
                }
            }
        };
        let (pending, cert) = attempt;
        let fingerprint = cert.fingerprint();
        let name = name.unwrap_or_else(|| format!("Moonlight {}", &fingerprint[..8]));
        crash_point::reached(CrashPoint::BeforeCommit);
        let stored = self
            .store
            .add_client(NewClient {
                name: name.clone(),
                cert_pem: String::from_utf8_lossy(&cert.pem).into_owned(),
                fingerprint: fingerprint.clone(),
                protocol: Protocol::GameStream,
            })
            .await;
        match stored {
            Ok(_) => {
                crash_point::reached(CrashPoint::AfterCommit);
                tracing::info!(%name, %fingerprint, "paired a Moonlight client");
                pending.finish(Ok(PairedDevice { name, fingerprint }));
                Ok(true)
            }
            Err(e) => {
                pending.finish(Err(PinError::Failed(format!(
                    "could not store the client: {e}"
                ))));
                Err(PairRequestError::Store(e.to_string()))
            }
        }
    }

    /// `/unpair` over plain HTTP from `address`: that client abandons its attempt
    /// (nobody else's). Sent by Moonlight after it found the PIN did not match, so that
    /// is what the PIN's submitter hears.
    pub fn client_aborted(&self, address: IpAddr) {
        let address = address.to_canonical();
        let mut inner = self.lock();
        if let Some(i) = inner.index_of(|p| p.address == address) {
            let p = inner.pending.swap_remove(i);
            let outcome = if matches!(p.stage, Some(Stage::Pin(_))) {
                Err(PinError::Failed("the client cancelled pairing".into()))
            } else {
                Err(PinError::WrongPin)
            };
            tracing::info!("a pairing attempt was abandoned by the client");
            p.finish(outcome);
        }
    }

    /// The user entered `pin` (with an optional device name) for the attempt
    /// `request`, or for the only one waiting when `request` is `None`. Returns a
    /// receiver for the attempt's outcome. The PIN goes to that attempt only.
    pub fn submit_pin(
        &self,
        pin: &str,
        name: Option<String>,
        request: Option<u64>,
    ) -> Result<oneshot::Receiver<Outcome>, PinError> {
        validate_pin(pin).map_err(|_| PinError::BadPin)?;
        let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        let waiting = self.waiting();
        let id = match (request, waiting.as_slice()) {
            (Some(id), w) if w.iter().any(|p| p.id == id) => id,
            (Some(id), _) => return Err(PinError::NoSuchRequest(id)),
            (None, []) => return Err(PinError::NoPairingWaiting),
            (None, [only]) => only.id,
            (None, several) => {
                let list: Vec<String> = several.iter().map(ToString::to_string).collect();
                return Err(PinError::Ambiguous(list.join("; ")));
            }
        };
        let mut inner = self.lock();
        let Some(i) = inner.index_of(|p| {
            p.id == id && matches!(p.stage, Some(Stage::Pin(_))) && p.pin_tx.is_some()
        }) else {
            return Err(PinError::NoSuchRequest(id));
        };
        let p = &mut inner.pending[i];
        let (tx, rx) = oneshot::channel();
        p.outcome_tx = Some(tx);
        let pin_tx = p.pin_tx.take().expect("checked");
        if pin_tx
            .send(PinEntry {
                pin: pin.to_owned(),
                name,
            })
            .is_err()
        {
            inner.pending.swap_remove(i);
            return Err(PinError::NoSuchRequest(id));
        }
        Ok(rx)
    }

    /// Enters a PIN for `request` (or the only attempt waiting) and waits for the
    /// outcome (at most the exchange timeout).
    pub async fn pair_with_pin(
        &self,
        pin: &str,
        name: Option<String>,
        request: Option<u64>,
    ) -> Outcome {
        let rx = self.submit_pin(pin, name, request)?;
        match tokio::time::timeout(self.exchange_timeout + Duration::from_secs(1), rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(PinError::Failed("the pairing attempt vanished".into())),
            Err(_) => Err(PinError::Timeout),
        }
    }
}

#[cfg(test)]
mod tests;
