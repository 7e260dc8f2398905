//! The receive side of the native data plane: [`PacketReceiver`] (recvmmsg/GRO, open,
//! replay-check, reassemble), shared by the client ([`DataReceiver`], which adds the
//! announce and loss metering) and the loopback bench.

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use punktfunk_core::native::control::LossReport;
use punktfunk_core::native::loss_meter::LossMeter;
use punktfunk_core::native::packetizer::NativeConfig;
use punktfunk_core::native::reassembly::{Frame, NativeStats, Reassembler, ReassemblyLimits};
use punktfunk_core::native::wire::{
    HEADER_LEN, KIND_ANNOUNCE, OVERHEAD, PacketHeader, PacketOpener, PacketSealer,
    SALT_CLIENT_DATA, SALT_HOST_DATA,
};
use quinn_udp::RecvMeta;

use super::data::DataKeys;
use crate::net::udp_batch::BatchSocket;
use crate::realtime::Realtime;

/// Receive buffers per `recvmmsg` call.
const RECV_SLOTS: usize = 32;
/// Bytes of one receive buffer: a whole GRO batch (at most 64 KiB) fits.
const SLOT_BYTES: usize = 64 * 1024;

/// Receive counters beyond the reassembler's.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecvCounters {
    /// Receive system calls that returned data.
    pub syscalls: u64,
    /// Datagrams those calls brought in.
    pub datagrams: u64,
}

/// Receives, opens and reassembles one direction's data packets. Its buffers are
/// allocated once; a poll allocates nothing.
#[derive(Debug)]
pub struct PacketReceiver {
    socket: BatchSocket,
    opener: PacketOpener,
    reassembler: Reassembler,
    storage: Vec<u8>,
    meta: Vec<RecvMeta>,
    counters: RecvCounters,
    /// Each poll runs real-time where the process may (see [`crate::realtime`]): a
    /// receive thread scheduled out for milliseconds is most of a frame's tail latency.
    realtime: Realtime,
}

impl PacketReceiver {
    /// Receives on `socket` packets sealed with `key` under `salt`.
    pub fn new(
        socket: BatchSocket,
        key: &[u8; 16],
        salt: [u8; 4],
        limits: ReassemblyLimits,
    ) -> Result<Self> {
        Ok(Self {
            socket,
            opener: PacketOpener::new(key, salt)?,
            reassembler: Reassembler::new(limits),
            storage: vec![0u8; RECV_SLOTS * SLOT_BYTES],
            meta: vec![RecvMeta::default(); RECV_SLOTS],
            counters: RecvCounters::default(),
            realtime: Realtime::default(),
        })
    }

    /// Receives for up to one socket timeout; `drop` decides per datagram whether to
    /// discard it (simulated loss; `|| false` for none), `on_packet` sees every opened
    /// header and `on_frame` every completed frame. Returns the datagrams received.
    pub fn poll(
        &mut self,
        drop: impl FnMut() -> bool,
        on_packet: impl FnMut(&PacketHeader),
        on_frame: impl FnMut(Frame<'_>),
    ) -> Result<usize> {
        let mut realtime = std::mem::take(&mut self.realtime);
        let out = realtime.run(|| self.receive(drop, on_packet, on_frame));
        self.realtime = realtime;
        out
    }

    fn receive(
        &mut self,
        mut drop: impl FnMut() -> bool,
        mut on_packet: impl FnMut(&PacketHeader),
        mut on_frame: impl FnMut(Frame<'_>),
    ) -> Result<usize> {
        let mut slots = self.storage.chunks_exact_mut(SLOT_BYTES);
        let mut bufs: [IoSliceMut<'_>; RECV_SLOTS] =
            std::array::from_fn(|_| IoSliceMut::new(slots.next().expect("RECV_SLOTS slots")));
        let n = match self.socket.recv(&mut bufs, &mut self.meta) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(0);
            }
            Err(e) => return Err(e).context("receiving data packets"),
        };
        let mut datagrams = 0;
        for (m, buf) in self.meta.iter().zip(bufs.iter_mut()).take(n) {
            let stride = m.stride.max(1);
            for datagram in buf[..m.len].chunks_mut(stride) {
                datagrams += 1;
                if drop() {
                    continue;
                }
                let Ok((header, shard)) = self.opener.open(datagram) else {
                    self.reassembler.count_malformed();
                    continue;
                };
                on_packet(&header);
                if let Some(frame) = self.reassembler.push(&header, shard) {
                    on_frame(frame);
                }
            }
        }
        self.counters.syscalls += 1;
        self.counters.datagrams += datagrams as u64;
        Ok(datagrams)
    }

    /// Reassembly counters.
    pub fn stats(&self) -> NativeStats {
        self.reassembler.stats()
    }

    /// Receive counters.
    pub fn counters(&self) -> RecvCounters {
        self.counters
    }

    /// The socket.
    pub fn socket(&self) -> &BatchSocket {
        &self.socket
    }
}

/// The client's receive side: announce, then receive, open, reassemble.
#[derive(Debug)]
pub struct DataReceiver {
    rx: PacketReceiver,
    meter: LossMeter,
    announce: Vec<u8>,
    host: SocketAddr,
    keys: DataKeys,
}

impl DataReceiver {
    /// Binds a socket, sizes reassembly for `max_frame_bytes`, and announces itself to
    /// the host's data port.
    pub fn connect(host: SocketAddr, keys: DataKeys, max_frame_bytes: usize) -> Result<Self> {
        let local: SocketAddr = if host.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let socket = BatchSocket::bind(local).context("binding the client data socket")?;
        socket
            .socket()
            .set_read_timeout(Some(Duration::from_millis(20)))?;
        // The host's parity may grow up to 100%; size for the worst.
        let limits = ReassemblyLimits::for_max_frame(
            max_frame_bytes,
            &NativeConfig {
                parity_percent: 100,
                ..NativeConfig::default()
            },
        )?;
        let mut r = Self {
            rx: PacketReceiver::new(socket, &keys.host_to_client, SALT_HOST_DATA, limits)?,
            meter: LossMeter::new(),
            announce: Vec::new(),
            host,
            keys,
        };
        r.send_announce()?;
        Ok(r)
    }

    /// (Re)sends the announce; the first datagram may be lost like any other.
    pub fn send_announce(&mut self) -> Result<()> {
        let mut sealer = PacketSealer::new(&self.keys.client_to_host, SALT_CLIENT_DATA)?;
        self.announce.clear();
        self.announce.resize(OVERHEAD + 2, 0);
        PacketHeader {
            kind: KIND_ANNOUNCE,
            flags: 0,
            counter: 0,
            frame_id: 0,
            shard_index: 0,
            data_shards: 1,
            parity_shards: 0,
            frame_len: 2,
        }
        .write(&mut self.announce[..HEADER_LEN])?;
        sealer.seal(&mut self.announce)?;
        self.rx
            .socket()
            .socket()
            .send_to(&self.announce, self.host)?;
        Ok(())
    }

    /// Receives for up to one socket timeout; `drop` decides per datagram whether to
    /// discard it (simulated loss; pass `|| false` for none). Calls `on_frame` for
    /// each frame completed.
    pub fn poll(
        &mut self,
        drop: impl FnMut() -> bool,
        on_frame: impl FnMut(Frame<'_>),
    ) -> Result<()> {
        let meter = &mut self.meter;
        self.rx.poll(drop, |h| meter.on_packet(h), on_frame)?;
        Ok(())
    }

    /// The loss report for the interval since the last call.
    pub fn loss_report(&mut self, interval: Duration) -> LossReport {
        self.meter
            .report(interval.as_millis() as u32, self.rx.stats())
    }

    /// Reassembly counters.
    pub fn stats(&self) -> NativeStats {
        self.rx.stats()
    }

    /// The local address (for tests that aim datagrams at it).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.rx.socket().local_addr()?)
    }
}
