//! x264 through the video encoder: IDR frames with parameter sets where asked, and a
//! bitrate change followed without reopening.

use super::*;
use crate::encode::probe::Codec;
use crate::source::VideoSource;
use crate::source::test_pattern::TestPattern;

fn nal_types(data: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 < data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            types.push(data[i + 3] & 0x1F);
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

#[test]
fn x264_starts_with_an_idr_with_parameter_sets_and_honours_idr_requests() {
    ffmpeg::init().unwrap();
    let cfg = VideoEncoderConfig {
        codec: Codec::H264,
        width: 640,
        height: 360,
        fps: 60,
        bitrate_kbps: 4000,
        csc_mode: 0,
        ten_bit: false,
    };
    let mut enc = VideoEncoder::open_named("libx264", &cfg).unwrap();
    let mut src = TestPattern::new(640, 360);
    let mut frame = crate::source::CapturedFrame::new(640, 360);
    let mut out = EncodedFrame::default();
    let mut kinds = Vec::new();
    for n in 1..=12u64 {
        src.capture(n, &mut frame).unwrap();
        assert!(
            enc.encode(&frame.as_frame(), n == 1 || n == 8, &mut out)
                .unwrap(),
            "one access unit per frame"
        );
        let types = nal_types(&out.data);
        kinds.push((out.keyframe, types.contains(&7), types.contains(&5)));
    }
    // IDR (5) with SPS (7) exactly on frames 1 and 8.
    for (i, k) in kinds.iter().enumerate() {
        let want = i == 0 || i == 7;
        assert_eq!(*k, (want, want, want), "frame {}", i + 1);
    }
    // A request through the trait makes the very next frame an IDR.
    enc.request_idr();
    src.capture(13, &mut frame).unwrap();
    enc.encode(&frame.as_frame(), false, &mut out).unwrap();
    assert!(out.keyframe && nal_types(&out.data).contains(&5));
    src.capture(14, &mut frame).unwrap();
    enc.encode(&frame.as_frame(), false, &mut out).unwrap();
    assert!(!out.keyframe, "only one IDR per request");
}

/// Noise: every frame needs more bits than any bitrate here allows.
fn noise(frame: &mut crate::source::CapturedFrame, seed: u64) {
    let mut x = seed | 1;
    for b in frame.data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

#[test]
fn x264_follows_a_bitrate_change_without_reopening_or_an_idr() {
    ffmpeg::init().unwrap();
    let cfg = VideoEncoderConfig {
        codec: Codec::H264,
        width: 320,
        height: 240,
        fps: 60,
        bitrate_kbps: 4000,
        csc_mode: 0,
        ten_bit: false,
    };
    let mut enc = VideoEncoder::open_named("libx264", &cfg).unwrap();
    let mut frame = crate::source::CapturedFrame::new(320, 240);
    let mut out = EncodedFrame::default();
    let mut sizes = Vec::new();
    let mut keyframes = 0;
    for n in 0..60u64 {
        if n == 30 {
            enc.set_bitrate(1000).unwrap();
        }
        noise(&mut frame, n + 1);
        enc.encode(&frame.as_frame(), n == 0, &mut out).unwrap();
        keyframes += usize::from(out.keyframe);
        sizes.push(out.data.len());
    }
    assert_eq!(keyframes, 1, "no IDR for a bitrate change");
    // Leave the encoder a few frames to settle on either side.
    let before: usize = sizes[10..30].iter().sum::<usize>() / 20;
    let after: usize = sizes[40..60].iter().sum::<usize>() / 20;
    // 4000 and 1000 kbit/s at 60 fps are about 8300 and 2100 bytes a frame.
    assert!(
        before > after * 3,
        "frames of {before} bytes before, {after} after"
    );
    assert!(after < 4000, "{after} bytes a frame at 1000 kbit/s");
}
