//! Measurements for the loopback bench: per-thread CPU time, and the raw UDP ceilings
//! (GSO and sendmmsg of pre-built 1400-byte datagrams, nothing else) measured in the
//! same run, so the data plane's goodput is reported as a ratio of what the kernel
//! path itself can carry on this machine right now.

use std::io::IoSliceMut;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use quinn_udp::RecvMeta;

use super::netns::{BenchPath, SocketPair};
use crate::clock;
use crate::net::udp_batch::SendStats;

/// CPU time the calling thread has used.
pub fn thread_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_THREAD is valid on
    // Linux for the calling thread.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut u);
        u
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// One raw ceiling: what arrived, and the CPU both threads spent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ceiling {
    /// Gbit/s of datagram payload received.
    pub gbps: f64,
    /// Sender CPU seconds per Gbit delivered.
    pub tx_cpu_per_gbit: f64,
    /// Receiver CPU seconds per Gbit delivered.
    pub rx_cpu_per_gbit: f64,
}

/// Blasts `packet_len`-byte datagrams for `for_time` with GSO (or sendmmsg) to a
/// receiver draining with recvmmsg/GRO over `path`; returns what arrived.
pub fn ceiling(
    path: &BenchPath,
    gso: bool,
    packet_len: usize,
    for_time: Duration,
) -> Result<Ceiling> {
    let SocketPair { mut tx, rx, dest } = path.sockets().context("binding the ceiling sockets")?;
    if !gso {
        tx.disable_gso();
    }
    rx.socket()
        .set_read_timeout(Some(Duration::from_millis(50)))?;
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let done = done.clone();
        thread::spawn(move || -> (u64, Duration) {
            let mut storage = vec![vec![0u8; 64 * 1024]; 32];
            let mut meta = vec![RecvMeta::default(); 32];
            let mut bytes = 0u64;
            while !done.load(Ordering::Acquire) {
                let mut bufs: Vec<IoSliceMut<'_>> =
                    storage.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                if let Ok(n) = rx.recv(&mut bufs, &mut meta) {
                    bytes += meta[..n].iter().map(|m| m.len as u64).sum::<u64>();
                }
            }
            (bytes, thread_cpu())
        })
    };
    let batch = vec![0x5au8; packet_len * 64];
    let mut stats = SendStats::default();
    let start = clock::now();
    while clock::now() - start < for_time {
        tx.send_packets(dest, &batch, packet_len, &mut stats)?;
    }
    let tx_cpu = thread_cpu();
    let elapsed = clock::now() - start;
    thread::sleep(Duration::from_millis(100));
    done.store(true, Ordering::Release);
    let (bytes, rx_cpu) = receiver.join().expect("ceiling receiver");
    let gbit = bytes as f64 * 8.0 / 1e9;
    Ok(Ceiling {
        gbps: gbit / elapsed.as_secs_f64(),
        tx_cpu_per_gbit: tx_cpu.as_secs_f64() / gbit.max(1e-9),
        rx_cpu_per_gbit: rx_cpu.as_secs_f64() / gbit.max(1e-9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_measure_something_and_cpu_time_advances() {
        let before = thread_cpu();
        let c = ceiling(&BenchPath::Loopback, true, 1400, Duration::from_millis(200)).unwrap();
        assert!(c.gbps > 0.0 && c.tx_cpu_per_gbit > 0.0, "{c:?}");
        assert!(thread_cpu() > before);
    }
}
