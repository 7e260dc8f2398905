//! The bench's summary: latencies joined from the sender's and receiver's records,
//! printed as a block of counters and one table row (the format of issue 14's
//! benchmark table).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use punktfunk_core::native::reassembly::NativeStats;

use super::bench::Ceiling;
use super::receiver::RecvCounters;
use super::sender::FrameTimes;
use crate::net::udp_batch::SendStats;

/// The value at quantile `p` of sorted `values` (0 when empty).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Latency and goodput of a run.
#[derive(Debug, Clone)]
pub struct Report {
    path: &'static str,
    /// Delivered frame payload, Gbit/s.
    pub goodput_gbps: f64,
    gbit: f64,
    /// Send start to delivery, µs, sorted.
    latency_us: Vec<u64>,
    /// Delivery minus the moment the last data packet left, µs, sorted.
    added_us: Vec<u64>,
    /// p99 of `added_us`, ms.
    pub added_p99_ms: f64,
}

impl Report {
    /// Joins the sender's per-frame times (index = frame id) with the receiver's
    /// deliveries (frame id, µs since `epoch`).
    pub fn new(
        path: &'static str,
        times: &[FrameTimes],
        delivered: &[(u32, u64)],
        epoch: Instant,
        bytes: u64,
        run_time: Duration,
    ) -> Self {
        let us = |t: Instant| t.duration_since(epoch).as_micros() as u64;
        let by_id: HashMap<u32, u64> = delivered.iter().copied().collect();
        let mut latency_us = Vec::with_capacity(delivered.len());
        let mut added_us = Vec::with_capacity(delivered.len());
        for (id, t) in times.iter().enumerate() {
            if let Some(&at) = by_id.get(&(id as u32)) {
                latency_us.push(at.saturating_sub(us(t.start)));
                added_us.push(at.saturating_sub(us(t.data_sent)));
            }
        }
        latency_us.sort_unstable();
        added_us.sort_unstable();
        let gbit = bytes as f64 * 8.0 / 1e9;
        Self {
            path,
            goodput_gbps: gbit / run_time.as_secs_f64().max(1e-9),
            gbit,
            added_p99_ms: percentile(&added_us, 0.99) as f64 / 1000.0,
            latency_us,
            added_us,
        }
    }

    /// Prints the summary and the table row.
    #[allow(clippy::too_many_arguments)]
    pub fn print(
        &self,
        frames_sent: u64,
        frames_intact: u64,
        frames_corrupt: u64,
        (recv, dropped, stats): (RecvCounters, u64, NativeStats),
        sends: SendStats,
        (tx_cpu, rx_cpu): (Duration, Duration),
        ceilings: Option<(Ceiling, Ceiling)>,
    ) {
        let ms = |v: &[u64], p: f64| percentile(v, p) as f64 / 1000.0;
        let gbit = self.gbit.max(1e-9);
        println!("\nbench summary ({})", self.path);
        println!("  frames sent / delivered intact : {frames_sent} / {frames_intact}");
        println!("  corrupt frames                 : {frames_corrupt}");
        println!(
            "  datagrams received / dropped   : {} / {dropped} ({:.1} per receive syscall)",
            recv.datagrams,
            recv.datagrams as f64 / recv.syscalls.max(1) as f64
        );
        println!(
            "  shards rebuilt by FEC          : {}",
            stats.recovered_shards
        );
        println!("  frames lost                    : {}", stats.frames_lost);
        println!(
            "  malformed / oversized / stale / duplicate : {} / {} / {} / {}; surplus parity (after completion) {}",
            stats.malformed, stats.oversized, stats.stale, stats.duplicate, stats.surplus
        );
        println!(
            "  datagrams per send syscall     : {:.1} ({} datagrams, {} syscalls)",
            sends.datagrams as f64 / sends.syscalls.max(1) as f64,
            sends.datagrams,
            sends.syscalls
        );
        println!(
            "  send-to-deliver latency        : p50 {:.2} ms, p99 {:.2} ms",
            ms(&self.latency_us, 0.5),
            ms(&self.latency_us, 0.99)
        );
        println!(
            "  added (last data packet out to delivered): p50 {:.2} ms, p99 {:.2} ms",
            ms(&self.added_us, 0.5),
            ms(&self.added_us, 0.99)
        );
        let (tx_pg, rx_pg) = (tx_cpu.as_secs_f64() / gbit, rx_cpu.as_secs_f64() / gbit);
        println!(
            "  goodput                        : {:.3} Gbit/s; CPU s per Gbit: sender {tx_pg:.3}, receiver {rx_pg:.3}",
            self.goodput_gbps
        );
        let mut row = format!(
            "| {} | {:.2} | {tx_pg:.3} / {rx_pg:.3} | {:.2} / {:.2} | {:.2} / {:.2} | {} / {} |",
            self.path,
            self.goodput_gbps,
            ms(&self.latency_us, 0.5),
            ms(&self.latency_us, 0.99),
            ms(&self.added_us, 0.5),
            ms(&self.added_us, 0.99),
            stats.malformed,
            stats.stale
        );
        if let Some((gso, mmsg)) = ceilings {
            for (name, c) in [("GSO", gso), ("sendmmsg", mmsg)] {
                println!(
                    "  raw {name:<8} ceiling           : {:.3} Gbit/s (CPU s/Gbit tx {:.3}, rx {:.3}); goodput is {:.0}% of it",
                    c.gbps,
                    c.tx_cpu_per_gbit,
                    c.rx_cpu_per_gbit,
                    100.0 * self.goodput_gbps / c.gbps.max(1e-9)
                );
            }
            row += &format!(
                " {:.2} | {:.2} | {:.0}% |",
                mmsg.gbps,
                gso.gbps,
                100.0 * self.goodput_gbps / gso.gbps.max(1e-9)
            );
        }
        println!(
            "\n| path | goodput Gbps | CPU s/Gbit tx / rx | latency p50 / p99 ms | added p50 / p99 ms | malformed / stale |{}",
            if ceilings.is_some() {
                " sendmmsg Gbps | GSO Gbps | of GSO |"
            } else {
                ""
            }
        );
        println!("{row}");
    }
}
