//! The session manager's one limit over both kinds of session: GameStream launches
//! and punktfunk/1 sessions count together against `[session] max_sessions`.

use std::net::{IpAddr, Ipv4Addr};

use punktfunk_core::gamestream::apps::{AppError, Launched};
use punktfunk_core::gamestream::nvhttp::query::Query;
use punktfunk_core::gamestream::nvhttp::requests::LaunchRequest;
use punktfunk_core::native::control::{Codec, Mode};

use super::SessionManager;
use super::native::NativeApp;
use super::router::MediaSockets;
use crate::config::{Config, ConfigArgs, FileConfig};
use crate::encode::probe::Encoders;

const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A manager allowing `max` sessions, with no display (nothing is launched).
fn manager(dir: &std::path::Path, max: usize) -> SessionManager {
    let args = ConfigArgs {
        state_dir: Some(dir.to_owned()),
        ..Default::default()
    };
    let mut config = Config::resolve(FileConfig::default(), &args).unwrap();
    config.session.max_sessions = max;
    let encoders = Encoders {
        chosen: vec![],
        available: vec![],
        ten_bit: vec![],
    };
    SessionManager::new(config, encoders, MediaSockets::bind_ephemeral().unwrap()).unwrap()
}

fn launch_request(app_id: u32) -> LaunchRequest {
    let q = Query::parse(&format!(
        "appid={app_id}&mode=1280x720x60&rikey=00112233445566778899aabbccddeeff&rikeyid=7&corever=1"
    ))
    .unwrap();
    LaunchRequest::from_query(&q, false).unwrap()
}

fn desktop() -> NativeApp {
    NativeApp {
        id: 1,
        title: "Desktop".to_owned(),
        command: None,
    }
}

const MODE: Mode = Mode {
    codec: Codec::H264,
    width: 640,
    height: 360,
    fps: 30,
    bitrate_kbps: 2_000,
    fec_percent: 20,
};

/// The limit's message, as Moonlight shows it and a native client hears it.
fn is_limit(e: &anyhow::Error, max: usize) -> bool {
    e.downcast_ref::<AppError>() == Some(&AppError::SessionLimit { max })
        && e.to_string().contains(&format!("{max} devices"))
}

#[test]
fn native_sessions_count_against_max_sessions_with_gamestreams() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), 1);

    // A native session takes the only place: a second native client and a
    // Moonlight launch are both refused, and the first session goes on.
    let first = m.start_native(&desktop(), &MODE).unwrap();
    let e = m.start_native(&desktop(), &MODE).unwrap_err();
    assert!(is_limit(&e, 1), "{e:#}");
    assert_eq!(
        m.launch(&launch_request(1), "moonlight", IP, true)
            .unwrap_err(),
        AppError::SessionLimit { max: 1 }
    );
    assert_eq!(m.native_sessions(), vec![first.id]);
    assert!(first.ended.borrow().is_none());

    // It ends: its place is free, and a Moonlight client takes it.
    assert!(m.stop(first.id, "the client left").is_none());
    let (app, how) = m.launch(&launch_request(1), "moonlight", IP, true).unwrap();
    assert_eq!(how, Launched::New);

    // Now the GameStream session holds the place: a native client is refused...
    let e = m.start_native(&desktop(), &MODE).unwrap_err();
    assert!(is_limit(&e, 1), "{e:#}");
    assert!(m.native_sessions().is_empty());
    // ...while the Moonlight client launching again re-attaches to its own session.
    let (again, how) = m.launch(&launch_request(1), "moonlight", IP, true).unwrap();
    assert_eq!((again.session, how), (app.session, Launched::Resumed));

    // The GameStream session ends: a native client gets the place.
    assert!(m.apps().end_session(app.session).is_some());
    m.start_native(&desktop(), &MODE).unwrap();
}

#[test]
fn the_limit_is_shared_not_per_kind() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), 3);
    m.launch(&launch_request(1), "a", IP, true).unwrap();
    let one = m.start_native(&desktop(), &MODE).unwrap();
    m.start_native(&desktop(), &MODE).unwrap();
    // Two native and one GameStream session: either kind's next is refused.
    assert!(is_limit(&m.start_native(&desktop(), &MODE).unwrap_err(), 3));
    assert_eq!(
        m.launch(&launch_request(1), "b", IP, true).unwrap_err(),
        AppError::SessionLimit { max: 3 }
    );
    // `stop_all` ends the native sessions (their connections hear why) and frees
    // their places; the GameStream launch is still there, so two fit again.
    assert!(m.stop_all("shutdown").is_empty());
    assert_eq!(one.ended.borrow().as_deref(), Some("shutdown"));
    m.start_native(&desktop(), &MODE).unwrap();
    m.start_native(&desktop(), &MODE).unwrap();
    assert!(is_limit(&m.start_native(&desktop(), &MODE).unwrap_err(), 3));
}
