//! nvhttp: GameStream's HTTP (base port) and HTTPS (base - 5) servers.
//!
//! Plain HTTP serves `/serverinfo` and the pairing phases. HTTPS requires a client
//! certificate (see `tls.rs`) and serves everything else, but only to certificates in
//! the paired store, checked on every request so that a revoked client is refused at
//! once; an unpaired client gets `status_code="401"` as Moonlight expects.

mod handlers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use punktfunk_core::crypto::rsa::sha256_hex;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::net::listener::{LimitedListener, Limits};
use crate::state::HostState;

/// A reply body.
pub type Body = Full<Bytes>;

/// What a handler knows about the connection a request came in on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Whether this is the TLS port.
    pub secure: bool,
    /// SHA-256 of the client certificate's DER (TLS port only).
    pub client_fingerprint: Option<String>,
    /// Our end of the connection: its address is what `LocalIP` and `sessionUrl0` name.
    pub local: SocketAddr,
    /// The client's address.
    pub peer: SocketAddr,
}

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn builder() -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024);
    b
}

async fn serve_conn<I>(io: I, state: Arc<HostState>, conn: ConnInfo)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let (state, conn) = (state.clone(), conn.clone());
        async move { Ok::<_, std::convert::Infallible>(handlers::handle(&state, &conn, req).await) }
    });
    if let Err(e) = builder().serve_connection(TokioIo::new(io), svc).await {
        tracing::debug!("nvhttp connection ended: {e}");
    }
}

/// Serves plain HTTP on `listener` until the task is dropped.
pub async fn serve_http(listener: TcpListener, state: Arc<HostState>) -> Result<()> {
    let mut listener = LimitedListener::new(listener, Limits::WEB, "GameStream HTTP");
    loop {
        let (tcp, peer, permit) = listener.accept().await;
        let Ok(local) = tcp.local_addr() else {
            continue;
        };
        let conn = ConnInfo {
            secure: false,
            client_fingerprint: None,
            local,
            peer,
        };
        let state = state.clone();
        tokio::spawn(async move {
            serve_conn(tcp, state, conn).await;
            drop(permit);
        });
    }
}

/// Serves HTTPS on `listener` until the task is dropped.
pub async fn serve_https(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<HostState>,
) -> Result<()> {
    let mut listener = LimitedListener::new(listener, Limits::WEB, "GameStream HTTPS");
    loop {
        let (tcp, peer, permit) = listener.accept().await;
        let Ok(local) = tcp.local_addr() else {
            continue;
        };
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let client_fingerprint = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| sha256_hex(c.as_ref()));
            let conn = ConnInfo {
                secure: true,
                client_fingerprint,
                local,
                peer,
            };
            serve_conn(tls, state, conn).await;
        });
    }
}
