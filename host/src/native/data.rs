//! The punktfunk/1 data plane over the network: keys from the QUIC session's TLS
//! exporter, a per-session UDP socket on the host, one GF(2^16) block per frame,
//! AES-GCM per packet, pacing, GSO/sendmmsg out and recvmmsg/GRO in, adaptive FEC
//! driven by the client's loss reports.
//!
//! The client learns the host's data port from `ModeAck` and announces its own address
//! with a sealed packet (kind [`KIND_ANNOUNCE`]) under the client-to-host key, so the
//! host only ever streams to an address that proved it holds the session's keys.
//! The send loop runs on a plain thread; the control task feeds it loss reports and
//! IDR requests through a channel. The client side is [`super::receiver`].

pub use super::receiver::DataReceiver;
pub use super::synthetic::SyntheticFrames;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use punktfunk_core::native::adaptive_fec::{AdaptiveFec, FecPolicy};
use punktfunk_core::native::control::{LossReport, Mode};
use punktfunk_core::native::packetizer::{NativeConfig, NativePacketizer};
use punktfunk_core::native::wire::{
    EXPORTER_CLIENT_TO_HOST, EXPORTER_HOST_TO_CLIENT, EXPORTER_LABEL, FLAG_KEYFRAME, KIND_ANNOUNCE,
    PacketOpener, PacketSealer, SALT_CLIENT_DATA, SALT_HOST_DATA,
};

use super::sender::{FrameSender, SendPacing};
use crate::clock;
use crate::encode::stage::{EncodeStage, Next};
use crate::net::udp_batch::{BatchSocket, SendStats};

/// The longest the send thread waits for a frame before it looks at commands and
/// the stop flag again.
const POLL: Duration = Duration::from_millis(10);

/// The two data-plane keys of a session.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DataKeys {
    /// Seals host-to-client packets.
    pub host_to_client: [u8; 16],
    /// Seals client-to-host packets (the announce).
    pub client_to_host: [u8; 16],
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKeys(..)")
    }
}

impl DataKeys {
    /// Exports both keys from the connection's TLS session (same result on both ends).
    pub fn export(conn: &quinn::Connection) -> Result<Self> {
        let mut keys = Self {
            host_to_client: [0; 16],
            client_to_host: [0; 16],
        };
        conn.export_keying_material(
            &mut keys.host_to_client,
            EXPORTER_LABEL,
            EXPORTER_HOST_TO_CLIENT,
        )
        .map_err(|e| anyhow!("TLS exporter: {e:?}"))?;
        conn.export_keying_material(
            &mut keys.client_to_host,
            EXPORTER_LABEL,
            EXPORTER_CLIENT_TO_HOST,
        )
        .map_err(|e| anyhow!("TLS exporter: {e:?}"))?;
        Ok(keys)
    }
}

/// One frame a [`FrameSource`] yields.
#[derive(Debug, Clone, Copy)]
pub struct SourceFrame<'a> {
    /// The access unit.
    pub data: &'a [u8],
    /// Whether it is a keyframe.
    pub keyframe: bool,
}

/// Produces the frames a stream sends, at its own pace: the encode stage follows its
/// capture (see [`crate::encode::stage`]), synthetic frames follow a clock. Created on
/// the send thread (FFmpeg encoders are not `Send`), by a [`MakeFrameSource`].
pub trait FrameSource {
    /// The next frame, waiting at most `wait`; `None` when nothing is due yet.
    fn next_frame(&mut self, wait: Duration) -> Result<Option<SourceFrame<'_>>>;

    /// Makes the next frame a keyframe.
    fn request_idr(&mut self);
}

impl FrameSource for EncodeStage {
    fn next_frame(&mut self, wait: Duration) -> Result<Option<SourceFrame<'_>>> {
        match self.next(wait)? {
            Next::Frame(info) => Ok(Some(SourceFrame {
                data: self.data(),
                keyframe: info.keyframe,
            })),
            Next::Idle => Ok(None),
            Next::Rejected(e) => {
                tracing::debug!("skipping a captured frame: {e:#}");
                Ok(None)
            }
        }
    }

    fn request_idr(&mut self) {
        EncodeStage::request_idr(self);
    }
}

/// Opens a [`FrameSource`] on the send thread, once the client has announced itself.
pub type MakeFrameSource = Box<dyn FnOnce() -> Result<Box<dyn FrameSource>> + Send>;

/// What the control task tells the send thread.
#[derive(Debug, Clone, Copy)]
pub enum StreamCmd {
    /// A loss report arrived.
    Loss(LossReport),
    /// The client asked for a keyframe.
    Idr,
}

/// What the send thread reports when it ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendSummary {
    /// Frames sent.
    pub frames: u64,
    /// Send counters.
    pub sends: SendStats,
    /// Parity percentage at the end (adaptive FEC's last decision).
    pub final_parity: u8,
    /// Datagrams on the data port that failed to authenticate.
    pub refused: u64,
}

/// A running host-side stream.
#[derive(Debug)]
pub struct DataStream {
    port: u16,
    stop: Arc<AtomicBool>,
    cmds: mpsc::Sender<StreamCmd>,
    thread: Option<thread::JoinHandle<Result<SendSummary>>>,
}

impl DataStream {
    /// Binds a data socket on `ip` and starts the send thread, which waits for the
    /// client's announce and then streams `source` in `mode` until stopped.
    pub fn start(
        ip: IpAddr,
        keys: DataKeys,
        mode: Mode,
        policy: FecPolicy,
        source: MakeFrameSource,
    ) -> Result<Self> {
        let socket = BatchSocket::bind(SocketAddr::new(ip, 0)).context("binding the data port")?;
        let port = socket.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let (cmds, rx) = mpsc::channel();
        let thread = {
            let stop = stop.clone();
            thread::Builder::new()
                .name("pf-native-tx".into())
                .spawn(move || send_loop(socket, keys, mode, policy, source, rx, &stop))?
        };
        Ok(Self {
            port,
            stop,
            cmds,
            thread: Some(thread),
        })
    }

    /// The host's data port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Forwards a command to the send thread.
    pub fn command(&self, cmd: StreamCmd) {
        let _ = self.cmds.send(cmd);
    }

    /// Stops the thread and returns its summary. Blocks briefly: call it from a
    /// blocking context, never on the async runtime.
    pub fn stop(mut self) -> Result<SendSummary> {
        self.stop.store(true, Ordering::Release);
        self.thread
            .take()
            .map(|t| t.join().map_err(|_| anyhow!("data send thread panicked"))?)
            .unwrap_or_else(|| Ok(SendSummary::default()))
    }
}

impl Drop for DataStream {
    fn drop(&mut self) {
        // Never join here: drop may run on the runtime. The thread sees the flag.
        self.stop.store(true, Ordering::Release);
    }
}

/// Waits for an authenticated announce; returns the client's address.
fn await_announce(
    socket: &BatchSocket,
    key: &[u8; 16],
    stop: &AtomicBool,
    refused: &mut u64,
) -> Result<Option<SocketAddr>> {
    let mut opener = PacketOpener::new(key, SALT_CLIENT_DATA)?;
    let mut buf = [0u8; 2048];
    let deadline = clock::now() + Duration::from_secs(10);
    while !stop.load(Ordering::Acquire) && clock::now() < deadline {
        // The socket is non-blocking (see BatchSocket::bind): wait, never spin.
        if !socket.wait_readable(Duration::from_millis(50))? {
            continue;
        }
        let (n, from) = match socket.socket().recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e).context("receiving the announce"),
        };
        match opener.open(&mut buf[..n]) {
            Ok((h, _)) if h.kind == KIND_ANNOUNCE => return Ok(Some(from)),
            _ => *refused += 1,
        }
    }
    Ok(None)
}

fn send_loop(
    socket: BatchSocket,
    keys: DataKeys,
    mode: Mode,
    policy: FecPolicy,
    make_source: MakeFrameSource,
    cmds: mpsc::Receiver<StreamCmd>,
    stop: &AtomicBool,
) -> Result<SendSummary> {
    let mut summary = SendSummary::default();
    let Some(dest) = await_announce(&socket, &keys.client_to_host, stop, &mut summary.refused)?
    else {
        return Ok(summary);
    };
    tracing::info!(%dest, "native data plane: streaming");
    let mut source = make_source().context("opening the stream's frame source")?;
    let mut fec = AdaptiveFec::new(policy, mode.fec_percent);
    let config = NativeConfig {
        parity_percent: u16::from(fec.percent()),
        ..NativeConfig::default()
    };
    let packetizer = NativePacketizer::new(
        config,
        PacketSealer::new(&keys.host_to_client, SALT_HOST_DATA)?,
    )?;
    let fps = u32::from(mode.fps.max(1));
    let mut sender = FrameSender::new(
        socket,
        dest,
        packetizer,
        SendPacing {
            fps,
            spread: 0.5,
            bitrate_kbps: u64::from(mode.bitrate_kbps),
        },
    );
    // The encoder's first frame is an IDR anyway; asking makes it so for any source.
    source.request_idr();
    // Frames are numbered as sent, from 0: the receiver counts a gap as loss.
    let mut n = 0u32;
    while !stop.load(Ordering::Acquire) {
        while let Ok(cmd) = cmds.try_recv() {
            match cmd {
                StreamCmd::Loss(r) => {
                    let p = fec.on_report(clock::now(), &r);
                    sender.set_parity_percent(u16::from(p));
                }
                StreamCmd::Idr => source.request_idr(),
            }
        }
        // Short waits, so commands and the stop flag are seen within a few ms.
        let Some(frame) = source.next_frame(POLL)? else {
            continue;
        };
        if frame.data.is_empty() {
            continue;
        }
        let flags = if frame.keyframe { FLAG_KEYFRAME } else { 0 };
        sender.send_frame(n, flags, frame.data)?;
        n = n.wrapping_add(1);
        summary.frames += 1;
    }
    summary.sends = sender.stats();
    summary.final_parity = fec.percent();
    Ok(summary)
}
