//! The RTSP server (base + 21): one request per TCP connection, answered and closed,
//! in plaintext or in the encrypted framing (`rtspenc://`) the launch chose.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use punktfunk_core::gamestream::rtsp::{RtspRequest, RtspResponse};
use punktfunk_core::gamestream::rtsp_framing::{EncryptedHeader, HEADER_LEN, RtspCrypto};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::net::listener::{LimitedListener, Limits};
use crate::state::HostState;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The host's sealer of one launch, and the newest client sequence number it opened.
/// The sealer must keep counting across connections (an IV may never repeat under
/// one key); the client's numbers must only grow, so a captured message replayed
/// later, from anywhere, is refused.
#[derive(Debug)]
struct LaunchCrypto {
    generation: u64,
    crypto: RtspCrypto,
    last_client_seq: Option<u32>,
}

type Sealers = std::sync::Mutex<Option<LaunchCrypto>>;

/// Serves RTSP until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<HostState>) -> Result<()> {
    let sealers: Arc<Sealers> = Arc::default();
    let mut listener = LimitedListener::new(listener, Limits::RTSP, "RTSP");
    loop {
        let (tcp, peer, permit) = listener.accept().await;
        let (state, sealers) = (state.clone(), sealers.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) =
                tokio::time::timeout(READ_TIMEOUT, handle(tcp, peer, &state, &sealers)).await
            {
                tracing::debug!(%peer, "RTSP request timed out: {e}");
            }
        });
    }
}

async fn handle(mut tcp: TcpStream, peer: SocketAddr, state: &HostState, sealers: &Sealers) {
    let _ = tcp.set_nodelay(true);
    let app = state.apps().current().cloned();
    let refusal = match &app {
        // No launch, no stream: a plain refusal the client can read.
        None => Some(454),
        // The stream belongs to the paired device that launched it, at the address
        // its `/launch` or `/resume` came from; anyone else learns nothing.
        Some(app) if app.owner_ip != peer.ip().to_canonical() => {
            tracing::warn!(%peer, owner = %app.owner_ip, "refused RTSP from a device that did not launch the stream");
            Some(403)
        }
        Some(_) => None,
    };
    let Some(app) = app.filter(|_| refusal.is_none()) else {
        let status = refusal.unwrap_or(454);
        let _ = tcp
            .write_all(&RtspResponse::new(status, None).serialize())
            .await;
        let _ = tcp.shutdown().await;
        return;
    };
    let mut buf = Vec::with_capacity(4096);
    let reply = if app.encrypted_rtsp {
        read_encrypted(&mut tcp, &mut buf, &app.key, peer, state, &app, sealers).await
    } else {
        read_plain(&mut tcp, &mut buf, peer, state, &app)
            .await
            .map(|r| r.serialize())
    };
    if let Some(bytes) = reply {
        let _ = tcp.write_all(&bytes).await;
    }
    // The client reads until the connection closes.
    let _ = tcp.shutdown().await;
}

async fn read_plain(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    peer: SocketAddr,
    state: &HostState,
    app: &punktfunk_core::gamestream::apps::LaunchedApp,
) -> Option<RtspResponse> {
    loop {
        match RtspRequest::parse(buf) {
            Ok(Some((req, _))) => {
                tracing::debug!(method = req.method, target = req.target, "RTSP");
                return Some(state.streams.handle_rtsp(app, &req, peer));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::info!(%peer, "bad RTSP request: {e}");
                return Some(RtspResponse::new(400, None));
            }
        }
        let mut chunk = [0u8; 4096];
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn read_encrypted(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    key: &[u8; 16],
    peer: SocketAddr,
    state: &HostState,
    app: &punktfunk_core::gamestream::apps::LaunchedApp,
    sealers: &Sealers,
) -> Option<Vec<u8>> {
    // Whatever cannot be read as an authentic message gets a plaintext 400: a forger
    // learns nothing from it, and a confused client sees a clear refusal.
    let refuse = || Some(RtspResponse::new(400, None).serialize());
    let mut header = [0u8; HEADER_LEN];
    if let Err(e) = tcp.read_exact(&mut header).await {
        tracing::info!(%peer, "RTSP connection ended inside the frame header: {e}");
        return refuse();
    }
    let parsed = match EncryptedHeader::parse(&header) {
        Ok(h) => h,
        Err(e) => {
            tracing::info!(%peer, "refused RTSP framing: {e}");
            return refuse();
        }
    };
    buf.resize(parsed.len, 0);
    if let Err(e) = tcp.read_exact(buf).await {
        tracing::info!(%peer, "RTSP connection ended inside a message: {e}");
        return refuse();
    }
    let response = {
        let mut guard = sealers.lock().unwrap_or_else(|e| e.into_inner());
        if guard
            .as_ref()
            .is_none_or(|l| l.generation != app.generation)
        {
            *guard = Some(LaunchCrypto {
                generation: app.generation,
                crypto: RtspCrypto::host(key).ok()?,
                last_client_seq: None,
            });
        }
        let launch = guard.as_mut().expect("just set");
        if launch
            .last_client_seq
            .is_some_and(|last| parsed.seq <= last)
        {
            tracing::warn!(%peer, seq = parsed.seq, "refused a replayed encrypted RTSP message");
            return refuse();
        }
        if let Err(e) = launch.crypto.open(&parsed, buf) {
            tracing::info!(%peer, "RTSP message failed authentication: {e}");
            return refuse();
        }
        launch.last_client_seq = Some(parsed.seq);
        let crypto = &mut launch.crypto;
        let response = match RtspRequest::parse(buf) {
            Ok(Some((req, _))) => {
                tracing::debug!(method = req.method, target = req.target, "RTSP (encrypted)");
                state.streams.handle_rtsp(app, &req, peer)
            }
            _ => RtspResponse::new(400, None),
        };
        let mut out = Vec::new();
        crypto.seal(&response.serialize(), &mut out).ok()?;
        out
    };
    Some(response)
}
