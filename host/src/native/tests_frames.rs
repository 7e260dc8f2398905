//! The data plane behind the control plane, with synthetic frames in place of the
//! encode stage: frames cross the network and adaptive FEC keeps them coming under
//! heavy loss.

use std::sync::Arc;
use std::time::Duration;

use punktfunk_core::gamestream::input::InputEvent;
use punktfunk_core::native::control::{Message, Mode};

use super::data::MakeFrameSource;
use super::quic::ClientCert;
use super::streaming::{BoxFuture, NativeSession, SessionSource};
use super::tests::{Host, MODE};

/// Sessions with no display: every stream sends what the function makes (synthetic
/// frames), and input is dropped.
#[derive(Clone)]
struct FramesOnly {
    make: Arc<dyn Fn(&Mode) -> MakeFrameSource + Send + Sync>,
    ended: Arc<tokio::sync::watch::Sender<Option<String>>>,
}

impl FramesOnly {
    fn new(make: impl Fn(&Mode) -> MakeFrameSource + Send + Sync + 'static) -> Self {
        Self {
            make: Arc::new(make),
            ended: Arc::new(tokio::sync::watch::channel(None).0),
        }
    }
}

impl std::fmt::Debug for FramesOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FramesOnly")
    }
}

impl SessionSource for FramesOnly {
    fn open<'a>(
        &'a self,
        _client: &'a crate::session::SessionInfo,
        _mode: &'a Mode,
    ) -> BoxFuture<'a, anyhow::Result<Arc<dyn NativeSession>>> {
        Box::pin(async move { Ok(Arc::new(self.clone()) as Arc<dyn NativeSession>) })
    }
}

impl NativeSession for FramesOnly {
    fn stream(&self, mode: &Mode) -> anyhow::Result<MakeFrameSource> {
        Ok((self.make)(mode))
    }
    fn input(&self, _event: InputEvent) {}
    fn ended(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.ended.subscribe()
    }
    fn end(&self, _reason: &str) {}
    fn app(&self) -> (u32, String) {
        (crate::catalog::DESKTOP_ID, "Desktop".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_cross_the_network_and_adaptive_fec_survives_20_percent_loss() {
    use super::data::{DataKeys, DataReceiver, SyntheticFrames};
    use super::synthetic::Pattern;
    use rand::{Rng, SeedableRng};

    let sessions = FramesOnly::new(|m: &Mode| {
        let bytes = u64::from(m.bitrate_kbps) * 1000 / 8 / u64::from(m.fps.max(1));
        let source = SyntheticFrames::new(bytes as usize, 120).at_fps(u32::from(m.fps));
        Box::new(move || Ok(Box::new(source) as Box<dyn super::data::FrameSource>))
            as MakeFrameSource
    });
    let host = Host::start_with(true, Some(Arc::new(sessions))).await;
    let cert = ClientCert::generate("probe").unwrap();
    let mut c = host.connect(&cert, None).await.unwrap();
    // 30 fps of ~100 KB frames (~75 packets each), starting at 10% parity.
    let mode = Mode {
        fps: 30,
        bitrate_kbps: 24_000,
        fec_percent: 10,
        ..MODE
    };
    let granted = c.request_mode(mode).await.unwrap();
    assert_ne!(granted.data_port, 0);
    let keys = DataKeys::export(c.connection()).unwrap();
    let data_addr = std::net::SocketAddr::new(host.addr.ip(), granted.data_port);
    let max_frame = granted.max_frame_bytes as usize;
    let (reports_tx, mut reports) = tokio::sync::mpsc::channel(64);
    let rx = tokio::task::spawn_blocking(move || {
        let mut rx = DataReceiver::connect(data_addr, keys, max_frame).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(20);
        let pattern = Pattern::new(max_frame);
        let (mut intact, mut corrupt) = (0u64, 0u64);
        let (mut first, mut last) = (None, 0u32);
        let garbage = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let start = std::time::Instant::now();
        let mut last_report = start;
        while start.elapsed() < Duration::from_secs(8) {
            if first.is_none() {
                rx.send_announce().unwrap();
            }
            rx.poll(
                || rng.random_bool(0.2),
                |f| {
                    first.get_or_insert(f.frame_id);
                    last = f.frame_id;
                    if pattern.intact(f.data) {
                        intact += 1;
                    } else {
                        corrupt += 1;
                    }
                },
            )
            .unwrap();
            if last_report.elapsed() >= Duration::from_millis(100) {
                let r = rx.loss_report(last_report.elapsed());
                last_report = std::time::Instant::now();
                let _ = reports_tx.blocking_send(r);
                // Forged datagrams: counted and dropped, the stream goes on.
                garbage
                    .send_to(&[0x01; 120], rx.local_addr().unwrap())
                    .unwrap();
            }
        }
        // The stream starts at frame 0: frames lost before the first report count too.
        assert!(first.is_some(), "no frame arrived");
        let span = u64::from(last) + 1;
        (intact, corrupt, span, rx.stats())
    });
    let forward = async {
        while let Some(r) = reports.recv().await {
            c.send(&Message::Loss(r)).await.unwrap();
        }
    };
    let (result, ()) = tokio::join!(rx, forward);
    let (intact, corrupt, span, stats) = result.unwrap();
    assert_eq!(corrupt, 0, "{stats:?}");
    assert!(
        stats.malformed > 0,
        "forged datagrams are counted: {stats:?}"
    );
    assert!(span >= 120, "streamed {span} frames in 8 s: {stats:?}");
    let kept = intact as f64 / span as f64;
    eprintln!(
        "20% loss: kept {intact}/{span} frames ({:.1}%), {stats:?}",
        kept * 100.0
    );
    assert!(kept >= 0.95, "kept {intact} of {span} frames: {stats:?}");
    assert!(stats.recovered_frames > 0, "{stats:?}");
}
