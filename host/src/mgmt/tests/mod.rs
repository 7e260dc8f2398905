//! The management API in-process: the real router, store (a SQLite file), pairing
//! manager and host state, driven request by request with the peer address and `Host`
//! header a browser on the LAN would send.

mod auth;
mod endpoints;
mod guard;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::{Mgmt, Peer, router};
use crate::catalog::Catalog;
use crate::config::{Config, ConfigArgs, FileConfig, WebConfig};
use crate::encode::probe::Encoders;
use crate::identity::HostIdentity;
use crate::pairing::PairingManager;
use crate::session::SessionManager;
use crate::session::router::MediaSockets;
use crate::state::HostState;
use crate::store::Store;

pub const PASSWORD: &str = "correct horse battery";
pub const LAN_PEER: &str = "192.168.1.50:51000";
pub const HOST: &str = "192.168.1.2:47990";

pub struct Fixture {
    pub state: Arc<HostState>,
    pub app: Router,
    pub dir: tempfile::TempDir,
}

/// A host with a fresh state directory and the given `[web]` and top-level config.
pub async fn fixture_with(web: WebConfig, file: FileConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    fixture_in(dir, web, file).await
}

pub async fn fixture_in(dir: tempfile::TempDir, web: WebConfig, file: FileConfig) -> Fixture {
    let args = ConfigArgs {
        state_dir: Some(dir.path().to_owned()),
        ..Default::default()
    };
    let mut config = Config::resolve(FileConfig { web, ..file }, &args).unwrap();
    // No compositor in the console's tests: launches stream the test pattern.
    config.display.backend = crate::display::Backend::None;
    let store = Store::open(&config.store_path()).await.unwrap();
    let identity = HostIdentity::load_or_create(dir.path(), &store, Some("rig"))
        .await
        .unwrap();
    let pairing = PairingManager::new(
        Arc::new(identity.server_identity().unwrap()),
        store.clone(),
        Duration::from_millis(300),
        Duration::from_secs(1),
    );
    let catalog = Catalog::new(&config.apps, store.clone());
    let streams = SessionManager::new(
        config.clone(),
        Encoders::default(),
        MediaSockets::bind_ephemeral().unwrap(),
    )
    .unwrap();
    let state = HostState::new(
        config,
        identity,
        store,
        pairing,
        catalog,
        Encoders::default(),
        streams,
    );
    let mgmt = Mgmt::new(state.clone()).await.unwrap();
    let app = router(mgmt);
    Fixture { state, app, dir }
}

pub async fn fixture() -> Fixture {
    fixture_with(WebConfig::default(), FileConfig::default()).await
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: not JSON: {:?}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }

    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// A request builder with the defaults of a LAN browser.
pub struct Req {
    method: Method,
    path: String,
    peer: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

pub fn req(method: Method, path: &str) -> Req {
    Req {
        method,
        path: path.to_owned(),
        peer: LAN_PEER.to_owned(),
        headers: vec![("host".into(), HOST.into())],
        body: Vec::new(),
    }
}

impl Req {
    pub fn peer(mut self, peer: &str) -> Self {
        self.peer = peer.to_owned();
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case(k));
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn json(self, body: Value) -> Self {
        let mut r = self.header("content-type", "application/json");
        r.body = serde_json::to_vec(&body).unwrap();
        r
    }

    pub fn raw(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self = self.header("content-type", content_type);
        self.body = body;
        self
    }

    pub fn session(self, s: &Session) -> Self {
        self.header(
            "cookie",
            &format!("{}={}", super::auth::SESSION_COOKIE, s.token),
        )
        .header("x-csrf-token", &s.csrf)
    }

    pub async fn send(self, app: &Router) -> Answer {
        let mut b = Request::builder().method(self.method).uri(&self.path);
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        let mut request = b.body(Body::from(self.body)).unwrap();
        let peer: SocketAddr = self.peer.parse().unwrap();
        request.extensions_mut().insert(Peer(peer));
        let resp = app.clone().oneshot(request).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }
}

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub csrf: String,
}

/// The session cookie's value from a `Set-Cookie`.
pub fn cookie_token(a: &Answer) -> String {
    let c = a
        .headers
        .get(header::SET_COOKIE)
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap();
    let (pair, _) = c.split_once(';').unwrap();
    pair.split_once('=').unwrap().1.to_owned()
}

/// The setup code the host wrote to its state directory.
pub fn setup_code(f: &Fixture) -> String {
    std::fs::read_to_string(f.dir.path().join(super::setup::SETUP_CODE_FILE))
        .unwrap()
        .trim()
        .to_owned()
}

/// Runs first-run setup (admin "admin") and returns the logged-in session.
pub async fn setup_admin(f: &Fixture) -> Session {
    let a = req(Method::POST, "/api/v1/setup")
        .json(serde_json::json!({
            "setup_code": setup_code(f),
            "username": "admin",
            "password": PASSWORD,
        }))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.error());
    Session {
        token: cookie_token(&a),
        csrf: a.json()["csrf_token"].as_str().unwrap().to_owned(),
    }
}

/// Every operation in the OpenAPI document: (method, path with `{id}` filled in,
/// whether it declares a security requirement).
pub fn operations(doc: &Value) -> Vec<(Method, String, bool)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let secured = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty());
            ops.push((method, path.replace("{id}", "1000"), secured));
        }
    }
    ops
}
