//! nvhttp request handlers: route, check the client, answer in GameStream XML.
//!
//! Clients expect HTTP 200 with the outcome in the root's `status_code` for everything
//! they can cause by normal use (moonlight-python raises on any HTTP error status
//! before reading the XML). Requests no client would send (missing, oversized or
//! garbage parameters, unknown paths, other methods) get an HTTP 4xx with the same XML
//! shape, so they are refused loudly and never reach state.

use std::net::IpAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, header};
use punktfunk_core::gamestream::apps::{AppError, Launched, LaunchedApp};
use punktfunk_core::gamestream::nvhttp::query::{Query, QueryError};
use punktfunk_core::gamestream::nvhttp::requests::{DisplayMode, LaunchRequest, PairRequest};
use punktfunk_core::gamestream::nvhttp::xml::{self, XmlReply};
use punktfunk_core::gamestream::nvhttp::{APP_VERSION, GFE_VERSION, scm};

use super::{Body, ConnInfo};
use crate::capture::SourceSetting;
use crate::crash_point::{self, CrashPoint};
use crate::net::iface;
use crate::session::LaunchLabel;
use crate::settings::HostSettings;
use crate::state::HostState;
use crate::store::now_unix;

/// The message Sunshine sends unpaired clients; Moonlight shows it.
const NOT_PAIRED: &str = "The client is not authorized. Certificate verification failed.";

fn xml(status: StatusCode, reply: XmlReply) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
        .body(Full::new(Bytes::from(reply.render())))
        .expect("static headers are valid")
}

fn ok(reply: XmlReply) -> Response<Body> {
    xml(StatusCode::OK, reply)
}

fn bad_request(err: &QueryError) -> Response<Body> {
    xml(
        StatusCode::BAD_REQUEST,
        XmlReply::error(400, &err.to_string()),
    )
}

fn internal(err: impl std::fmt::Display) -> Response<Body> {
    tracing::error!("nvhttp: {err}");
    xml(
        StatusCode::INTERNAL_SERVER_ERROR,
        XmlReply::error(500, "internal error; see the host's log"),
    )
}

/// Routes one request. nvhttp requests carry no body, so any body type will do.
pub async fn handle<B>(state: &HostState, conn: &ConnInfo, req: Request<B>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return xml(
            StatusCode::METHOD_NOT_ALLOWED,
            XmlReply::error(405, "nvhttp only answers GET"),
        );
    }
    let path = req.uri().path().to_owned();
    let query = match Query::parse(req.uri().query().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return bad_request(&e),
    };
    if conn.secure {
        let Some(fp) = conn.client_fingerprint.as_deref() else {
            return ok(XmlReply::error(401, NOT_PAIRED));
        };
        match state.store.client_by_fingerprint(fp).await {
            Ok(Some(_)) => {
                if let Err(e) = state.store.touch_client(fp, now_unix()).await {
                    tracing::warn!("could not record when a client was last seen: {e}");
                }
            }
            Ok(None) => {
                tracing::info!(peer = %conn.peer, path, "refused an unpaired client");
                return ok(XmlReply::error(401, NOT_PAIRED));
            }
            Err(e) => return internal(e),
        }
    }
    match (path.as_str(), conn.secure) {
        ("/serverinfo", _) => serverinfo(state, conn),
        ("/pair", _) => pair(state, conn, &query).await,
        ("/unpair", false) => {
            // Over plain HTTP nothing identifies the client (every Moonlight sends the
            // same uniqueid): this can only abandon the pairing in progress from the
            // requester's own address.
            state.pairing.client_aborted(conn.peer.ip());
            ok(XmlReply::ok())
        }
        ("/unpair", true) => unpair(state, conn).await,
        ("/applist", true) => applist(state).await,
        ("/appasset", true) => appasset(state, &query).await,
        ("/launch", true) => launch(state, conn, &query, false).await,
        ("/resume", true) => launch(state, conn, &query, true).await,
        ("/cancel", true) => cancel(state, conn).await,
        ("/applist" | "/appasset" | "/launch" | "/resume" | "/cancel", false) => xml(
            StatusCode::FORBIDDEN,
            XmlReply::error(403, "this request needs the HTTPS port and a paired client"),
        ),
        _ => xml(StatusCode::NOT_FOUND, XmlReply::error(404, "Not found")),
    }
}

fn local_ip(conn: &ConnInfo) -> IpAddr {
    match conn.local.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn serverinfo(state: &HostState, conn: &ConnInfo) -> Response<Body> {
    let ports = state.config.ports;
    let codecs = state.encoders.codec_mode_support();
    // Each client sees its own app: Moonlight resumes its own session and launches
    // beside other clients' (an unpaired request sees none).
    let current = state
        .apps()
        .current_game(conn.client_fingerprint.as_deref().filter(|_| conn.secure));
    let local = local_ip(conn);
    let mac = if conn.secure {
        iface::mac_for(local)
    } else {
        "00:00:00:00:00:00".to_owned()
    };
    let reply = XmlReply::ok()
        .elem("hostname", state.hostname())
        .elem("appversion", APP_VERSION)
        .elem("GfeVersion", GFE_VERSION)
        .elem("uniqueid", &state.identity.unique_id)
        .elem("HttpsPort", ports.https)
        .elem("ExternalPort", ports.http)
        .elem(
            "MaxLumaPixelsHEVC",
            if codecs & scm::HEVC != 0 {
                "1869449984"
            } else {
                "0"
            },
        )
        .elem("mac", mac)
        .elem("LocalIP", local)
        .elem("ServerCodecModeSupport", codecs)
        .elem("PairStatus", u8::from(conn.secure))
        .elem("currentgame", current)
        .elem(
            "state",
            if current != 0 {
                "SUNSHINE_SERVER_BUSY"
            } else {
                "SUNSHINE_SERVER_FREE"
            },
        );
    ok(reply)
}

async fn pair(state: &HostState, conn: &ConnInfo, query: &Query) -> Response<Body> {
    let request = match PairRequest::from_query(query) {
        Ok(r) => r,
        Err(e) => return bad_request(&e),
    };
    let pairing = &state.pairing;
    let from = conn.peer.ip();
    let result = match request {
        PairRequest::GetServerCert { salt, client_cert } => pairing
            .get_server_cert(&salt, &client_cert, from, device_name(query))
            .await
            .map(|cert| XmlReply::ok().elem("paired", 1).elem("plaincert", cert)),
        PairRequest::ClientChallenge(c) => pairing.client_challenge(from, &c).map(|r| {
            XmlReply::ok()
                .elem("paired", 1)
                .elem("challengeresponse", r)
        }),
        PairRequest::ServerChallengeResp(r) => pairing
            .server_challenge_resp(from, &r)
            .map(|s| XmlReply::ok().elem("pairingsecret", s).elem("paired", 1)),
        PairRequest::ClientPairingSecret(s) => pairing
            .client_pairing_secret(from, &s)
            .await
            .map(|paired| XmlReply::ok().elem("paired", u8::from(paired))),
        PairRequest::PairChallenge => {
            // Reaching this handler over TLS means the certificate is paired.
            return if conn.secure {
                // The client sends this only after reading phase 4's `paired=1`.
                crash_point::reached(CrashPoint::AfterReply);
                ok(XmlReply::ok().elem("paired", 1))
            } else {
                ok(XmlReply::error(401, "pairchallenge needs the HTTPS port").elem("paired", 0))
            };
        }
    };
    match result {
        Ok(reply) => ok(reply),
        Err(e) => {
            tracing::info!("pairing request refused: {e}");
            ok(XmlReply::error(e.status_code(), &e.to_string()).elem("paired", 0))
        }
    }
}

/// The name a pairing client gives itself (`devicename`), cut to something a list can
/// show: at most 64 printable characters.
fn device_name(query: &Query) -> Option<String> {
    let name: String = query
        .get("devicename")?
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

async fn unpair(state: &HostState, conn: &ConnInfo) -> Response<Body> {
    let Some(fp) = conn.client_fingerprint.as_deref() else {
        return ok(XmlReply::error(401, NOT_PAIRED));
    };
    match state.store.remove_client_by_fingerprint(fp).await {
        Ok(_) => {
            tracing::info!(fingerprint = fp, "a client unpaired itself");
            ok(XmlReply::ok())
        }
        Err(e) => internal(e),
    }
}

async fn applist(state: &HostState) -> Response<Body> {
    let apps = match state.catalog.list().await {
        Ok(a) => a,
        Err(e) => return internal(format!("{e:#}")),
    };
    // Where Sunshine says it (nvhttp.cpp, per app): 1 once a 10-bit encoder passed the
    // start-up probe. The client's actual switch is ServerCodecModeSupport's Main10
    // bits in serverinfo; this one only lets a client show HDR as available.
    let hdr = u8::from(state.encoders.ten_bit_supported());
    let mut reply = XmlReply::ok();
    for app in apps {
        reply = reply.raw(&xml::element(
            "App",
            &[
                ("IsHdrSupported", &hdr),
                ("AppTitle", &app.title),
                ("ID", &app.id),
            ],
        ));
    }
    ok(reply)
}

async fn appasset(state: &HostState, query: &Query) -> Response<Body> {
    let id: u32 = match query.parse_req("appid") {
        Ok(id) => id,
        Err(e) => return bad_request(&e),
    };
    match state.catalog.box_art(id).await {
        Ok(Some(png)) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "image/png")
            .body(Full::new(Bytes::from(png)))
            .expect("static headers are valid"),
        Ok(None) => xml(
            StatusCode::NOT_FOUND,
            XmlReply::error(404, "Unknown app id"),
        ),
        Err(e) => internal(format!("{e:#}")),
    }
}

async fn launch(state: &HostState, conn: &ConnInfo, query: &Query, resume: bool) -> Response<Body> {
    let req = match LaunchRequest::from_query(query, resume) {
        Ok(r) => r,
        Err(e) => return bad_request(&e),
    };
    let owner = conn.client_fingerprint.clone().unwrap_or_default();
    let known = match req.app_id {
        Some(id) if !resume => match state.catalog.get(id).await {
            Ok(app) => app.is_some(),
            Err(e) => return internal(format!("{e:#}")),
        },
        _ => true,
    };
    let outcome = if resume {
        state.apps().resume(&req, &owner, conn.peer.ip()).cloned()
    } else {
        // Launching the app this client already runs re-attaches to it. The limit
        // counts punktfunk/1's sessions too.
        state
            .streams
            .launch(&req, &owner, conn.peer.ip(), known)
            .map(|(app, how)| {
                if how == Launched::Resumed {
                    tracing::info!(
                        session = app.session,
                        "the client launched its running app: resuming it"
                    );
                }
                app
            })
    };
    let field = if resume { "resume" } else { "gamesession" };
    if let Err(e @ AppError::SessionLimit { .. }) = &outcome {
        tracing::warn!(peer = %conn.peer, "launch refused: {e}");
    }
    let outcome = match outcome {
        Ok(app) => match start_display(state, &app, &req, resume).await {
            Ok(()) => Ok(app),
            Err(message) => {
                return ok(XmlReply::error(500, &message).elem(field, 0));
            }
        },
        Err(e) => Err(e),
    };
    match outcome {
        Ok(app) => {
            let scheme = if app.encrypted_rtsp {
                "rtspenc"
            } else {
                "rtsp"
            };
            let ip = match local_ip(conn) {
                IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            };
            tracing::info!(app = app.app_id, resume, mode = ?app.mode, "session started");
            label_launch(state, &app).await;
            ok(XmlReply::ok()
                .elem(
                    "sessionUrl0",
                    format!("{scheme}://{ip}:{}", state.config.ports.rtsp),
                )
                .elem(field, 1))
        }
        Err(e) => ok(XmlReply::error(e.status_code(), &e.to_string()).elem(field, 0)),
    }
}

/// The mode a launch without `mode=` gets.
const DEFAULT_MODE: DisplayMode = DisplayMode {
    width: 1920,
    height: 1080,
    fps: 60,
};

/// Starts the launched app's display session (or moves it to the resume's mode) and
/// tells the stream manager what to capture. On failure the launch is undone and the
/// returned message is what Moonlight shows.
async fn start_display(
    state: &HostState,
    app: &LaunchedApp,
    req: &LaunchRequest,
    resume: bool,
) -> Result<(), String> {
    let display = state.display.clone();
    let session = app.session;
    // A resume (or a launch of the app already running) keeps the session's display.
    let running = display.session_status(session).is_some();
    let outcome = if resume || running {
        let Some(mode) = req.mode else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || display.resume(session, mode).map(|_| ())).await
    } else {
        let command = match state.catalog.get(app.app_id).await {
            Ok(a) => a.and_then(|a| a.command),
            Err(e) => {
                state.apps().end_session(session);
                return Err(format!("reading the app catalog: {e:#}"));
            }
        };
        let mode = app.mode.unwrap_or(DEFAULT_MODE);
        if state.config.stream.source != SourceSetting::TestPattern {
            // A configured source (`--source pipewire:...`) is what streams: no
            // compositor is started for the app.
            tracing::info!(source = ?state.config.stream.source, "streaming the configured source");
            return Ok(());
        }
        let channels = u8::try_from(app.audio_channels).unwrap_or(2);
        tokio::task::spawn_blocking(move || {
            display.launch(session, mode, command, channels).map(|_| ())
        })
        .await
    };
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::error!(app = app.app_id, resume, "the app's session failed: {e}");
            if !resume && !running {
                state.apps().end_session(session);
            }
            Err(format!("Failed to start the app: {e}"))
        }
        Err(e) => {
            state.apps().end_session(session);
            Err(format!("internal error starting the session: {e}"))
        }
    }
}

/// Tells the stream manager how status pages name this launch's stream, and the
/// console's settings (bitrate cap, FEC share) it streams with.
async fn label_launch(state: &HostState, app: &LaunchedApp) {
    let client_name = match state.store.client_by_fingerprint(&app.owner).await {
        Ok(Some(c)) => c.name,
        _ => format!("Moonlight {}", app.owner.get(..8).unwrap_or("")),
    };
    let app_title = match state.catalog.get(app.app_id).await {
        Ok(Some(a)) => a.title,
        _ => format!("App {}", app.app_id),
    };
    let settings = match HostSettings::load(&state.store, &state.config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("reading the stream settings failed, using defaults: {e}");
            HostSettings::defaults(&state.config)
        }
    };
    state.streams.label_launch(
        app.session,
        app.generation,
        LaunchLabel {
            client_name,
            app_title,
            settings,
        },
    );
}

/// `/cancel`: quits the app the requesting device launched; other devices' sessions
/// are left running.
async fn cancel(state: &HostState, conn: &ConnInfo) -> Response<Body> {
    let owner = conn.client_fingerprint.as_deref().unwrap_or_default();
    let cancelled = state.apps().cancel_owned(owner);
    if let Some(app) = cancelled {
        // The stream's threads and the compositor end off the runtime, and no lock
        // is held while they do.
        let stopping = state.streams.stop(app.session, "the client quit the app");
        let display = state.display.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(s) = stopping {
                s.join();
            }
            display.stop(app.session, "the client quit the app");
        })
        .await;
        tracing::info!(app = app.app_id, session = app.session, "session cancelled");
    }
    ok(XmlReply::ok().elem("cancel", 1))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
