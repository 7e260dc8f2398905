//! The RTSP server (base + 21): one request per TCP connection, answered and closed,
//! in plaintext or in the encrypted framing (`rtspenc://`) the launch chose.
//!
//! Several clients may stream at once, each in its own session: a request is served
//! for the session launched from the address it comes from. Where several sessions
//! share an address (two clients on one machine), an encrypted request belongs to
//! the session whose key authenticates it; a plaintext one to the session still
//! negotiating, the newest first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use punktfunk_core::gamestream::apps::LaunchedApp;
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

/// Each session's RTSP crypto, by session id.
type Sealers = std::sync::Mutex<HashMap<u64, LaunchCrypto>>;

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

/// The sessions launched from `peer`'s address, newest first, those still
/// negotiating before those already streaming.
fn candidates(state: &HostState, peer: SocketAddr) -> Vec<LaunchedApp> {
    let ip = peer.ip().to_canonical();
    let mut apps: Vec<LaunchedApp> = state
        .apps()
        .running()
        .filter(|a| a.owner_ip == ip)
        .cloned()
        .collect();
    apps.sort_by_key(|a| {
        (
            !state.streams.negotiating(a),
            std::cmp::Reverse(a.generation),
        )
    });
    apps
}

async fn handle(mut tcp: TcpStream, peer: SocketAddr, state: &Arc<HostState>, sealers: &Sealers) {
    let _ = tcp.set_nodelay(true);
    let apps = candidates(state, peer);
    if apps.is_empty() {
        // No launch, no stream: a plain refusal the client can read. A stream that
        // belongs to another device, at another address: it learns nothing.
        let status = if state.apps().running().next().is_none() {
            454
        } else {
            tracing::warn!(%peer, "refused RTSP from a device that did not launch a stream");
            403
        };
        let _ = tcp
            .write_all(&RtspResponse::new(status, None).serialize())
            .await;
        let _ = tcp.shutdown().await;
        return;
    }
    // An encrypted message starts with the encrypted bit; a plaintext one with a
    // method name in ASCII.
    let mut first = [0u8; 1];
    let encrypted = match tcp.peek(&mut first).await {
        Ok(1) => first[0] & 0x80 != 0,
        _ => apps[0].encrypted_rtsp,
    };
    let mut buf = Vec::with_capacity(4096);
    let reply = if encrypted {
        read_encrypted(&mut tcp, &mut buf, peer, state, &apps, sealers).await
    } else {
        // A session launched encrypted never takes plaintext (no downgrade).
        match apps.iter().find(|a| !a.encrypted_rtsp) {
            Some(app) => read_plain(&mut tcp, &mut buf, peer, state, app)
                .await
                .map(|r| r.serialize()),
            None => Some(RtspResponse::new(400, None).serialize()),
        }
    };
    if let Some(bytes) = reply {
        let _ = tcp.write_all(&bytes).await;
    }
    // The client reads until the connection closes.
    let _ = tcp.shutdown().await;
}

/// Answers `req` for `app`'s session off the async runtime (PLAY starts threads and
/// may change the display's mode).
async fn respond(
    state: &Arc<HostState>,
    app: &LaunchedApp,
    req: RtspRequest,
    peer: SocketAddr,
) -> RtspResponse {
    let (s, a) = (state.clone(), app.clone());
    let cseq = req.cseq().map(str::to_owned);
    tokio::task::spawn_blocking(move || s.streams.handle_rtsp(&a, &req, peer))
        .await
        .unwrap_or_else(|e| {
            tracing::error!("the RTSP handler failed: {e}");
            RtspResponse::new(500, cseq.as_deref())
        })
}

async fn read_plain(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    peer: SocketAddr,
    state: &Arc<HostState>,
    app: &LaunchedApp,
) -> Option<RtspResponse> {
    loop {
        match RtspRequest::parse(buf) {
            Ok(Some((req, _))) => {
                tracing::debug!(method = req.method, target = req.target, "RTSP");
                return Some(respond(state, app, req, peer).await);
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
    peer: SocketAddr,
    state: &Arc<HostState>,
    apps: &[LaunchedApp],
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
    // The session whose key authenticates the message is the one it belongs to.
    let opened = {
        let mut guard = sealers.lock().unwrap_or_else(|e| e.into_inner());
        // Sessions that ended take their keys with them.
        let live: Vec<u64> = state.apps().running().map(|a| a.session).collect();
        guard.retain(|id, _| live.contains(id));
        let mut opened = None;
        for app in apps.iter().filter(|a| a.encrypted_rtsp) {
            if guard
                .get(&app.session)
                .is_none_or(|l| l.generation != app.generation)
            {
                guard.insert(
                    app.session,
                    LaunchCrypto {
                        generation: app.generation,
                        crypto: RtspCrypto::host(&app.key).ok()?,
                        last_client_seq: None,
                    },
                );
            }
            let launch = guard.get_mut(&app.session)?;
            let mut plain = buf.clone();
            if launch.crypto.open(&parsed, &mut plain).is_err() {
                continue;
            }
            if launch
                .last_client_seq
                .is_some_and(|last| parsed.seq <= last)
            {
                tracing::warn!(%peer, seq = parsed.seq, "refused a replayed encrypted RTSP message");
                return refuse();
            }
            launch.last_client_seq = Some(parsed.seq);
            opened = Some((app.clone(), plain));
            break;
        }
        opened
    };
    let Some((app, plain)) = opened else {
        tracing::info!(%peer, "RTSP message failed authentication");
        return refuse();
    };
    let response = match RtspRequest::parse(&plain) {
        Ok(Some((req, _))) => {
            tracing::debug!(method = req.method, target = req.target, "RTSP (encrypted)");
            respond(state, &app, req, peer).await
        }
        _ => RtspResponse::new(400, None),
    };
    let mut out = Vec::new();
    let mut guard = sealers.lock().unwrap_or_else(|e| e.into_inner());
    let launch = guard.get_mut(&app.session)?;
    launch.crypto.seal(&response.serialize(), &mut out).ok()?;
    Some(out)
}
