//! End to end over the native plane: the test pattern through the real encoder, the
//! QUIC control plane, the UDP data plane and FFmpeg decode; the barcode reads back.

use std::sync::Arc;
use std::time::Duration;

use punktfunk_core::native::control::{Codec, Mode};

use super::data::{DataKeys, DataReceiver, FrameSource, MakeFrameSource};
use super::decode::VideoDecoder;
use super::pattern_source::EncodedPattern;
use super::quic::ClientCert;
use super::server::SourceFactory;
use super::tests::Host;

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_pattern_is_encoded_streamed_decoded_and_its_barcode_reads_back() {
    let factory = SourceFactory(Arc::new(|m: &Mode| {
        let m = *m;
        Box::new(move || Ok(Box::new(EncodedPattern::open(&m)?) as Box<dyn FrameSource>))
            as MakeFrameSource
    }));
    let host = Host::start_with(true, Some(factory)).await;
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
    let keys = DataKeys::export(c.connection()).unwrap();
    let addr = std::net::SocketAddr::new(host.addr.ip(), granted.data_port);
    let max_frame = granted.max_frame_bytes as usize;
    let (decoded, read, numbers, latencies) = tokio::task::spawn_blocking(move || {
        let mut rx = DataReceiver::connect(addr, keys, max_frame).unwrap();
        let mut dec = VideoDecoder::open(Codec::H264).unwrap();
        let (mut decoded, mut read) = (0u32, 0u32);
        let mut numbers = Vec::new();
        let mut latencies = Vec::new();
        let start = std::time::Instant::now();
        let mut got_any = false;
        while start.elapsed() < Duration::from_secs(4) {
            if !got_any {
                rx.send_announce().unwrap();
            }
            let mut frames = Vec::new();
            rx.poll(|| false, |f| frames.push(f.data.to_vec())).unwrap();
            for f in frames {
                got_any = true;
                for pic in dec.decode(&f).unwrap() {
                    decoded += 1;
                    assert_eq!((pic.width, pic.height), (1280, 720));
                    if let Some((capture_us, number)) = pic.barcode {
                        read += 1;
                        numbers.push(number);
                        latencies.push(unix_us().saturating_sub(capture_us));
                    }
                }
            }
        }
        (decoded, read, numbers, latencies)
    })
    .await
    .unwrap();
    let mut sorted = latencies.clone();
    sorted.sort_unstable();
    let p50 = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    eprintln!("decoded {decoded}, barcodes read {read}, capture-to-decoded p50 {p50} us");
    // ~3.5 s of 30 fps after start-up; a loaded CI machine may encode slower.
    assert!(decoded >= 30, "decoded {decoded}");
    assert!(
        read as f64 >= decoded as f64 * 0.9,
        "read {read} of {decoded}"
    );
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    assert!(p50 > 0 && p50 < 2_000_000, "p50 {p50} us");
}
