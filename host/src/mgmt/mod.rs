//! The web console and its management API, on the web port (base + 1), over HTTPS
//! with the host certificate.
//!
//! Every request first passes [`guard`]: the peer must be on the LAN (by default), the
//! `Host` header must name this box (DNS rebinding), and a state-changing request from
//! a browser must come from the console's own origin. The API (`/api/v1/...`) then
//! needs a logged-in admin ([`auth::AdminSession`]: session cookie, plus the CSRF token
//! on every state-changing request), except first-run setup, login and the OpenAPI
//! document. Everything else is the console's single-page app ([`assets`]).
//!
//! | module | endpoints |
//! |---|---|
//! | [`setup`] | `GET/POST /api/v1/setup` |
//! | [`auth`] | `/api/v1/auth/login`, `logout`, `session`, `password` |
//! | [`status`] | `GET /api/v1/status` |
//! | [`devices`] | `GET /api/v1/devices`, `PATCH/DELETE /api/v1/devices/{id}` |
//! | [`pairing`] | `GET /api/v1/pairing`, `POST /api/v1/pairing/pin`, `POST/DELETE /api/v1/pairing/native` |
//! | [`apps`] | `/api/v1/apps`, `/api/v1/apps/{id}`, `/api/v1/apps/{id}/box-art` |
//! | [`settings`] | `GET/PATCH /api/v1/settings` |
//! | [`system`] | `GET /api/v1/logs`, `GET /api/v1/network`, `POST /api/v1/restart` |
//! | [`openapi`] | `GET /api/openapi.json` |

pub mod access;
mod apps;
mod assets;
pub mod auth;
mod body_limit;
mod devices;
mod error;
mod extract;
mod openapi;
mod pairing;
mod settings;
pub mod setup;
mod status;
mod system;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::net::listener::{LimitedListener, Limits};
use crate::state::HostState;
use error::ApiError;

/// The peer of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// What the console's handlers share.
#[derive(Debug)]
pub struct Mgmt {
    /// The host.
    pub host: Arc<HostState>,
    /// Who may connect, and by which names.
    pub policy: access::Policy,
    /// The first-run setup code, while setup is pending.
    pub setup: setup::SetupCode,
    /// The console's files.
    pub assets: assets::Assets,
    /// The machine's own host name (the console also answers to it).
    pub machine_name: String,
}

impl Mgmt {
    /// Prepares the console: loads or creates the setup code (printing it) when no
    /// admin exists yet.
    pub async fn new(host: Arc<HostState>) -> Result<Arc<Self>> {
        let setup = setup::SetupCode::prepare(&host.config.state_dir, &host.store).await?;
        Ok(Arc::new(Self {
            policy: access::Policy::new(&host.config.web),
            assets: assets::Assets::from_config(&host.config.web),
            machine_name: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            setup,
            host,
        }))
    }
}

/// The checks every request passes before routing (see the module docs), and the
/// security headers every answer carries.
async fn guard(State(state): State<Arc<Mgmt>>, req: Request, next: Next) -> Response {
    let refuse = |e: access::Refusal| ApiError::new(StatusCode::FORBIDDEN, e.to_string());
    let Some(Peer(peer)) = req.extensions().get::<Peer>().copied() else {
        return ApiError::internal("request without a peer address").into_response();
    };
    if let Err(e) = state.policy.check_peer(peer.ip()) {
        tracing::debug!(%peer, "refused a web request from outside the allowed networks");
        return refuse(e).into_response();
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let Some(host) = host else {
        return ApiError::bad_request("the request has no Host header").into_response();
    };
    let current = state.host.hostname();
    let names = [
        current.as_str(),
        state.host.identity.hostname.as_str(),
        state.machine_name.as_str(),
    ];
    if let Err(e) = state.policy.check_host(&host, &names) {
        tracing::info!(%peer, host, "refused a web request for another host name");
        return refuse(e).into_response();
    }
    if auth::is_mutating(req.method()) {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .map(|o| o.to_str().unwrap_or("invalid"));
        let cross_site = req
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site");
        if cross_site || origin.is_some_and(|o| !access::same_origin(o, &host)) {
            tracing::info!(%peer, ?origin, "refused a cross-site request");
            return refuse(access::Refusal::Origin).into_response();
        }
    }
    let is_api = req.uri().path().starts_with("/api/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    // The app's own files only: no inline scripts, no framing, no plugins.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if is_api && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The whole console: API, OpenAPI document, app files, behind [`guard`].
pub fn router(mgmt: Arc<Mgmt>) -> Router {
    let (api, doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(setup::status, setup::complete))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::session))
        .routes(routes!(auth::change_password))
        .routes(routes!(status::status))
        .routes(routes!(devices::list))
        .routes(routes!(devices::rename, devices::revoke))
        .routes(routes!(pairing::status))
        .routes(routes!(pairing::pin))
        .routes(routes!(pairing::arm_native, pairing::disarm_native))
        .routes(routes!(apps::list, apps::create))
        .routes(routes!(apps::get, apps::update, apps::delete))
        .routes(routes!(
            apps::get_box_art,
            apps::put_box_art,
            apps::delete_box_art
        ))
        .routes(routes!(settings::get, settings::update))
        .routes(routes!(system::logs))
        .routes(routes!(system::network))
        .routes(routes!(system::restart))
        .split_for_parts();
    let doc = Arc::new(doc.to_json().unwrap_or_else(|e| {
        tracing::error!("the OpenAPI document does not serialize: {e}");
        "{}".to_owned()
    }));
    api.route(
        "/api/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    doc.as_str().to_owned(),
                )
            }
        }),
    )
    .fallback(assets::serve)
    .layer(DefaultBodyLimit::max(
        apps::MAX_BOX_ART + body_limit::MAX_BODY,
    ))
    .layer(axum::middleware::from_fn(body_limit::limit_bodies))
    .layer(axum::middleware::from_fn_with_state(mgmt.clone(), guard))
    .with_state(mgmt)
}

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the console over TLS on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<HostState>,
) -> Result<()> {
    let app = router(Mgmt::new(state).await?);
    let mut listener = LimitedListener::new(listener, Limits::WEB, "web console");
    loop {
        let (tcp, peer, permit) = listener.accept().await;
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                _ => return,
            };
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(Peer(peer));
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(64 * 1024);
            if let Err(e) = builder.serve_connection(TokioIo::new(tls), svc).await {
                tracing::debug!("web connection ended: {e}");
            }
        });
    }
}
