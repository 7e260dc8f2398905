use punktfunk_core::native::packetizer::NativePacketizer;
use punktfunk_core::native::pairing::HostAwaitingConfirm;
use punktfunk_core::native::wire::PacketSealer;
use punktfunk_core::packet_run::PacketRun;

use super::*;

#[test]
fn a_frame_crosses_the_c_abi_with_loss_and_garbage_is_refused() {
    let key = [9u8; 16];
    let mut tx = NativePacketizer::new(
        NativeConfig::default(),
        PacketSealer::new(&key, SALT_HOST_DATA).unwrap(),
    )
    .unwrap();
    let frame: Vec<u8> = (0..50_000u32).map(|i| (i * 7) as u8).collect();
    let mut batch = PacketRun::new();
    tx.packetize(3, 1, &frame, &mut batch).unwrap();
    // SAFETY: test of the C ABI with valid pointers.
    unsafe {
        let rx = pf_receiver_new(key.as_ptr(), frame.len());
        assert!(!rx.is_null());
        let mut out = PfFrame {
            data: std::ptr::null(),
            len: 0,
            frame_id: 0,
            flags: 0,
        };
        let mut garbage = [0xffu8; 100];
        assert_eq!(
            pf_receiver_push(rx, garbage.as_mut_ptr(), 100, &mut out),
            PF_ERR_REFUSED
        );
        let mut got = None;
        // Lose the first two packets: parity rebuilds them.
        for p in batch.packets().skip(2) {
            let mut p = p.to_vec();
            if pf_receiver_push(rx, p.as_mut_ptr(), p.len(), &mut out) == 1 {
                got = Some(slice::from_raw_parts(out.data, out.len).to_vec());
                assert_eq!((out.frame_id, out.flags), (3, 1));
            }
        }
        assert_eq!(got.as_deref(), Some(&frame[..]));
        let mut stats = PfStats::default();
        assert_eq!(pf_receiver_stats(rx, &mut stats), 0);
        assert_eq!(
            (stats.frames, stats.frames_recovered, stats.malformed),
            (1, 1, 1)
        );
        assert_eq!(
            pf_receiver_push(std::ptr::null_mut(), garbage.as_mut_ptr(), 1, &mut out),
            PF_ERR_ARGUMENT
        );
        pf_receiver_free(rx);
    }
}

#[test]
fn pairing_through_the_c_abi() {
    let (cfp, hfp) = ([1u8; 32], [2u8; 32]);
    let binding = Binding {
        client_fp: cfp,
        host_fp: hfp,
    };
    for (typed, ok) in [(c"123456", true), (c"654321", false)] {
        // SAFETY: test of the C ABI with valid pointers.
        unsafe {
            let mut msg = [0u8; 64];
            let mut len = 0usize;
            let p = pf_pair_start(
                typed.as_ptr(),
                cfp.as_ptr(),
                hfp.as_ptr(),
                msg.as_mut_ptr(),
                msg.len(),
                &mut len,
            );
            assert!(!p.is_null());
            let (host, reply) =
                HostAwaitingConfirm::respond("123456", binding, &msg[..len]).unwrap();
            let mut proof = [0u8; 32];
            let rc = pf_pair_finish(
                p,
                reply.spake.as_ptr(),
                reply.spake.len(),
                reply.confirm.as_ptr(),
                proof.as_mut_ptr(),
            );
            pf_pair_free(p);
            assert_eq!(rc == 0, ok);
            if ok {
                assert!(host.verify(&proof).is_ok());
            }
        }
    }
    // A PIN that is not six digits is refused.
    // SAFETY: valid pointers.
    unsafe {
        let mut msg = [0u8; 64];
        let mut len = 0usize;
        assert!(
            pf_pair_start(
                c"12".as_ptr(),
                cfp.as_ptr(),
                hfp.as_ptr(),
                msg.as_mut_ptr(),
                64,
                &mut len
            )
            .is_null()
        );
    }
}

#[test]
fn the_generated_header_declares_the_abi() {
    let header = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/include/punktfunk_client.h"
    ))
    .unwrap();
    for name in [
        "pf_receiver_new",
        "pf_receiver_push",
        "pf_receiver_stats",
        "pf_receiver_free",
        "pf_pair_start",
        "pf_pair_finish",
        "PfFrame",
        "PF_ERR_REFUSED",
    ] {
        assert!(header.contains(name), "{name} missing from the header");
    }
}
