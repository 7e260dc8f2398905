//! FEC throughput: `cargo bench -p punktfunk-core --bench fec`.
//!
//! GameStream's GF(2^8) Cauchy code at the shapes Moonlight streams use, against
//! reed-solomon-erasure's own (Vandermonde) codec and leopard-codec (GF(2^8) Leopard)
//! as baselines; and the native GF(2^16) code on a 2 MB frame in one block. GB/s
//! counts data bytes (k x shard length) per encode or decode; decode is at maximal
//! loss (m data shards lost).

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use punktfunk_core::fec::{BlockShape, ErasureCode, Gf8Rs, Gf16Rs};
use reed_solomon_erasure::galois_8::ReedSolomon;

use common::Row;

/// A GameStream FEC shard is a whole packet: moonlight's default packetSize (1392)
/// plus the 16-byte RTP prefix, as the packetizer lays it out. 1408 is also a multiple
/// of 64, which leopard-codec requires.
const GS_SHARD: usize = 1408;
const GS_SHAPES: [(usize, usize); 2] = [(64, 13), (200, 40)];
/// A 2 MB frame in 1400-byte shards.
const FRAME: usize = 2 << 20;
const NATIVE_SHARD: usize = 1400;

fn block(shape: BlockShape) -> Vec<u8> {
    let mut b: Vec<u8> = (0..shape.buffer_len())
        .map(|i| (i * 131 + 7) as u8)
        .collect();
    b[shape.data * shape.shard_len..].fill(0);
    b
}

/// Marks the first `min(k, m)` data shards lost, and enough parity to make `m`.
fn max_loss(shape: BlockShape) -> Vec<bool> {
    let lost_data = shape.data.min(shape.parity);
    (0..shape.total())
        .map(|i| {
            if i < shape.data {
                i >= lost_data
            } else {
                i - shape.data >= shape.parity - lost_data
            }
        })
        .collect()
}

fn bench_code(
    c: &mut Criterion,
    group: &str,
    name: &str,
    code: &mut dyn ErasureCode,
    shape: BlockShape,
) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::BytesDecimal(
        (shape.data * shape.shard_len) as u64,
    ));
    let id = format!("{}-{}", shape.data, shape.parity);
    let mut buf = block(shape);
    g.bench_function(BenchmarkId::new(format!("{name}-encode"), &id), |b| {
        b.iter(|| code.encode(shape, black_box(&mut buf)).unwrap())
    });
    code.encode(shape, &mut buf).unwrap();
    let present = max_loss(shape);
    let mut work = buf.clone();
    g.bench_function(BenchmarkId::new(format!("{name}-decode"), &id), |b| {
        b.iter(|| {
            code.reconstruct(shape, black_box(&mut work), &present)
                .unwrap();
        })
    });
    g.finish();
}

fn bench_rse_baseline(c: &mut Criterion, k: usize, m: usize) {
    let rs = ReedSolomon::new(k, m).unwrap();
    let mut g = c.benchmark_group("gamestream_fec");
    g.throughput(Throughput::BytesDecimal((k * GS_SHARD) as u64));
    let id = format!("{k}-{m}");
    let mut shards: Vec<Vec<u8>> = (0..k + m).map(|i| vec![i as u8; GS_SHARD]).collect();
    g.bench_function(BenchmarkId::new("rse-encode", &id), |b| {
        b.iter(|| rs.encode(black_box(&mut shards)).unwrap())
    });
    rs.encode(&mut shards).unwrap();
    let lost = k.min(m);
    g.bench_function(BenchmarkId::new("rse-decode", &id), |b| {
        b.iter(|| {
            let mut opt: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
            for s in opt.iter_mut().take(lost) {
                *s = None;
            }
            rs.reconstruct_data(black_box(&mut opt)).unwrap();
            opt
        })
    });
    g.finish();
}

fn bench_leopard_baseline(c: &mut Criterion, k: usize, m: usize) {
    let mut g = c.benchmark_group("gamestream_fec");
    g.throughput(Throughput::BytesDecimal((k * GS_SHARD) as u64));
    let id = format!("{k}-{m}");
    let mut shards: Vec<Vec<u8>> = (0..k + m).map(|i| vec![i as u8; GS_SHARD]).collect();
    g.bench_function(BenchmarkId::new("leopard-encode", &id), |b| {
        b.iter(|| leopard_codec::encode(black_box(&mut shards), k).unwrap())
    });
    leopard_codec::encode(&mut shards, k).unwrap();
    let lost = k.min(m);
    g.bench_function(BenchmarkId::new("leopard-decode", &id), |b| {
        b.iter(|| {
            let mut s = shards.clone();
            for shard in s.iter_mut().take(lost) {
                shard.clear();
            }
            leopard_codec::reconstruct(black_box(&mut s), k).unwrap();
            s
        })
    });
    g.finish();
}

/// reed-solomon-simd called directly, no wrapper: what `Gf16Rs` adds on top.
fn bench_rss_direct(c: &mut Criterion, k: usize, m: usize) {
    use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};
    let mut g = c.benchmark_group("native_fec");
    g.throughput(Throughput::BytesDecimal((k * NATIVE_SHARD) as u64));
    let id = format!("{k}-{m}");
    let data: Vec<Vec<u8>> = (0..k).map(|i| vec![i as u8; NATIVE_SHARD]).collect();
    let mut enc = ReedSolomonEncoder::new(k, m, NATIVE_SHARD).unwrap();
    g.bench_function(BenchmarkId::new("rss-direct-encode", &id), |b| {
        b.iter(|| {
            enc.reset(k, m, NATIVE_SHARD).unwrap();
            for d in &data {
                enc.add_original_shard(d).unwrap();
            }
            enc.encode().unwrap().recovery(0).map(<[u8]>::len)
        })
    });
    let recovery: Vec<Vec<u8>> = reed_solomon_simd::encode(k, m, &data).unwrap();
    let lost = k.min(m);
    let mut dec = ReedSolomonDecoder::new(k, m, NATIVE_SHARD).unwrap();
    g.bench_function(BenchmarkId::new("rss-direct-decode", &id), |b| {
        b.iter(|| {
            dec.reset(k, m, NATIVE_SHARD).unwrap();
            for (i, d) in data.iter().enumerate().skip(lost) {
                dec.add_original_shard(i, d).unwrap();
            }
            for (j, r) in recovery.iter().enumerate().skip(m - lost) {
                dec.add_recovery_shard(j, r).unwrap();
            }
            dec.decode().unwrap().restored_original(0).map(<[u8]>::len)
        })
    });
    g.finish();
}

fn main() {
    let mut c = common::criterion();
    let mut rows = Vec::new();
    for (k, m) in GS_SHAPES {
        let shape = BlockShape {
            data: k,
            parity: m,
            shard_len: GS_SHARD,
        };
        bench_code(
            &mut c,
            "gamestream_fec",
            "cauchy",
            &mut Gf8Rs::cauchy(),
            shape,
        );
        bench_rse_baseline(&mut c, k, m);
        // leopard-codec needs k + next_power_of_two(m) <= 256: 200+40 is out of reach.
        let leopard = k + m.next_power_of_two() <= 256;
        if leopard {
            bench_leopard_baseline(&mut c, k, m);
        }
        for op in ["encode", "decode"] {
            let base = format!("rse {op} {k}+{m}");
            rows.push(Row {
                label: format!("cauchy gf8 {op} {k}+{m}"),
                path: format!("gamestream_fec/cauchy-{op}/{k}-{m}"),
                bytes: (k * GS_SHARD) as u64,
                baseline: Some(base.clone()),
            });
            rows.push(Row {
                label: base,
                path: format!("gamestream_fec/rse-{op}/{k}-{m}"),
                bytes: (k * GS_SHARD) as u64,
                baseline: None,
            });
            if !leopard {
                continue;
            }
            rows.push(Row {
                label: format!("leopard-codec {op} {k}+{m}"),
                path: format!("gamestream_fec/leopard-{op}/{k}-{m}"),
                bytes: (k * GS_SHARD) as u64,
                baseline: Some(format!("cauchy gf8 {op} {k}+{m}")),
            });
        }
    }
    let k = FRAME.div_ceil(NATIVE_SHARD);
    for percent in [10, 50] {
        let m = (k * percent).div_ceil(100);
        let shape = BlockShape {
            data: k,
            parity: m,
            shard_len: NATIVE_SHARD,
        };
        bench_code(&mut c, "native_fec", "gf16", &mut Gf16Rs::new(), shape);
        bench_rss_direct(&mut c, k, m);
        for op in ["encode", "decode"] {
            let base = format!("reed-solomon-simd direct {op} {k}+{m}");
            rows.push(Row {
                label: format!("gf16 {op} {k}+{m} ({percent}%)"),
                path: format!("native_fec/gf16-{op}/{k}-{m}"),
                bytes: (k * NATIVE_SHARD) as u64,
                baseline: Some(base.clone()),
            });
            rows.push(Row {
                label: base,
                path: format!("native_fec/rss-direct-{op}/{k}-{m}"),
                bytes: (k * NATIVE_SHARD) as u64,
                baseline: None,
            });
        }
    }
    c.final_summary();
    common::print_table("FEC throughput (data bytes per second, median)", &rows);
}
