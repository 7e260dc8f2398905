//! Paired devices: list, rename, revoke.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Mgmt;
use super::auth::AdminSession;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use crate::store::Client;

/// A paired device.
#[derive(Debug, Serialize, ToSchema)]
pub struct Device {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// "gamestream" (Moonlight) or "native".
    pub protocol: String,
    /// SHA-256 of its certificate, hex.
    pub fingerprint: String,
    /// Unix seconds of pairing.
    pub paired_at: i64,
    /// Unix seconds of its last request, if any.
    pub last_seen: Option<i64>,
    /// Whether it is streaming or has an app running now.
    pub active: bool,
}

/// `PATCH /api/v1/devices/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRename {
    /// The new name (1 to 64 characters).
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
}

fn view(state: &Mgmt, c: Client) -> Device {
    let fp = c.fingerprint;
    let streaming = state
        .host
        .streams
        .list()
        .iter()
        .any(|s| s.client_fingerprint == fp);
    let launched = state.host.apps().current(&fp).is_some();
    Device {
        id: c.id,
        name: c.name,
        protocol: c.protocol.as_str().into(),
        fingerprint: fp,
        paired_at: c.paired_at,
        last_seen: c.last_seen,
        active: streaming || launched,
    }
}

fn no_device(id: i64) -> ApiError {
    ApiError::not_found(format!(
        "no paired device has id {id}; reload the device list"
    ))
}

/// Paired devices, oldest pairing first.
#[utoipa::path(
    get, path = "/api/v1/devices", tag = "devices",
    operation_id = "devices_list",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "Devices", body = [Device]),
        (status = 401, description = "Not logged in", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<Arc<Mgmt>>, _: AdminSession) -> ApiResult<Json<Vec<Device>>> {
    let clients = state.host.store.list_clients().await?;
    Ok(Json(clients.into_iter().map(|c| view(&state, c)).collect()))
}

/// Rename a device.
#[utoipa::path(
    patch, path = "/api/v1/devices/{id}", tag = "devices",
    operation_id = "devices_rename",
    security(("session_cookie" = [], "csrf_token" = [])),
    params(("id" = i64, Path, description = "Device id")),
    request_body = DeviceRename,
    responses(
        (status = 200, description = "Renamed", body = Device),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Missing CSRF token", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
        (status = 422, description = "Bad name", body = ErrorBody),
    )
)]
pub async fn rename(
    State(state): State<Arc<Mgmt>>,
    _: AdminSession,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<DeviceRename>,
) -> ApiResult<Json<Device>> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "a device name is 1 to 64 characters (no control characters)",
        ));
    }
    let store = &state.host.store;
    if !store.rename_client(id, name).await? {
        return Err(no_device(id));
    }
    let client = store
        .list_clients()
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| no_device(id))?;
    tracing::info!(id, name, "renamed a device");
    Ok(Json(view(&state, client)))
}

/// Revoke (unpair) a device. Its next request is refused, and its running stream and
/// app are ended at once.
#[utoipa::path(
    delete, path = "/api/v1/devices/{id}", tag = "devices",
    operation_id = "devices_revoke",
    security(("session_cookie" = [], "csrf_token" = [])),
    params(("id" = i64, Path, description = "Device id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Missing CSRF token", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
    )
)]
pub async fn revoke(
    State(state): State<Arc<Mgmt>>,
    _: AdminSession,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let store = &state.host.store;
    let client = store
        .list_clients()
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| no_device(id))?;
    if !store.remove_client(id).await? {
        return Err(no_device(id));
    }
    // Removed from the store first: from here on nvhttp refuses it, so it cannot start
    // a new session while the old one is torn down.
    let ended = state.host.end_device_sessions(&client.fingerprint);
    tracing::info!(id, name = %client.name, ended, "revoked a device");
    Ok(StatusCode::NO_CONTENT)
}
