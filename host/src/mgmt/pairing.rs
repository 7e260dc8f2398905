//! Pairing from the console: typing the PIN a Moonlight client shows, and arming
//! native pairing (the host shows a PIN for a punktfunk client).
//!
//! Both need a logged-in admin, from the box itself too: entering a PIN pairs a device,
//! so, like the uid-checked control socket `punktfunk-host pin` uses, it is not open to
//! every local process.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Mgmt;
use super::auth::AdminSession;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::ApiJson;
use crate::pairing::PinError;

/// A native pairing window.
#[derive(Debug, Serialize, ToSchema)]
pub struct NativePairingView {
    /// The PIN to type into the punktfunk client.
    pub pin: String,
    /// Unix seconds when it stops working.
    pub expires_at: i64,
}

/// A Moonlight client waiting for its PIN.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaitingView {
    /// The request's id: send it with the PIN when several wait.
    pub id: u64,
    /// The client's address.
    pub address: String,
    /// The name the client gave, if any.
    pub device: Option<String>,
    /// Seconds until the request times out.
    pub expires_in_secs: u64,
}

/// `GET /api/v1/pairing`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PairingStatus {
    /// Whether a Moonlight client is waiting for its PIN to be entered.
    pub waiting_for_pin: bool,
    /// Every client waiting for its PIN, oldest first.
    pub waiting: Vec<WaitingView>,
    /// The armed native pairing window, if any.
    pub native: Option<NativePairingView>,
}

/// `POST /api/v1/pairing/pin` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    /// The PIN Moonlight shows (4 digits).
    #[schema(pattern = "^[0-9]{4,8}$")]
    pub pin: String,
    /// A name for the device.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub name: Option<String>,
    /// The waiting request the PIN is for (`waiting[].id`); needed when several wait.
    #[serde(default)]
    pub request: Option<u64>,
}

/// A pairing that succeeded.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paired {
    /// Always true.
    pub paired: bool,
    /// The device's name.
    pub name: String,
    /// Its certificate fingerprint.
    pub fingerprint: String,
}

/// Whether a Moonlight client waits for its PIN, and the native pairing window.
#[utoipa::path(
    get, path = "/api/v1/pairing", tag = "pairing",
    operation_id = "pairing_status",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "Pairing state", body = PairingStatus),
        (status = 401, description = "Not logged in", body = ErrorBody),
    )
)]
pub async fn status(State(state): State<Arc<Mgmt>>, _: AdminSession) -> Json<PairingStatus> {
    let waiting: Vec<WaitingView> = state
        .host
        .pairing
        .waiting()
        .into_iter()
        .map(|w| WaitingView {
            id: w.id,
            address: w.address.to_string(),
            device: w.device,
            expires_in_secs: w.expires_in_secs,
        })
        .collect();
    Json(PairingStatus {
        waiting_for_pin: !waiting.is_empty(),
        waiting,
        native: state
            .host
            .native_pairing
            .current()
            .map(|a| NativePairingView {
                pin: a.pin,
                expires_at: a.expires_at,
            }),
    })
}

/// Enter the PIN a Moonlight client shows. Answers when the client has finished
/// pairing (or failed), within the exchange timeout.
#[utoipa::path(
    post, path = "/api/v1/pairing/pin", tag = "pairing",
    operation_id = "pairing_pin",
    security(("session_cookie" = [], "csrf_token" = [])),
    request_body = PinRequest,
    responses(
        (status = 200, description = "Paired", body = Paired),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Missing CSRF token", body = ErrorBody),
        (status = 404, description = "No client is waiting for a PIN", body = ErrorBody),
        (status = 409, description = "The PIN does not match the client's, or several clients wait and none was chosen", body = ErrorBody),
        (status = 422, description = "Not a 4-8 digit PIN", body = ErrorBody),
        (status = 502, description = "The client failed the exchange", body = ErrorBody),
        (status = 504, description = "The client did not finish in time", body = ErrorBody),
    )
)]
pub async fn pin(
    State(state): State<Arc<Mgmt>>,
    _: AdminSession,
    ApiJson(body): ApiJson<PinRequest>,
) -> ApiResult<Json<Paired>> {
    let name = body.name.filter(|n| !n.trim().is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 64) {
        return Err(ApiError::invalid("a device name is at most 64 characters"));
    }
    match state
        .host
        .pairing
        .pair_with_pin(&body.pin, name, body.request)
        .await
    {
        Ok(device) => Ok(Json(Paired {
            paired: true,
            name: device.name,
            fingerprint: device.fingerprint,
        })),
        Err(e) => {
            let status = match e {
                PinError::NoPairingWaiting | PinError::NoSuchRequest(_) => StatusCode::NOT_FOUND,
                PinError::Ambiguous(_) => StatusCode::CONFLICT,
                PinError::BadPin => StatusCode::UNPROCESSABLE_ENTITY,
                PinError::WrongPin => StatusCode::CONFLICT,
                PinError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                PinError::Failed(_) => StatusCode::BAD_GATEWAY,
            };
            Err(ApiError::new(status, e.to_string()))
        }
    }
}

/// Arm native pairing: the answer holds the PIN to show.
#[utoipa::path(
    post, path = "/api/v1/pairing/native", tag = "pairing",
    operation_id = "pairing_arm_native",
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 200, description = "Armed", body = NativePairingView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Missing CSRF token", body = ErrorBody),
    )
)]
pub async fn arm_native(
    State(state): State<Arc<Mgmt>>,
    _: AdminSession,
) -> Json<NativePairingView> {
    let armed = state.host.native_pairing.arm();
    Json(NativePairingView {
        pin: armed.pin,
        expires_at: armed.expires_at,
    })
}

/// Close the native pairing window.
#[utoipa::path(
    delete, path = "/api/v1/pairing/native", tag = "pairing",
    operation_id = "pairing_disarm_native",
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 204, description = "Disarmed"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Missing CSRF token", body = ErrorBody),
    )
)]
pub async fn disarm_native(State(state): State<Arc<Mgmt>>, _: AdminSession) -> StatusCode {
    state.host.native_pairing.disarm();
    StatusCode::NO_CONTENT
}
