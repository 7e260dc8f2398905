//! Each software encoder, end to end: the test pattern through the host's converter
//! and encoder, then through FFmpeg's decoder. The barcode each picture carries says
//! which one it is, so a picture taken too late (a buffer rewritten under the
//! encoder), twice, or not at all shows as a number out of place, and an IDR request
//! must bring a key frame.

use ffmpeg_next as ffmpeg;
use punktfunk_core::native::control::Codec as NativeCodec;

use super::convert::{ConvertPath, Converter};
use super::pattern_trip::{H, PatternEncoder, W};
use super::probe::Codec;
use super::video::Encode;
use crate::native::decode::VideoDecoder;
use crate::source::VideoSource;
use crate::source::test_pattern::TestPattern;

struct Run {
    /// Frame numbers decoded back, in decoding order.
    numbers: Vec<u64>,
    /// Source frame numbers at whose encode call a key frame came out.
    key_frames: Vec<u64>,
    /// Indexes into `numbers` of the key frames' pictures.
    key_pictures: Vec<usize>,
}

/// Encodes `frames` pattern pictures with `encoder`, asking for an IDR at frame 1
/// and at `idr_at` (through [`Encode::request_idr`], as a client's request arrives).
fn round_trip(encoder: &'static str, codec: Codec, frames: u64, idr_at: u64) -> Run {
    let mut pattern = PatternEncoder::open(encoder, codec, 6000, 0, false);
    let mut dec = VideoDecoder::open(match codec {
        Codec::H264 => NativeCodec::H264,
        Codec::Hevc => NativeCodec::H265,
        Codec::Av1 => NativeCodec::Av1,
    })
    .unwrap();
    let mut run = Run {
        numbers: Vec::new(),
        key_frames: Vec::new(),
        key_pictures: Vec::new(),
    };
    for n in 1..=frames {
        if n == idr_at {
            pattern.enc.request_idr();
        }
        if pattern.encode(n) {
            if pattern.out.keyframe {
                run.key_frames.push(n);
                run.key_pictures.push(run.numbers.len());
            }
            for d in dec.decode(&pattern.out.data).unwrap() {
                let (_, number) = d.barcode.expect("a readable barcode");
                run.numbers.push(number);
            }
        }
    }
    run
}

/// Pictures whose number is not the key picture's plus their distance from it,
/// leaving out the first `warm_up` pictures after each key picture: `(expected, read)`.
fn misnumbered(run: &Run, warm_up: usize) -> Vec<(u64, u64)> {
    let mut bad = Vec::new();
    for (s, &k) in run.key_pictures.iter().enumerate() {
        let end = run
            .key_pictures
            .get(s + 1)
            .copied()
            .unwrap_or(run.numbers.len());
        let first = run.numbers[k];
        for (j, &n) in run.numbers[k..end].iter().enumerate().skip(warm_up) {
            if n != first + j as u64 {
                bad.push((first + j as u64, n));
            }
        }
    }
    bad
}

#[test]
fn x264_pictures_come_back_in_order_and_idr_requests_are_honoured() {
    let run = round_trip("libx264", Codec::H264, 90, 45);
    assert_eq!(
        run.numbers,
        (1..=90).collect::<Vec<_>>(),
        "every picture, once, in order"
    );
    assert_eq!(run.key_frames, [1, 45]);
    assert!(misnumbered(&run, 0).is_empty());
}

/// SVT-AV1 (Debian 12's 1.4.1) in the low-delay CBR mode a stream needs: it cannot
/// force a key frame, so the host restarts it for an IDR request, and the key frame
/// must come out within its pipeline delay (three pictures here).
///
/// It also leaves a few 16x16 blocks stale in the first ~40 pictures after each key
/// frame (a barcode cell keeps another frame's bit, in clean black/white pixels; more
/// of them on a loaded machine): libaom's realtime mode does the same to this pattern,
/// both decoders (dav1d, libaom) agree, and [`converter_paints_every_barcode_exactly`]
/// shows that the pictures handed to the encoder are right. So the first 45 pictures
/// after a key frame are not checked; every later one, and the key frames, must be
/// exact.
#[test]
fn svt_av1_pictures_come_back_in_order_and_idr_requests_restart_it() {
    let run = round_trip("libsvtav1", Codec::Av1, 150, 75);
    // A key frame at the start and one for the request, within the pipeline delay.
    assert_eq!(
        run.key_frames.len(),
        2,
        "key frames at {:?}",
        run.key_frames
    );
    assert!(
        (75..=79).contains(&run.key_frames[1]),
        "the requested key frame came out at frame {}",
        run.key_frames[1]
    );
    // The restart drops only what the old encoder still held.
    assert!(
        run.numbers.len() >= 150 - 8,
        "{} decoded",
        run.numbers.len()
    );
    assert_eq!(
        run.key_pictures.first(),
        Some(&0),
        "the stream starts with a key frame"
    );
    let bad = misnumbered(&run, 45);
    assert!(
        bad.is_empty(),
        "after the warm-up, (expected, read): {bad:?} in {:?}",
        run.numbers
    );
    // The new sequence starts at the picture the request came with (or the next).
    let k = run.numbers[run.key_pictures[1]];
    assert!((75..=76).contains(&k), "the key picture is frame {k}");
}

#[test]
fn converter_paints_every_barcode_exactly() {
    ffmpeg::init().unwrap();
    for path in [
        ConvertPath::Fast { slices: 2 },
        ConvertPath::Fast { slices: 1 },
        ConvertPath::Swscale { slices: 1 },
    ] {
        let mut conv = Converter::new(
            W,
            H,
            ffmpeg::ffi::SWS_CS_ITU601,
            false,
            ffmpeg::format::Pixel::YUV420P,
            path,
        );
        let mut src = TestPattern::new(W, H);
        let mut frame = crate::source::CapturedFrame::new(W, H);
        for n in 1..=60u64 {
            src.capture(n, &mut frame).unwrap();
            conv.convert(&frame.as_frame()).unwrap();
            // Luma at each cell's centre of barcode row 1 (16 is black, 235 white).
            let (y, stride) = (conv.picture.data(0), conv.picture.stride(0));
            let read = (0..64usize).fold(0u64, |v, bit| {
                (v << 1) | u64::from(y[24 * stride + bit * 16 + 8] > 128)
            });
            assert_eq!(read, n, "{path:?}");
        }
    }
}
