//! The local control socket: how `punktfunk-host pin` reaches the running service.
//!
//! A Unix socket in the state directory, mode 0600, that also checks the peer's uid
//! (only the service's own user and root may talk to it): entering a PIN pairs a
//! device, so it must not be open to every local user. One JSON request per line, one
//! JSON reply per line.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::state::HostState;

/// A request over the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Enter the PIN a Moonlight client shows.
    Pin {
        /// The PIN.
        pin: String,
        /// A name for the device.
        name: Option<String>,
        /// Which waiting request the PIN is for (needed when several wait).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<u64>,
    },
    /// The pairing requests waiting for a PIN, one per line.
    Pairings,
    /// What runs: the app and the live stream.
    Status,
    /// Arm native (punktfunk/1) pairing and return the PIN to type on the client.
    PairNative,
    /// Rumble a controller on the streaming client, as a game writing force feedback
    /// to its virtual pad would (for the recording input backend and diagnostics).
    Rumble {
        /// Controller number.
        controller: u16,
        /// Low-frequency motor, 0..65535.
        low: u16,
        /// High-frequency motor, 0..65535.
        high: u16,
    },
}

/// The reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlReply {
    /// Whether the request succeeded.
    pub ok: bool,
    /// What happened, for a person to read.
    pub message: String,
}

/// Longest request line accepted.
const MAX_LINE: u64 = 4096;

/// Binds the socket at `path`, replacing a stale one, refusing if a live service
/// already owns it.
pub async fn bind(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            bail!(
                "another punktfunk-host is already running with this state directory (its control socket {} answers)",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing stale control socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(listener)
}

/// Answers control requests until the task is dropped.
pub async fn serve(listener: UnixListener, state: Arc<HostState>) -> Result<()> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let own_uid = unsafe { libc::getuid() };
    let mut backoff = std::time::Duration::from_millis(10);
    loop {
        // An accept error (out of descriptors under a flood, say) is retried: it
        // must never end the host.
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff = std::time::Duration::from_millis(10);
                stream
            }
            Err(e) => {
                tracing::warn!("control socket: accept failed, retrying in {backoff:?}: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
                continue;
            }
        };
        let allowed = stream
            .peer_cred()
            .map(|c| c.uid() == own_uid || c.uid() == 0)
            .unwrap_or(false);
        let state = state.clone();
        tokio::spawn(async move {
            if !allowed {
                tracing::warn!("refused a control-socket connection from another user");
                return;
            }
            if let Err(e) = handle(stream, &state).await {
                tracing::debug!("control socket: {e:#}");
            }
        });
    }
}

async fn handle(stream: UnixStream, state: &HostState) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read)
        .take(MAX_LINE)
        .read_line(&mut line)
        .await?;
    let reply = match serde_json::from_str::<ControlRequest>(&line) {
        Ok(ControlRequest::Pairings) => {
            let waiting = state.pairing.waiting();
            ControlReply {
                ok: true,
                message: if waiting.is_empty() {
                    "no device is waiting to pair".into()
                } else {
                    waiting
                        .iter()
                        .map(|w| format!("{w}, {} s left", w.expires_in_secs))
                        .collect::<Vec<_>>()
                        .join("\n")
                },
            }
        }
        Ok(ControlRequest::Pin { pin, name, request }) => {
            match state.pairing.pair_with_pin(&pin, name, request).await {
                Ok(device) => ControlReply {
                    ok: true,
                    message: format!("paired \"{}\"", device.name),
                },
                Err(e) => ControlReply {
                    ok: false,
                    message: e.to_string(),
                },
            }
        }
        Ok(ControlRequest::PairNative) => {
            let armed = state.native_pairing.arm();
            ControlReply {
                ok: true,
                message: format!(
                    "native pairing armed: enter PIN {} on the device (valid for {} s)",
                    armed.pin,
                    crate::pairing::native::PIN_TTL.as_secs()
                ),
            }
        }
        Ok(ControlRequest::Status) => ControlReply {
            ok: true,
            message: status(state).to_string(),
        },
        Ok(ControlRequest::Rumble {
            controller,
            low,
            high,
        }) => {
            let taken = state.streams.send_feedback(crate::input::Feedback::Rumble {
                controller,
                low,
                high,
            });
            ControlReply {
                ok: taken,
                message: if taken {
                    "rumble queued".into()
                } else {
                    "no stream is running".into()
                },
            }
        }
        Err(e) => ControlReply {
            ok: false,
            message: format!("malformed control request: {e}"),
        },
    };
    let mut out = serde_json::to_string(&reply)?;
    out.push('\n');
    write.write_all(out.as_bytes()).await?;
    Ok(())
}

/// The host's running state as JSON: every session (its app, its stream, its
/// display), plus `app`, `stream` and `session` of the newest one for tools that
/// know a single session.
fn status(state: &HostState) -> serde_json::Value {
    let apps: Vec<_> = state.apps().running().cloned().collect();
    let live = state.streams.streams();
    let stream_json = |s: &crate::stream::LiveStream| {
        serde_json::json!({
            "app_id": s.app_id,
            "width": s.width,
            "height": s.height,
            "fps": s.fps,
            "codec": s.codec,
            "frames": s.frames,
            "bitrate_kbps": s.bitrate_kbps,
            "latency_ms": s.latency_ms,
            "loss_percent": s.loss_percent,
            "idr_frames": s.idr_frames,
            "fec_percent": s.fec_percent,
            "malformed_packets": s.malformed_packets,
            "seconds": s.started.elapsed().as_secs_f64(),
        })
    };
    let native = state.streams.native_sessions().into_iter().map(|id| {
        serde_json::json!({
            "id": id,
            "protocol": "native",
            "display": state.display.session_status(id),
        })
    });
    let sessions: Vec<_> = apps
        .iter()
        .map(|a| {
            serde_json::json!({
                "id": a.session,
                "protocol": "gamestream",
                "client": a.owner,
                "app": { "id": a.app_id, "generation": a.generation },
                "stream": live.iter().find(|(id, _)| *id == a.session).map(|(_, s)| stream_json(s)),
                "display": state.display.session_status(a.session),
            })
        })
        .chain(native)
        .collect();
    let newest = apps.iter().max_by_key(|a| a.session);
    let app = newest.map(|a| serde_json::json!({ "id": a.app_id, "generation": a.generation }));
    let stream = newest
        .and_then(|a| live.iter().find(|(id, _)| *id == a.session))
        .or(live.last())
        .map(|(_, s)| stream_json(s));
    let panics = state.streams.thread_panics();
    // The display session: the newest running one, or how the last one ended (exit
    // code, reason).
    let session = newest
        .and_then(|a| state.display.session_status(a.session))
        .or_else(|| state.display.status());
    serde_json::json!({
        "app": app,
        "stream": stream,
        "sessions": sessions,
        "max_sessions": state.config.session.max_sessions,
        "unmatched_datagrams": state.streams.router().unmatched(),
        "stream_thread_panics": panics.count(),
        "last_stream_thread_panic": panics.last(),
        "session": session,
    })
}

/// Sends one request to the service listening at `path` and returns its reply.
pub async fn request(path: &Path, req: &ControlRequest, timeout: Duration) -> Result<ControlReply> {
    let stream = UnixStream::connect(path).await.with_context(|| {
        format!(
            "cannot reach the punktfunk service at {} (is `punktfunk-host serve` running with the same --state-dir, and are you its user or root?)",
            path.display()
        )
    })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    let mut reply = String::new();
    tokio::time::timeout(
        timeout,
        BufReader::new(read).take(MAX_LINE).read_line(&mut reply),
    )
    .await
    .context("the service did not answer in time")??;
    if reply.is_empty() {
        bail!("the service closed the connection without answering (permission denied?)");
    }
    serde_json::from_str(&reply).context("malformed reply from the service")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_one_json_object_per_line() {
        let req = ControlRequest::Pin {
            pin: "1234".into(),
            name: Some("TV".into()),
            request: None,
        };
        let text = serde_json::to_string(&req).unwrap();
        assert_eq!(text, r#"{"cmd":"pin","pin":"1234","name":"TV"}"#);
        assert_eq!(serde_json::from_str::<ControlRequest>(&text).unwrap(), req);
        assert!(serde_json::from_str::<ControlRequest>(r#"{"cmd":"rm -rf"}"#).is_err());
    }

    #[tokio::test]
    async fn a_live_socket_is_not_stolen_and_a_stale_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let live = bind(&path).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            bind(&path).await.is_err(),
            "a second service must not take over"
        );
        drop(live);
        // The file remains but nobody listens: the next start replaces it.
        assert!(path.exists());
        bind(&path).await.unwrap();
    }
}
