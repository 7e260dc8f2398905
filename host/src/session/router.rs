//! The fixed GameStream ports (video, audio, control), shared by every session: one
//! reader thread per port sorts each datagram to the session it belongs to.
//!
//! - **Video and audio** carry only the client's pings. A ping goes to the session
//!   whose per-launch payload it carries *and* whose launching client's address it
//!   comes from ([`StreamSession::handle_ping`]); that session learns where its client
//!   receives. A stranger that pings first, with a guessed payload or an old one,
//!   matches nothing and receives nothing.
//! - **Control** is ENet. A datagram from an address bound to a session goes to that
//!   session's ENet host. An unknown address is bound by its ENet CONNECT: the
//!   connect data (random per launch, from the RTSP handshake) names the session, and
//!   the address must be its launching client's. ENet allocates a peer slot for every
//!   CONNECT it parses, so a stranger spraying CONNECTs never reaches any ENet host.
//!
//! Whatever matches no session is counted and dropped. Streams send on the same
//! sockets; only the readers here receive on them.
//!
//! [`StreamSession::handle_ping`]: punktfunk_core::gamestream::session::StreamSession::handle_ping

use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use punktfunk_core::gamestream::handshake::StreamPorts;
use punktfunk_core::gamestream::session::Channel;
use rusty_enet::{MTU_MAX, PacketReceived, Socket, SocketOptions};

use crate::config::Config;
use crate::net::udp_batch::BatchSocket;
use crate::stream::session::Shared;

/// The UDP sockets streams use, bound once at start-up: client pings are never
/// refused, and no other program (a client's ephemeral port, say) can take a port
/// between two streams.
#[derive(Debug)]
pub struct MediaSockets {
    /// The video port.
    pub video: BatchSocket,
    /// The audio port.
    pub audio: UdpSocket,
    /// The control port.
    pub control: UdpSocket,
}

impl MediaSockets {
    /// Binds the video, audio and control ports.
    pub fn bind(config: &Config) -> Result<Self> {
        let at = |port| SocketAddr::new(config.bind, port);
        Self::bind_at(
            at(config.ports.video),
            at(config.ports.audio),
            at(config.ports.control),
        )
    }

    /// Binds ports the system picks (tests).
    pub fn bind_ephemeral() -> Result<Self> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::bind_at(any, any, any)
    }

    fn bind_at(video: SocketAddr, audio: SocketAddr, control: SocketAddr) -> Result<Self> {
        let video =
            BatchSocket::bind(video).with_context(|| format!("binding the video port {video}"))?;
        let audio =
            UdpSocket::bind(audio).with_context(|| format!("binding the audio port {audio}"))?;
        let control = UdpSocket::bind(control)
            .with_context(|| format!("binding the control port {control}"))?;
        // The readers wait with poll(2) and then drain without blocking; the video
        // thread's batched sends must not block either.
        video.socket().set_nonblocking(true)?;
        audio.set_nonblocking(true)?;
        control.set_nonblocking(true)?;
        Ok(Self {
            video,
            audio,
            control,
        })
    }

    /// The ports the handshake announces: where the sockets really are.
    pub fn ports(&self) -> Result<StreamPorts> {
        Ok(StreamPorts {
            video: self.video.socket().local_addr()?.port(),
            audio: self.audio.local_addr()?.port(),
            control: self.control.local_addr()?.port(),
        })
    }
}

/// Control datagrams queued for one session's ENet host. Bounded: a flood from the
/// session's own address loses datagrams (counted), never memory.
const CONTROL_QUEUE: usize = 512;

type ControlDatagram = (SocketAddr, Vec<u8>);

/// One session's place on the shared ports.
#[derive(Debug)]
pub struct Route {
    session: u64,
    client_ip: IpAddr,
    connect_data: u32,
    shared: Arc<Shared>,
    control_tx: SyncSender<ControlDatagram>,
    control_peer: Mutex<Option<SocketAddr>>,
}

impl Route {
    fn control_peer(&self) -> Option<SocketAddr> {
        *self.control_peer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The receiving end of a session's control datagrams (see [`RoutedSocket`]).
#[derive(Debug)]
pub struct ControlInbox(Receiver<ControlDatagram>);

/// Datagrams that matched no session, per port, since the host started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Unmatched {
    /// On the video port.
    pub video: u64,
    /// On the audio port.
    pub audio: u64,
    /// On the control port.
    pub control: u64,
}

/// Sorts the shared ports' datagrams to their sessions. Its reader threads end
/// within [`POLL`] of the router being dropped.
#[derive(Debug, Default)]
pub struct Router {
    routes: RwLock<Vec<Arc<Route>>>,
    unmatched: [AtomicU64; 3],
}

/// How long a reader waits for a datagram before it checks whether the router
/// still exists.
const POLL: Duration = Duration::from_millis(100);

impl Router {
    /// A router with a reader thread per port of `sockets`.
    pub fn start(sockets: &MediaSockets) -> Result<Arc<Self>> {
        let router = Arc::new(Self::default());
        let video = sockets.video.socket().try_clone()?;
        let audio = sockets.audio.try_clone()?;
        let control = sockets.control.try_clone()?;
        let weak = Arc::downgrade(&router);
        spawn_reader("pf-route-video", weak.clone(), video, |r, s, buf| {
            r.read_pings(s, Channel::Video, buf)
        })?;
        spawn_reader("pf-route-audio", weak.clone(), audio, |r, s, buf| {
            r.read_pings(s, Channel::Audio, buf)
        })?;
        spawn_reader("pf-route-ctrl", weak, control, Router::read_control)?;
        Ok(router)
    }

    /// Routes `session`'s stream: pings to `shared`'s session logic (which checks
    /// payload and address), ENet datagrams from `client_ip` that connect with
    /// `connect_data` to the returned inbox.
    pub fn add(
        &self,
        session: u64,
        client_ip: IpAddr,
        connect_data: u32,
        shared: Arc<Shared>,
    ) -> (Arc<Route>, ControlInbox) {
        let (control_tx, rx) = sync_channel(CONTROL_QUEUE);
        let route = Arc::new(Route {
            session,
            client_ip: client_ip.to_canonical(),
            connect_data,
            shared,
            control_tx,
            control_peer: Mutex::new(None),
        });
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        // A session has one stream: a newer one (a resume) replaces the old route.
        routes.retain(|r| r.session != session);
        routes.push(route.clone());
        (route, ControlInbox(rx))
    }

    /// Takes `route` off the ports: nothing more reaches its stream.
    pub fn remove(&self, route: &Arc<Route>) {
        self.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|r| !Arc::ptr_eq(r, route));
    }

    /// Sessions routed now.
    pub fn len(&self) -> usize {
        self.routes.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no session is routed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Datagrams that matched no session so far.
    pub fn unmatched(&self) -> Unmatched {
        let n = |i: usize| self.unmatched[i].load(Ordering::Relaxed);
        Unmatched {
            video: n(0),
            audio: n(1),
            control: n(2),
        }
    }

    fn count_unmatched(&self, port: usize) {
        let n = self.unmatched[port].fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::debug!(port, n, "dropped datagrams that match no session");
        }
    }

    fn read_pings(&self, socket: &UdpSocket, channel: Channel, buf: &mut [u8]) {
        while let Some((n, from)) = recv(socket, buf) {
            let now = Instant::now();
            let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
            let hit = routes.iter().any(|r| {
                r.shared
                    .session()
                    .handle_ping(now, from, channel, &buf[..n])
            });
            drop(routes);
            if !hit {
                self.count_unmatched(match channel {
                    Channel::Video => 0,
                    Channel::Audio => 1,
                });
            }
        }
    }

    fn read_control(&self, socket: &UdpSocket, buf: &mut [u8]) {
        while let Some((n, from)) = recv(socket, buf) {
            let datagram = &buf[..n];
            let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
            let route = routes
                .iter()
                .find(|r| r.control_peer() == Some(from))
                .or_else(|| {
                    let data = enet_connect_data(datagram)?;
                    let ip = from.ip().to_canonical();
                    let r = routes
                        .iter()
                        .find(|r| r.connect_data == data && r.client_ip == ip)?;
                    tracing::info!(%from, session = r.session, "control peer bound by its ENet connect");
                    *r.control_peer.lock().unwrap_or_else(|e| e.into_inner()) = Some(from);
                    Some(r)
                });
            match route {
                Some(r) => {
                    if r.control_tx.try_send((from, datagram.to_vec())).is_err() {
                        r.shared.count_malformed();
                    }
                }
                None => self.count_unmatched(2),
            }
        }
    }
}

/// Reads one datagram without blocking; `None` when none is queued.
fn recv(socket: &UdpSocket, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    loop {
        match socket.recv_from(buf) {
            Ok(r) => return Some(r),
            // ICMP errors from an earlier send surface here: no reason to stop.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
            Err(_) => return None,
        }
    }
}

fn spawn_reader(
    name: &str,
    router: Weak<Router>,
    socket: UdpSocket,
    read: impl Fn(&Router, &UdpSocket, &mut [u8]) + Send + 'static,
) -> Result<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let mut buf = vec![0u8; 2048];
            loop {
                let Some(r) = router.upgrade() else { return };
                read(&r, &socket, &mut buf);
                // Wait without holding the router: dropping it must not wait here.
                drop(r);
                poll_fd(socket.as_raw_fd(), POLL);
            }
        })
        .with_context(|| format!("spawning {name}"))?;
    Ok(())
}

fn poll_fd(fd: i32, timeout: Duration) {
    let mut fds = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; `fd` is a socket the
    // calling reader thread owns for its whole life.
    unsafe { libc::poll(&mut fds, 1, timeout.as_millis() as libc::c_int) };
}

/// The connect data of an ENet CONNECT datagram (the first command), if it is one.
/// Layout (ENet 1.3 `protocol.h`, which moonlight-common-c's fork keeps): the header
/// is the peer id (u16, flag 0x8000 = a sent time follows, 0x4000 = compressed) and
/// the optional sent time (u16); the CONNECT command is 48 bytes whose last 4 are the
/// data, big-endian.
pub fn enet_connect_data(datagram: &[u8]) -> Option<u32> {
    const SENT_TIME: u16 = 0x8000;
    const COMPRESSED: u16 = 0x4000;
    const CONNECT: u8 = 2;
    let flags = u16::from_be_bytes(datagram.get(..2)?.try_into().ok()?);
    if flags & COMPRESSED != 0 {
        return None;
    }
    let cmd = if flags & SENT_TIME != 0 { 4 } else { 2 };
    if datagram.get(cmd)? & 0x0f != CONNECT {
        return None;
    }
    let data = datagram.get(cmd + 44..cmd + 48)?;
    Some(u32::from_be_bytes(data.try_into().ok()?))
}

/// The socket one session's ENet host runs on: it receives what the router queued
/// for the session and sends on the shared control port.
#[derive(Debug)]
pub struct RoutedSocket {
    socket: UdpSocket,
    inbox: Receiver<ControlDatagram>,
    pending: Option<ControlDatagram>,
}

impl RoutedSocket {
    /// Sends on `socket` (a clone of the control port), receives from `inbox`.
    pub fn new(socket: UdpSocket, inbox: ControlInbox) -> Self {
        Self {
            socket,
            inbox: inbox.0,
            pending: None,
        }
    }

    /// Waits up to `timeout` for a datagram (ENet reads it at its next service).
    pub fn wait(&mut self, timeout: Duration) {
        if self.pending.is_none() {
            self.pending = self.inbox.recv_timeout(timeout).ok();
        }
    }
}

impl Socket for RoutedSocket {
    type Address = SocketAddr;
    type Error = io::Error;

    fn init(&mut self, _options: SocketOptions) -> io::Result<()> {
        Ok(())
    }

    fn send(&mut self, address: SocketAddr, buffer: &[u8]) -> io::Result<usize> {
        match self.socket.send_to(buffer, address) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn receive(
        &mut self,
        buffer: &mut [u8; MTU_MAX],
    ) -> io::Result<Option<(SocketAddr, PacketReceived)>> {
        let next = self.pending.take().or_else(|| self.inbox.try_recv().ok());
        Ok(next.map(|(from, data)| {
            let n = data.len().min(MTU_MAX);
            buffer[..n].copy_from_slice(&data[..n]);
            (from, PacketReceived::Complete(n))
        }))
    }
}

#[cfg(test)]
mod tests;
