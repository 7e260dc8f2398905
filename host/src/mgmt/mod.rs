//! The management API on the web port (base + 1), over HTTPS with the host
//! certificate.
//!
//! For now it has the pairing endpoints, answered on loopback only: `GET
//! /api/v1/pairing` (is a client waiting for its PIN?) and `POST /api/v1/pairing/pin`.
//! The web console's login, sessions and CSRF protection put the rest of the API (and
//! these, for the LAN) behind an admin account.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::extract::{Extension, Json, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::pairing::PinError;
use crate::state::HostState;

/// The peer of a connection, for the loopback check.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// `POST /api/v1/pairing/pin` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinBody {
    pin: String,
    #[serde(default)]
    name: Option<String>,
}

fn json_error(status: StatusCode, message: impl ToString) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": message.to_string() })),
    )
        .into_response()
}

async fn pairing_pin(
    State(state): State<Arc<HostState>>,
    Extension(Peer(peer)): Extension<Peer>,
    body: Result<Json<PinBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if !peer.ip().to_canonical().is_loopback() {
        return json_error(
            StatusCode::FORBIDDEN,
            "PIN entry over the network needs the web console's login; use the host itself",
        );
    }
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"pin\": \"1234\", \"name\": \"...\"}}: {e}"),
            );
        }
    };
    match state.pairing.pair_with_pin(&body.pin, body.name).await {
        Ok(device) => (
            StatusCode::OK,
            Json(serde_json::json!({ "paired": true, "name": device.name, "fingerprint": device.fingerprint })),
        )
            .into_response(),
        Err(e) => {
            let status = match e {
                PinError::NoPairingWaiting => StatusCode::NOT_FOUND,
                PinError::BadPin => StatusCode::UNPROCESSABLE_ENTITY,
                PinError::WrongPin => StatusCode::CONFLICT,
                PinError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                PinError::Failed(_) => StatusCode::BAD_GATEWAY,
            };
            json_error(status, e)
        }
    }
}

/// `GET /api/v1/pairing`: whether a client waits for its PIN (the console polls it to
/// show the PIN box at the right moment).
async fn pairing_status(
    State(state): State<Arc<HostState>>,
    Extension(Peer(peer)): Extension<Peer>,
) -> Response {
    if !peer.ip().to_canonical().is_loopback() {
        return json_error(
            StatusCode::FORBIDDEN,
            "the management API needs the web console's login",
        );
    }
    Json(serde_json::json!({ "waiting_for_pin": state.pairing.waiting_for_pin() })).into_response()
}

/// The API's routes.
pub fn router(state: Arc<HostState>) -> Router {
    Router::new()
        .route("/api/v1/pairing", get(pairing_status))
        .route("/api/v1/pairing/pin", post(pairing_pin))
        .with_state(state)
}

/// Serves the API over TLS on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<HostState>,
) -> Result<()> {
    let app = router(state);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("web accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    _ => return,
                };
            let svc = hyper::service::service_fn(move |req| {
                app.clone().layer(axum::Extension(Peer(peer))).oneshot(req)
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!("web connection ended: {e}");
            }
        });
    }
}
