//! The control plane on loopback: a real quinn endpoint with the host identity, a real
//! store, real clients.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use punktfunk_core::crypto::rsa::sha256;
use punktfunk_core::gamestream::input::InputEvent;
use punktfunk_core::native::control::{Capabilities, Codec, Message, Mode, PairFailure};
use tokio::sync::mpsc;

use super::client::{NativeClient, PairOutcome};
use super::lockout::{MAX_FAILURES, PairingLockout};
use super::quic::{ClientCert, server_config};
use super::server::{self, NativeContext, NativeEvent, NativeOptions};
use super::streaming::SessionSource;
use crate::identity::HostIdentity;
use crate::pairing::native::NativePairing;
use crate::store::{Protocol, Store};

const CAPS: Capabilities = Capabilities {
    codecs: Codec::H264 as u8 | Codec::H265 as u8,
    max_width: 3840,
    max_height: 2160,
    max_fps: 240,
    max_bitrate_kbps: 5_000_000,
};

pub(super) struct Host {
    pub(super) addr: std::net::SocketAddr,
    ctx: Arc<NativeContext>,
    events: mpsc::Receiver<NativeEvent>,
    endpoint: quinn::Endpoint,
    _dir: tempfile::TempDir,
}

impl Host {
    async fn start(allow_tofu: bool) -> Host {
        Self::start_with(allow_tofu, None).await
    }

    pub(super) async fn start_with(
        allow_tofu: bool,
        sessions: Option<Arc<dyn SessionSource>>,
    ) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        let identity = HostIdentity::load_or_create(dir.path(), &store, Some("den"))
            .await
            .unwrap();
        let (tx, events) = mpsc::channel(256);
        let ctx = Arc::new(NativeContext {
            options: NativeOptions {
                bind: "127.0.0.1:0".parse().unwrap(),
                allow_tofu,
                host_name: identity.hostname.clone(),
                caps: CAPS,
                fec_bounds: (5, 50),
                data_port: 0,
            },
            host_fp: sha256(&[&identity.cert.der]),
            store,
            pairing: Arc::new(NativePairing::default()),
            lockout: Mutex::new(PairingLockout::default()),
            events: tx,
            sessions,
            live: crate::session::LiveSessions::new(),
        });
        let endpoint = server::bind(&ctx, server_config(&identity).unwrap()).unwrap();
        let addr = endpoint.local_addr().unwrap();
        tokio::spawn(server::serve(endpoint.clone(), ctx.clone()));
        Host {
            addr,
            ctx,
            events,
            endpoint,
            _dir: dir,
        }
    }

    pub(super) async fn connect(
        &self,
        cert: &ClientCert,
        pin: Option<[u8; 32]>,
    ) -> anyhow::Result<NativeClient> {
        NativeClient::connect(self.addr, cert, pin, "phone", CAPS).await
    }

    async fn paired_native(&self, cert: &ClientCert) -> bool {
        let fp = hex::encode(cert.fingerprint());
        self.ctx
            .store
            .client_by_fingerprint(&fp)
            .await
            .unwrap()
            .is_some_and(|c| c.protocol == Protocol::Native)
    }

    async fn next_event(&mut self) -> NativeEvent {
        tokio::time::timeout(Duration::from_secs(5), self.events.recv())
            .await
            .expect("an event within 5 s")
            .expect("event channel open")
    }
}

fn wrong(pin: &str) -> &'static str {
    if pin == "000000" { "000001" } else { "000000" }
}

pub(super) const MODE: Mode = Mode {
    codec: Codec::H264,
    width: 1920,
    height: 1080,
    fps: 60,
    bitrate_kbps: 20_000,
    fec_percent: 10,
};

#[tokio::test]
async fn pin_pairing_then_reconnect_with_pinned_certificates() {
    let host = Host::start(false).await;
    let cert = ClientCert::generate("phone").unwrap();
    let pin = host.ctx.pairing.arm().pin;
    let mut c = host.connect(&cert, None).await.unwrap();
    assert_eq!(c.host().name, "den");
    assert!(!c.host().paired && !c.host().tofu);
    assert_eq!(c.pair(&pin).await.unwrap(), PairOutcome::Paired);
    let host_fp = c.host_fingerprint();
    c.close().await;
    assert!(host.paired_native(&cert).await);
    // Single use: the window closed.
    assert!(host.ctx.pairing.current().is_none());

    // Reconnect, pinning the host: paired, no PIN needed, a mode is granted.
    let mut c = host.connect(&cert, Some(host_fp)).await.unwrap();
    assert!(c.host().paired);
    let granted = c.request_mode(MODE).await.unwrap();
    assert_eq!((granted.mode, granted.epoch), (MODE, 1));
    c.close().await;

    // A client pinning some other host certificate refuses this host in TLS.
    let err = host.connect(&cert, Some([7; 32])).await.unwrap_err();
    assert!(format!("{err:#}").contains("not the one paired"), "{err:#}");
}

#[tokio::test]
async fn wrong_pin_is_refused_and_a_different_certificate_is_not_paired() {
    let host = Host::start(false).await;
    let cert = ClientCert::generate("phone").unwrap();
    let pin = host.ctx.pairing.arm().pin;
    let mut c = host.connect(&cert, None).await.unwrap();
    assert_eq!(
        c.pair(wrong(&pin)).await.unwrap(),
        PairOutcome::Refused(PairFailure::WrongPin)
    );
    assert!(!host.paired_native(&cert).await);
    assert_eq!(host.ctx.lockout.lock().unwrap().failures(), 1);

    // The right PIN still works (the window survives one wrong guess).
    let mut c = host.connect(&cert, None).await.unwrap();
    assert_eq!(c.pair(&pin).await.unwrap(), PairOutcome::Paired);
    c.close().await;

    // Another device's certificate is not paired: no mode without pairing.
    let stranger = ClientCert::generate("stranger").unwrap();
    let mut s = host.connect(&stranger, None).await.unwrap();
    assert!(!s.host().paired);
    let err = s.request_mode(MODE).await.unwrap_err();
    assert!(format!("{err:#}").contains("not paired"), "{err:#}");
    assert!(!host.paired_native(&stranger).await);
}

#[tokio::test]
async fn five_failures_lock_pairing_even_for_the_right_pin() {
    let host = Host::start(false).await;
    let cert = ClientCert::generate("attacker").unwrap();
    let mut pin = host.ctx.pairing.arm().pin;
    for i in 0..MAX_FAILURES {
        // Three wrong guesses close a window; re-arming does not reset the count.
        if host.ctx.pairing.current().is_none() {
            pin = host.ctx.pairing.arm().pin;
        }
        let mut c = host.connect(&cert, None).await.unwrap();
        assert_eq!(
            c.pair(wrong(&pin)).await.unwrap(),
            PairOutcome::Refused(PairFailure::WrongPin),
            "attempt {i}"
        );
    }
    let pin = host.ctx.pairing.arm().pin;
    let mut c = host.connect(&cert, None).await.unwrap();
    assert_eq!(
        c.pair(&pin).await.unwrap(),
        PairOutcome::Refused(PairFailure::LockedOut)
    );
    assert!(!host.paired_native(&cert).await);
}

#[tokio::test]
async fn tofu_only_when_enabled() {
    let strict = Host::start(false).await;
    let cert = ClientCert::generate("phone").unwrap();
    let mut c = strict.connect(&cert, None).await.unwrap();
    assert!(!c.host().tofu);
    assert!(c.request_mode(MODE).await.is_err());
    assert!(!strict.paired_native(&cert).await);

    let mut open = Host::start(true).await;
    let mut c = open.connect(&cert, None).await.unwrap();
    assert!(c.host().tofu && !c.host().paired);
    let granted = c.request_mode(MODE).await.unwrap();
    assert_eq!(granted.mode, MODE);
    assert!(open.paired_native(&cert).await);
    assert!(matches!(
        open.next_event().await,
        NativeEvent::Paired { .. }
    ));
    c.close().await;
    let c = open.connect(&cert, None).await.unwrap();
    assert!(c.host().paired);
}

/// A native client is listed with GameStream's sessions while connected, with the
/// mode it streams; unpairing it in the console ends its session with a goodbye that
/// says why, and the list empties.
#[tokio::test]
async fn a_native_session_is_listed_and_ends_when_its_device_is_revoked() {
    use crate::session::{EndReason, StreamProtocol};
    let host = Host::start(true).await;
    let cert = ClientCert::generate("tablet").unwrap();
    let mut c = host.connect(&cert, None).await.unwrap();
    c.request_mode(MODE).await.unwrap();
    let live = host.ctx.live.list();
    assert_eq!(live.len(), 1, "{live:?}");
    let s = &live[0];
    assert_eq!(s.protocol, StreamProtocol::Native);
    assert_eq!(s.client_fingerprint, hex::encode(cert.fingerprint()));
    assert_eq!((s.stats.width, s.stats.height), (Some(1920), Some(1080)));
    assert_eq!(s.stats.codec.as_deref(), Some("H.264"));

    let fp = hex::encode(cert.fingerprint());
    assert_eq!(host.ctx.live.end_client(&fp, EndReason::Revoked), 1);
    match c.recv_within(Duration::from_secs(5)).await {
        Ok(Message::Goodbye { reason }) => assert!(reason.contains("unpaired"), "{reason}"),
        other => panic!("expected a goodbye, got {other:?}"),
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !host.ctx.live.list().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the session stays listed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn mode_renegotiates_mid_stream_and_input_arrives() {
    let mut host = Host::start(true).await;
    let cert = ClientCert::generate("pad").unwrap();
    let mut c = host.connect(&cert, None).await.unwrap();
    assert_eq!(c.request_mode(MODE).await.unwrap().epoch, 1);
    c.send(&Message::Input(InputEvent::MouseMove { dx: 3, dy: -4 }))
        .await
        .unwrap();
    c.send(&Message::RequestIdr).await.unwrap();
    let faster = Mode {
        codec: Codec::H265,
        fps: 120,
        bitrate_kbps: 80_000,
        fec_percent: 90, // above the host's bound of 50
        ..MODE
    };
    let granted = c.request_mode(faster).await.unwrap();
    assert_eq!(granted.epoch, 2);
    assert_eq!(granted.mode.fec_percent, 50);
    assert_eq!((granted.mode.codec, granted.mode.fps), (Codec::H265, 120));
    // AV1 is not among the host's codecs.
    let av1 = Mode {
        codec: Codec::Av1,
        ..MODE
    };
    assert!(c.request_mode(av1).await.is_err());

    let mut seen = Vec::new();
    while seen.len() < 5 {
        seen.push(host.next_event().await);
    }
    assert!(matches!(seen[0], NativeEvent::Paired { .. }));
    assert!(matches!(seen[1], NativeEvent::Mode { epoch: 1, .. }));
    assert_eq!(
        seen[2],
        NativeEvent::Input(InputEvent::MouseMove { dx: 3, dy: -4 })
    );
    assert_eq!(seen[3], NativeEvent::IdrRequested);
    assert!(matches!(seen[4], NativeEvent::Mode { epoch: 2, .. }));
}

#[tokio::test]
async fn garbage_on_the_control_stream_ends_that_connection_only() {
    let host = Host::start(true).await;
    let cert = ClientCert::generate("fuzz").unwrap();
    // Raw QUIC connection writing garbage instead of a hello.
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(super::quic::client_config(&cert, None).unwrap());
    let conn = endpoint
        .connect(host.addr, "punktfunk")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0xff; 64]).await.unwrap();
    let _ = send.finish();
    // The host answers with a goodbye (or just closes) and drops the connection.
    let reply = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(4096))
        .await
        .expect("the host reacts");
    if let Ok(bytes) = reply
        && let Ok(Some((msg, _))) = Message::decode(&bytes)
    {
        assert!(matches!(msg, Message::Goodbye { .. }), "{msg:?}");
    }
    // The host still serves others.
    let mut c = host.connect(&cert, None).await.unwrap();
    assert!(c.request_mode(MODE).await.is_ok());
    host.endpoint.close(0u32.into(), b"test over");
}

#[test]
fn native_input_reaches_the_sessions_sink_on_its_own_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.jsonl");
    let p = path.clone();
    let forwarder = crate::session::native::InputForwarder::start(move || {
        Ok(
            Box::new(crate::input::recording::RecordingSink::create(&p)?)
                as Box<dyn crate::input::InputSink>,
        )
    })
    .unwrap();
    forwarder.send(InputEvent::Key {
        code: 0x41,
        down: true,
        modifiers: 0,
        flags: 0,
    });
    forwarder.send(InputEvent::MouseMove { dx: 5, dy: 6 });
    // Dropping the forwarder ends its thread once the queue is drained.
    drop(forwarder);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let recorded = std::fs::read_to_string(&path).unwrap_or_default();
        if recorded.lines().count() == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{recorded}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
