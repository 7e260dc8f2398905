//! Logs, the network check and restarting the service.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Mgmt;
use super::auth::AdminSession;
use super::error::ErrorBody;
use super::extract::ApiQuery;

/// One log line.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogLineView {
    /// Sequence number (ask for lines after it to get only new ones).
    pub seq: u64,
    /// Unix milliseconds.
    pub unix_ms: i64,
    /// ERROR, WARN, INFO, DEBUG or TRACE.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// The message.
    pub message: String,
}

/// `GET /api/v1/logs` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogsView {
    /// Oldest first.
    pub lines: Vec<LogLineView>,
}

/// `GET /api/v1/logs` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Only lines with a larger sequence number.
    #[serde(default)]
    pub after: Option<u64>,
    /// At most this many (the newest), 1 to 1000; default 200.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Recent lines of the service's log, oldest first.
#[utoipa::path(
    get, path = "/api/v1/logs", tag = "system",
    operation_id = "system_logs",
    security(("session_cookie" = [])),
    params(LogsQuery),
    responses(
        (status = 200, description = "Log lines", body = LogsView),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
    )
)]
pub async fn logs(
    State(state): State<Arc<Mgmt>>,
    _: AdminSession,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> Json<LogsView> {
    let limit = q.limit.unwrap_or(200).clamp(1, 1000) as usize;
    let lines = state
        .host
        .logs
        .since(q.after.unwrap_or(0), limit)
        .into_iter()
        .map(|l| LogLineView {
            seq: l.seq,
            unix_ms: l.unix_ms,
            level: l.level.to_owned(),
            target: l.target,
            message: l.message,
        })
        .collect();
    Json(LogsView { lines })
}

/// `POST /api/v1/restart` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestartView {
    /// Always true.
    pub restarting: bool,
    /// What happens now.
    pub message: String,
}

/// Restart the service. Streams end; the console reconnects when it is back (a few
/// seconds).
#[utoipa::path(
    post, path = "/api/v1/restart", tag = "system",
    operation_id = "system_restart",
    security(("session_cookie" = [], "csrf_token" = [])),
    responses(
        (status = 202, description = "Restarting", body = RestartView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Missing CSRF token", body = ErrorBody),
    )
)]
pub async fn restart(
    State(state): State<Arc<Mgmt>>,
    session: AdminSession,
) -> (StatusCode, Json<RestartView>) {
    tracing::info!(user = %session.username, "restart requested from the web console");
    state.host.lifecycle.request_restart();
    (
        StatusCode::ACCEPTED,
        Json(RestartView {
            restarting: true,
            message: "the host is restarting; this page reconnects when it is back".into(),
        }),
    )
}

/// A port Moonlight needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct PortCheck {
    /// The port.
    pub port: u16,
    /// "tcp" or "udp".
    pub protocol: String,
    /// What it is for.
    pub purpose: String,
    /// For TCP: whether the host answers on it at its LAN address (None when the host
    /// has no LAN address, or for UDP, which cannot be checked from the host itself).
    pub listening: Option<bool>,
}

/// A firewall and how to open the ports in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FirewallHintView {
    /// "firewalld" or "ufw".
    pub tool: String,
    /// What to run as root.
    pub command: String,
}

/// The wizard's network check.
#[derive(Debug, Serialize, ToSchema)]
pub struct NetworkCheck {
    /// The box's LAN addresses: what to type into Moonlight if it does not find the
    /// host by itself.
    pub addresses: Vec<String>,
    /// Ports Moonlight uses.
    pub ports: Vec<PortCheck>,
    /// Firewalls found, with the commands that let Moonlight in.
    pub firewalls: Vec<FirewallHintView>,
    /// Advice in words.
    pub hints: Vec<String>,
}

async fn tcp_answers(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// Addresses, ports and firewall hints for connecting Moonlight.
#[utoipa::path(
    get, path = "/api/v1/network", tag = "system",
    operation_id = "system_network",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "Network check", body = NetworkCheck),
        (status = 401, description = "Not logged in", body = ErrorBody),
    )
)]
pub async fn network(State(state): State<Arc<Mgmt>>, _: AdminSession) -> Json<NetworkCheck> {
    let p = state.host.config.ports;
    let bind = state.host.config.bind;
    let mut addresses: Vec<IpAddr> = crate::net::iface::addresses()
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| !a.is_loopback() && super::access::is_lan(*a))
        .filter(|a| bind.is_unspecified() || *a == bind)
        .collect();
    addresses.sort_by_key(|a| (a.is_ipv6(), *a));
    addresses.dedup();
    // Where to probe: the first LAN IPv4 address, else what we are bound to.
    let probe = addresses
        .iter()
        .find(|a| a.is_ipv4())
        .copied()
        .or((!bind.is_unspecified()).then_some(bind));
    let mut ports = Vec::new();
    for (port, purpose) in [
        (p.https, "GameStream HTTPS (paired clients)"),
        (p.http, "GameStream HTTP (discovery, pairing)"),
        (p.web, "this web console"),
        (p.rtsp, "RTSP (stream setup)"),
    ] {
        let listening = match probe {
            Some(ip) => Some(tcp_answers(SocketAddr::new(ip, port)).await),
            None => None,
        };
        ports.push(PortCheck {
            port,
            protocol: "tcp".into(),
            purpose: purpose.into(),
            listening,
        });
    }
    for (port, purpose) in [
        (p.video, "video"),
        (p.control, "control and input"),
        (p.audio, "audio"),
        (5353, "mDNS (Moonlight finds the host by itself)"),
    ] {
        ports.push(PortCheck {
            port,
            protocol: "udp".into(),
            purpose: purpose.into(),
            listening: None,
        });
    }
    let tcp = [p.https, p.http, p.web, p.rtsp];
    let udp = [p.video, p.control, p.audio, 5353];
    let firewalls: Vec<_> = crate::sysinfo::firewall_hints(Path::new("/"), &tcp, &udp)
        .into_iter()
        .map(|h| FirewallHintView {
            tool: h.tool,
            command: h.command,
        })
        .collect();
    let mut hints = Vec::new();
    if bind.is_loopback() {
        hints.push(format!(
            "the host only listens on {bind} (--bind, or bind in /etc/punktfunk/host.toml): other \
             devices cannot reach it; set it to 0.0.0.0 to stream over the network"
        ));
    } else if addresses.is_empty() {
        hints.push(
            "the box has no local network address: connect it to your router (Ethernet is best for streaming)"
                .to_owned(),
        );
    } else {
        hints.push(format!(
            "if Moonlight does not list this host by itself, add it by address: {}",
            addresses[0]
        ));
    }
    if firewalls.is_empty() {
        hints.push("no active firewall found on the box: nothing to open".to_owned());
    } else {
        hints.push("a firewall is active: run the command shown to let Moonlight in".to_owned());
    }
    Json(NetworkCheck {
        addresses: addresses.iter().map(ToString::to_string).collect(),
        ports,
        firewalls,
        hints,
    })
}
