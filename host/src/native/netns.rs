//! Where the loopback bench runs: 127.0.0.1, or two private network namespaces joined
//! by a veth pair (as a client on the LAN would be, minus the wire). The veth path
//! needs root; its namespaces and links carry this process's id and a counter, so
//! parallel runs never collide, and are deleted when the [`BenchPath`] is dropped.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};

use crate::net::udp_batch::BatchSocket;

/// The sender's and receiver's sockets and how to reach the receiver.
#[derive(Debug)]
pub struct SocketPair {
    /// The sender's socket.
    pub tx: BatchSocket,
    /// The receiver's socket.
    pub rx: BatchSocket,
    /// The receiver's address as the sender sees it.
    pub dest: SocketAddr,
}

/// A network path for the bench.
#[derive(Debug)]
pub enum BenchPath {
    /// Both ends on 127.0.0.1 in the caller's namespace.
    Loopback,
    /// Each end in its own namespace, over a veth pair.
    Veth(VethPair),
}

impl BenchPath {
    /// Binds a fresh sender/receiver socket pair on this path.
    pub fn sockets(&self) -> Result<SocketPair> {
        match self {
            BenchPath::Loopback => {
                let rx = BatchSocket::bind("127.0.0.1:0".parse()?).context("binding receiver")?;
                let tx = BatchSocket::bind("127.0.0.1:0".parse()?).context("binding sender")?;
                let dest = rx.local_addr()?;
                Ok(SocketPair { tx, rx, dest })
            }
            BenchPath::Veth(v) => {
                let rx = v.bind(&v.rx_ns, VethPair::RX_IP)?;
                let tx = v.bind(&v.tx_ns, VethPair::TX_IP)?;
                let dest = rx.local_addr()?;
                Ok(SocketPair { tx, rx, dest })
            }
        }
    }

    /// A short name for tables.
    pub fn name(&self) -> &'static str {
        match self {
            BenchPath::Loopback => "loopback",
            BenchPath::Veth(v) if v.segmented => "veth (TX segmentation off)",
            BenchPath::Veth(_) => "veth",
        }
    }
}

/// Two namespaces and the veth pair between them.
#[derive(Debug)]
pub struct VethPair {
    tx_ns: String,
    rx_ns: String,
    segmented: bool,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl VethPair {
    const TX_IP: &'static str = "10.77.0.1";
    const RX_IP: &'static str = "10.77.0.2";

    /// Creates the namespaces and the pair. With `segment`, the sender's veth cuts
    /// GSO batches into single datagrams as a real NIC would (`ethtool -K ...
    /// tx-udp-segmentation off`); otherwise veth passes them through whole.
    pub fn create(segment: bool) -> Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "{}x{}",
            std::process::id() % 1_000_000,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let pair = Self {
            tx_ns: format!("pfbt{tag}"),
            rx_ns: format!("pfbr{tag}"),
            segmented: segment,
        };
        ip(&["netns", "add", &pair.tx_ns]).context("creating a network namespace (needs root)")?;
        // From here on, Drop cleans up whatever was made.
        ip(&["netns", "add", &pair.rx_ns])?;
        let (tx_if, rx_if) = (format!("pft{tag}"), format!("pfr{tag}"));
        ip(&[
            "link",
            "add",
            &tx_if,
            "netns",
            &pair.tx_ns,
            "type",
            "veth",
            "peer",
            "name",
            &rx_if,
            "netns",
            &pair.rx_ns,
        ])?;
        for (ns, dev, addr) in [
            (&pair.tx_ns, &tx_if, Self::TX_IP),
            (&pair.rx_ns, &rx_if, Self::RX_IP),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        if segment {
            let out = Command::new("ip")
                .args(["netns", "exec", &pair.tx_ns, "ethtool", "-K", &tx_if])
                .args(["tx-udp-segmentation", "off"])
                .output()
                .context("running ethtool")?;
            if !out.status.success() {
                bail!("ethtool: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
        }
        Ok(pair)
    }

    /// Binds a socket at `ip` inside namespace `ns`. A socket stays in the namespace it
    /// was made in, so a short-lived thread enters the namespace, binds, and ends; no
    /// other thread's namespace changes.
    fn bind(&self, ns: &str, ip: &str) -> Result<BatchSocket> {
        let path = format!("/var/run/netns/{ns}");
        let addr: SocketAddr = format!("{ip}:0").parse()?;
        std::thread::scope(|s| {
            s.spawn(|| -> Result<BatchSocket> {
                let file = File::open(&path).with_context(|| format!("opening {path}"))?;
                // SAFETY: setns with a valid namespace fd only changes the network
                // namespace of this thread, which ends right after binding.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error()).context("entering the namespace");
                }
                BatchSocket::bind(addr).with_context(|| format!("binding {addr} in {ns}"))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
        })
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the pair, and with it the peer.
        for ns in [&self.tx_ns, &self.rx_ns] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}
