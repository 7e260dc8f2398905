use proptest::prelude::*;

use super::*;

fn frame(data: &[u8], index: u32) -> VideoFrame<'_> {
    VideoFrame {
        data,
        frame_index: index,
        rtp_timestamp: index.wrapping_mul(1500),
        frame_type: if index == 1 {
            FrameType::Idr
        } else {
            FrameType::P
        },
        host_latency: 42,
    }
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn packet_layout_matches_video_h() {
    let cfg = VideoConfig {
        packet_size: 40, // 24 payload bytes a packet
        fec_percent: 50,
        min_parity: 0,
    };
    let mut p = VideoPacketizer::new(cfg).unwrap();
    let mut batch = PacketRun::new();
    let data = bytes(30, 1); // 8 + 30 = 38 bytes: 2 data packets, last has 14 bytes
    p.packetize(&frame(&data, 7), &mut batch).unwrap();
    assert_eq!(batch.len(), 3, "2 data + ceil(2 * 50%) = 1 parity");
    assert_eq!(batch.packet_len(), 56);
    let p0 = batch.packet(0);
    // RTP: 0x90, type 0, BE seq 0, BE timestamp, ssrc 0, then 4 reserved zero bytes.
    assert_eq!(&p0[..4], &[0x90, 0, 0, 0]);
    assert_eq!(&p0[4..8], &(7u32 * 1500).to_be_bytes());
    assert_eq!(&p0[8..16], &[0; 8]);
    // NV_VIDEO_PACKET, little-endian.
    assert_eq!(&p0[16..20], &0u32.to_le_bytes()); // streamPacketIndex = 0 << 8
    assert_eq!(&p0[20..24], &7u32.to_le_bytes());
    assert_eq!(p0[24], FLAG_CONTAINS_PIC_DATA | FLAG_SOF);
    assert_eq!((p0[25], p0[26], p0[27]), (0, 0x10, 0));
    let fec_info = u32::from_le_bytes(p0[28..32].try_into().unwrap());
    assert_eq!(fec_info, (2 << 22) | (50 << 4));
    // Frame header: 0x01, LE16 latency, type, LE16 last payload length, 2 zero bytes.
    assert_eq!(&p0[32..40], &[0x01, 42, 0, 1, 14, 0, 0, 0]);
    assert_eq!(&p0[40..56], &data[..16]);
    let p1 = batch.packet(1);
    assert_eq!(u16::from_be_bytes([p1[2], p1[3]]), 1);
    assert_eq!(&p1[16..20], &(1u32 << 8).to_le_bytes());
    assert_eq!(p1[24], FLAG_CONTAINS_PIC_DATA | FLAG_EOF);
    assert_eq!(&p1[32..46], &data[16..]);
    assert!(p1[46..].iter().all(|&b| b == 0), "zero padding");
    let parity = batch.packet(2);
    let h = VideoPacketHeader::parse(parity).unwrap();
    assert_eq!((h.shard_index, h.data_shards, h.fec_percent), (2, 2, 50));
    assert_eq!(h.rtp.sequence, 2);
    // The next frame continues the sequence.
    p.packetize(&frame(&data, 8), &mut batch).unwrap();
    assert_eq!(
        VideoPacketHeader::parse(batch.packet(0))
            .unwrap()
            .rtp
            .sequence,
        3
    );
}

#[test]
fn parity_payload_is_the_cauchy_combination_of_whole_packets() {
    // With one parity packet over k data packets, parity row 0 has coefficients
    // 1 / (1 + i); check the payload bytes against that directly.
    let cfg = VideoConfig {
        packet_size: 100,
        fec_percent: 10,
        min_parity: 1,
    };
    let mut p = VideoPacketizer::new(cfg).unwrap();
    let mut batch = PacketRun::new();
    let data = bytes(400, 9);
    p.packetize(&frame(&data, 3), &mut batch).unwrap();
    let k = batch.blocks()[0].data;
    assert_eq!(batch.blocks()[0].parity, 1);
    let parity = batch.packet(k);
    for (byte, &got) in parity.iter().enumerate().skip(32) {
        let want = (0..k).fold(0u8, |acc, i| {
            let c = crate::fec::gf256::inv((1 + i) as u8).unwrap();
            acc ^ crate::fec::gf256::mul(c, batch.packet(i)[byte])
        });
        assert_eq!(got, want, "byte {byte}");
    }
}

#[test]
fn block_plan_follows_sunshine() {
    let cfg = VideoConfig::default(); // 1392-byte packets, 20%, min 2 parity
    let (plan, n) = plan_blocks(&cfg, 1).unwrap();
    assert_eq!(n, 1);
    // 1 data packet at 20% is 1 parity, raised to the minimum of 2 by raising the
    // percentage to 200: the client computes ceil(1 * 200 / 100) = 2.
    assert_eq!((plan[0].data, plan[0].parity, plan[0].percent), (1, 2, 200));
    let (plan, n) = plan_blocks(&cfg, 600).unwrap();
    assert_eq!(n, 3, "212 data shards per block at 20%");
    assert!(plan[..n].iter().all(|b| b.data + b.parity <= 255));
    assert_eq!(plan[..n].iter().map(|b| b.data).sum::<usize>(), 600);
    let (plan, n) = plan_blocks(&cfg, 1000).unwrap();
    assert_eq!(n, 4, "too big for 4 FEC blocks: sent without FEC");
    assert!(plan[..n].iter().all(|b| b.parity == 0 && b.percent == 0));
    assert!(matches!(
        plan_blocks(&cfg, 4 * 1023 + 1),
        Err(VideoError::FrameTooLarge(_))
    ));
    // A block near 255 shards never exceeds it when the minimum is raised.
    let tight = VideoConfig {
        min_parity: 10,
        fec_percent: 1,
        ..cfg
    };
    let (plan, n) = plan_blocks(&tight, 250).unwrap();
    assert!(plan[..n].iter().all(|b| b.data + b.parity <= 255));
    for blk in &plan[..n] {
        assert_eq!(
            blk.parity,
            gamestream_parity_count(blk.data, usize::from(blk.percent))
        );
    }
}

#[test]
fn recovered_packets_keep_their_flags_and_payload() {
    // moonlight-common-c rejects a recovered packet whose flags are not SOF / PIC / EOF
    // as expected for its position; losing the first and last data packets exercises
    // both checks.
    let cfg = VideoConfig {
        fec_percent: 20,
        ..VideoConfig::default()
    };
    let mut p = VideoPacketizer::new(cfg).unwrap();
    let mut batch = PacketRun::new();
    let data = bytes(20_000, 3);
    p.packetize(&frame(&data, 1), &mut batch).unwrap();
    let blk = batch.blocks()[0];
    let mut fec = Gf8Rs::cauchy();
    let shape = BlockShape {
        data: blk.data,
        parity: blk.parity,
        shard_len: batch.packet_len(),
    };
    let mut buf = batch.as_bytes()[..shape.buffer_len()].to_vec();
    let mut present = vec![true; shape.total()];
    present[0] = false;
    present[blk.data - 1] = false;
    buf[..batch.packet_len()].fill(0);
    fec.reconstruct(shape, &mut buf, &present).unwrap();
    for i in [0, blk.data - 1] {
        let rec = &buf[i * batch.packet_len()..(i + 1) * batch.packet_len()];
        let orig = batch.packet(i);
        assert_eq!(rec[24], orig[24], "flags of packet {i}");
        assert_eq!(&rec[32..], &orig[32..], "payload of packet {i}");
    }
}

fn deliver_all(cfg: VideoConfig, packets: &[Vec<u8>]) -> (Vec<ReassembledFrame>, ReassemblyStats) {
    let mut r = VideoReassembler::new(cfg).unwrap();
    let frames = packets.iter().filter_map(|p| r.push(p)).collect();
    (frames, r.stats())
}

#[test]
fn multi_block_frame_roundtrips_with_loss_in_every_block() {
    let cfg = VideoConfig::default();
    let mut p = VideoPacketizer::new(cfg).unwrap();
    let mut batch = PacketRun::new();
    let data = bytes(700 * 1376, 5); // ~700 packets: 4 blocks
    p.packetize(&frame(&data, 1), &mut batch).unwrap();
    assert_eq!(batch.blocks().len(), 4);
    let mut packets = Vec::new();
    for blk in batch.blocks() {
        for x in 0..blk.data + blk.parity {
            // Lose as many packets as the block has parity, spread over the block.
            if x % ((blk.data + blk.parity) / blk.parity) == 0
                && x / ((blk.data + blk.parity) / blk.parity) < blk.parity
            {
                continue;
            }
            packets.push(batch.packet(blk.first_packet + x).to_vec());
        }
    }
    let (frames, stats) = deliver_all(cfg, &packets);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].data, data);
    assert_eq!(frames[0].frame_type, Some(FrameType::Idr));
    assert_eq!(frames[0].host_latency, 42);
    assert!(stats.recovered_packets > 0);
}

#[test]
fn too_much_loss_loses_the_frame_but_never_yields_wrong_bytes() {
    let cfg = VideoConfig::default();
    let mut p = VideoPacketizer::new(cfg).unwrap();
    let mut batch = PacketRun::new();
    let data = bytes(50 * 1376, 8);
    p.packetize(&frame(&data, 1), &mut batch).unwrap();
    let blk = batch.blocks()[0];
    let packets: Vec<Vec<u8>> = batch
        .packets()
        .skip(blk.parity + 1)
        .map(<[u8]>::to_vec)
        .collect();
    let (frames, _) = deliver_all(cfg, &packets);
    assert!(frames.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Frames survive reordering, duplication and loss of up to the parity count per
    /// block, and come out byte-exact and in order of completion.
    #[test]
    fn reassembly_holds_under_reordering_duplication_and_loss(
        sizes in proptest::collection::vec(1usize..40_000, 1..5),
        fec_percent in 0u8..60,
        packet_size in prop_oneof![Just(1392usize), Just(1024), 64usize..1500],
        seed in any::<u64>(),
    ) {
        use rand::{Rng, SeedableRng, seq::SliceRandom};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let cfg = VideoConfig { packet_size, fec_percent, min_parity: 2 };
        let mut p = VideoPacketizer::new(cfg).unwrap();
        let mut batch = PacketRun::new();
        let mut r = VideoReassembler::new(cfg).unwrap();
        for (n, size) in sizes.iter().enumerate() {
            let data = bytes(*size, n as u8);
            let index = n as u32 + 1;
            if p.packetize(&frame(&data, index), &mut batch).is_err() {
                continue; // frame too large for this tiny packet size
            }
            let mut packets: Vec<Vec<u8>> = Vec::new();
            for blk in batch.blocks() {
                let mut idx: Vec<usize> = (0..blk.data + blk.parity).collect();
                idx.shuffle(&mut rng);
                let lose = rng.random_range(0..=blk.parity);
                for &x in &idx[lose..] {
                    packets.push(batch.packet(blk.first_packet + x).to_vec());
                    if rng.random_bool(0.1) {
                        packets.push(batch.packet(blk.first_packet + x).to_vec());
                    }
                }
            }
            packets.shuffle(&mut rng);
            let got: Vec<_> = packets.iter().filter_map(|pk| r.push(pk)).collect();
            prop_assert_eq!(got.len(), 1, "frame {} of {} bytes", index, size);
            prop_assert_eq!(&got[0].data, &data);
            prop_assert_eq!(got[0].frame_index, index);
        }
        prop_assert_eq!(r.stats().malformed, 0);
    }

    /// Arbitrary bytes never panic the parser or the reassembler.
    #[test]
    fn arbitrary_packets_are_errors_not_panics(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1500), 1..40)) {
        let mut r = VideoReassembler::new(VideoConfig::default()).unwrap();
        for pk in &packets {
            let _ = VideoPacketHeader::parse(pk);
            let _ = r.push(pk);
        }
    }

    /// Valid headers with corrupted fields: still no panic, and no frame from garbage.
    #[test]
    fn corrupted_real_packets_never_panic(flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..8), truncate in 0usize..1500) {
        let cfg = VideoConfig::default();
        let mut p = VideoPacketizer::new(cfg).unwrap();
        let mut batch = PacketRun::new();
        p.packetize(&frame(&bytes(5000, 1), 1), &mut batch).unwrap();
        let mut r = VideoReassembler::new(cfg).unwrap();
        for pk in batch.packets() {
            let mut pk = pk.to_vec();
            for (pos, v) in &flips {
                pk[*pos] ^= v;
            }
            pk.truncate(truncate.max(1));
            let _ = r.push(&pk);
        }
    }
}
