//! `GET /api/v1/status`: what the dashboard shows.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::Mgmt;
use super::auth::AdminSession;
use super::error::{ApiResult, ErrorBody};
use crate::session::StreamProtocol;

/// An encoder that opened at start-up.
#[derive(Debug, Serialize, ToSchema)]
pub struct EncoderView {
    /// "h264", "hevc" or "av1".
    pub codec: String,
    /// FFmpeg's name for it.
    pub name: String,
    /// Whether it runs on a GPU.
    pub hardware: bool,
}

/// A GPU.
#[derive(Debug, Serialize, ToSchema)]
pub struct GpuView {
    /// "NVIDIA", "AMD", "Intel" or the PCI vendor id.
    pub vendor: String,
    /// The model.
    pub name: String,
    /// The kernel driver.
    pub driver: Option<String>,
}

/// A session as the dashboard lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// "streaming" (the stream runs and reports) or "launched" (an app was launched
    /// and the stream is being set up, or this build has no streaming yet).
    pub state: String,
    /// The device's name.
    pub client_name: String,
    /// The device's certificate fingerprint.
    pub client_fingerprint: String,
    /// The app's id.
    pub app_id: u32,
    /// The app's title.
    pub app_title: String,
    /// "gamestream" or "native".
    pub protocol: String,
    /// Unix seconds when it started (streams only).
    pub started_at: Option<i64>,
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
    /// Frames per second.
    pub fps: Option<f32>,
    /// "h264", "hevc" or "av1".
    pub codec: Option<String>,
    /// Video bitrate, kbit/s.
    pub bitrate_kbps: Option<u32>,
    /// Latency, ms.
    pub latency_ms: Option<f32>,
    /// Packet loss, percent.
    pub loss_percent: Option<f32>,
    /// Video frames sent so far (it rises while the stream runs).
    pub frames: Option<u64>,
}

/// The host's ports.
#[derive(Debug, Serialize, ToSchema)]
pub struct PortsView {
    /// GameStream HTTP (TCP).
    pub http: u16,
    /// GameStream HTTPS (TCP).
    pub https: u16,
    /// This console (TCP).
    pub web: u16,
    /// RTSP (TCP).
    pub rtsp: u16,
    /// Video (UDP).
    pub video: u16,
    /// Control (UDP).
    pub control: u16,
    /// Audio (UDP).
    pub audio: u16,
}

impl From<crate::config::Ports> for PortsView {
    fn from(p: crate::config::Ports) -> Self {
        Self {
            http: p.http,
            https: p.https,
            web: p.web,
            rtsp: p.rtsp,
            video: p.video,
            control: p.control,
            audio: p.audio,
        }
    }
}

/// The dashboard's data.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// punktfunk-host's version.
    pub version: String,
    /// The name clients show.
    pub hostname: String,
    /// Seconds since the service started.
    pub uptime_secs: u64,
    /// SHA-256 of the host certificate, as colon-separated hex (compare it with what
    /// the browser shows for this page's certificate).
    pub cert_fingerprint: String,
    /// Encoders that opened at start-up.
    pub encoders: Vec<EncoderView>,
    /// GPUs found.
    pub gpus: Vec<GpuView>,
    /// Live sessions.
    pub sessions: Vec<SessionView>,
    /// Whether a Moonlight client waits for its PIN.
    pub pairing_waiting: bool,
    /// Paired devices.
    pub paired_devices: usize,
    /// Ports.
    pub ports: PortsView,
    /// Problems found at start-up that need the admin (a lost pairing store, say).
    pub warnings: Vec<String>,
    /// The compositor sessions run in ("gamescope", "sway" or "none").
    pub display_backend: String,
    /// The display session: the running one, or how the last one ended
    /// (launch-to-first-frame time, the app's exit code, the reason).
    pub display_session: Option<crate::display::SessionStatus>,
    /// What this machine can do for sessions (the rows `punktfunk-host doctor` shows
    /// first: compositors, session user, PipeWire).
    pub checks: Vec<crate::doctor::Check>,
}

/// `ab12..` as `AB:12:..`.
pub fn colon_hex(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

/// Host status: version, uptime, encoders, GPUs and live sessions.
#[utoipa::path(
    get, path = "/api/v1/status", tag = "status",
    operation_id = "status_status",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "Status", body = Status),
        (status = 401, description = "Not logged in", body = ErrorBody),
    )
)]
pub async fn status(State(state): State<Arc<Mgmt>>, _: AdminSession) -> ApiResult<Json<Status>> {
    let host = &state.host;
    let clients = host.store.list_clients().await?;
    let name_of = |fp: &str| {
        clients
            .iter()
            .find(|c| c.fingerprint == fp)
            .map_or_else(|| "unknown device".to_owned(), |c| c.name.clone())
    };
    let mut sessions: Vec<SessionView> = host
        .streams
        .list()
        .into_iter()
        .map(|s| SessionView {
            state: "streaming".into(),
            client_name: s.client_name,
            client_fingerprint: s.client_fingerprint,
            app_id: s.app_id,
            app_title: s.app_title,
            protocol: match s.protocol {
                StreamProtocol::GameStream => "gamestream",
                StreamProtocol::Native => "native",
            }
            .into(),
            started_at: Some(s.started_at),
            width: s.stats.width,
            height: s.stats.height,
            fps: s.stats.fps,
            codec: s.stats.codec,
            bitrate_kbps: s.stats.bitrate_kbps,
            latency_ms: s.stats.latency_ms,
            loss_percent: s.stats.loss_percent,
            frames: s.stats.frames,
        })
        .collect();
    // The apps GameStream clients launched, until their streams register.
    let launched: Vec<_> = host.apps().running().cloned().collect();
    for app in launched {
        if sessions
            .iter()
            .any(|s| s.client_fingerprint == app.owner && s.app_id == app.app_id)
        {
            continue;
        }
        let title = host
            .catalog
            .get(app.app_id)
            .await?
            .map_or_else(|| format!("app {}", app.app_id), |a| a.title);
        sessions.push(SessionView {
            state: "launched".into(),
            client_name: name_of(&app.owner),
            client_fingerprint: app.owner.clone(),
            app_id: app.app_id,
            app_title: title,
            protocol: "gamestream".into(),
            started_at: None,
            width: app.mode.map(|m| m.width),
            height: app.mode.map(|m| m.height),
            fps: app.mode.map(|m| m.fps as f32),
            codec: None,
            bitrate_kbps: None,
            latency_ms: None,
            loss_percent: None,
            frames: None,
        });
    }
    let gpus = tokio::task::spawn_blocking(crate::sysinfo::gpus)
        .await
        .unwrap_or_default();
    let config = host.config.clone();
    let checks = tokio::task::spawn_blocking(move || crate::doctor::session_checks(&config))
        .await
        .unwrap_or_default();
    Ok(Json(Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        hostname: host.hostname(),
        uptime_secs: host.started.elapsed().as_secs(),
        cert_fingerprint: colon_hex(&host.identity.cert.fingerprint()),
        encoders: host
            .encoders
            .chosen
            .iter()
            .map(|a| EncoderView {
                codec: a.codec.api_name().into(),
                name: a.name.into(),
                hardware: a.hardware,
            })
            .collect(),
        gpus: gpus
            .into_iter()
            .map(|g| GpuView {
                vendor: g.vendor,
                name: g.name,
                driver: g.driver,
            })
            .collect(),
        sessions,
        pairing_waiting: host.pairing.waiting_for_pin(),
        paired_devices: clients.len(),
        ports: host.config.ports.into(),
        warnings: host
            .warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        display_backend: host.display.backend().name().to_owned(),
        display_session: host.display.status(),
        checks,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn colon_hex_groups_bytes() {
        assert_eq!(super::colon_hex("ab01ff"), "AB:01:FF");
    }
}
