//! The client's side of the native data plane: announce, then receive with
//! recvmmsg/GRO, open, replay-check, reassemble and meter loss.

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

/// The client's receive side: announce, then receive, open, reassemble.
#[derive(Debug)]
pub struct DataReceiver {
    socket: BatchSocket,
    opener: PacketOpener,
    reassembler: Reassembler,
    meter: LossMeter,
    storage: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    announce: Vec<u8>,
    host: SocketAddr,
    keys: DataKeys,
}

/// Receive-side counters beyond the reassembler's.
const RECV_SLOTS: usize = 32;

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
            socket,
            opener: PacketOpener::new(&keys.host_to_client, SALT_HOST_DATA)?,
            reassembler: Reassembler::new(limits),
            meter: LossMeter::new(),
            storage: vec![vec![0u8; 64 * 1024]; RECV_SLOTS],
            meta: vec![RecvMeta::default(); RECV_SLOTS],
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
        self.socket.socket().send_to(&self.announce, self.host)?;
        Ok(())
    }

    /// Receives for up to one socket timeout; `drop` decides per datagram whether to
    /// discard it (simulated loss; pass `|| false` for none). Calls `on_frame` for
    /// each frame completed.
    pub fn poll(
        &mut self,
        mut drop: impl FnMut() -> bool,
        mut on_frame: impl FnMut(Frame<'_>),
    ) -> Result<()> {
        let mut bufs: Vec<IoSliceMut<'_>> = self
            .storage
            .iter_mut()
            .map(|b| IoSliceMut::new(b))
            .collect();
        let n = match self.socket.recv(&mut bufs, &mut self.meta) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(());
            }
            Err(e) => return Err(e).context("receiving data packets"),
        };
        for (m, buf) in self.meta.iter().zip(bufs.iter_mut()).take(n) {
            let stride = m.stride.max(1);
            for datagram in buf[..m.len].chunks_mut(stride) {
                if drop() {
                    continue;
                }
                let Ok((header, shard)) = self.opener.open(datagram) else {
                    self.reassembler.count_malformed();
                    continue;
                };
                self.meter.on_packet(&header);
                if let Some(frame) = self.reassembler.push(&header, shard) {
                    on_frame(frame);
                }
            }
        }
        Ok(())
    }

    /// The loss report for the interval since the last call.
    pub fn loss_report(&mut self, interval: Duration) -> LossReport {
        self.meter
            .report(interval.as_millis() as u32, self.reassembler.stats())
    }

    /// Reassembly counters.
    pub fn stats(&self) -> NativeStats {
        self.reassembler.stats()
    }

    /// The local address (for tests that aim datagrams at it).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
}
