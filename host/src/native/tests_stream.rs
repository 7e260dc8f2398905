//! End to end over the native plane through the host's own sessions: the session
//! manager starts a session for the client's mode, the shared encode stage captures
//! and encodes it (the test pattern here: no compositor in unit tests; the interop
//! tests run a real app in headless sway), the QUIC control plane and the UDP data
//! plane carry it, FFmpeg decodes it, and the barcode reads back in order. Input goes
//! into the session; the session ends with the connection.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use punktfunk_core::gamestream::input::InputEvent;
use punktfunk_core::native::control::{Codec, Message, Mode};

use super::data::{DataKeys, DataReceiver};
use super::decode::VideoDecoder;
use super::quic::ClientCert;
use super::service::HostSessions;
use super::tests::Host;
use crate::state::HostState;

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// A host state with no compositor (streams show the test pattern), libx264, and
/// input recorded to `dir/input.jsonl`.
async fn host_state(dir: &Path) -> Arc<HostState> {
    use crate::config::{Config, ConfigArgs, FileConfig};
    use crate::encode::probe::{Available, Codec as Enc, Encoders};
    let args = ConfigArgs {
        state_dir: Some(dir.to_owned()),
        ..Default::default()
    };
    let mut config = Config::resolve(FileConfig::default(), &args).unwrap();
    config.display.backend = crate::display::Backend::None;
    config.input.backend = crate::input::Backend::Recording;
    config.input.recording_path = Some(dir.join("input.jsonl"));
    let store = crate::store::Store::open(&config.store_path())
        .await
        .unwrap();
    let identity = crate::identity::HostIdentity::load_or_create(dir, &store, None)
        .await
        .unwrap();
    let pairing = crate::pairing::PairingManager::new(
        Arc::new(identity.server_identity().unwrap()),
        store.clone(),
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    let catalog = crate::catalog::Catalog::new(&[], store.clone());
    let x264 = Available {
        codec: Enc::H264,
        name: "libx264",
        hardware: false,
    };
    let encoders = Encoders {
        chosen: vec![x264.clone()],
        available: vec![x264],
        ten_bit: vec![],
    };
    let streams = crate::session::SessionManager::new(
        config.clone(),
        encoders.clone(),
        crate::session::router::MediaSockets::bind_ephemeral().unwrap(),
    )
    .unwrap();
    HostState::new(config, identity, store, pairing, catalog, encoders, streams)
}

/// What a client saw of one stream: each decoded picture's size, and the barcode
/// numbers read.
struct Seen {
    sizes: Vec<(u32, u32)>,
    numbers: Vec<u64>,
    latency_p50_us: u64,
}

/// Receives and decodes the stream on `addr` for `secs` seconds.
fn watch(addr: SocketAddr, keys: DataKeys, max_frame: usize, secs: u64) -> Seen {
    let mut rx = DataReceiver::connect(addr, keys, max_frame).unwrap();
    let mut dec = VideoDecoder::open(Codec::H264).unwrap();
    let mut seen = Seen {
        sizes: Vec::new(),
        numbers: Vec::new(),
        latency_p50_us: 0,
    };
    let mut latencies = Vec::new();
    let start = Instant::now();
    let mut got_any = false;
    while start.elapsed() < Duration::from_secs(secs) {
        if !got_any {
            rx.send_announce().unwrap();
        }
        let mut frames = Vec::new();
        rx.poll(|| false, |f| frames.push(f.data.to_vec())).unwrap();
        for f in frames {
            got_any = true;
            for pic in dec.decode(&f).unwrap() {
                seen.sizes.push((pic.width, pic.height));
                if let Some((capture_us, number)) = pic.barcode {
                    seen.numbers.push(number);
                    latencies.push(unix_us().saturating_sub(capture_us));
                }
            }
        }
    }
    latencies.sort_unstable();
    seen.latency_p50_us = latencies.get(latencies.len() / 2).copied().unwrap_or(0);
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_managers_stage_streams_the_test_pattern_follows_a_new_mode_and_ends_with_the_client()
 {
    let dir = tempfile::tempdir().unwrap();
    let state = host_state(dir.path()).await;
    let host = Host::start_with(true, Some(Arc::new(HostSessions::new(state.clone())))).await;
    let cert = ClientCert::generate("probe").unwrap();
    let mut c = host.connect(&cert, None).await.unwrap();
    let mode = Mode {
        codec: Codec::H264,
        width: 1280,
        height: 720,
        fps: 30,
        bitrate_kbps: 8_000,
        fec_percent: 10,
    };
    let granted = c.request_mode(mode).await.unwrap();
    let sessions = state.streams.native_sessions();
    assert_eq!(sessions.len(), 1, "one native session in the manager");
    let id = sessions[0];
    assert!(
        state.display.session_status(id).is_some(),
        "the session has its display session"
    );
    let keys = DataKeys::export(c.connection()).unwrap();
    let addr = SocketAddr::new(host.addr.ip(), granted.data_port);
    let max_frame = granted.max_frame_bytes as usize;
    let seen = tokio::task::spawn_blocking(move || watch(addr, keys, max_frame, 4))
        .await
        .unwrap();
    let (decoded, read) = (seen.sizes.len(), seen.numbers.len());
    eprintln!(
        "decoded {decoded}, barcodes read {read}, capture-to-decoded p50 {} us",
        seen.latency_p50_us
    );
    // ~3.5 s of 30 fps after start-up; a loaded CI machine may encode slower.
    assert!(decoded >= 30, "decoded {decoded}");
    assert!(
        seen.sizes.iter().all(|s| *s == (1280, 720)),
        "{:?}",
        seen.sizes
    );
    assert!(
        read as f64 >= decoded as f64 * 0.9,
        "read {read} of {decoded}"
    );
    assert!(
        seen.numbers.windows(2).all(|w| w[0] < w[1]),
        "{:?}",
        seen.numbers
    );
    assert!(
        seen.latency_p50_us > 0 && seen.latency_p50_us < 2_000_000,
        "p50 {} us",
        seen.latency_p50_us
    );

    // Input goes into the session's sink (recorded here).
    c.send(&Message::Input(InputEvent::Key {
        code: 0x41,
        down: true,
        modifiers: 0,
        flags: 0,
    }))
    .await
    .unwrap();

    // A new mode mid-stream: the same session, a new stream at the new size.
    let small = Mode {
        width: 640,
        height: 360,
        ..mode
    };
    let granted = c.request_mode(small).await.unwrap();
    assert_eq!(granted.mode, small);
    assert_eq!(state.streams.native_sessions(), [id], "the session stays");
    let keys = DataKeys::export(c.connection()).unwrap();
    let addr = SocketAddr::new(host.addr.ip(), granted.data_port);
    let max_frame = granted.max_frame_bytes as usize;
    let seen = tokio::task::spawn_blocking(move || watch(addr, keys, max_frame, 2))
        .await
        .unwrap();
    assert!(seen.sizes.len() >= 10, "decoded {}", seen.sizes.len());
    assert!(
        seen.sizes.iter().all(|s| *s == (640, 360)),
        "{:?}",
        seen.sizes
    );
    assert!(seen.numbers.len() * 10 >= seen.sizes.len() * 9);

    let recorded = std::fs::read_to_string(dir.path().join("input.jsonl")).unwrap_or_default();
    assert_eq!(recorded.lines().count(), 1, "{recorded}");

    // The client leaves: its session and display session end.
    c.close().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !state.streams.native_sessions().is_empty() || state.display.session_status(id).is_some()
    {
        assert!(Instant::now() < deadline, "the session outlived its client");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(host);
}
