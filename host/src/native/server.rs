//! The punktfunk/1 control plane, host side: a quinn endpoint (UDP 9777 by default,
//! ALPN `punktfunk/1`, TLS on the host identity) and one task per connection.
//!
//! A connection opens one bidirectional control stream and says `Hello`. The host looks
//! the client certificate's fingerprint up in the store (protocol = native): a paired
//! client goes straight on; an unpaired one must pair with the PIN the console or
//! `pair-native` armed (SPAKE2, see `punktfunk_core::native::pairing`), unless the
//! host opted into trust on first use. Failed proofs are counted: five lock pairing for
//! a minute. Then the client requests a mode (and may renegotiate it at any time),
//! asks for keyframes, reports loss and latency, and sends input.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use punktfunk_core::codec::VideoCodec;
use punktfunk_core::gamestream::input::InputEvent;
use punktfunk_core::native::control::{
    Capabilities, LatencyReport, LossReport, Message, Mode, PairFailure,
};
use punktfunk_core::native::pairing::{Binding, HostAwaitingConfirm};
use tokio::sync::{Semaphore, mpsc};

use super::data::{DataKeys, StreamCmd};
use super::lockout::PairingLockout;
use super::quic::{ControlStream, peer_certificate};
use super::streaming::{SessionSource, StreamTarget, Streaming};
use crate::pairing::native::NativePairing;
use crate::session::{EndReason, LiveSessions, SessionInfo, StreamProtocol};
use crate::store::{NewClient, Protocol, Store};
use punktfunk_core::crypto::rsa::sha256;
use punktfunk_core::native::adaptive_fec::FecPolicy;

/// Connections served at once; more are refused until one ends.
const MAX_CONNECTIONS: usize = 16;
/// How long a peer may take for each step before the hello is done.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the host allows.
#[derive(Debug, Clone)]
pub struct NativeOptions {
    /// Where to listen.
    pub bind: SocketAddr,
    /// Accept an unpaired client and pin its certificate on first use (opt-in).
    pub allow_tofu: bool,
    /// The host's name, shown by clients.
    pub host_name: String,
    /// What the host can encode.
    pub caps: Capabilities,
    /// Bounds of the FEC percentage a mode may ask for.
    pub fec_bounds: (u8, u8),
    /// UDP port of the data plane (0 while none runs).
    pub data_port: u16,
}

/// Something a connection did, for the session manager and for tests.
#[derive(Debug, Clone, PartialEq)]
pub enum NativeEvent {
    /// A device paired (or was trusted on first use).
    Paired {
        /// Its certificate fingerprint, lowercase hex.
        fingerprint: String,
        /// Its name.
        name: String,
    },
    /// A client's mode took effect.
    Mode {
        /// The client.
        fingerprint: String,
        /// The mode.
        mode: Mode,
        /// Renegotiation count of this connection, from 1.
        epoch: u32,
    },
    /// The client asked for a keyframe.
    IdrRequested,
    /// A loss report.
    Loss(LossReport),
    /// A latency report.
    Latency(LatencyReport),
    /// An input event.
    Input(InputEvent),
}

/// Everything a connection task needs.
#[derive(Debug)]
pub struct NativeContext {
    /// Options.
    pub options: NativeOptions,
    /// SHA-256 of the host certificate.
    pub host_fp: [u8; 32],
    /// Paired clients.
    pub store: Store,
    /// The armed PIN.
    pub pairing: Arc<NativePairing>,
    /// Failure counting across connections.
    pub lockout: Mutex<PairingLockout>,
    /// Where events go; dropped (and logged) if the receiver lags.
    pub events: mpsc::Sender<NativeEvent>,
    /// Where a connection's session (what it streams, where its input goes) comes from.
    pub sessions: Option<Arc<dyn SessionSource>>,
    /// The host's registry of live sessions (status pages, the console's list, ending
    /// a revoked device's stream), shared with GameStream.
    pub live: LiveSessions,
}

impl NativeContext {
    fn emit(&self, e: NativeEvent) {
        if self.events.try_send(e).is_err() {
            tracing::debug!("native event dropped: receiver lagging or gone");
        }
    }
}

/// Binds the endpoint. Errors say which port was taken.
pub fn bind(ctx: &NativeContext, config: quinn::ServerConfig) -> Result<quinn::Endpoint> {
    quinn::Endpoint::server(config, ctx.options.bind).with_context(|| {
        format!(
            "cannot listen for punktfunk/1 on UDP {}: is another host running? Choose \
             another port with --native-port",
            ctx.options.bind
        )
    })
}

/// Accepts connections until the endpoint closes.
pub async fn serve(endpoint: quinn::Endpoint, ctx: Arc<NativeContext>) -> Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    while let Some(incoming) = endpoint.accept().await {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(peer = %incoming.remote_address(), "native connection refused: too many");
            incoming.refuse();
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let peer = incoming.remote_address();
            match connection(incoming, &ctx).await {
                Ok(()) => tracing::info!(%peer, "native connection ended"),
                Err(e) => tracing::info!(%peer, "native connection ended: {e:#}"),
            }
            drop(permit);
        });
    }
    Ok(())
}

async fn connection(incoming: quinn::Incoming, ctx: &NativeContext) -> Result<()> {
    let conn = tokio::time::timeout(STEP_TIMEOUT, incoming)
        .await
        .context("QUIC handshake timed out")??;
    let cert = peer_certificate(&conn)?;
    let client_fp = sha256(&[&cert]);
    let peer = Peer {
        fingerprint: hex::encode(client_fp),
        cert_pem: pem::encode(&pem::Pem::new("CERTIFICATE", cert)),
    };
    let (send, recv) = tokio::time::timeout(STEP_TIMEOUT, conn.accept_bi())
        .await
        .context("no control stream")??;
    let mut ctl = ControlStream::new(send, recv);
    let mut streaming = Streaming::default();
    let result = session(&mut ctl, ctx, client_fp, &peer, &conn, &mut streaming).await;
    let why = match &result {
        Ok(()) => "the client left".to_owned(),
        Err(e) => format!("{e:#}"),
    };
    // The client hears why first; ending its session (stopping a compositor) takes
    // a moment it need not wait for.
    if result.is_err() {
        let _ = ctl
            .send(&Message::Goodbye {
                reason: why.clone(),
            })
            .await;
    }
    ctl.finish();
    // The session's display and app end with the connection.
    streaming.finish(&why).await;
    // Give the goodbye a moment to leave before the connection closes.
    let _ = tokio::time::timeout(Duration::from_millis(200), conn.closed()).await;
    conn.close(0u32.into(), b"bye");
    result
}

/// The client as the store keeps it.
#[derive(Debug)]
struct Peer {
    fingerprint: String,
    cert_pem: String,
}

async fn session(
    ctl: &mut ControlStream,
    ctx: &NativeContext,
    client_fp: [u8; 32],
    peer: &Peer,
    conn: &quinn::Connection,
    streaming: &mut Streaming,
) -> Result<()> {
    let fingerprint = peer.fingerprint.as_str();
    let Message::Hello { name, caps: _ } = ctl.recv_within(STEP_TIMEOUT).await? else {
        bail!("the first control message must be Hello");
    };
    let paired = ctx
        .store
        .client_by_fingerprint(fingerprint)
        .await?
        .is_some_and(|c| c.protocol == Protocol::Native);
    ctl.send(&Message::HostHello {
        name: ctx.options.host_name.clone(),
        paired,
        tofu: ctx.options.allow_tofu,
        caps: ctx.options.caps,
    })
    .await?;
    let first = if paired {
        None
    } else {
        match ctl.recv_within(STEP_TIMEOUT).await? {
            Message::PairStart { spake } => {
                pair(ctl, ctx, client_fp, peer, &name, &spake).await?;
                None
            }
            other if ctx.options.allow_tofu => {
                store_client(ctx, peer, &name).await?;
                tracing::warn!(%name, "native client trusted on first use (--allow-tofu)");
                Some(other)
            }
            _ => bail!("this device is not paired: pair it with the PIN the host shows"),
        }
    };
    let _ = ctx
        .store
        .touch_client(fingerprint, crate::store::now_unix())
        .await;
    // An authenticated client is a live session until it leaves or is ended from
    // outside (revoked in the console, host stopping).
    let info = SessionInfo {
        client_fingerprint: fingerprint.to_owned(),
        client_name: name.clone(),
        // Named once the first mode starts the session's app.
        app_id: 0,
        app_title: String::new(),
        protocol: StreamProtocol::Native,
    };
    let mut live = ctx.live.start(info.clone());
    let mut epoch = 0u32;
    let mut next = first;
    loop {
        let msg = match next.take() {
            Some(m) => m,
            None => tokio::select! {
                m = ctl.recv() => match m? {
                    Some(m) => m,
                    None => return Ok(()),
                },
                reason = live.ended() => bail!("the session was ended: {}", end_text(reason)),
                reason = streaming.ended_by_host() => bail!("the session ended: {reason}"),
            },
        };
        match msg {
            Message::ModeRequest(want) if ctx.options.caps.codecs & want.codec as u8 == 0 => {
                ctl.send(&Message::ModeRefused {
                    reason: format!("this host cannot encode {:?}", want.codec),
                })
                .await?;
            }
            Message::ModeRequest(want) => {
                let mode = clamp(&want, &ctx.options);
                let mut data_port = ctx.options.data_port;
                if let Some(source) = &ctx.sessions {
                    let target = StreamTarget {
                        ip: ctx.options.bind.ip(),
                        keys: DataKeys::export(conn)?,
                        policy: FecPolicy {
                            min_percent: ctx.options.fec_bounds.0,
                            max_percent: ctx.options.fec_bounds.1,
                            ..FecPolicy::default()
                        },
                    };
                    let started = streaming.start(source.as_ref(), &info, mode, target).await;
                    match started {
                        Ok(port) => {
                            data_port = port;
                            if let Some((id, title)) = streaming.app() {
                                live.set_app(id, &title);
                            }
                        }
                        Err(e) => {
                            // The client hears why; the connection stays for another try.
                            tracing::warn!("native stream could not start: {e:#}");
                            ctl.send(&Message::ModeRefused {
                                reason: format!("the host could not start the stream: {e:#}"),
                            })
                            .await?;
                            continue;
                        }
                    }
                }
                epoch += 1;
                ctl.send(&Message::ModeAck {
                    mode,
                    data_port,
                    max_frame_bytes: max_frame_bytes(&mode),
                    epoch,
                })
                .await?;
                live.update(|s| {
                    s.width = Some(u32::from(mode.width));
                    s.height = Some(u32::from(mode.height));
                    s.fps = Some(f32::from(mode.fps));
                    s.codec = Some(VideoCodec::from(mode.codec).display_name().to_owned());
                    s.bitrate_kbps = Some(mode.bitrate_kbps);
                });
                ctx.emit(NativeEvent::Mode {
                    fingerprint: fingerprint.to_owned(),
                    mode,
                    epoch,
                });
            }
            Message::RequestIdr => {
                streaming.command(StreamCmd::Idr);
                ctx.emit(NativeEvent::IdrRequested);
            }
            Message::Loss(l) => {
                if l.packets_expected > 0 {
                    live.update(|s| {
                        s.loss_percent =
                            Some(100.0 * l.packets_lost as f32 / l.packets_expected as f32);
                    });
                }
                streaming.command(StreamCmd::Loss(l));
                ctx.emit(NativeEvent::Loss(l));
            }
            Message::Latency(l) => ctx.emit(NativeEvent::Latency(l)),
            Message::Input(e) => {
                // Into this session's compositor, never another's.
                streaming.input(e.clone());
                ctx.emit(NativeEvent::Input(e));
            }
            Message::Goodbye { .. } => return Ok(()),
            other => bail!("unexpected control message {other:?}"),
        }
    }
}

/// How the goodbye names why a session was ended from outside.
fn end_text(reason: EndReason) -> &'static str {
    match reason {
        EndReason::Revoked => "this device was unpaired on the host",
        EndReason::Shutdown => "the host is stopping",
    }
}

async fn pair(
    ctl: &mut ControlStream,
    ctx: &NativeContext,
    client_fp: [u8; 32],
    peer: &Peer,
    name: &str,
    spake: &[u8],
) -> Result<()> {
    let refuse = |reason| Message::PairFailed { reason };
    let locked = lock(ctx).check(Instant::now());
    if let Err(left) = locked {
        ctl.send(&refuse(PairFailure::LockedOut)).await?;
        bail!(
            "pairing is locked for {} s after failed attempts",
            left.as_secs() + 1
        );
    }
    let Some(armed) = ctx.pairing.current() else {
        ctl.send(&refuse(PairFailure::NotArmed)).await?;
        bail!("pairing is not armed: arm it in the web console or with pair-native");
    };
    let binding = Binding {
        client_fp,
        host_fp: ctx.host_fp,
    };
    // From here on, anything but a valid proof counts as a failed attempt.
    let outcome = async {
        let (host, reply) = HostAwaitingConfirm::respond(&armed.pin, binding, spake)?;
        ctl.send(&Message::PairReply {
            spake: reply.spake,
            confirm: reply.confirm,
        })
        .await?;
        let Message::PairConfirm { confirm } = ctl.recv_within(STEP_TIMEOUT).await? else {
            bail!("expected the client's pairing proof");
        };
        host.verify(&confirm)?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = outcome {
        {
            lock(ctx).failure(Instant::now());
        }
        ctx.pairing.record_failure();
        let _ = ctl.send(&refuse(PairFailure::WrongPin)).await;
        return Err(e.context("native pairing failed"));
    }
    if ctx.pairing.try_consume(&armed.pin).is_err() {
        // Disarmed or re-armed while the exchange ran.
        ctl.send(&refuse(PairFailure::NotArmed)).await?;
        bail!("pairing was disarmed during the exchange");
    }
    {
        lock(ctx).success();
    }
    store_client(ctx, peer, name).await?;
    ctl.send(&Message::PairOk).await?;
    tracing::info!(%name, "native client paired");
    Ok(())
}

fn lock(ctx: &NativeContext) -> std::sync::MutexGuard<'_, PairingLockout> {
    ctx.lockout.lock().unwrap_or_else(|e| e.into_inner())
}

async fn store_client(ctx: &NativeContext, peer: &Peer, name: &str) -> Result<()> {
    let name = if name.trim().is_empty() {
        "punktfunk client"
    } else {
        name.trim()
    };
    ctx.store
        .add_client(NewClient {
            name: name.to_owned(),
            cert_pem: peer.cert_pem.clone(),
            fingerprint: peer.fingerprint.clone(),
            protocol: Protocol::Native,
        })
        .await
        .context("storing the paired device")?;
    ctx.emit(NativeEvent::Paired {
        fingerprint: peer.fingerprint.clone(),
        name: name.to_owned(),
    });
    Ok(())
}

/// The mode the host serves for a request: within its capabilities and FEC bounds.
pub fn clamp(want: &Mode, o: &NativeOptions) -> Mode {
    Mode {
        codec: want.codec,
        width: want.width.clamp(16, o.caps.max_width.max(16)),
        height: want.height.clamp(16, o.caps.max_height.max(16)),
        fps: want.fps.clamp(1, o.caps.max_fps.max(1)),
        bitrate_kbps: want
            .bitrate_kbps
            .clamp(100, o.caps.max_bitrate_kbps.max(100)),
        fec_percent: want.fec_percent.clamp(o.fec_bounds.0, o.fec_bounds.1),
    }
}

/// The largest frame the host sends in `mode`: a keyframe of four average frames, and
/// never less than 1 MB (so a low-bitrate stream's first keyframe still fits).
pub fn max_frame_bytes(mode: &Mode) -> u32 {
    let avg = u64::from(mode.bitrate_kbps) * 1000 / 8 / u64::from(mode.fps.max(1));
    (avg * 4).clamp(1 << 20, u64::from(u32::MAX)) as u32
}
