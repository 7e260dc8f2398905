//! Accepting TCP connections under limits: a cap on open connections per listener and
//! per client address, and accept errors (out of file descriptors, say) logged and
//! retried with backoff instead of ending the host.
//!
//! Without caps, about a thousand idle connections from one machine used up the
//! process's file descriptors and every service went unreachable. With them, a flood
//! from one address costs it its own connections only, and a flood from many addresses
//! is refused at the global cap while the descriptors last.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// How many connections one listener keeps open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From all clients together.
    pub global: usize,
    /// From one client address.
    pub per_address: usize,
}

impl Limits {
    /// The GameStream HTTP/HTTPS ports and the web console: a Moonlight client or a
    /// browser opens a handful at a time.
    pub const WEB: Limits = Limits {
        global: 128,
        per_address: 24,
    };
    /// RTSP: one request per connection, one client streams.
    pub const RTSP: Limits = Limits {
        global: 32,
        per_address: 8,
    };
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Counts open connections and refuses those over a [`Limits`].
#[derive(Debug, Clone)]
pub struct ConnLimiter {
    limits: Limits,
    counts: Arc<Mutex<Counts>>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnPermit {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_address.remove(&self.ip);
            }
        }
    }
}

impl ConnLimiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            counts: Arc::default(),
        }
    }

    /// Admits a connection from `ip`, or `None` when a cap is reached.
    pub fn admit(&self, ip: IpAddr) -> Option<ConnPermit> {
        let ip = ip.to_canonical();
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mine = c.by_address.get(&ip).copied().unwrap_or(0);
        if c.total >= self.limits.global || mine >= self.limits.per_address {
            return None;
        }
        c.total += 1;
        *c.by_address.entry(ip).or_insert(0) += 1;
        Some(ConnPermit {
            counts: self.counts.clone(),
            ip,
        })
    }
}

/// A TCP listener that admits connections under [`Limits`].
#[derive(Debug)]
pub struct LimitedListener {
    listener: TcpListener,
    limiter: ConnLimiter,
    what: &'static str,
    refused: u64,
    last_warning: Option<Instant>,
}

/// The longest pause after repeated accept errors.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one warning about refused connections per listener in this time.
const WARN_EVERY: Duration = Duration::from_secs(10);

impl LimitedListener {
    /// Wraps `listener` (named `what` in the log).
    pub fn new(listener: TcpListener, limits: Limits, what: &'static str) -> Self {
        Self {
            listener,
            limiter: ConnLimiter::new(limits),
            what,
            refused: 0,
            last_warning: None,
        }
    }

    /// The next admitted connection. Connections over a cap are closed at once;
    /// accept errors are logged and retried after a growing pause. Never fails.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr, ConnPermit) {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.listener.accept().await {
                Ok((tcp, peer)) => {
                    backoff = Duration::from_millis(10);
                    if let Some(permit) = self.limiter.admit(peer.ip()) {
                        return (tcp, peer, permit);
                    }
                    drop(tcp);
                    self.refused += 1;
                    if self.last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                        tracing::warn!(
                            %peer,
                            refused = self.refused,
                            "{}: too many open connections; refusing new ones",
                            self.what
                        );
                        self.last_warning = Some(Instant::now());
                    }
                }
                Err(e) => {
                    tracing::warn!("{}: accept failed, retrying in {backoff:?}: {e}", self.what);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Raises the soft open-file limit to the hard one: a busy host holds many sockets,
/// and the usual soft default (1024) is far below what the unit allows.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        let wanted = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } != 0 {
            tracing::debug!("could not raise the open-file limit");
        }
    }
}

/// Makes large allocations (Argon2's 19 MiB blocks, big request bodies) go back to
/// the system when freed. glibc raises its mmap threshold after the first such block
/// is freed, from then on serving them from per-thread arenas that keep the memory:
/// after a burst of logins the host stayed hundreds of MiB larger.
pub fn return_large_allocations() {
    // SAFETY: mallopt only changes allocator tuning; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_overall_and_frees_on_drop() {
        let l = ConnLimiter::new(Limits {
            global: 3,
            per_address: 2,
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let a1 = l.admit(a).unwrap();
        let _a2 = l.admit(a).unwrap();
        assert!(l.admit(a).is_none(), "per-address cap");
        // A mapped IPv4 address is the same client.
        assert!(l.admit("::ffff:10.0.0.1".parse().unwrap()).is_none());
        let _b1 = l.admit(b).unwrap();
        assert!(l.admit(c).is_none(), "global cap");
        drop(a1);
        assert!(l.admit(c).is_some(), "a closed connection frees its place");
    }

    #[tokio::test]
    async fn refused_connections_are_closed_and_admitted_ones_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut limited = LimitedListener::new(
            listener,
            Limits {
                global: 8,
                per_address: 1,
            },
            "test",
        );
        let first = TcpStream::connect(addr).await.unwrap();
        let (_tcp, _, permit) = limited.accept().await;
        // Over the cap: the listener closes it and keeps waiting.
        let mut second = TcpStream::connect(addr).await.unwrap();
        let accept = tokio::spawn(async move {
            let got = limited.accept().await;
            (limited, got)
        });
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut second, &mut buf),
        )
        .await
        .expect("closed promptly");
        assert!(matches!(n, Ok(0) | Err(_)), "refused connection was closed");
        drop((permit, first));
        let _third = TcpStream::connect(addr).await.unwrap();
        let (_limited, (_tcp, _, _permit)) = tokio::time::timeout(Duration::from_secs(5), accept)
            .await
            .unwrap()
            .unwrap();
    }
}
