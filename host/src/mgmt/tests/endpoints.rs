//! What each endpoint does for a logged-in admin.

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use punktfunk_core::gamestream::nvhttp::query::Query;
use punktfunk_core::gamestream::nvhttp::requests::LaunchRequest;
use serde_json::json;

use super::*;
use crate::config::{AppConfig, FileConfig, WebConfig};
use crate::session::{SessionInfo, StreamProtocol};
use crate::store::{NewClient, Protocol};

const FP_DECK: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const FP_PHONE: &str = "2222222222222222222222222222222222222222222222222222222222222222";

async fn pair(f: &Fixture, name: &str, fp: &str) -> i64 {
    f.state
        .store
        .add_client(NewClient {
            name: name.into(),
            cert_pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into(),
            fingerprint: fp.into(),
            protocol: Protocol::GameStream,
        })
        .await
        .unwrap()
        .id
}

fn launch(f: &Fixture, owner: &str) {
    let q = Query::parse(
        "appid=1&mode=1280x720x60&rikey=00112233445566778899aabbccddeeff&rikeyid=7&corever=1",
    )
    .unwrap();
    let req = LaunchRequest::from_query(&q, false).unwrap();
    f.state
        .apps()
        .launch(&req, owner, std::net::Ipv4Addr::LOCALHOST.into(), true)
        .unwrap();
}

#[tokio::test]
async fn status_reports_host_and_live_sessions() {
    let f = fixture().await;
    let s = setup_admin(&f).await;
    pair(&f, "Deck", FP_DECK).await;
    pair(&f, "Phone", FP_PHONE).await;

    let a = req(Method::GET, "/api/v1/status")
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let st = a.json();
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(st["hostname"], "rig");
    assert_eq!(st["paired_devices"], 2);
    assert_eq!(st["sessions"], json!([]));
    let fp = st["cert_fingerprint"].as_str().unwrap();
    assert_eq!(fp.len(), 32 * 3 - 1);
    assert_eq!(
        fp.replace(':', "").to_lowercase(),
        f.state.identity.cert.fingerprint()
    );

    // A launched app shows as a session with the requested mode; a registered stream
    // with its measurements.
    launch(&f, FP_DECK);
    let stream = f.state.streams.register(SessionInfo {
        client_fingerprint: FP_PHONE.into(),
        client_name: "Phone".into(),
        app_id: 1,
        app_title: "Desktop".into(),
        protocol: StreamProtocol::Native,
    });
    stream.update(|st| {
        st.width = Some(2560);
        st.height = Some(1440);
        st.fps = Some(119.8);
        st.codec = Some("hevc".into());
        st.bitrate_kbps = Some(48_000);
        st.latency_ms = Some(6.5);
        st.loss_percent = Some(0.25);
        st.frames = Some(1234);
    });
    let st = req(Method::GET, "/api/v1/status")
        .session(&s)
        .send(&f.app)
        .await
        .json();
    let sessions = st["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let phone = &sessions[0];
    assert_eq!(phone["state"], "streaming");
    assert_eq!(phone["client_name"], "Phone");
    assert_eq!(phone["protocol"], "native");
    assert_eq!(phone["width"], 2560);
    assert_eq!(phone["bitrate_kbps"], 48_000);
    assert_eq!(phone["latency_ms"], 6.5);
    assert_eq!(phone["loss_percent"], 0.25);
    assert_eq!(phone["frames"], 1234);
    let deck = &sessions[1];
    assert_eq!(deck["state"], "launched");
    assert_eq!(deck["client_name"], "Deck");
    assert_eq!(deck["app_title"], "Desktop");
    assert_eq!(
        (deck["width"].clone(), deck["fps"].clone()),
        (json!(1280), json!(60.0))
    );
    assert!(deck["bitrate_kbps"].is_null() && deck["frames"].is_null());
    drop(stream);
    let st = req(Method::GET, "/api/v1/status")
        .session(&s)
        .send(&f.app)
        .await
        .json();
    assert_eq!(st["sessions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn devices_list_rename_and_revoke_ends_their_sessions() {
    let f = fixture().await;
    let s = setup_admin(&f).await;
    let deck = pair(&f, "Deck", FP_DECK).await;
    let phone = pair(&f, "Phone", FP_PHONE).await;

    let list = req(Method::GET, "/api/v1/devices")
        .session(&s)
        .send(&f.app)
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["name"], "Deck");
    assert_eq!(list[0]["fingerprint"], FP_DECK);
    assert_eq!(list[0]["protocol"], "gamestream");
    assert_eq!(list[0]["active"], false);

    let a = req(Method::PATCH, &format!("/api/v1/devices/{deck}"))
        .session(&s)
        .json(json!({"name": "  Steam Deck  "}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["name"], "Steam Deck");
    for bad in ["", "   ", &"x".repeat(65), "a\nb"] {
        let a = req(Method::PATCH, &format!("/api/v1/devices/{deck}"))
            .session(&s)
            .json(json!({"name": bad}))
            .send(&f.app)
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
    }
    let a = req(Method::PATCH, "/api/v1/devices/9999")
        .session(&s)
        .json(json!({"name": "x"}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // The deck is streaming and owns the running app.
    launch(&f, FP_DECK);
    let mut deck_stream = f.state.streams.register(SessionInfo {
        client_fingerprint: FP_DECK.into(),
        client_name: "Steam Deck".into(),
        app_id: 1,
        app_title: "Desktop".into(),
        protocol: StreamProtocol::GameStream,
    });
    let phone_stream = f.state.streams.register(SessionInfo {
        client_fingerprint: FP_PHONE.into(),
        client_name: "Phone".into(),
        app_id: 1,
        app_title: "Desktop".into(),
        protocol: StreamProtocol::GameStream,
    });
    let list = req(Method::GET, "/api/v1/devices")
        .session(&s)
        .send(&f.app)
        .await
        .json();
    assert_eq!(list[0]["active"], true);

    let a = req(Method::DELETE, &format!("/api/v1/devices/{deck}"))
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    // At once: the store no longer trusts it, its stream got the end signal, its app
    // was cancelled; the other device is untouched.
    assert_eq!(
        f.state.store.client_by_fingerprint(FP_DECK).await.unwrap(),
        None
    );
    let reason = tokio::time::timeout(Duration::from_secs(1), deck_stream.ended())
        .await
        .expect("the revoked device's stream is told to end");
    assert_eq!(reason, crate::session::EndReason::Revoked);
    assert!(f.state.apps().current(FP_DECK).is_none());
    assert_eq!(phone_stream.end_reason(), None);
    let list = req(Method::GET, "/api/v1/devices")
        .session(&s)
        .send(&f.app)
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], phone);

    let a = req(Method::DELETE, &format!("/api/v1/devices/{deck}"))
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // Revoking a device that does not own the running app leaves the app alone.
    launch(&f, FP_PHONE);
    let other = pair(&f, "Other", FP_DECK).await;
    let a = req(Method::DELETE, &format!("/api/v1/devices/{other}"))
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert!(f.state.apps().current(FP_PHONE).is_some());
}

#[tokio::test]
async fn pairing_endpoints() {
    let f = fixture().await;
    let s = setup_admin(&f).await;
    let st = req(Method::GET, "/api/v1/pairing")
        .session(&s)
        .send(&f.app)
        .await
        .json();
    assert_eq!(
        st,
        json!({"waiting_for_pin": false, "waiting": [], "native": null})
    );

    let a = req(Method::POST, "/api/v1/pairing/pin")
        .session(&s)
        .json(json!({"pin": "1234", "name": "TV"}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(
        a.error().contains("start pairing in Moonlight"),
        "{}",
        a.error()
    );
    let a = req(Method::POST, "/api/v1/pairing/pin")
        .session(&s)
        .json(json!({"pin": "12ab"}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Native pairing: arm, show the PIN, disarm.
    let a = req(Method::POST, "/api/v1/pairing/native")
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let pin = a.json()["pin"].as_str().unwrap().to_owned();
    assert_eq!(pin.len(), 6);
    assert!(a.json()["expires_at"].as_i64().unwrap() > crate::store::now_unix());
    let st = req(Method::GET, "/api/v1/pairing")
        .session(&s)
        .send(&f.app)
        .await
        .json();
    assert_eq!(st["native"]["pin"], pin.as_str());
    assert_eq!(f.state.native_pairing.current().unwrap().pin, pin);
    let a = req(Method::DELETE, "/api/v1/pairing/native")
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert!(f.state.native_pairing.current().is_none());
}

#[tokio::test]
async fn pin_entry_needs_a_login_even_from_the_box() {
    let f = fixture().await;
    let s = setup_admin(&f).await;
    for peer in ["127.0.0.1:5000", LAN_PEER] {
        let a = req(Method::POST, "/api/v1/pairing/pin")
            .peer(peer)
            .header("host", "127.0.0.1:47990")
            .json(json!({"pin": "1234"}))
            .send(&f.app)
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{peer}");
        let a = req(Method::GET, "/api/v1/pairing")
            .peer(peer)
            .header("host", "127.0.0.1:47990")
            .send(&f.app)
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{peer}");
    }
    // Logged in, from the box: allowed (nobody waits, so 404).
    let a = req(Method::POST, "/api/v1/pairing/pin")
        .peer("127.0.0.1:5000")
        .header("host", "127.0.0.1:47990")
        .session(&s)
        .json(json!({"pin": "1234"}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.error());
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    let mut wr = enc.write_header().unwrap();
    wr.write_image_data(&vec![200; (w * h * 3) as usize])
        .unwrap();
    drop(wr);
    out
}

#[tokio::test]
async fn apps_crud_and_box_art() {
    let file = FileConfig {
        apps: vec![AppConfig {
            title: "Steam".into(),
            command: Some("steam -gamepadui".into()),
            box_art: None,
        }],
        ..FileConfig::default()
    };
    let f = fixture_with(WebConfig::default(), file).await;
    let s = setup_admin(&f).await;

    let list = req(Method::GET, "/api/v1/apps")
        .session(&s)
        .send(&f.app)
        .await
        .json();
    let sources: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["title"].as_str().unwrap(),
                a["source"].as_str().unwrap(),
                a["editable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [("Desktop", "built_in", false), ("Steam", "config", false)]
    );

    let a = req(Method::POST, "/api/v1/apps")
        .session(&s)
        .json(json!({"title": " RetroArch ", "command": "retroarch -f"}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.error());
    let app = a.json();
    let id = app["id"].as_i64().unwrap();
    assert!(id >= 1000);
    assert_eq!(app["title"], "RetroArch");
    assert_eq!(app["source"], "added");
    assert_eq!(app["custom_box_art"], false);

    for (title, status) in [
        ("retroarch", StatusCode::CONFLICT),
        ("steam", StatusCode::CONFLICT),
        ("Desktop", StatusCode::CONFLICT),
        ("", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let a = req(Method::POST, "/api/v1/apps")
            .session(&s)
            .json(json!({"title": title}))
            .send(&f.app)
            .await;
        assert_eq!(a.status, status, "{title:?}: {}", a.error());
    }

    let a = req(Method::GET, &format!("/api/v1/apps/{id}"))
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.json()["command"], "retroarch -f");
    let a = req(Method::PATCH, &format!("/api/v1/apps/{id}"))
        .session(&s)
        .json(json!({"title": "Emulators", "command": ""}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.error());
    assert_eq!(a.json()["title"], "Emulators");
    assert!(a.json()["command"].is_null());

    // Built-in and config-file apps say where to change them.
    let a = req(Method::PATCH, "/api/v1/apps/1")
        .session(&s)
        .json(json!({"title": "Desk"}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert!(a.error().contains("built in"), "{}", a.error());
    let steam = list[1]["id"].as_i64().unwrap();
    let a = req(Method::DELETE, &format!("/api/v1/apps/{steam}"))
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert!(a.error().contains("config file"), "{}", a.error());

    // Box art: generated until uploaded; PNG only; the upload is what clients get.
    let a = req(Method::GET, &format!("/api/v1/apps/{id}/box-art"))
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers[header::CONTENT_TYPE], "image/png");
    let generated = a.body;
    let art = png(60, 80);
    let put = |ct: &str, body: Vec<u8>| {
        req(Method::PUT, &format!("/api/v1/apps/{id}/box-art"))
            .session(&s)
            .raw(ct, body)
    };
    let a = put("image/png", b"GIF89a not a png".to_vec())
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.error().contains("PNG"), "{}", a.error());
    let a = put("image/jpeg", art.clone()).send(&f.app).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let a = put("image/png", png(5000, 2)).send(&f.app).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let a = put(
        "image/png",
        vec![0; crate::mgmt::apps::MAX_BOX_ART + 100 * 1024],
    )
    .send(&f.app)
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    let a = put("image/png", art.clone()).send(&f.app).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a);
    let a = req(Method::GET, &format!("/api/v1/apps/{id}/box-art"))
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.body, art);
    assert_eq!(
        f.state.catalog.box_art(id as u32).await.unwrap().unwrap(),
        art,
        "Moonlight's /appasset serves the upload"
    );
    let a = req(Method::GET, &format!("/api/v1/apps/{id}"))
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.json()["custom_box_art"], true);
    let a = req(Method::DELETE, &format!("/api/v1/apps/{id}/box-art"))
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = req(Method::GET, &format!("/api/v1/apps/{id}/box-art"))
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.body, generated);

    let a = req(Method::DELETE, &format!("/api/v1/apps/{id}"))
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    for path in [
        format!("/api/v1/apps/{id}"),
        format!("/api/v1/apps/{id}/box-art"),
        "/api/v1/apps/99999999999".into(),
    ] {
        let a = req(Method::GET, &path).session(&s).send(&f.app).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn settings_validate_store_and_apply() {
    let f = fixture_with(WebConfig::default(), FileConfig::default()).await;
    let s = setup_admin(&f).await;
    let st = req(Method::GET, "/api/v1/settings")
        .session(&s)
        .send(&f.app)
        .await
        .json();
    assert_eq!(st["default_encoder"], "auto");
    assert_eq!(st["fec_percent"], 20);
    assert_eq!(st["port_base"], 47989);
    assert_eq!(st["port_base_locked"], false);
    assert_eq!(st["restart_required"], false);

    for (patch, field) in [
        (json!({"fec_percent": 90}), "fec_percent"),
        (json!({"bitrate_cap_kbps": 10}), "bitrate_cap_kbps"),
        (json!({"default_encoder": "h264_nvenc"}), "default_encoder"),
        (json!({"port_base": 2}), "port_base"),
        (json!({"hostname": "my rig"}), "hostname"),
    ] {
        let a = req(Method::PATCH, "/api/v1/settings")
            .session(&s)
            .json(patch.clone())
            .send(&f.app)
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{patch}");
        assert!(a.error().starts_with(field), "{}", a.error());
    }
    let a = req(Method::PATCH, "/api/v1/settings")
        .session(&s)
        .json(json!({"hostname": "den", "fec_percent": 35, "bitrate_cap_kbps": 80000, "port_base": 40000}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.error());
    let st = a.json();
    assert_eq!(
        (st["hostname"].clone(), st["fec_percent"].clone()),
        (json!("den"), json!(35))
    );
    assert_eq!(st["port_base_setting"], 40000);
    assert_eq!(st["restart_required"], true);
    // The name applies at once: to Moonlight's serverinfo and to the console's Host check.
    assert_eq!(f.state.hostname(), "den");
    let a = req(Method::GET, "/api/v1/settings")
        .header("host", "den.local:47990")
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let stored = crate::settings::HostSettings::load(&f.state.store, &f.state.config)
        .await
        .unwrap();
    assert_eq!(stored.bitrate_cap_kbps, 80000);

    // A config-file host name and a --port-base flag win and cannot be changed here.
    let fixed = fixture_with(
        WebConfig::default(),
        FileConfig {
            hostname: Some("fixed".into()),
            port_base: Some(41000),
            ..FileConfig::default()
        },
    )
    .await;
    let s = setup_admin(&fixed).await;
    for patch in [json!({"hostname": "x"}), json!({"port_base": 40000})] {
        let a = req(Method::PATCH, "/api/v1/settings")
            .session(&s)
            .json(patch)
            .send(&fixed.app)
            .await;
        assert_eq!(a.status, StatusCode::CONFLICT);
        assert!(a.error().contains("config file"), "{}", a.error());
    }
}

#[tokio::test]
async fn logs_network_and_restart() {
    let f = fixture().await;
    let s = setup_admin(&f).await;
    f.state
        .logs
        .push("WARN", "test", "a line from the host".into());
    let a = req(Method::GET, "/api/v1/logs?limit=1000")
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let lines = a.json()["lines"].as_array().unwrap().clone();
    let mine = lines
        .iter()
        .find(|l| l["message"] == "a line from the host")
        .expect("the pushed line is listed");
    assert_eq!(mine["level"], "WARN");
    let seq = mine["seq"].as_u64().unwrap();
    let a = req(Method::GET, &format!("/api/v1/logs?after={seq}"))
        .session(&s)
        .send(&f.app)
        .await;
    assert!(
        a.json()["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["seq"].as_u64().unwrap() > seq)
    );
    let a = req(Method::GET, "/api/v1/logs?limit=abc")
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);

    let a = req(Method::GET, "/api/v1/network")
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let net = a.json();
    let ports: Vec<_> = net["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_u64().unwrap(),
                p["protocol"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        (47984, "tcp"),
        (47989, "tcp"),
        (47990, "tcp"),
        (48010, "tcp"),
        (47998, "udp"),
        (47999, "udp"),
        (48000, "udp"),
    ] {
        assert!(
            ports.contains(&(want.0, want.1.to_owned())),
            "{want:?} in {ports:?}"
        );
    }
    assert!(!net["hints"].as_array().unwrap().is_empty());

    let a = req(Method::POST, "/api/v1/restart")
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert!(
        !f.state.lifecycle.restart_requested(),
        "not before the answer is out"
    );
    tokio::time::timeout(Duration::from_secs(3), f.state.lifecycle.restart_wanted())
        .await
        .expect("the restart is requested after the delay");
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let f = fixture().await;
    let a = req(Method::GET, "/api/openapi.json").send(&f.app).await;
    assert_eq!(a.status, StatusCode::OK);
    let doc = a.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["session_cookie"]["in"], "cookie");
    assert_eq!(schemes["session_cookie"]["name"], "__Host-pf_session");
    assert_eq!(schemes["csrf_token"]["in"], "header");
    let mut ids: Vec<String> = Vec::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            ids.push(op["operationId"].as_str().unwrap().to_owned());
        }
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "operation ids are unique");
    for path in [
        "/api/v1/setup",
        "/api/v1/auth/login",
        "/api/v1/status",
        "/api/v1/devices/{id}",
        "/api/v1/pairing/pin",
        "/api/v1/pairing/native",
        "/api/v1/apps/{id}/box-art",
        "/api/v1/settings",
        "/api/v1/logs",
        "/api/v1/restart",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
}
