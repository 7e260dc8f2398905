//! The checks before routing: LAN-only, Host (DNS rebinding), Origin, and the
//! security headers; plus the console's files.

use axum::http::{Method, StatusCode, header};
use serde_json::json;

use super::*;
use crate::config::{FileConfig, WebAccess, WebConfig};

#[tokio::test]
async fn only_the_lan_may_connect_unless_configured() {
    let f = fixture().await;
    for peer in [
        "127.0.0.1:1",
        "10.0.0.9:1",
        "[fd00::5]:1",
        "[::ffff:192.168.0.3]:1",
    ] {
        let a = req(Method::GET, "/api/v1/setup")
            .peer(peer)
            .send(&f.app)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{peer}");
    }
    for peer in ["8.8.8.8:1", "[2001:db8::1]:1"] {
        for path in ["/api/v1/setup", "/", "/api/openapi.json"] {
            let a = req(Method::GET, path).peer(peer).send(&f.app).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{peer} {path}");
            assert!(a.error().contains("allowed_networks"), "{}", a.error());
        }
    }

    let net = fixture_with(
        WebConfig {
            allowed_networks: vec![crate::net::cidr::Cidr::parse("8.8.8.0/24").unwrap()],
            ..WebConfig::default()
        },
        FileConfig::default(),
    )
    .await;
    let a = req(Method::GET, "/api/v1/setup")
        .peer("8.8.8.8:1")
        .send(&net.app)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = req(Method::GET, "/api/v1/setup")
        .peer("9.9.9.9:1")
        .send(&net.app)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    let any = fixture_with(
        WebConfig {
            access: WebAccess::Any,
            ..WebConfig::default()
        },
        FileConfig::default(),
    )
    .await;
    let a = req(Method::GET, "/api/v1/setup")
        .peer("9.9.9.9:1")
        .send(&any.app)
        .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn foreign_host_names_are_refused_against_dns_rebinding() {
    let f = fixture().await;
    for host in [
        "evil.example:47990",
        "rig.evil.example",
        "localhost.evil.example",
    ] {
        // Even the public setup endpoint: a rebinding page must not claim the box.
        let a = req(Method::POST, "/api/v1/setup")
            .header("host", host)
            .json(json!({"setup_code": setup_code(&f), "username": "x", "password": PASSWORD}))
            .send(&f.app)
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{host}");
        assert!(
            a.error().contains("does not answer to the name"),
            "{}",
            a.error()
        );
    }
    assert_eq!(f.state.store.admin_count().await.unwrap(), 0);
    for host in [
        "rig.local:47990",
        "RIG",
        "localhost:47990",
        "[fe80::1]:47990",
    ] {
        let a = req(Method::GET, "/api/v1/setup")
            .header("host", host)
            .send(&f.app)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{host}");
    }
    let extra = fixture_with(
        WebConfig {
            allowed_hosts: vec!["console.example".into()],
            ..WebConfig::default()
        },
        FileConfig::default(),
    )
    .await;
    let a = req(Method::GET, "/")
        .header("host", "console.example")
        .send(&extra.app)
        .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn cross_site_writes_are_refused_before_the_handler() {
    let f = fixture().await;
    let s = setup_admin(&f).await;
    let add = |origin: Option<&str>, site: Option<&str>| {
        let mut r = req(Method::POST, "/api/v1/apps")
            .session(&s)
            .json(json!({"title": "Game"}));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(site) = site {
            r = r.header("sec-fetch-site", site);
        }
        r
    };
    for (origin, site) in [
        (Some("https://evil.example"), None),
        (Some("http://192.168.1.2:47990"), None),
        (Some("null"), None),
        (None, Some("cross-site")),
    ] {
        let a = add(origin, site).send(&f.app).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{origin:?} {site:?}");
        assert!(a.error().contains("cross-site"), "{}", a.error());
    }
    assert_eq!(f.state.store.list_apps().await.unwrap().len(), 0);
    let a = add(Some("https://192.168.1.2:47990"), Some("same-origin"))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.error());
}

#[tokio::test]
async fn answers_carry_security_headers() {
    let f = fixture().await;
    for path in ["/", "/api/v1/setup", "/api/v1/status"] {
        let a = req(Method::GET, path).send(&f.app).await;
        let csp = a.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(a.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(a.headers[header::X_FRAME_OPTIONS], "DENY");
    }
    let a = req(Method::GET, "/api/v1/setup").send(&f.app).await;
    assert_eq!(a.headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn the_console_pages_are_served_with_client_side_routes() {
    let f = fixture().await;
    let index = req(Method::GET, "/").send(&f.app).await;
    assert_eq!(index.status, StatusCode::OK);
    assert_eq!(
        index.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert!(String::from_utf8_lossy(&index.body).contains("punktfunk"));
    // A client-side route loads the app.
    let devices = req(Method::GET, "/devices").send(&f.app).await;
    assert_eq!(devices.status, StatusCode::OK);
    assert_eq!(devices.body, index.body);
    for path in ["/missing.js", "/assets/../../etc/passwd", "/.env"] {
        let a = req(Method::GET, path).send(&f.app).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
    }
    let a = req(Method::GET, "/api/v1/nothing").send(&f.app).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.error().contains("openapi.json"), "{}", a.error());
    let a = req(Method::POST, "/devices").send(&f.app).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn pages_come_from_the_assets_dir_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html><p>from disk").unwrap();
    std::fs::write(dir.path().join("assets/app-1.js"), "console.log(1)").unwrap();
    let f = fixture_with(
        WebConfig {
            assets_dir: Some(dir.path().to_owned()),
            ..WebConfig::default()
        },
        FileConfig::default(),
    )
    .await;
    let a = req(Method::GET, "/pairing").send(&f.app).await;
    assert_eq!(a.body, b"<!doctype html><p>from disk");
    let a = req(Method::GET, "/assets/app-1.js").send(&f.app).await;
    assert_eq!(
        a.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(
        a.headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
}
