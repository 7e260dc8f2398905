//! The per-frame path allocates nothing once warmed up: every packetizer and the
//! native receive path reuse their buffers, matrices and codecs. Counted with a global
//! allocator that tallies Rust heap allocations on this thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use punktfunk_core::gamestream::audio::{AudioCrypto, AudioPacketizer, AudioPackets};
use punktfunk_core::gamestream::video::{
    FrameType, PacketRun, VideoConfig, VideoFrame, VideoPacketizer,
};
use punktfunk_core::native::packetizer::{NativeConfig, NativePacketizer};
use punktfunk_core::native::reassembly::{Reassembler, ReassemblyLimits};
use punktfunk_core::native::wire::{PacketOpener, PacketSealer, SALT_HOST_DATA};
use punktfunk_core::pacing::{Pacer, PacerConfig, Release};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

#[test]
fn the_counter_sees_allocations() {
    let n = allocations_during(|| drop(std::hint::black_box(vec![0u8; 10])));
    assert!(n >= 1);
}

#[test]
fn gamestream_video_packetizer_allocates_nothing_per_frame() {
    let mut p = VideoPacketizer::new(VideoConfig::default()).unwrap();
    let mut batch = PacketRun::new();
    let big = vec![7u8; 900_000]; // four FEC blocks
    let small = vec![9u8; 30_000];
    let frame = |data: &'static [u8], i: u32| VideoFrame {
        data,
        frame_index: i,
        rtp_timestamp: i * 1500,
        frame_type: FrameType::P,
        host_latency: 10,
    };
    let big: &'static [u8] = Box::leak(big.into_boxed_slice());
    let small: &'static [u8] = Box::leak(small.into_boxed_slice());
    // Warm-up: the largest frame sizes the batch, each block shape fills the cache.
    p.packetize(&frame(big, 1), &mut batch).unwrap();
    p.packetize(&frame(small, 2), &mut batch).unwrap();
    let n = allocations_during(|| {
        for i in 3..60 {
            let data = if i % 10 == 0 { big } else { small };
            p.packetize(&frame(data, i), &mut batch).unwrap();
        }
    });
    assert_eq!(n, 0, "allocations in steady state");
}

#[test]
fn native_send_and_receive_allocate_nothing_per_frame() {
    let key = [1u8; 16];
    let mut tx = NativePacketizer::new(
        NativeConfig::default(),
        PacketSealer::new(&key, SALT_HOST_DATA).unwrap(),
    )
    .unwrap();
    let mut opener = PacketOpener::new(&key, SALT_HOST_DATA).unwrap();
    let mut rx = Reassembler::new(ReassemblyLimits::default());
    let mut batch = PacketRun::new();
    let frame = vec![3u8; 400_000];
    let mut packet = vec![0u8; 2048];
    let mut run = |id: u32, lose: usize| {
        tx.packetize(id, 0, &frame, &mut batch).unwrap();
        let mut delivered = false;
        for p in batch.packets().skip(lose) {
            packet[..p.len()].copy_from_slice(p);
            let (h, shard) = opener.open(&mut packet[..p.len()]).unwrap();
            delivered |= rx.push(&h, shard).is_some();
        }
        assert!(delivered);
    };
    for id in 0..16 {
        run(id, 5); // warm-up: every slot and both codecs sized
    }
    let n = allocations_during(|| {
        for id in 16..64 {
            run(id, 5);
        }
    });
    assert_eq!(n, 0, "allocations in steady state");
}

#[test]
fn audio_packetizer_and_pacer_allocate_nothing_per_packet() {
    let mut audio = AudioPacketizer::new(
        Some(AudioCrypto {
            key: [2; 16],
            key_id: 77,
        }),
        5,
    )
    .unwrap();
    let mut out = AudioPackets::new();
    let opus = [5u8; 120];
    for _ in 0..8 {
        audio.packetize(&opus, &mut out).unwrap();
    }
    let t0 = Instant::now();
    let mut pacer = Pacer::new(PacerConfig::for_fps(120), t0);
    let n = allocations_during(|| {
        for _ in 0..64 {
            audio.packetize(&opus, &mut out).unwrap();
        }
        for f in 0..30u32 {
            let now = t0 + Duration::from_millis(u64::from(f) * 8);
            pacer.begin_frame(now, 500);
            let mut t = now;
            loop {
                match pacer.poll(t) {
                    Release::Send(n) => pacer.sent(n),
                    Release::WaitUntil(next) => t = next,
                    Release::Idle => break,
                }
            }
        }
    });
    assert_eq!(n, 0, "allocations in steady state");
}
