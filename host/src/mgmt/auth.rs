//! Logging in: Argon2id password hashes, session cookies, CSRF tokens and the
//! per-address lockout.
//!
//! - A session is a random 256-bit token in a cookie that is `HttpOnly` (page scripts
//!   cannot read it), `Secure` (HTTPS only), `SameSite=Strict` (never sent on a request
//!   another site starts) and `__Host-` prefixed (no other host or path can set it). The
//!   store keeps only its SHA-256.
//! - Every state-changing request must also carry the session's CSRF token in
//!   `X-CSRF-Token`. The console's page learns it from the login answer or `GET
//!   /api/v1/auth/session`; another site can do neither.
//! - Failed logins count per client address; after `max_login_failures` in
//!   `lockout_secs` the address is refused for `lockout_secs` (429 with
//!   `Retry-After`). The count lives in the store, so restarting the service does not
//!   reset it; `punktfunk-host admin reset-password` does.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use punktfunk_core::crypto::rsa::sha256_hex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::ApiJson;
use super::{Mgmt, Peer};
use crate::store::{NewSession, now_unix};

/// The session cookie's name (`__Host-`: Secure, Path=/, no Domain, enforced by
/// browsers).
pub const SESSION_COOKIE: &str = "__Host-pf_session";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends after this long without a request.
pub const IDLE_SECS: i64 = 12 * 3600;
/// ... and after this long in any case.
pub const ABSOLUTE_SECS: i64 = 7 * 24 * 3600;
/// Activity is written back at most this often (each write is a commit with fsync).
const TOUCH_EVERY_SECS: i64 = 60;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 8;
/// Longest password accepted (hashing a megabyte on every login would be a DoS).
pub const MAX_PASSWORD: usize = 1024;

/// Argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): ~30 ms on
/// the slow CI box, and 19 MiB per concurrent attempt.
fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Hashes `password` with a fresh salt into a PHC string. CPU-heavy: call it from
/// `spawn_blocking`.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())?;
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash of nothing anyone knows, verified against when the user name does not exist
/// so that the answer takes as long as for a real account.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY
        .get_or_init(|| hash_password(&hex::encode(rand::random::<[u8; 16]>())).unwrap_or_default())
}

/// Checks a new password's length; the error says what is needed.
pub fn check_new_password(password: &str) -> ApiResult<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(ApiError::invalid(format!(
            "choose a password of at least {MIN_PASSWORD} characters"
        )));
    }
    if password.len() > MAX_PASSWORD {
        return Err(ApiError::invalid(format!(
            "a password can be at most {MAX_PASSWORD} bytes"
        )));
    }
    Ok(())
}

/// Argon2 computations running at once. Each takes a 19 MiB buffer: a burst of
/// logins must queue, not grow the process by gigabytes.
const ARGON2_CONCURRENCY: usize = 2;

fn argon2_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(ARGON2_CONCURRENCY);
    &SLOTS
}

/// Hashes off the async threads.
pub async fn hash_password_blocking(password: String) -> ApiResult<String> {
    let _slot = argon2_slots().acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

async fn verify_password_blocking(hash: Option<String>, password: String) -> ApiResult<bool> {
    let _slot = argon2_slots().acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let ok = verify_password(hash.as_deref().unwrap_or_else(|| dummy_hash()), &password);
        known && ok
    })
    .await
    .map_err(ApiError::internal)
}

/// Equal-length byte strings compared without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn set_cookie(token: &str, max_age: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .expect("hex token and fixed attributes are a valid header")
}

/// Whether the method changes state (and so needs the CSRF token).
pub fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A logged-in admin. As an extractor it answers 401 without a valid session and 403
/// for a state-changing request without the right CSRF token.
#[derive(Debug, Clone)]
pub struct AdminSession {
    /// The admin's id.
    pub admin_id: i64,
    /// The admin's user name.
    pub username: String,
    /// The session's token hash (to log it out).
    pub token_hash: String,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// Unix seconds when the session ends without further activity.
    pub expires_at: i64,
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "log in first: your session is missing or has ended",
    )
}

impl FromRequestParts<Arc<Mgmt>> for AdminSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<Mgmt>) -> ApiResult<Self> {
        let token = cookie_value(&parts.headers, SESSION_COOKIE).ok_or_else(unauthorized)?;
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(unauthorized());
        }
        let token_hash = sha256_hex(token.as_bytes());
        let now = now_unix();
        let store = &state.host.store;
        let session = store
            .session(&token_hash, now)
            .await?
            .ok_or_else(unauthorized)?;
        if is_mutating(&parts.method) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(sent.as_bytes(), session.csrf_token.as_bytes()) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "missing or wrong CSRF token: reload the page and try again",
                ));
            }
        }
        let mut expires_at = session.expires_at;
        if now - session.last_seen >= TOUCH_EVERY_SECS {
            expires_at = (now + IDLE_SECS).min(session.created_at + ABSOLUTE_SECS);
            store.touch_session(&token_hash, now, expires_at).await?;
        }
        Ok(AdminSession {
            admin_id: session.admin_id,
            username: session.username,
            token_hash,
            csrf_token: session.csrf_token,
            expires_at,
        })
    }
}

/// The logged-in session, as the console sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Who is logged in.
    pub username: String,
    /// Send this in `X-CSRF-Token` on every POST, PUT, PATCH and DELETE.
    pub csrf_token: String,
    /// Unix seconds when the session ends without further activity.
    pub expires_at: i64,
}

/// `POST /api/v1/auth/login` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The admin's user name.
    pub username: String,
    /// The password.
    pub password: String,
}

/// `POST /api/v1/auth/password` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password in use now.
    pub current_password: String,
    /// The new password (at least 8 characters).
    #[schema(min_length = 8, max_length = 1024)]
    pub new_password: String,
}

/// Refuses an address that is locked out.
pub async fn check_lockout(state: &Mgmt, peer: &str) -> ApiResult<()> {
    let now = now_unix();
    if let Some(until) = state.host.store.login_locked_until(peer, now).await? {
        return Err(locked(until - now));
    }
    Ok(())
}

fn locked(retry_after: i64) -> ApiError {
    let secs = u64::try_from(retry_after.max(1)).unwrap_or(1);
    ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        message: format!(
            "too many failed attempts from this address: try again in {} min, or run \
             `punktfunk-host admin reset-password` on the box",
            secs.div_ceil(60)
        ),
        retry_after: Some(secs),
    }
}

/// Counts an attempt from `peer` before its password is verified, so that a burst of
/// concurrent guesses cannot all pass the lockout check first: returns the attempt's
/// number in its window, or the lockout answer when the address has no tries left.
/// A successful login clears the count.
pub async fn count_attempt(state: &Mgmt, peer: &str) -> ApiResult<u32> {
    let web = &state.host.config.web;
    let window = i64::try_from(web.lockout_secs).unwrap_or(i64::MAX);
    let now = now_unix();
    let f = state
        .host
        .store
        .record_login_failure(peer, now, web.max_login_failures, window)
        .await?;
    if f.failures > web.max_login_failures {
        return Err(locked(f.locked_until.unwrap_or(now + window) - now));
    }
    Ok(f.failures)
}

/// The answer to a wrong guess that [`count_attempt`] counted as attempt `attempt`:
/// `failure` while the address may try again, the lockout answer after its last try.
pub fn counted_failure(state: &Mgmt, peer: &str, attempt: u32, failure: ApiError) -> ApiError {
    let web = &state.host.config.web;
    tracing::warn!(peer, failures = attempt, "failed web console login");
    if attempt >= web.max_login_failures {
        tracing::warn!(peer, "locked out of the web console after failed logins");
        locked(i64::try_from(web.lockout_secs).unwrap_or(i64::MAX))
    } else {
        failure
    }
}

/// Counts a failed attempt from `peer`: `failure` if the address may try again, the
/// lockout answer if this attempt used up its tries.
pub async fn record_failure(state: &Mgmt, peer: &str, failure: ApiError) -> ApiError {
    let web = &state.host.config.web;
    let window = i64::try_from(web.lockout_secs).unwrap_or(i64::MAX);
    let now = now_unix();
    match state
        .host
        .store
        .record_login_failure(peer, now, web.max_login_failures, window)
        .await
    {
        Ok(f) => {
            tracing::warn!(peer, failures = f.failures, "failed web console login");
            match f.locked_until {
                Some(until) => {
                    tracing::warn!(peer, "locked out of the web console after failed logins");
                    locked(until - now)
                }
                None => failure,
            }
        }
        Err(e) => ApiError::from(e),
    }
}

/// Starts a session for `admin_id` and builds the answer that sets its cookie.
pub async fn start_session(
    state: &Mgmt,
    admin_id: i64,
    username: String,
    peer: &str,
    status: StatusCode,
) -> ApiResult<Response> {
    let token = random_token();
    let csrf_token = random_token();
    let expires_at = now_unix() + IDLE_SECS;
    state
        .host
        .store
        .create_session(NewSession {
            token_hash: sha256_hex(token.as_bytes()),
            admin_id,
            csrf_token: csrf_token.clone(),
            peer: peer.to_owned(),
            expires_at,
        })
        .await?;
    let mut resp = (
        status,
        Json(SessionView {
            username,
            csrf_token,
            expires_at,
        }),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&token, ABSOLUTE_SECS));
    Ok(resp)
}

/// Log in.
///
/// Answers with the session (and its CSRF token) and sets the session cookie. Failed
/// attempts count per client address toward a lockout.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    operation_id = "auth_login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; the session cookie is set", body = SessionView),
        (status = 401, description = "Wrong user name or password", body = ErrorBody),
        (status = 429, description = "Locked out after too many failures", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<Arc<Mgmt>>,
    Extension(Peer(peer)): Extension<Peer>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let peer = peer.ip().to_canonical().to_string();
    check_lockout(&state, &peer).await?;
    let attempt = count_attempt(&state, &peer).await?;
    if body.password.len() > MAX_PASSWORD || body.username.len() > 256 {
        return Err(counted_failure(&state, &peer, attempt, wrong_login()));
    }
    let admin = state
        .host
        .store
        .admin_by_username(body.username.trim())
        .await?;
    let hash = admin.as_ref().map(|a| a.password_hash.clone());
    if !verify_password_blocking(hash, body.password).await? {
        return Err(counted_failure(&state, &peer, attempt, wrong_login()));
    }
    let admin = admin.expect("a password only verifies against a stored admin");
    state.host.store.clear_login_failures(&peer).await?;
    tracing::info!(user = %admin.username, %peer, "web console login");
    start_session(&state, admin.id, admin.username, &peer, StatusCode::OK).await
}

fn wrong_login() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "wrong user name or password (forgotten? run `punktfunk-host admin reset-password` on the box)",
    )
}

/// Log out: ends the session and clears its cookie.
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth",
    operation_id = "auth_logout",
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Missing CSRF token", body = ErrorBody),
    )
)]
pub async fn logout(State(state): State<Arc<Mgmt>>, session: AdminSession) -> ApiResult<Response> {
    state.host.store.delete_session(&session.token_hash).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", 0));
    Ok(resp)
}

/// The current session and its CSRF token.
#[utoipa::path(
    get, path = "/api/v1/auth/session", tag = "auth",
    operation_id = "auth_session",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "Logged in", body = SessionView),
        (status = 401, description = "Not logged in", body = ErrorBody),
    )
)]
pub async fn session(session: AdminSession) -> Json<SessionView> {
    Json(SessionView {
        username: session.username,
        csrf_token: session.csrf_token,
        expires_at: session.expires_at,
    })
}

/// Change the logged-in admin's password. Other browsers logged in as this admin are
/// logged out.
#[utoipa::path(
    post, path = "/api/v1/auth/password", tag = "auth",
    operation_id = "auth_change_password",
    security(("session_cookie" = [], "csrf_token" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed"),
        (status = 401, description = "Not logged in, or the current password is wrong", body = ErrorBody),
        (status = 403, description = "Missing CSRF token", body = ErrorBody),
        (status = 422, description = "The new password is too short", body = ErrorBody),
        (status = 429, description = "Locked out after too many failures", body = ErrorBody),
    )
)]
pub async fn change_password(
    State(state): State<Arc<Mgmt>>,
    Extension(Peer(peer)): Extension<Peer>,
    session: AdminSession,
    ApiJson(body): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    let peer = peer.ip().to_canonical().to_string();
    check_lockout(&state, &peer).await?;
    check_new_password(&body.new_password)?;
    let admin = state
        .host
        .store
        .admin(session.admin_id)
        .await?
        .ok_or_else(unauthorized)?;
    let attempt = count_attempt(&state, &peer).await?;
    if body.current_password.len() > MAX_PASSWORD
        || !verify_password_blocking(Some(admin.password_hash), body.current_password).await?
    {
        let wrong = ApiError::new(StatusCode::UNAUTHORIZED, "the current password is wrong");
        return Err(counted_failure(&state, &peer, attempt, wrong));
    }
    state.host.store.clear_login_failures(&peer).await?;
    let hash = hash_password_blocking(body.new_password).await?;
    state
        .host
        .store
        .set_admin_password(admin.id, &hash, Some(&session.token_hash))
        .await?;
    tracing::info!(user = %admin.username, "web console password changed");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hash_verifies_and_is_salted() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password(&a, "correct horse"));
        assert!(!verify_password(&a, "correct horsf"));
        assert!(!verify_password("not a hash", "x"));
        assert!(!verify_password(dummy_hash(), ""));
    }

    #[test]
    fn cookie_parsing() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-pf_session=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie_value(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie_value(&h, "b"), Some("2"));
        assert_eq!(cookie_value(&h, "c"), None);
        let c = set_cookie("ff", 10);
        let c = c.to_str().unwrap();
        for attr in [
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=10",
        ] {
            assert!(c.contains(attr), "{c}");
        }
    }

    #[test]
    fn password_rules() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long enough").is_ok());
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD + 1)).is_err());
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
