//! The native control plane inside `punktfunk-host serve`: binds the configured port,
//! hands streams the encoded test pattern, and forwards input into the input sink.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use punktfunk_core::crypto::rsa::sha256;
use punktfunk_core::native::control::{Capabilities, Codec, Mode};
use tokio::sync::mpsc;

use super::data::{FrameSource, MakeFrameSource};
use super::lockout::PairingLockout;
use super::server::{NativeContext, NativeEvent, NativeOptions, SourceFactory, bind, serve};

/// The control plane of a running host (`serve`): binds the configured port and
/// serves until the host stops. A port already taken is logged and leaves the
/// native plane off rather than stopping GameStream.
pub async fn run(state: Arc<crate::state::HostState>) -> Result<()> {
    use crate::encode::probe::Codec as Enc;
    let settings = &state.config.native;
    let codecs = state.encoders.chosen.iter().fold(0u8, |acc, a| {
        acc | match a.codec {
            Enc::H264 => Codec::H264 as u8,
            Enc::Hevc => Codec::H265 as u8,
            Enc::Av1 => Codec::Av1 as u8,
        }
    });
    let (events, rx) = mpsc::channel(1024);
    let ctx = Arc::new(NativeContext {
        options: NativeOptions {
            bind: SocketAddr::new(state.config.bind, settings.port),
            allow_tofu: settings.allow_tofu,
            host_name: state.identity.hostname.clone(),
            caps: Capabilities {
                codecs,
                max_width: 7680,
                max_height: 4320,
                max_fps: 240,
                max_bitrate_kbps: 10_000_000,
            },
            fec_bounds: (settings.fec_min_percent, settings.fec_max_percent),
            data_port: 0,
        },
        host_fp: sha256(&[&state.identity.cert.der]),
        store: state.store.clone(),
        pairing: state.native_pairing.clone(),
        lockout: Mutex::new(PairingLockout::default()),
        events,
        // As on the GameStream path today, a stream carries the encoded test pattern
        // until the session manager hands native sessions the captured display.
        source: Some(SourceFactory(Arc::new(|mode: &Mode| {
            let mode = *mode;
            Box::new(move || {
                Ok(
                    Box::new(super::pattern_source::EncodedPattern::open(&mode)?)
                        as Box<dyn FrameSource>,
                )
            }) as MakeFrameSource
        }))),
        live: state.streams.registry().clone(),
    });
    let endpoint =
        match super::quic::server_config(&state.identity).and_then(|config| bind(&ctx, config)) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("the native punktfunk/1 plane is off: {e:#}");
                std::future::pending::<()>().await;
                return Ok(());
            }
        };
    tracing::info!(
        port = endpoint.local_addr()?.port(),
        tofu = settings.allow_tofu,
        "punktfunk/1 control plane listening (QUIC, ALPN punktfunk/1)"
    );
    // Input goes into the same input sink the GameStream path uses, on a plain thread
    // (sinks write devices or files synchronously); other events are logged until the
    // session manager takes native sessions.
    let input = state.config.input.clone();
    let recording = state.config.input_recording();
    std::thread::Builder::new()
        .name("pf-native-input".into())
        .spawn(move || {
            forward_events(rx, || {
                crate::input::open(&input, &crate::input::SessionInput::Seat, recording.clone())
            })
        })?;
    serve(endpoint, ctx).await
}

/// Drains native events until the channel closes: input into the sink (opened on the
/// first input event), the rest logged.
pub fn forward_events(
    mut rx: mpsc::Receiver<NativeEvent>,
    mut open_sink: impl FnMut() -> Result<Box<dyn crate::input::InputSink>>,
) {
    let mut sink = None;
    while let Some(e) = rx.blocking_recv() {
        match e {
            NativeEvent::Input(ev) => {
                if sink.is_none() {
                    match open_sink() {
                        Ok(s) => sink = Some(s),
                        Err(e) => tracing::warn!("native input has no sink: {e:#}"),
                    }
                }
                if let Some(s) = sink.as_mut()
                    && let Err(e) = s.handle(&ev)
                {
                    tracing::debug!("native input event refused: {e:#}");
                }
            }
            other => tracing::debug!(?other, "native event"),
        }
    }
}
