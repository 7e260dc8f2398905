use super::*;
use punktfunk_core::native::reassembly::Reassembler;
use punktfunk_core::native::wire::PacketOpener;
use punktfunk_core::packet_run::PacketRun;

/// The 3 Gbps loopback counted ~44,000 malformed packets on a clean path: its
/// keyframes (4 x 6.25 MB, ~27.5 MB with parity) were larger than the receiver's
/// fixed 16 MiB reassembly limit, so every shard of every keyframe was refused.
/// Socket-free, so it fails or passes the same on any machine.
#[test]
fn the_largest_frame_of_a_3_gbps_run_reassembles_without_malformed_packets() {
    let args = LoopbackArgs {
        bitrate_mbps: 3000,
        loss: 0.0,
        ..LoopbackArgs::default()
    };
    let config = args.config();
    let key = [7u8; 16];
    let mut packetizer =
        NativePacketizer::new(config, PacketSealer::new(&key, SALT_HOST_DATA).unwrap()).unwrap();
    let mut opener = PacketOpener::new(&key, SALT_HOST_DATA).unwrap();
    let mut rx = Reassembler::new(receiver_limits(&args, &config).unwrap());
    let pattern = Pattern::new(args.max_frame_len());
    let mut frame = vec![0u8; args.max_frame_len()];
    pattern.fill(&mut frame, 0, 1);
    let mut run = PacketRun::new();
    packetizer
        .packetize(0, FLAG_KEYFRAME, &frame, &mut run)
        .unwrap();
    let mut delivered = None;
    let mut packet = Vec::new();
    for p in run.packets() {
        packet.clear();
        packet.extend_from_slice(p);
        let (h, shard) = opener.open(&mut packet).expect("authentic packet");
        if let Some(f) = rx.push(&h, shard) {
            assert!(pattern.intact(f.data));
            delivered = Some(f.data.len());
        }
    }
    let stats = rx.stats();
    assert_eq!((stats.malformed, stats.oversized), (0, 0), "{stats:?}");
    assert_eq!(delivered, Some(frame.len()), "{stats:?}");
}

#[test]
fn a_fixed_frame_size_sets_the_frame_rate() {
    let args = LoopbackArgs {
        bitrate_mbps: 6000,
        frame_bytes: Some(2_000_000),
        keyframe_every: 0,
        ..LoopbackArgs::default()
    };
    assert_eq!((args.rate(), args.frame_len()), (375, 2_000_000));
    assert_eq!(args.max_frame_len(), 2_000_000);
}

#[test]
fn a_short_lossy_run_delivers_every_frame_intact() {
    let args = LoopbackArgs {
        seconds: 1,
        fps: 30,
        bitrate_mbps: 50,
        parity: 20,
        loss: 2.0,
        spread: 0.5,
        ..LoopbackArgs::default()
    };
    let summary = run(&args).expect("loopback run succeeds with no corrupt frames");
    assert_eq!(summary.frames_sent, 30);
    // 2% loss against 20% parity: FEC rebuilds every frame.
    assert_eq!(summary.frames_intact, 30, "{summary:?}");
    assert!(summary.shards_recovered > 0, "{summary:?}");
    assert_eq!(summary.packets_malformed, 0, "{summary:?}");
}

/// The veth variant: each end in its own namespace. Needs root (CI runs as root);
/// skipped with a note elsewhere.
#[test]
fn a_clean_veth_run_delivers_every_frame_without_malformed_packets() {
    if running_as_root() {
        let args = LoopbackArgs {
            seconds: 1,
            fps: 30,
            bitrate_mbps: 100,
            loss: 0.0,
            veth: true,
            ..LoopbackArgs::default()
        };
        let summary = run(&args).expect("veth run");
        assert_eq!(summary.frames_intact, 30, "{summary:?}");
        assert_eq!(summary.packets_malformed, 0, "{summary:?}");
    } else {
        eprintln!("skipped: the veth bench needs root for network namespaces");
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
