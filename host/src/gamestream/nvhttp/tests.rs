//! Every nvhttp endpoint against missing, oversized and garbage parameters: the answer
//! is a 4xx-class status (HTTP status or GameStream `status_code`), never a panic and
//! never a 5xx.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::{Request, StatusCode};
use proptest::prelude::*;

use super::handle;
use crate::catalog::Catalog;
use crate::config::{Config, ConfigArgs, FileConfig};
use crate::encode::probe::Encoders;
use crate::gamestream::nvhttp::ConnInfo;
use crate::identity::HostIdentity;
use crate::pairing::PairingManager;
use crate::session::SessionManager;
use crate::session::router::MediaSockets;
use crate::state::HostState;
use crate::store::{NewClient, Protocol, Store};

const PAIRED_FP: &str = "5ee9ceeb258f13ad01b67e9b6a16df05ffec921eb9bbe3e22de5bbc1a98e273e";

struct Fixture {
    state: Arc<HostState>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    fixture_with(Encoders::default()).await
}

/// The fixture with `encoders` as the start-up probe's outcome.
async fn fixture_with(encoders: Encoders) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let args = ConfigArgs {
        state_dir: Some(dir.path().to_owned()),
        port_base: Some(40000),
        ..Default::default()
    };
    let mut config = Config::resolve(FileConfig::default(), &args).unwrap();
    // The handlers' tests need no compositor: launches stream the test pattern.
    config.display.backend = crate::display::Backend::None;
    let store = Store::open(&config.store_path()).await.unwrap();
    store
        .add_client(NewClient {
            name: "paired".into(),
            cert_pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into(),
            fingerprint: PAIRED_FP.into(),
            protocol: Protocol::GameStream,
        })
        .await
        .unwrap();
    let identity = HostIdentity::load_or_create(dir.path(), &store, None)
        .await
        .unwrap();
    let pairing = PairingManager::new(
        Arc::new(identity.server_identity().unwrap()),
        store.clone(),
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    let catalog = Catalog::new(&[], store.clone());
    let streams = SessionManager::new(
        config.clone(),
        encoders.clone(),
        MediaSockets::bind_ephemeral().unwrap(),
    )
    .unwrap();
    let state = HostState::new(config, identity, store, pairing, catalog, encoders, streams);
    Fixture { state, _dir: dir }
}

fn conn(secure: bool, fingerprint: Option<&str>) -> ConnInfo {
    ConnInfo {
        secure,
        client_fingerprint: fingerprint.map(str::to_owned),
        local: "127.0.0.1:39995".parse::<SocketAddr>().unwrap(),
        peer: "127.0.0.1:50000".parse::<SocketAddr>().unwrap(),
    }
}

/// HTTP status, GameStream status_code, body text.
async fn get(
    state: &HostState,
    conn: &ConnInfo,
    target: &str,
) -> (StatusCode, Option<u32>, String) {
    let req = Request::get(target).body(()).unwrap();
    let resp = handle(state, conn, req).await;
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    let code = text
        .split_once("status_code=\"")
        .and_then(|(_, r)| r.split_once('"'))
        .and_then(|(c, _)| c.parse().ok());
    (status, code, text)
}

fn is_4xx(status: StatusCode, code: Option<u32>) -> bool {
    status.is_client_error()
        || (status == StatusCode::OK && code.is_some_and(|c| (400..500).contains(&c)))
}

const ENDPOINTS: &[&str] = &[
    "/serverinfo",
    "/pair",
    "/unpair",
    "/applist",
    "/appasset",
    "/launch",
    "/resume",
    "/cancel",
];

#[tokio::test]
async fn malformed_parameters_get_4xx_on_every_endpoint() {
    let f = fixture().await;
    let paired = conn(true, Some(PAIRED_FP));
    let key = "rikey=00112233445566778899aabbccddeeff&rikeyid=1";
    let cases: &[(&str, &str)] = &[
        // Missing parameters.
        ("/pair", ""),
        ("/pair", "phrase=getservercert"),
        ("/pair", "phrase=getservercert&salt=00"),
        ("/appasset", ""),
        ("/launch", ""),
        ("/launch", "appid=1"),
        ("/launch", "appid=1&rikey=0011"),
        ("/resume", ""),
        // Garbage values.
        ("/pair", "phrase=getservercert&salt=zz&clientcert=qq"),
        ("/pair", "phrase=nonsense"),
        ("/pair", "clientchallenge=%zz"),
        ("/appasset", "appid=-1"),
        ("/appasset", "appid=abc"),
        (
            "/launch",
            "appid=x&rikey=00112233445566778899aabbccddeeff&rikeyid=1",
        ),
        (
            "/launch",
            "appid=1&mode=1x&rikey=00112233445566778899aabbccddeeff&rikeyid=1",
        ),
        (
            "/launch",
            "appid=1&rikey=00112233445566778899aabbccddeeff&rikeyid=ten",
        ),
        (
            "/launch",
            "appid=424242&rikey=00112233445566778899aabbccddeeff&rikeyid=1",
        ),
        ("/resume", "rikey=nothex&rikeyid=1"),
        ("/serverinfo", "%"),
    ];
    for (path, query) in cases {
        let (status, code, body) = get(&f.state, &paired, &format!("{path}?{query}")).await;
        assert!(
            is_4xx(status, code),
            "{path}?{query} -> {status} {code:?} {body}"
        );
    }
    // Oversized: a value past the limit, and too many parameters.
    let huge = format!(
        "/pair?phrase=getservercert&salt=00&clientcert={}",
        "a".repeat(40_000)
    );
    let many = format!(
        "/applist?{}",
        (0..100)
            .map(|i| format!("p{i}=1"))
            .collect::<Vec<_>>()
            .join("&")
    );
    for target in [
        huge,
        many,
        format!("/launch?appid=1&{key}&x={}", "9".repeat(20_000)),
    ] {
        let (status, code, _) = get(&f.state, &paired, &target).await;
        assert_eq!(
            (status, code),
            (StatusCode::BAD_REQUEST, Some(400)),
            "{}",
            &target[..40]
        );
    }
    // A launch with a valid query still works after all that.
    let (status, code, body) = get(
        &f.state,
        &paired,
        &format!("/launch?appid=1&{key}&corever=1"),
    )
    .await;
    assert_eq!((status, code), (StatusCode::OK, Some(200)), "{body}");
    assert!(
        body.contains("<sessionUrl0>rtspenc://127.0.0.1:40021</sessionUrl0>"),
        "{body}"
    );
}

#[tokio::test]
async fn unpaired_and_plain_http_clients_are_refused() {
    let f = fixture().await;
    for path in ENDPOINTS {
        let (status, code, body) = get(&f.state, &conn(true, Some("not-paired")), path).await;
        assert_eq!(
            (status, code),
            (StatusCode::OK, Some(401)),
            "{path}: {body}"
        );
        assert!(body.contains("not authorized"));
    }
    for path in [
        "/applist",
        "/appasset?appid=1",
        "/launch",
        "/resume",
        "/cancel",
    ] {
        let (status, _, _) = get(&f.state, &conn(false, None), path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} over plain HTTP");
    }
    let (status, code, _) = get(&f.state, &conn(false, None), "/nope").await;
    assert_eq!((status, code), (StatusCode::NOT_FOUND, Some(404)));
    let req = Request::post("/serverinfo").body(()).unwrap();
    let resp = handle(&f.state, &conn(false, None), req).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// HDR is offered (Main10 bits in serverinfo, `IsHdrSupported` in the app list)
/// exactly when the probe kept a 10-bit encoder.
#[tokio::test]
async fn ten_bit_is_offered_only_with_a_ten_bit_encoder() {
    use crate::encode::probe::{Available, Codec};
    let a = |codec, name| Available {
        codec,
        name,
        hardware: false,
    };
    let chosen = vec![a(Codec::H264, "libx264"), a(Codec::Hevc, "libx265")];
    let paired = conn(true, Some(PAIRED_FP));
    for (ten_bit, codecs, hdr) in [
        (vec![], 0x101, 0),
        (vec![a(Codec::Hevc, "libx265")], 0x301, 1),
    ] {
        let f = fixture_with(Encoders {
            chosen: chosen.clone(),
            available: chosen.clone(),
            ten_bit,
        })
        .await;
        let (_, _, info) = get(&f.state, &conn(false, None), "/serverinfo").await;
        assert!(
            info.contains(&format!(
                "<ServerCodecModeSupport>{codecs}</ServerCodecModeSupport>"
            )),
            "{info}"
        );
        let (_, _, apps) = get(&f.state, &paired, "/applist").await;
        assert!(
            apps.contains(&format!("<IsHdrSupported>{hdr}</IsHdrSupported>")),
            "{apps}"
        );
    }
}

#[tokio::test]
async fn serverinfo_applist_launch_cancel_flow() {
    let f = fixture().await;
    let paired = conn(true, Some(PAIRED_FP));
    let (_, _, info) = get(&f.state, &conn(false, None), "/serverinfo").await;
    assert!(info.contains("<PairStatus>0</PairStatus>"));
    assert!(info.contains("<HttpsPort>39995</HttpsPort>"));
    assert!(info.contains("<state>SUNSHINE_SERVER_FREE</state>"));
    let (_, _, info) = get(&f.state, &paired, "/serverinfo").await;
    assert!(info.contains("<PairStatus>1</PairStatus>"));
    let (_, _, apps) = get(&f.state, &paired, "/applist").await;
    assert!(apps.contains(
        "<App><IsHdrSupported>0</IsHdrSupported><AppTitle>Desktop</AppTitle><ID>1</ID></App>"
    ));
    let key = "rikey=00112233445566778899aabbccddeeff&rikeyid=-7";
    let (_, code, _) = get(
        &f.state,
        &paired,
        &format!("/launch?appid=1&mode=1280x720x60&{key}"),
    )
    .await;
    assert_eq!(code, Some(200));
    // The launching client sees its app; anyone else sees a free host (each client
    // has its own session).
    let (_, _, info) = get(&f.state, &paired, "/serverinfo").await;
    assert!(info.contains("<currentgame>1</currentgame><state>SUNSHINE_SERVER_BUSY</state>"));
    let (_, _, info) = get(&f.state, &conn(false, None), "/serverinfo").await;
    assert!(info.contains("<currentgame>0</currentgame><state>SUNSHINE_SERVER_FREE</state>"));
    // Another app by the same client gets the GameStream error; launching its own
    // app again re-attaches, as resume does.
    let (status, code, body) = get(&f.state, &paired, &format!("/launch?appid=2&{key}")).await;
    assert_eq!((status, code), (StatusCode::OK, Some(400)), "{body}");
    assert!(body.contains("<gamesession>0</gamesession>"));
    let (_, code, body) = get(&f.state, &paired, &format!("/launch?appid=1&{key}")).await;
    assert_eq!(code, Some(200), "{body}");
    assert!(body.contains("<gamesession>1</gamesession>"));
    let (_, code, body) = get(&f.state, &paired, &format!("/resume?{key}")).await;
    assert_eq!(code, Some(200));
    assert!(body.contains("<resume>1</resume>") && body.contains("rtsp://"));
    let (_, code, body) = get(&f.state, &paired, "/cancel").await;
    assert_eq!(code, Some(200));
    assert!(body.contains("<cancel>1</cancel>"));
    let (_, code, _) = get(&f.state, &paired, &format!("/resume?{key}")).await;
    assert_eq!(code, Some(503));
    let req = Request::get("/appasset?appid=1").body(()).unwrap();
    let resp = handle(&f.state, &paired, req).await;
    assert_eq!(resp.headers()["content-type"], "image/png");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary query strings on every endpoint, paired and not, HTTP and HTTPS: no
    /// panic, no 5xx.
    #[test]
    fn arbitrary_queries_never_panic_or_5xx(
        endpoint in prop::sample::select(ENDPOINTS),
        query in "[ -~]{0,200}",
        secure in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let f = fixture_cached().await;
            let c = if secure { conn(true, Some(PAIRED_FP)) } else { conn(false, None) };
            let target = format!("{endpoint}?{}", query.replace(' ', "%20").replace('#', "%23"));
            if let Ok(uri) = target.parse::<hyper::Uri>() {
                let req = Request::get(uri).body(()).unwrap();
                let resp = handle(&f, &c, req).await;
                prop_assert!(!resp.status().is_server_error(), "{target} -> {}", resp.status());
            }
            Ok(())
        })?;
    }
}

/// One fixture shared by the property test's cases (generating a host key per case
/// would dominate its run time). Each case gets its own runtime, so the store is
/// opened per case but the key files are reused.
async fn fixture_cached() -> Arc<HostState> {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let args = ConfigArgs {
        state_dir: Some(dir.path().to_owned()),
        port_base: Some(40000),
        ..Default::default()
    };
    let mut config = Config::resolve(FileConfig::default(), &args).unwrap();
    // The handlers' tests need no compositor: launches stream the test pattern.
    config.display.backend = crate::display::Backend::None;
    let store = Store::open(&config.store_path()).await.unwrap();
    store
        .add_client(NewClient {
            name: "paired".into(),
            cert_pem: "x".into(),
            fingerprint: PAIRED_FP.into(),
            protocol: Protocol::GameStream,
        })
        .await
        .expect("re-adding the same fingerprint updates it");
    let identity = HostIdentity::load_or_create(dir.path(), &store, None)
        .await
        .unwrap();
    let pairing = PairingManager::new(
        Arc::new(identity.server_identity().unwrap()),
        store.clone(),
        Duration::from_millis(20),
        Duration::from_millis(200),
    );
    let catalog = Catalog::new(&[], store.clone());
    let streams = SessionManager::new(
        config.clone(),
        Encoders::default(),
        MediaSockets::bind_ephemeral().unwrap(),
    )
    .unwrap();
    HostState::new(
        config,
        identity,
        store,
        pairing,
        catalog,
        Encoders::default(),
        streams,
    )
}
