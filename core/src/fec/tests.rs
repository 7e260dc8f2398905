//! Known answers and properties of both erasure codes.

use proptest::prelude::*;

use super::*;

/// Carry-less multiply modulo 0x11D, bit by bit: shares nothing with the coder's
/// tables or the SIMD kernels.
fn plain_mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= 0x1D;
        }
        b >>= 1;
    }
    p
}

/// Inverse by exhaustive search: the slowest possible, obviously right version.
fn plain_inv(a: u8) -> u8 {
    (1..=255u8).find(|&b| plain_mul(a, b) == 1).unwrap()
}

/// Parity computed straight from the formula in nanors' `rs.c`:
/// `parity[j] = sum_i data[i] / ((m + i) xor j)`.
fn plain_cauchy_parity(data: &[Vec<u8>], m: usize) -> Vec<Vec<u8>> {
    let len = data[0].len();
    (0..m)
        .map(|j| {
            (0..len)
                .map(|b| {
                    data.iter().enumerate().fold(0u8, |acc, (i, shard)| {
                        acc ^ plain_mul(plain_inv(((m + i) ^ j) as u8), shard[b])
                    })
                })
                .collect()
        })
        .collect()
}

fn pattern(k: usize, len: usize) -> Vec<Vec<u8>> {
    (0..k)
        .map(|i| (0..len).map(|b| (i * 37 + b * 11 + 5) as u8).collect())
        .collect()
}

fn block_of(data: &[Vec<u8>], m: usize) -> Vec<u8> {
    let len = data[0].len();
    let mut block: Vec<u8> = data.concat();
    block.resize((data.len() + m) * len, 0);
    block
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parity bytes printed by nanors itself (the Reed-Solomon library moonlight-common-c
/// and Sunshine link) for `pattern(k, len)`, with the matrix each shape uses.
const NANORS_VECTORS: &[(usize, usize, usize, bool, &[&str])] = &[
    (4, 2, 8, false, &["54c96dec53e09d4f", "baab6f690bc5d42b"]),
    (
        10,
        3,
        8,
        false,
        &["d005dba8b39a326b", "f340b98fa8d479f3", "07bcf30f929f11ef"],
    ),
    (4, 2, 8, true, &["958efa897f7352fc", "ab00043b7b3e09db"]),
    (
        20,
        7,
        5,
        false,
        &[
            "88b79beaf6",
            "6a74e4ecfe",
            "1c1090b3f7",
            "9a7d264adc",
            "67ba92cb99",
            "668b89f769",
            "0c3df9fbb1",
        ],
    ),
];

#[test]
fn gf8_matches_vectors_printed_by_nanors() {
    for &(k, m, len, audio, expected) in NANORS_VECTORS {
        let mut rs = if audio {
            Gf8Rs::gamestream_audio()
        } else {
            Gf8Rs::cauchy()
        };
        let shape = BlockShape {
            data: k,
            parity: m,
            shard_len: len,
        };
        let mut block = block_of(&pattern(k, len), m);
        rs.encode(shape, &mut block).unwrap();
        for (j, want) in expected.iter().enumerate() {
            let got = &block[(k + j) * len..(k + j + 1) * len];
            assert_eq!(&hex(got), want, "k={k} m={m} audio={audio} parity row {j}");
        }
    }
}

#[test]
fn gf8_matches_plain_arithmetic_reference() {
    for &(k, m, len) in &[
        (1, 1, 3),
        (64, 13, 40),
        (200, 40, 17),
        (128, 127, 9),
        (254, 1, 4),
    ] {
        let data = pattern(k, len);
        let want = plain_cauchy_parity(&data, m);
        let mut block = block_of(&data, m);
        Gf8Rs::cauchy()
            .encode(
                BlockShape {
                    data: k,
                    parity: m,
                    shard_len: len,
                },
                &mut block,
            )
            .unwrap();
        for (j, row) in want.iter().enumerate() {
            assert_eq!(
                &block[(k + j) * len..(k + j + 1) * len],
                &row[..],
                "{k}+{m} row {j}"
            );
        }
    }
}

#[test]
fn gf8_recovers_from_maximal_loss_at_every_reference_shape() {
    let mut rs = Gf8Rs::cauchy();
    for &(k, m) in &[(64usize, 13usize), (200, 40), (1, 254), (127, 128)] {
        let len = 64;
        let shape = BlockShape {
            data: k,
            parity: m,
            shard_len: len,
        };
        let mut block = block_of(&pattern(k, len), m);
        rs.encode(shape, &mut block).unwrap();
        let original = block.clone();
        // Lose the first min(k, m) data shards and (m - that) parity shards.
        let lost_data = k.min(m);
        let mut present = vec![true; k + m];
        for p in present.iter_mut().take(lost_data) {
            *p = false;
        }
        for p in present.iter_mut().skip(k).take(m - lost_data) {
            *p = false;
        }
        for (i, p) in present.iter().enumerate() {
            if !p {
                block[i * len..(i + 1) * len].fill(0xAA);
            }
        }
        rs.reconstruct(shape, &mut block, &present).unwrap();
        assert_eq!(&block[..k * len], &original[..k * len], "{k}+{m}");
    }
}

#[test]
fn shapes_outside_limits_are_errors() {
    let mut gf8 = Gf8Rs::cauchy();
    let bad = BlockShape {
        data: 200,
        parity: 56,
        shard_len: 8,
    };
    assert!(matches!(
        gf8.encode(bad, &mut vec![0; bad.buffer_len()]),
        Err(FecError::UnsupportedShape { .. })
    ));
    let mut gf16 = Gf16Rs::new();
    let odd = BlockShape {
        data: 4,
        parity: 2,
        shard_len: 7,
    };
    assert!(matches!(
        gf16.encode(odd, &mut vec![0; odd.buffer_len()]),
        Err(FecError::UnsupportedShape { .. })
    ));
    let zero = BlockShape {
        data: 0,
        parity: 2,
        shard_len: 8,
    };
    assert!(gf16.encode(zero, &mut []).is_err());
    let ok = BlockShape {
        data: 4,
        parity: 2,
        shard_len: 8,
    };
    assert!(matches!(
        gf8.encode(ok, &mut [0; 5]),
        Err(FecError::BufferMismatch { .. })
    ));
    let mut audio = Gf8Rs::gamestream_audio();
    assert!(
        audio
            .encode(BlockShape { data: 5, ..ok }, &mut [0; 56])
            .is_err()
    );
}

#[test]
fn gamestream_parity_count_rounds_up_like_moonlight() {
    assert_eq!(gamestream_parity_count(1, 20), 1);
    assert_eq!(gamestream_parity_count(10, 20), 2);
    assert_eq!(gamestream_parity_count(11, 20), 3);
    assert_eq!(gamestream_parity_count(212, 20), 43);
    assert_eq!(gamestream_parity_count(100, 0), 0);
}

/// A block shape, its data, and a set of lost shard indices.
fn loss_case(
    max_total: usize,
    len_multiple: usize,
) -> impl Strategy<Value = (BlockShape, Vec<u8>, Vec<bool>)> {
    (1..max_total, 0..max_total, 1usize..40)
        .prop_filter("fits", move |(k, m, _)| k + m <= max_total)
        .prop_flat_map(move |(k, m, len)| {
            let shape = BlockShape {
                data: k,
                parity: m,
                shard_len: len * len_multiple,
            };
            (
                Just(shape),
                proptest::collection::vec(any::<u8>(), k * shape.shard_len),
                proptest::collection::vec(any::<bool>(), k + m),
            )
        })
}

fn check_roundtrip(
    code: &mut dyn ErasureCode,
    shape: BlockShape,
    data: Vec<u8>,
    present: Vec<bool>,
) {
    let mut block = data.clone();
    block.resize(shape.buffer_len(), 0);
    code.encode(shape, &mut block).unwrap();
    let encoded = block.clone();
    for (i, p) in present.iter().enumerate() {
        if !p {
            block[i * shape.shard_len..(i + 1) * shape.shard_len].fill(0x5A);
        }
    }
    let damaged = block.clone();
    let missing = present.iter().filter(|p| !**p).count();
    match code.reconstruct(shape, &mut block, &present) {
        Ok(()) => {
            assert!(missing <= shape.parity);
            assert_eq!(&block[..data.len()], &data[..]);
            // Parity shards that arrived are untouched.
            for (i, _) in present
                .iter()
                .enumerate()
                .skip(shape.data)
                .filter(|(_, p)| **p)
            {
                let r = i * shape.shard_len..(i + 1) * shape.shard_len;
                assert_eq!(&block[r.clone()], &encoded[r]);
            }
        }
        Err(FecError::Unrecoverable { missing: n, parity }) => {
            assert!(missing > shape.parity);
            assert_eq!((n, parity), (missing, shape.parity));
            assert_eq!(
                block, damaged,
                "a failed reconstruct must not touch the block"
            );
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn gf8_any_loss_up_to_parity_recovers_exactly((shape, data, present) in loss_case(255, 1)) {
        check_roundtrip(&mut Gf8Rs::cauchy(), shape, data, present);
    }

    #[test]
    fn gf16_any_loss_up_to_parity_recovers_exactly((shape, data, present) in loss_case(600, 2)) {
        check_roundtrip(&mut Gf16Rs::new(), shape, data, present);
    }

    #[test]
    fn gf8_coder_reused_across_shapes_stays_correct(cases in proptest::collection::vec(loss_case(80, 1), 1..12)) {
        // One coder, many shapes in a row: exercises the matrix cache and its eviction.
        let mut rs = Gf8Rs::cauchy();
        for (shape, data, present) in cases {
            check_roundtrip(&mut rs, shape, data, present);
        }
    }

    #[test]
    fn gf16_coder_reused_across_shapes_stays_correct(cases in proptest::collection::vec(loss_case(300, 2), 1..6)) {
        let mut rs = Gf16Rs::new();
        for (shape, data, present) in cases {
            check_roundtrip(&mut rs, shape, data, present);
        }
    }
}
