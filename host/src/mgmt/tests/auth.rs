//! First-run setup, login, sessions, CSRF and the lockout.

use axum::http::{Method, StatusCode, header};
use serde_json::json;

use super::*;
use crate::config::{FileConfig, WebConfig};

#[tokio::test]
async fn setup_needs_the_code_and_works_only_once() {
    let f = fixture().await;
    let a = req(Method::GET, "/api/v1/setup").send(&f.app).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["needs_setup"], true);
    let file = f.dir.path().join("setup-code");
    assert_eq!(a.json()["setup_code_file"], file.display().to_string());

    // Wrong code: refused, counted, nothing created.
    let a = req(Method::POST, "/api/v1/setup")
        .json(json!({"setup_code": "AAAA-BBBB-CCCC", "username": "admin", "password": PASSWORD}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.error().contains("setup-code"), "{}", a.error());
    assert_eq!(f.state.store.admin_count().await.unwrap(), 0);

    // Right code, weak password: says what is needed.
    let a = req(Method::POST, "/api/v1/setup")
        .json(json!({"setup_code": setup_code(&f), "username": "admin", "password": "short"}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.error().contains("at least 8"), "{}", a.error());

    // The code is accepted in any case, with spaces instead of dashes.
    let code = setup_code(&f).to_lowercase().replace('-', " ");
    let a = req(Method::POST, "/api/v1/setup")
        .json(json!({"setup_code": code, "username": "admin", "password": PASSWORD}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.error());
    let cookie = a.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    for attr in [
        "__Host-pf_session=",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert_eq!(a.json()["username"], "admin");
    assert_eq!(a.json()["csrf_token"].as_str().unwrap().len(), 64);
    assert!(!file.exists(), "the setup code file is removed after setup");

    // The password is stored as an Argon2id hash, not in the clear.
    let admin = f
        .state
        .store
        .admin_by_username("admin")
        .await
        .unwrap()
        .unwrap();
    assert!(admin.password_hash.starts_with("$argon2id$"));
    assert!(!admin.password_hash.contains(PASSWORD));

    // Setup is over: a second admin cannot be created, even with the old code.
    let a = req(Method::POST, "/api/v1/setup")
        .json(json!({"setup_code": code, "username": "mallory", "password": PASSWORD}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = req(Method::GET, "/api/v1/setup").send(&f.app).await;
    assert_eq!(a.json()["needs_setup"], false);
    assert!(a.json()["setup_code_file"].is_null());
    assert_eq!(f.state.store.admin_count().await.unwrap(), 1);
}

#[tokio::test]
async fn racing_setups_create_one_admin() {
    let f = fixture().await;
    let code = setup_code(&f);
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let (app, code) = (f.app.clone(), code.clone());
            tokio::spawn(async move {
                req(Method::POST, "/api/v1/setup")
                    .json(json!({"setup_code": code, "username": format!("admin{i}"), "password": PASSWORD}))
                    .send(&app)
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::FORBIDDEN),
        "{statuses:?}"
    );
    assert_eq!(f.state.store.admin_count().await.unwrap(), 1);
}

#[tokio::test]
async fn every_endpoint_requires_a_session() {
    let f = fixture().await;
    let s = setup_admin(&f).await;
    let doc = req(Method::GET, "/api/openapi.json")
        .send(&f.app)
        .await
        .json();
    let ops = operations(&doc);
    assert!(ops.len() >= 25, "{ops:?}");
    let public = [
        (Method::GET, "/api/v1/setup"),
        (Method::POST, "/api/v1/setup"),
        (Method::POST, "/api/v1/auth/login"),
    ];
    for (method, path, secured) in &ops {
        let is_public = public.iter().any(|(m, p)| m == method && p == path);
        assert_eq!(
            *secured, !is_public,
            "{method} {path}: security declared wrongly"
        );
        if is_public {
            continue;
        }
        // No cookie at all, and an unknown session token: both 401.
        let a = req(method.clone(), path)
            .json(json!({}))
            .header("x-csrf-token", &s.csrf)
            .send(&f.app)
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert!(
            a.error().contains("log in"),
            "{method} {path}: {}",
            a.error()
        );
        let forged = Session {
            token: "ab".repeat(32),
            csrf: s.csrf.clone(),
        };
        let a = req(method.clone(), path)
            .json(json!({}))
            .session(&forged)
            .send(&f.app)
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // Login with the session's token still works (sanity: the 401s were not a broken
    // router).
    let a = req(Method::GET, "/api/v1/status")
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn every_mutating_endpoint_needs_the_csrf_token() {
    let f = fixture().await;
    let s = setup_admin(&f).await;
    let doc = req(Method::GET, "/api/openapi.json")
        .send(&f.app)
        .await
        .json();
    let mut checked = 0;
    for (method, path, secured) in operations(&doc) {
        if !secured || !crate::mgmt::auth::is_mutating(&method) {
            continue;
        }
        let cookie = format!("{}={}", crate::mgmt::auth::SESSION_COOKIE, s.token);
        for csrf in [None, Some("0".repeat(64)), Some(s.csrf[..63].to_owned())] {
            let mut r = req(method.clone(), &path)
                .json(json!({}))
                .header("cookie", &cookie);
            if let Some(c) = &csrf {
                r = r.header("x-csrf-token", c);
            }
            let a = r.send(&f.app).await;
            assert_eq!(
                a.status,
                StatusCode::FORBIDDEN,
                "{method} {path} csrf={csrf:?}"
            );
            assert!(a.error().contains("CSRF"), "{}", a.error());
        }
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} mutating endpoints");
    // Nothing happened: the session still works, no restart was requested.
    assert!(!f.state.lifecycle.restart_requested());
    let a = req(Method::GET, "/api/v1/auth/session")
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::OK);
}

async fn login(f: &Fixture, peer: &str, password: &str) -> Answer {
    req(Method::POST, "/api/v1/auth/login")
        .peer(peer)
        .json(json!({"username": "admin", "password": password}))
        .send(&f.app)
        .await
}

#[tokio::test]
async fn login_logout_and_session() {
    let f = fixture().await;
    setup_admin(&f).await;
    let a = login(&f, LAN_PEER, "wrong password").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.error().contains("reset-password"), "{}", a.error());
    // An unknown user gets the same answer.
    let a = req(Method::POST, "/api/v1/auth/login")
        .json(json!({"username": "nobody", "password": PASSWORD}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // User names are case-insensitive.
    let a = req(Method::POST, "/api/v1/auth/login")
        .json(json!({"username": "ADMIN", "password": PASSWORD}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.error());
    let s = Session {
        token: cookie_token(&a),
        csrf: a.json()["csrf_token"].as_str().unwrap().to_owned(),
    };
    let a = req(Method::GET, "/api/v1/auth/session")
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.json()["username"], "admin");
    assert_eq!(a.json()["csrf_token"], s.csrf.as_str());

    let a = req(Method::POST, "/api/v1/auth/logout")
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert!(
        a.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let a = req(Method::GET, "/api/v1/status")
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_logins_lock_the_address_out() {
    let web = WebConfig {
        max_login_failures: 3,
        lockout_secs: 600,
        ..WebConfig::default()
    };
    let f = fixture_with(web.clone(), FileConfig::default()).await;
    setup_admin(&f).await;
    for _ in 0..2 {
        assert_eq!(
            login(&f, LAN_PEER, "nope").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let a = login(&f, LAN_PEER, "nope").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = a.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&retry), "{retry}");
    assert!(a.error().contains("10 min"), "{}", a.error());
    // Locked: even the right password is refused, without being checked.
    let a = login(&f, LAN_PEER, PASSWORD).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    // Another address is not locked out.
    let other = "192.168.1.51:40000";
    assert_eq!(login(&f, other, PASSWORD).await.status, StatusCode::OK);

    // The lockout is in the store: a restarted service still refuses the address.
    let Fixture { dir, state, .. } = f;
    state.store.close().await;
    drop(state);
    let f = fixture_in(dir, web, FileConfig::default()).await;
    assert_eq!(
        login(&f, LAN_PEER, PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // `admin reset-password` lifts it.
    f.state.store.clear_all_login_failures().await.unwrap();
    assert_eq!(login(&f, LAN_PEER, PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_setup_codes_count_toward_the_lockout() {
    let web = WebConfig {
        max_login_failures: 2,
        ..WebConfig::default()
    };
    let f = fixture_with(web, FileConfig::default()).await;
    let body = json!({"setup_code": "AAAA-AAAA-AAAA", "username": "admin", "password": PASSWORD});
    let a = req(Method::POST, "/api/v1/setup")
        .json(body.clone())
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = req(Method::POST, "/api/v1/setup")
        .json(body)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    // Locked out: even the right code is refused from this address.
    let a = req(Method::POST, "/api/v1/setup")
        .json(json!({"setup_code": setup_code(&f), "username": "admin", "password": PASSWORD}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(f.state.store.admin_count().await.unwrap(), 0);
}

#[tokio::test]
async fn password_change_needs_the_current_one_and_logs_out_others() {
    let f = fixture().await;
    let s = setup_admin(&f).await;
    let other = login(&f, LAN_PEER, PASSWORD).await;
    let other = Session {
        token: cookie_token(&other),
        csrf: other.json()["csrf_token"].as_str().unwrap().to_owned(),
    };
    let a = req(Method::POST, "/api/v1/auth/password")
        .session(&s)
        .json(json!({"current_password": "wrong one", "new_password": "a new password"}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = req(Method::POST, "/api/v1/auth/password")
        .session(&s)
        .json(json!({"current_password": PASSWORD, "new_password": "short"}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let a = req(Method::POST, "/api/v1/auth/password")
        .session(&s)
        .json(json!({"current_password": PASSWORD, "new_password": "a new password"}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a);
    // This browser stays logged in; the other one is out.
    let a = req(Method::GET, "/api/v1/status")
        .session(&s)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = req(Method::GET, "/api/v1/status")
        .session(&other)
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login(&f, LAN_PEER, PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&f, LAN_PEER, "a new password").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn malformed_bodies_get_4xx_that_say_what_was_expected() {
    let f = fixture().await;
    let s = setup_admin(&f).await;
    let cases = [
        (Method::POST, "/api/v1/auth/login", "not json"),
        (Method::POST, "/api/v1/auth/login", "{\"username\": 1}"),
        (
            Method::POST,
            "/api/v1/apps",
            "{\"title\": \"x\", \"bogus\": 1}",
        ),
        (
            Method::PATCH,
            "/api/v1/settings",
            "{\"fec_percent\": \"lots\"}",
        ),
        (Method::POST, "/api/v1/pairing/pin", "{}"),
    ];
    for (method, path, body) in cases {
        let a = req(method.clone(), path)
            .session(&s)
            .raw("application/json", body.as_bytes().to_vec())
            .send(&f.app)
            .await;
        assert!(a.status.is_client_error(), "{method} {path}: {}", a.status);
        assert!(a.error().contains("request body"), "{}", a.error());
    }
    let a = req(Method::POST, "/api/v1/apps")
        .session(&s)
        .raw("text/plain", b"{}".to_vec())
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let a = req(Method::PATCH, "/api/v1/devices/notanumber")
        .session(&s)
        .json(json!({"name": "x"}))
        .send(&f.app)
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.error().contains("URL"), "{}", a.error());
}
