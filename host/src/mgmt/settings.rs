//! Host settings: host name, default encoder, bitrate cap, FEC and ports.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Mgmt;
use super::auth::AdminSession;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::ApiJson;
use super::status::PortsView;
use crate::config::Ports;
use crate::settings::{AUTO_ENCODER, HostSettings, KEY_HOSTNAME, SettingsChange};

/// The settings page's data.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsView {
    /// The name Moonlight shows.
    pub hostname: String,
    /// Whether the config file sets the host name (then it cannot be changed here).
    pub hostname_locked: bool,
    /// "auto" or an encoder name.
    pub default_encoder: String,
    /// What `default_encoder` may be set to on this machine.
    pub encoder_choices: Vec<String>,
    /// Highest video bitrate a client may ask for, kbit/s.
    pub bitrate_cap_kbps: u32,
    /// Forward error correction, percent parity.
    pub fec_percent: u8,
    /// The port base the service runs with now.
    pub port_base: u16,
    /// The port base stored here for the next start, if any.
    pub port_base_setting: Option<u16>,
    /// Whether `--port-base` or the config file fixes the port base.
    pub port_base_locked: bool,
    /// The ports in use now.
    pub ports: PortsView,
    /// Whether a stored change takes effect only after a restart.
    pub restart_required: bool,
}

/// `PATCH /api/v1/settings` body; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// Host name: 1 to 63 letters, digits or '-'.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")]
    pub hostname: Option<String>,
    /// "auto" or one of `encoder_choices`.
    #[serde(default)]
    pub default_encoder: Option<String>,
    /// 500 to 1000000 kbit/s.
    #[serde(default)]
    #[schema(minimum = 500, maximum = 1_000_000)]
    pub bitrate_cap_kbps: Option<u32>,
    /// 0 to 80 percent.
    #[serde(default)]
    #[schema(maximum = 80)]
    pub fec_percent: Option<u8>,
    /// The port base for the next start (every port derives from it).
    #[serde(default)]
    pub port_base: Option<u16>,
}

fn encoder_choices(state: &Mgmt) -> Vec<String> {
    std::iter::once(AUTO_ENCODER.to_owned())
        .chain(
            state
                .host
                .encoders
                .available
                .iter()
                .map(|a| a.name.to_owned()),
        )
        .collect()
}

fn view(state: &Mgmt, s: HostSettings) -> SettingsView {
    let config = &state.host.config;
    let restart_required =
        !config.port_base_explicit && s.port_base.is_some_and(|b| b != config.port_base);
    SettingsView {
        hostname: state.host.hostname(),
        hostname_locked: config.hostname.is_some(),
        default_encoder: s.default_encoder,
        encoder_choices: encoder_choices(state),
        bitrate_cap_kbps: s.bitrate_cap_kbps,
        fec_percent: s.fec_percent,
        port_base: config.port_base,
        port_base_setting: s.port_base,
        port_base_locked: config.port_base_explicit,
        ports: config.ports.into(),
        restart_required,
    }
}

/// Whether `name` works as a host name (and an mDNS label).
pub fn valid_hostname(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The current settings.
#[utoipa::path(
    get, path = "/api/v1/settings", tag = "settings",
    operation_id = "settings_get",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "Settings", body = SettingsView),
        (status = 401, description = "Not logged in", body = ErrorBody),
    )
)]
pub async fn get(State(state): State<Arc<Mgmt>>, _: AdminSession) -> ApiResult<Json<SettingsView>> {
    let s = HostSettings::load(&state.host.store, &state.host.config).await?;
    Ok(Json(view(&state, s)))
}

/// Change settings. The host name applies at once; encoder, bitrate cap and FEC to
/// the next stream; the port base at the next start (`restart_required`).
#[utoipa::path(
    patch, path = "/api/v1/settings", tag = "settings",
    operation_id = "settings_update",
    security(("session_cookie" = [], "csrf_token" = [])),
    request_body = SettingsPatch,
    responses(
        (status = 200, description = "Stored", body = SettingsView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Missing CSRF token", body = ErrorBody),
        (status = 409, description = "Fixed by the config file or a flag", body = ErrorBody),
        (status = 422, description = "A value is out of range", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<Arc<Mgmt>>,
    _: AdminSession,
    ApiJson(patch): ApiJson<SettingsPatch>,
) -> ApiResult<Json<SettingsView>> {
    let config = &state.host.config;
    let hostname = patch.hostname.map(|h| h.trim().to_owned());
    if let Some(name) = &hostname {
        if config.hostname.is_some() {
            return Err(ApiError::conflict(
                "the host name is set in the config file (/etc/punktfunk/host.toml): change it there",
            ));
        }
        if !valid_hostname(name) {
            return Err(ApiError::invalid(
                "hostname: 1 to 63 letters, digits or '-' (not first or last)",
            ));
        }
    }
    if patch.port_base.is_some() && config.port_base_explicit {
        return Err(ApiError::conflict(
            "the port base is fixed by --port-base or the config file: change it there",
        ));
    }
    let change = SettingsChange {
        default_encoder: patch.default_encoder,
        bitrate_cap_kbps: patch.bitrate_cap_kbps,
        fec_percent: patch.fec_percent,
        port_base: patch.port_base.map(Some),
    };
    let names: Vec<&str> = state.host.encoders.chosen.iter().map(|a| a.name).collect();
    change
        .validate(&names)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    if let Some(base) = patch.port_base {
        // Validated above; this is the same check with the derived ports in the message.
        Ports::from_base(base).map_err(|e| ApiError::invalid(format!("port_base: {e}")))?;
    }
    if let Some(name) = &hostname {
        state.host.store.set_setting(KEY_HOSTNAME, name).await?;
        state.host.set_hostname(name);
        tracing::info!(hostname = %name, "host name changed");
    }
    let s = HostSettings::apply(&state.host.store, &change, &state.host.config).await?;
    Ok(Json(view(&state, s)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostnames() {
        for ok in ["rig", "living-room", "a", "PC01"] {
            assert!(super::valid_hostname(ok), "{ok}");
        }
        for bad in [
            "",
            "-rig",
            "rig-",
            "my rig",
            "rig.local",
            "ä",
            &"a".repeat(64),
        ] {
            assert!(!super::valid_hostname(bad), "{bad}");
        }
    }
}
