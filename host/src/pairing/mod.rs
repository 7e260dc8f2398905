//! Host-side pairing: one pairing at a time, a PIN typed on the host, an outcome the
//! PIN's submitter can wait for.
//!
//! A Moonlight client's first pairing request (`getservercert`) waits here until the
//! user enters the PIN the client shows, through `punktfunk-host pin` or the
//! management API. The protocol exchange itself is `punktfunk_core::gamestream::pairing`;
//! this module holds the pending attempt between HTTP requests, enforces that only one
//! runs, times it out, stores the client when it succeeds, and tells whoever entered
//! the PIN how it ended. The client, not the host, notices a wrong PIN (after phase 3):
//! it then sends `/unpair` instead of phase 4, which ends the attempt as a mismatch.

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
    /// Another pairing is waiting for its PIN or under way.
    #[error("another pairing is already in progress on this host; finish or cancel it first")]
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
}

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
    pending: Option<Pending>,
    next_id: u64,
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
        if inner
            .pending
            .as_ref()
            .is_some_and(|p| p.id == self.id && matches!(p.stage, Some(Stage::Pin(_))))
        {
            let p = inner.pending.take().expect("checked");
            p.finish(Err(PinError::Timeout));
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
                pending: None,
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

    /// Drops an attempt whose deadline passed, reporting a timeout.
    fn expire(inner: &mut Inner, now: Instant) {
        if inner.pending.as_ref().is_some_and(|p| p.deadline <= now) {
            let p = inner.pending.take().expect("checked");
            p.finish(Err(PinError::Timeout));
        }
    }

    /// Whether a client is waiting for its PIN right now.
    pub fn waiting_for_pin(&self) -> bool {
        let mut inner = self.lock();
        Self::expire(&mut inner, Instant::now());
        inner
            .pending
            .as_ref()
            .is_some_and(|p| matches!(p.stage, Some(Stage::Pin(_))))
    }

    /// Phase 1: registers the attempt, waits for the PIN, returns `plaincert`.
    pub async fn get_server_cert(
        &self,
        salt_hex: &str,
        client_cert_hex: &str,
    ) -> Result<String, PairRequestError> {
        let awaiting = AwaitingPin::new(salt_hex, client_cert_hex)?;
        let (pin_tx, pin_rx) = oneshot::channel();
        let id = {
            let mut inner = self.lock();
            Self::expire(&mut inner, Instant::now());
            if inner.pending.is_some() {
                return Err(PairRequestError::AlreadyInProgress);
            }
            let id = inner.next_id;
            inner.next_id += 1;
            inner.pending = Some(Pending {
                id,
                stage: Some(Stage::Pin(awaiting)),
                pin_tx: Some(pin_tx),
                outcome_tx: None,
                name: None,
                deadline: Instant::now() + self.pin_timeout,
            });
            id
        };
        tracing::info!(
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
        let Some(p) = inner.pending.as_mut().filter(|p| p.id == id) else {
            return Err(PairRequestError::OutOfOrder);
        };
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
                let p = inner.pending.take().expect("present");
                p.finish(Err(PinError::BadPin));
                Err(e.into())
            }
        }
    }

    /// Runs one synchronous phase step on the pending attempt.
    fn step<T>(&self, f: impl FnOnce(Stage) -> Step<T>) -> Result<T, PairRequestError> {
        let mut inner = self.lock();
        Self::expire(&mut inner, Instant::now());
        let Some(p) = inner.pending.as_mut() else {
            return Err(PairRequestError::OutOfOrder);
        };
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
                let p = inner.pending.take().expect("present");
                p.finish(Err(PinError::Failed(e.to_string())));
                Err(e.into())
            }
        }
    }

    /// Phase 2.
    pub fn client_challenge(&self, challenge_hex: &str) -> Result<String, PairRequestError> {
        let identity = self.identity.clone();
        self.step(|stage| match stage {
            Stage::Challenge(s) => {
                match s.client_challenge(challenge_hex, &identity, rand::random()) {
                    Ok((n, out)) => Step::Next(Stage::ChallengeResp(n), out),
                    Err(e) => Step::Failed(e),
                }
            }
            other => Step::WrongStage(other),
        })
    }

    /// Phase 3.
    pub fn server_challenge_resp(&self, resp_hex: &str) -> Result<String, PairRequestError> {
        let identity = self.identity.clone();
        self.step(|stage| match stage {
            Stage::ChallengeResp(s) => match s.server_challenge_resp(resp_hex, &identity) {
                Ok((n, out)) => Step::Next(Stage::Secret(n), out),
                Err(e) => Step::Failed(e),
            },
            other => Step::WrongStage(other),
        })
    }

    /// Phase 4: on success the client is stored before this returns `Ok(true)`; a
    /// mismatch returns `Ok(false)` (GameStream answers `paired=0`).
    pub async fn client_pairing_secret(&self, secret_hex: &str) -> Result<bool, PairRequestError> {
        let (attempt, name) = {
            let mut inner = self.lock();
            Self::expire(&mut inner, Instant::now());
            if !inner
                .pending
                .as_ref()
                .is_some_and(|p| matches!(p.stage, Some(Stage::Secret(_))))
            {
                return Err(PairRequestError::OutOfOrder);
            }
            let mut p = inner.pending.take().expect("checked");
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

    /// `/unpair` over plain HTTP: the client abandons its attempt. Sent by Moonlight
    /// after it found the PIN did not match, so that is what the PIN's submitter hears.
    pub fn client_aborted(&self) {
        let mut inner = self.lock();
        if let Some(p) = inner.pending.take() {
            let outcome = if matches!(p.stage, Some(Stage::Pin(_))) {
                Err(PinError::Failed("the client cancelled pairing".into()))
            } else {
                Err(PinError::WrongPin)
            };
            tracing::info!("a pairing attempt was abandoned by the client");
            p.finish(outcome);
        }
    }

    /// The user entered `pin` (with an optional device name). Returns a receiver for the
    /// attempt's outcome.
    pub fn submit_pin(
        &self,
        pin: &str,
        name: Option<String>,
    ) -> Result<oneshot::Receiver<Outcome>, PinError> {
        validate_pin(pin).map_err(|_| PinError::BadPin)?;
        let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        let mut inner = self.lock();
        Self::expire(&mut inner, Instant::now());
        let Some(p) = inner
            .pending
            .as_mut()
            .filter(|p| matches!(p.stage, Some(Stage::Pin(_))) && p.pin_tx.is_some())
        else {
            return Err(PinError::NoPairingWaiting);
        };
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
            inner.pending = None;
            return Err(PinError::NoPairingWaiting);
        }
        Ok(rx)
    }

    /// Enters a PIN and waits for the outcome (at most the exchange timeout).
    pub async fn pair_with_pin(&self, pin: &str, name: Option<String>) -> Outcome {
        let rx = self.submit_pin(pin, name)?;
        match tokio::time::timeout(self.exchange_timeout + Duration::from_secs(1), rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(PinError::Failed("the pairing attempt vanished".into())),
            Err(_) => Err(PinError::Timeout),
        }
    }
}

#[cfg(test)]
mod tests;
