//! Batched UDP for the per-frame path, on plain threads.
//!
//! Sending: a frame's packets sit back to back in one buffer, all the same length, so
//! they go out as UDP GSO batches (one `sendmsg` with `UDP_SEGMENT` per up to 64
//! packets) through quinn-udp. Where the kernel or socket has no GSO, the fallback is
//! `sendmmsg`, still one syscall per batch. Receiving uses quinn-udp's `recvmmsg` with
//! GRO, so one syscall brings in many datagrams.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};

/// Datagrams one `sendmmsg` call carries in the fallback path.
const MMSG_BATCH: usize = 64;
/// A GSO send is one UDP datagram to the kernel: its payload must stay under 64 KiB.
pub const MAX_GSO_BYTES: usize = 65_000;

/// A UDP socket with batched send and receive.
#[derive(Debug)]
pub struct BatchSocket {
    socket: UdpSocket,
    state: UdpSocketState,
    gso: bool,
}

/// Counters of a [`BatchSocket`]'s sends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendStats {
    /// System calls made.
    pub syscalls: u64,
    /// Datagrams handed to the kernel.
    pub datagrams: u64,
}

impl BatchSocket {
    /// Binds a socket at `addr` with large kernel buffers.
    ///
    /// quinn-udp makes the socket non-blocking, and it stays so: `recvmmsg` on a
    /// blocking socket would wait for all 32 messages. [`Self::recv`] and the sends
    /// wait in poll(2) instead whenever the kernel has nothing (or no room), so a
    /// thread never spins. (Before, the receive loops spun on `WouldBlock`: on the
    /// 2-core bench the spin took ~70% of all CPU and starved the sender.)
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        let state = UdpSocketState::new((&socket).into())?;
        // Best effort: the kernel caps these at rmem_max / wmem_max.
        let _ = state.set_send_buffer_size((&socket).into(), 4 << 20);
        let _ = state.set_recv_buffer_size((&socket).into(), 4 << 20);
        let gso = state.max_gso_segments() > 1;
        Ok(Self { socket, state, gso })
    }

    /// Disables GSO, forcing the `sendmmsg` fallback (for tests and comparisons).
    pub fn disable_gso(&mut self) {
        self.gso = false;
    }

    /// Whether sends use UDP GSO.
    pub fn uses_gso(&self) -> bool {
        self.gso
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The underlying socket (for timeouts and the like).
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Sends `packets`, a run of datagrams each `packet_len` bytes long, to `dest`.
    pub fn send_packets(
        &self,
        dest: SocketAddr,
        packets: &[u8],
        packet_len: usize,
        stats: &mut SendStats,
    ) -> io::Result<()> {
        if packets.is_empty() {
            return Ok(());
        }
        if packet_len == 0 || !packets.len().is_multiple_of(packet_len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ragged packet batch",
            ));
        }
        if self.gso {
            let segments = self
                .state
                .max_gso_segments()
                .min(MAX_GSO_BYTES / packet_len)
                .max(1);
            let per_call = segments * packet_len;
            for chunk in packets.chunks(per_call) {
                let transmit = Transmit {
                    destination: dest,
                    ecn: None,
                    contents: chunk,
                    segment_size: (chunk.len() > packet_len).then_some(packet_len),
                    src_ip: None,
                };
                retry_would_block(&self.socket, || {
                    self.state.try_send((&self.socket).into(), &transmit)
                })?;
                stats.syscalls += 1;
                stats.datagrams += (chunk.len() / packet_len) as u64;
            }
            Ok(())
        } else {
            for chunk in packets.chunks(MMSG_BATCH * packet_len) {
                let sent = sendmmsg(&self.socket, dest, chunk, packet_len)?;
                stats.syscalls += 1;
                stats.datagrams += sent as u64;
            }
            Ok(())
        }
    }

    /// Receives into `bufs`; returns how many entries of `meta` are filled. A GRO buffer
    /// may hold several datagrams, `meta.stride` bytes apart. With nothing queued it
    /// waits up to the socket's read timeout (forever without one) and then reports
    /// `WouldBlock`.
    pub fn recv(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> io::Result<usize> {
        match self.state.recv((&self.socket).into(), bufs, meta) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wait_for(&self.socket, libc::POLLIN, self.socket.read_timeout()?)? {
                    return Err(e);
                }
                self.state.recv((&self.socket).into(), bufs, meta)
            }
            other => other,
        }
    }

    /// Waits up to `timeout` for a datagram to arrive; returns whether one did.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        wait_for(&self.socket, libc::POLLIN, Some(timeout))
    }
}

/// poll(2) on one socket for `events`; `None` waits forever. Returns whether it is ready.
fn wait_for(
    socket: &UdpSocket,
    events: libc::c_short,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    let ms = timeout.map_or(-1, |t| {
        t.as_millis().clamp(1, i32::MAX as u128) as libc::c_int
    });
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd that outlives the call.
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Retries a send that hit a full socket buffer, waiting in poll(2) for room.
fn retry_would_block(socket: &UdpSocket, mut f: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_for(socket, libc::POLLOUT, Some(Duration::from_millis(10)))?;
            }
            other => return other,
        }
    }
}

/// `sendmmsg` of equal-length datagrams to one destination. Returns datagrams sent.
fn sendmmsg(
    socket: &UdpSocket,
    dest: SocketAddr,
    chunk: &[u8],
    packet_len: usize,
) -> io::Result<usize> {
    let addr = socket2_addr(dest);
    let count = chunk.len() / packet_len;
    let mut iovecs: [libc::iovec; MMSG_BATCH] = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MMSG_BATCH];
    // SAFETY: mmsghdr is plain data; all-zero is a valid (empty) value.
    let mut msgs: [libc::mmsghdr; MMSG_BATCH] = unsafe { std::mem::zeroed() };
    for i in 0..count {
        iovecs[i] = libc::iovec {
            iov_base: chunk[i * packet_len..].as_ptr() as *mut libc::c_void,
            iov_len: packet_len,
        };
        msgs[i].msg_hdr.msg_name = &addr.0 as *const _ as *mut libc::c_void;
        msgs[i].msg_hdr.msg_namelen = addr.1;
        msgs[i].msg_hdr.msg_iov = &mut iovecs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    let mut done = 0;
    while done < count {
        // SAFETY: msgs[done..count] point at iovecs and an address that outlive the
        // call; the kernel only reads the buffers.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                msgs[done..].as_mut_ptr(),
                (count - done) as libc::c_uint,
                0,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    wait_for(
                        socket,
                        libc::POLLOUT,
                        Some(std::time::Duration::from_millis(10)),
                    )?;
                    continue;
                }
                _ => return Err(err),
            }
        }
        done += n as usize;
    }
    Ok(done)
}

/// A `sockaddr_storage` and its length for `addr`.
fn socket2_addr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage, which is suitably aligned.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage, which is suitably aligned.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recv_all(rx: &BatchSocket, expect: usize, packet_len: usize) -> Vec<Vec<u8>> {
        rx.socket()
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut storage = vec![vec![0u8; 64 * 1024]; 8];
        let mut meta = vec![RecvMeta::default(); 8];
        let mut got = Vec::new();
        while got.len() < expect {
            let mut bufs: Vec<IoSliceMut<'_>> =
                storage.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            let n = rx
                .recv(&mut bufs, &mut meta)
                .expect("datagrams arrive before the timeout");
            for (m, buf) in meta.iter().zip(bufs.iter()).take(n) {
                for d in buf[..m.len].chunks(m.stride) {
                    assert_eq!(d.len(), packet_len);
                    got.push(d.to_vec());
                }
            }
        }
        got
    }

    /// Whether the kernel takes UDP_SEGMENT (Linux 4.18+), asked directly rather than
    /// through quinn-udp, whose answer is what the GSO test checks.
    fn kernel_has_udp_gso() -> bool {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let size: libc::c_int = 1200;
        // SAFETY: a valid socket, and an int option value with its true length.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_UDP,
                libc::UDP_SEGMENT,
                (&raw const size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        rc == 0
    }

    fn check_batch(disable_gso: bool) -> (BatchSocket, SendStats) {
        let mut tx = BatchSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        if disable_gso {
            tx.disable_gso();
        }
        let rx = BatchSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let packet_len = 1200;
        // 120 datagrams: GSO sends them in 3 buffers (54 + 54 + 12), sendmmsg in 2 calls
        // (64 + 56), so the syscall count tells which path carried them.
        let count = 120;
        let packets: Vec<u8> = (0..count * packet_len)
            .map(|i| (i / packet_len) as u8)
            .collect();
        let mut stats = SendStats::default();
        tx.send_packets(rx.local_addr().unwrap(), &packets, packet_len, &mut stats)
            .unwrap();
        assert_eq!(stats.datagrams, count as u64);
        // Batched: far fewer syscalls than datagrams.
        assert!(stats.syscalls <= 5, "{stats:?}");
        let mut got = recv_all(&rx, count, packet_len);
        got.sort_by_key(|d| d[0]);
        for (i, d) in got.iter().enumerate() {
            assert!(d.iter().all(|&b| b == i as u8), "datagram {i} intact");
        }
        (tx, stats)
    }

    #[test]
    fn gso_batches_arrive_as_separate_datagrams() {
        let (tx, stats) = check_batch(false);
        if !kernel_has_udp_gso() {
            eprintln!("this kernel has no UDP GSO: only the delivery was checked");
            return;
        }
        // GSO really carried them: the socket chose it, quinn-udp did not fall back
        // after a failed send, and the syscalls are GSO buffers of 54 datagrams
        // (65,000 / 1,200 bytes), 3 of them, not sendmmsg's 2 calls of up to 64.
        assert!(
            tx.uses_gso(),
            "the kernel has UDP GSO but the socket did not use it"
        );
        assert!(
            tx.state.max_gso_segments() > 1,
            "GSO was turned off after a send"
        );
        assert_eq!(stats.syscalls, 3, "{stats:?}");
    }

    #[test]
    fn sendmmsg_fallback_delivers_every_datagram() {
        let (tx, stats) = check_batch(true);
        assert!(!tx.uses_gso());
        assert_eq!(stats.syscalls, 2, "{stats:?}");
    }

    #[test]
    fn ragged_batches_are_refused() {
        let tx = BatchSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut stats = SendStats::default();
        assert!(
            tx.send_packets("127.0.0.1:9".parse().unwrap(), &[0; 10], 3, &mut stats)
                .is_err()
        );
    }
}
