//! First-run setup: creating the first admin account.
//!
//! Whoever reaches a fresh box first must not be able to claim it, so creating the
//! first admin needs a one-time setup code that only someone at the box can read: the
//! host prints it to its log (the journal) and its console at start, and writes it to
//! `<state dir>/setup-code` (mode 0600, the service user's). The code is 12 characters
//! from a 31-character alphabet without look-alikes (about 59 bits), wrong codes count toward
//! the address's lockout like wrong passwords, and it is deleted once the admin exists.
//! The admin is created only while none exists, in one write-locked transaction
//! ([`crate::store::Store::create_first_admin`]); afterwards the endpoint answers 403.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{
    SessionView, check_lockout, check_new_password, constant_time_eq, hash_password_blocking,
    record_failure, start_session,
};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::ApiJson;
use super::{Mgmt, Peer};
use crate::store::{Store, StoreError};

/// The setup code's file name in the state directory.
pub const SETUP_CODE_FILE: &str = "setup-code";
/// The code's alphabet: no 0/O, 1/I/L.
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters in a code (shown in groups of four).
const CODE_LEN: usize = 12;

/// The pending setup code, if setup is not done yet.
#[derive(Debug)]
pub struct SetupCode {
    code: Mutex<Option<String>>,
    path: PathBuf,
}

fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn generate() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..CODE_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// `ABCDEFGHJKMN` as `ABCD-EFGH-JKMN`.
pub fn display(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

fn valid(code: &str) -> bool {
    code.len() == CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))
}

impl SetupCode {
    /// Loads or creates the code when no admin exists (and announces it), or removes a
    /// leftover code file when one does.
    pub async fn prepare(state_dir: &Path, store: &Store) -> Result<Self> {
        let path = state_dir.join(SETUP_CODE_FILE);
        if store.admin_count().await? > 0 {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!("removed a leftover setup code file"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot remove the setup code: {e}")
                }
            }
            return Ok(Self {
                code: Mutex::new(None),
                path,
            });
        }
        // Keep the code across restarts until setup is done, so a code shown on the
        // box's screen stays right.
        let existing = std::fs::read_to_string(&path)
            .ok()
            .map(|s| normalize(&s))
            .filter(|c| valid(c));
        let code = match existing {
            Some(code) => code,
            None => {
                let code = generate();
                crate::identity::write_atomic(
                    &path,
                    format!("{}\n", display(&code)).as_bytes(),
                    0o600,
                )
                .with_context(|| format!("writing the setup code to {}", path.display()))?;
                code
            }
        };
        announce(&code, &path);
        Ok(Self {
            code: Mutex::new(Some(code)),
            path,
        })
    }

    /// A code that is already known (tests).
    #[cfg(test)]
    pub fn fixed(code: &str, path: PathBuf) -> Self {
        Self {
            code: Mutex::new(Some(normalize(code))),
            path,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.code.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether setup still waits for its code.
    pub fn pending(&self) -> bool {
        self.lock().is_some()
    }

    /// Whether `offered` is the code (dashes, spaces and case do not matter).
    pub fn matches(&self, offered: &str) -> bool {
        let offered = normalize(offered);
        self.lock()
            .as_deref()
            .is_some_and(|code| constant_time_eq(code.as_bytes(), offered.as_bytes()))
    }

    /// Forgets the code and deletes its file (setup is done).
    pub fn consume(&self) {
        *self.lock() = None;
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), "cannot remove the setup code file: {e}");
        }
    }

    /// The code's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Prints the code where the person at the box sees it: stderr (the journal, the
/// terminal) in a banner. Not through `tracing`, so it never lands in the web console's
/// log page.
fn announce(code: &str, path: &Path) {
    crate::logging::say(format_args!(
        "\n\
         ================================================================\n\
         \x20 punktfunk first-run setup\n\
         \x20 Open the web console (https://<this box>:<port base + 1>/) and\n\
         \x20 enter this setup code to create the admin account:\n\
         \n\
         \x20     SETUP CODE: {}\n\
         \n\
         \x20 (also in {})\n\
         ================================================================\n",
        display(code),
        path.display()
    ));
    tracing::info!(file = %path.display(), "first-run setup is waiting for its setup code");
}

/// `GET /api/v1/setup`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupStatus {
    /// Whether no admin exists yet (the console shows the wizard).
    pub needs_setup: bool,
    /// Where the setup code is on the box, while setup is pending.
    pub setup_code_file: Option<String>,
}

/// `POST /api/v1/setup` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The code the host printed at start (`ABCD-EFGH-JKMN`).
    pub setup_code: String,
    /// The admin's user name.
    pub username: String,
    /// The admin's password (at least 8 characters).
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
}

/// Whether first-run setup is still to be done.
#[utoipa::path(
    get, path = "/api/v1/setup", tag = "setup",
    operation_id = "setup_status",
    responses((status = 200, description = "Setup state", body = SetupStatus))
)]
pub async fn status(State(state): State<Arc<Mgmt>>) -> ApiResult<Json<SetupStatus>> {
    let needs_setup = state.host.store.admin_count().await? == 0;
    Ok(Json(SetupStatus {
        needs_setup,
        setup_code_file: (needs_setup && state.setup.pending())
            .then(|| state.setup.path().display().to_string()),
    }))
}

fn already_done() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "setup is already done: log in with the admin account",
    )
}

/// Create the first admin account (only while none exists) and log it in.
#[utoipa::path(
    post, path = "/api/v1/setup", tag = "setup",
    operation_id = "setup_complete",
    request_body = SetupRequest,
    responses(
        (status = 201, description = "Admin created and logged in; the session cookie is set", body = SessionView),
        (status = 401, description = "Wrong setup code", body = ErrorBody),
        (status = 403, description = "Setup is already done", body = ErrorBody),
        (status = 422, description = "User name or password not acceptable", body = ErrorBody),
        (status = 429, description = "Locked out after too many failures", body = ErrorBody),
    )
)]
pub async fn complete(
    State(state): State<Arc<Mgmt>>,
    Extension(Peer(peer)): Extension<Peer>,
    ApiJson(body): ApiJson<SetupRequest>,
) -> ApiResult<Response> {
    let peer = peer.ip().to_canonical().to_string();
    check_lockout(&state, &peer).await?;
    if state.host.store.admin_count().await? > 0 || !state.setup.pending() {
        return Err(already_done());
    }
    if !state.setup.matches(&body.setup_code) {
        let wrong = ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "wrong setup code: read it from the host's log (journalctl -u punktfunk-host) \
                 or from {} on the box",
                state.setup.path().display()
            ),
        );
        return Err(record_failure(&state, &peer, wrong).await);
    }
    let username = body.username.trim().to_owned();
    if username.is_empty() || username.chars().count() > 64 {
        return Err(ApiError::invalid(
            "choose a user name of 1 to 64 characters",
        ));
    }
    check_new_password(&body.password)?;
    let hash = hash_password_blocking(body.password).await?;
    let admin = match state.host.store.create_first_admin(&username, &hash).await {
        Ok(admin) => admin,
        Err(StoreError::Conflict(_)) => return Err(already_done()),
        Err(e) => return Err(e.into()),
    };
    state.setup.consume();
    state.host.store.clear_login_failures(&peer).await?;
    tracing::info!(user = %admin.username, %peer, "first-run setup done: admin account created");
    start_session(&state, admin.id, admin.username, &peer, StatusCode::CREATED).await
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn codes_are_readable_and_compare_loosely() {
        let code = generate();
        assert!(valid(&code), "{code}");
        let shown = display(&code);
        assert_eq!(shown.len(), 14);
        let s = SetupCode::fixed(&code, PathBuf::from("/nonexistent"));
        assert!(s.matches(&shown));
        assert!(s.matches(&shown.to_lowercase().replace('-', " ")));
        assert!(!s.matches(""));
        assert!(!s.matches(&code[..11]));
        s.consume();
        assert!(!s.pending());
        assert!(!s.matches(&code));
    }

    #[tokio::test]
    async fn prepare_writes_a_private_file_keeps_it_and_removes_it_after_setup() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let first = SetupCode::prepare(dir.path(), &store).await.unwrap();
        let file = dir.path().join(SETUP_CODE_FILE);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(first.matches(&text));
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A restart before setup keeps the same code.
        let again = SetupCode::prepare(dir.path(), &store).await.unwrap();
        assert!(again.matches(&text));

        store
            .create_first_admin("admin", "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA")
            .await
            .unwrap();
        let done = SetupCode::prepare(dir.path(), &store).await.unwrap();
        assert!(!done.pending());
        assert!(!file.exists());
    }
}
