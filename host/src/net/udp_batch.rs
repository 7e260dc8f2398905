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
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};

/// Datagrams one `sendmmsg` call carries in the fallback path.
const MMSG_BATCH: usize = 64;
/// A GSO send is one UDP datagram to the kernel: its payload must stay under 64 KiB.
const MAX_GSO_BYTES: usize = 65_000;

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
                retry_would_block(&self.socket, SEND_STALL_LIMIT, || {
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
    /// may hold several datagrams, `meta.stride` bytes apart.
    pub fn recv(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> io::Result<usize> {
        self.state.recv((&self.socket).into(), bufs, meta)
    }
}

/// How long a send may wait for room in a full socket buffer before it fails: the
/// kernel drains a healthy buffer in microseconds, so this only trips when the
/// network is gone, and the stream then ends with an error instead of hanging.
const SEND_STALL_LIMIT: Duration = Duration::from_secs(2);

/// Retries a send that hit a full socket buffer. The shared media sockets are
/// non-blocking (their reader threads drain them), so a full send buffer answers
/// `WouldBlock`: this sleeps in poll(2) until the socket is writable again rather
/// than spinning, and gives up with `TimedOut` after `limit` without room.
fn retry_would_block(
    socket: &impl AsRawFd,
    limit: Duration,
    mut f: impl FnMut() -> io::Result<()>,
) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(socket, deadline)?,
            other => return other,
        }
    }
}

/// Waits until `socket` has room to send, or fails with `TimedOut` at `deadline`.
fn wait_writable(socket: &impl AsRawFd, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the socket's send buffer stayed full",
            ));
        }
        let mut fds = [libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        }];
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is one valid pollfd, exclusively borrowed for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        if n > 0 {
            return Ok(());
        }
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
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
                    wait_writable(socket, Instant::now() + SEND_STALL_LIMIT)?;
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
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn a_full_send_buffer_is_waited_out_in_poll_not_spun_on() {
        // A datagram pair whose reader reads nothing: sends fill its buffer.
        let (tx, rx) = UnixDatagram::pair().unwrap();
        tx.set_nonblocking(true).unwrap();
        let full = |tx: &UnixDatagram| -> io::Result<()> { tx.send(&[0u8; 1024]).map(|_| ()) };
        while full(&tx).is_ok() {}
        // Nobody drains it: the retry sleeps in poll and gives up at its limit, having
        // tried once (a spinning retry would have tried thousands of times).
        let mut tries = 0;
        let started = Instant::now();
        let err = retry_would_block(&tx, Duration::from_millis(200), || {
            tries += 1;
            full(&tx)
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(tries, 1, "it retried without waiting for room");
        // The reader drains: the send goes out as soon as there is room.
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            rx.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 2048];
            let until = Instant::now() + Duration::from_millis(500);
            while Instant::now() < until {
                if rx.recv(&mut buf).is_err() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            rx
        });
        let mut tries = 0;
        retry_would_block(&tx, Duration::from_secs(5), || {
            tries += 1;
            full(&tx)
        })
        .unwrap();
        assert!(tries <= 3, "{tries} tries");
        drop(reader.join().unwrap());
    }

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
