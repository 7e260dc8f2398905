use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::*;
use crate::native::packetizer::{NativeConfig, NativePacketizer};
use crate::native::wire::{PacketOpener, PacketSealer, SALT_HOST_DATA};
use crate::packet_run::PacketRun;

const KEY: [u8; 16] = *b"native-test-key!";

fn frame_bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) as u8 >> 1)
        .collect()
}

struct Link {
    packetizer: NativePacketizer,
    opener: PacketOpener,
    reassembler: Reassembler,
    batch: PacketRun,
}

impl Link {
    fn new(config: NativeConfig) -> Self {
        Self {
            packetizer: NativePacketizer::new(
                config,
                PacketSealer::new(&KEY, SALT_HOST_DATA).unwrap(),
            )
            .unwrap(),
            opener: PacketOpener::new(&KEY, SALT_HOST_DATA).unwrap(),
            reassembler: Reassembler::new(ReassemblyLimits::default()),
            batch: PacketRun::new(),
        }
    }

    /// Delivers `packets` (already chosen, reordered or duplicated) and returns the
    /// frames that came out, copied.
    fn deliver(&mut self, packets: &[Vec<u8>]) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        for p in packets {
            let mut p = p.clone();
            match self.opener.open(&mut p) {
                Ok((h, shard)) => {
                    if let Some(f) = self.reassembler.push(&h, shard) {
                        out.push((f.frame_id, f.data.to_vec()));
                    }
                }
                Err(_) => self.reassembler.count_malformed(),
            }
        }
        out
    }
}

#[test]
fn two_megabyte_frame_survives_losing_all_its_parity_worth() {
    let mut link = Link::new(NativeConfig {
        parity_percent: 10,
        ..NativeConfig::default()
    });
    let data = frame_bytes(2 << 20, 1);
    link.packetizer
        .packetize(7, 1, &data, &mut link.batch)
        .unwrap();
    let n = link.batch.len();
    let k = data.len().div_ceil(link.packetizer.config().shard_len);
    assert!(
        n > 1500,
        "one block of {n} shards, far past GameStream's 255"
    );
    // Lose exactly m packets, all of them data.
    let packets: Vec<Vec<u8>> = link
        .batch
        .packets()
        .skip(n - k)
        .map(<[u8]>::to_vec)
        .collect();
    let got = link.deliver(&packets);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 7);
    assert!(got[0].1 == data);
    assert_eq!(link.reassembler.stats().recovered_shards as usize, n - k);
}

#[test]
fn one_shard_too_many_lost_never_delivers() {
    let mut link = Link::new(NativeConfig::default());
    let data = frame_bytes(100_000, 2);
    link.packetizer
        .packetize(1, 0, &data, &mut link.batch)
        .unwrap();
    let n = link.batch.len();
    let k = data.len().div_ceil(link.packetizer.config().shard_len);
    let packets: Vec<Vec<u8>> = link
        .batch
        .packets()
        .skip(n - k + 1)
        .map(<[u8]>::to_vec)
        .collect();
    assert!(link.deliver(&packets).is_empty());
}

#[test]
fn stale_and_late_shards_are_dropped_and_counted() {
    let mut link = Link::new(NativeConfig::default());
    let mut all = Vec::new();
    for id in 1..=3u32 {
        link.packetizer
            .packetize(id, 0, &frame_bytes(5000, id), &mut link.batch)
            .unwrap();
        all.push(link.batch.packets().map(<[u8]>::to_vec).collect::<Vec<_>>());
    }
    // Frame 1 gets one shard; frame 2 completes and pushes frame 1 out.
    let mut got = link.deliver(&all[0][..1]);
    got.extend(link.deliver(&all[1]));
    assert_eq!(got.iter().map(|f| f.0).collect::<Vec<_>>(), vec![2]);
    let st = link.reassembler.stats();
    assert_eq!(st.frames_lost, 1);
    // The rest of frame 1 is now stale; its shards are counted, not delivered.
    assert!(link.deliver(&all[0][1..]).is_empty());
    assert!(link.reassembler.stats().stale >= 1);
    let before = link.reassembler.stats();
    assert_eq!(link.deliver(&all[2]).len(), 1);
    // Frame 3's parity arrives after its data completed it: surplus, not stale.
    let parity = NativeConfig::default().shape_for(5000).unwrap().parity as u64;
    let after = link.reassembler.stats();
    assert_eq!(
        (after.surplus - before.surplus, after.stale - before.stale),
        (parity, 0)
    );
}

#[test]
fn memory_stays_bounded_under_a_flood_of_bogus_frame_ids() {
    let limits = ReassemblyLimits {
        max_frames: 8,
        max_frame_bytes: 1 << 20,
    };
    let mut r = Reassembler::new(limits);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let shard = vec![0u8; 1000];
    for _ in 0..50_000 {
        let k: u16 = rng.random_range(1..2000);
        let m: u16 = rng.random_range(0..2000);
        let h = PacketHeader {
            kind: 0,
            flags: 0,
            counter: 0,
            frame_id: rng.random(),
            shard_index: rng.random_range(0..k + m),
            data_shards: k,
            parity_shards: m,
            frame_len: u32::from(k) * 1000,
        };
        let _ = r.push(&h, &shard);
    }
    assert!(
        r.memory_bytes() <= limits.max_frames * (limits.max_frame_bytes + 4096),
        "{} bytes held",
        r.memory_bytes()
    );
    assert!(r.stats().oversized > 0, "oversized frames are refused");
}

#[test]
fn limits_for_the_largest_frame_admit_it_and_oversize_is_not_malformed() {
    // A 3 Gbps, 60 fps keyframe: 4 x 6.25 MB, ~27.5 MB with 10% parity.
    let config = NativeConfig::default();
    let keyframe = 25_000_000;
    let block = config.shape_for(keyframe).unwrap();
    let default = ReassemblyLimits::default();
    assert!(block.buffer_len() > default.max_frame_bytes);
    let sized = ReassemblyLimits::for_max_frame(keyframe, &config).unwrap();
    assert!(sized.max_frame_bytes >= block.buffer_len());
    // Small streams keep the default headroom.
    assert_eq!(
        ReassemblyLimits::for_max_frame(10_000, &config).unwrap(),
        default
    );

    let h = PacketHeader {
        kind: 0,
        flags: 0,
        counter: 0,
        frame_id: 1,
        shard_index: 0,
        data_shards: block.data as u16,
        parity_shards: block.parity as u16,
        frame_len: keyframe as u32,
    };
    let shard = vec![0u8; config.shard_len];
    let mut small = Reassembler::new(default);
    assert!(small.push(&h, &shard).is_none());
    assert_eq!((small.stats().malformed, small.stats().oversized), (0, 1));
    let mut big = Reassembler::new(sized);
    assert!(big.push(&h, &shard).is_none());
    assert_eq!((big.stats().malformed, big.stats().oversized), (0, 0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn frames_survive_reordering_duplication_and_loss_up_to_parity(
        sizes in proptest::collection::vec(1usize..200_000, 1..6),
        parity_percent in 0u16..60,
        seed in any::<u64>(),
    ) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let config = NativeConfig { shard_len: 1024, parity_percent, min_parity: 1 };
        let mut link = Link::new(config);
        for (n, size) in sizes.iter().enumerate() {
            let id = n as u32 + 1;
            let data = frame_bytes(*size, id);
            link.packetizer.packetize(id, 0, &data, &mut link.batch).unwrap();
            let shape = config.shape_for(*size).unwrap();
            let mut idx: Vec<usize> = (0..shape.total()).collect();
            idx.shuffle(&mut rng);
            let lose = rng.random_range(0..=shape.parity);
            let mut packets = Vec::new();
            for &i in &idx[lose..] {
                packets.push(link.batch.packet(i).to_vec());
                if rng.random_bool(0.05) {
                    packets.push(link.batch.packet(i).to_vec());
                }
            }
            let got = link.deliver(&packets);
            prop_assert_eq!(got.len(), 1);
            prop_assert_eq!(got[0].0, id);
            prop_assert!(got[0].1 == data);
        }
        prop_assert_eq!(link.reassembler.stats().frames_lost, 0);
    }

    #[test]
    fn arbitrary_headers_and_shards_never_panic(
        packets in proptest::collection::vec((any::<[u8; 26]>(), proptest::collection::vec(any::<u8>(), 0..64)), 1..100)
    ) {
        let mut r = Reassembler::new(ReassemblyLimits { max_frames: 4, max_frame_bytes: 1 << 16 });
        for (hdr, shard) in &packets {
            if let Ok(h) = PacketHeader::parse(hdr) {
                let _ = r.push(&h, shard);
            }
        }
        prop_assert!(r.memory_bytes() <= 4 * ((1 << 16) + 65536));
    }
}
