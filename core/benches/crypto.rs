//! AES-128-GCM sealing of one 1400-byte packet: aws-lc-rs (the backend punktfunk uses,
//! through `punktfunk_core::crypto`) against the pure-Rust `aes-gcm` crate named in the
//! design card. `cargo bench -p punktfunk-core --bench crypto`.

mod common;

use std::hint::black_box;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use criterion::Throughput;
use punktfunk_core::crypto::gcm::{GcmSealer, IvLayout};
use punktfunk_core::native::wire::{PacketSealer, SALT_HOST_DATA};

use common::Row;

const PACKET: usize = 1400;
const KEY: [u8; 16] = *b"bench-key-16byte";

fn main() {
    let mut c = common::criterion();
    let mut g = c.benchmark_group("aes_seal");
    g.throughput(Throughput::BytesDecimal(PACKET as u64));
    let mut buf = vec![0x5Au8; PACKET];

    let mut sealer = GcmSealer::new(&KEY, IvLayout::VIDEO, 0).unwrap();
    g.bench_function("aws-lc-rs", |b| {
        b.iter(|| sealer.seal(&[], black_box(&mut buf)).unwrap())
    });

    let cipher = aes_gcm::Aes128Gcm::new_from_slice(&KEY).unwrap();
    let mut counter = 0u64;
    g.bench_function("aes-gcm", |b| {
        b.iter(|| {
            counter += 1;
            let iv = IvLayout::VIDEO.iv(counter).unwrap();
            cipher
                .encrypt_in_place_detached(&iv.into(), &[], black_box(&mut buf))
                .unwrap()
        })
    });

    // The whole native per-packet seal: header as AAD, counter nonce, tag written.
    let mut packet = vec![0u8; PACKET];
    packet[0] = 1;
    let mut native = PacketSealer::new(&KEY, SALT_HOST_DATA).unwrap();
    g.bench_function("native-packet", |b| {
        b.iter(|| native.seal(black_box(&mut packet)).unwrap())
    });
    g.finish();
    c.final_summary();
    let row = |label: &str, id: &str, baseline: Option<&str>| Row {
        label: label.into(),
        path: format!("aes_seal/{id}"),
        bytes: PACKET as u64,
        baseline: baseline.map(Into::into),
    };
    common::print_table(
        "AES-128-GCM seal of a 1400-byte packet (median)",
        &[
            row("aes-gcm 0.10 (pure Rust)", "aes-gcm", None),
            row("aws-lc-rs", "aws-lc-rs", Some("aes-gcm 0.10 (pure Rust)")),
            row(
                "native packet seal (aws-lc-rs)",
                "native-packet",
                Some("aes-gcm 0.10 (pure Rust)"),
            ),
        ],
    );
}
