//! The 10-bit software encoders end to end: the test pattern through the host's
//! 10-bit converter and encoder, then FFmpeg's decoder. What a Main10 client would
//! notice: the decoder really gets 10-bit pictures (format, profile), tagged with the
//! colour the client asked for, carrying the right frame in order, close to what the
//! host converted.

use std::collections::HashMap;

use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;

use super::convert::{ConvertPath, Converter};
use super::pattern_trip::{H, PatternEncoder, W, psnr};
use super::probe::Codec;

/// What came out of the decoder.
struct Decoded {
    /// Frame numbers read from the barcode, in decoding order.
    numbers: Vec<u64>,
    /// [`muddy_cells`] of each picture.
    muddy: Vec<usize>,
    /// Luma PSNR (10-bit peak) of each picture against the host's own conversion.
    psnr: Vec<f64>,
    formats: Vec<Pixel>,
    profile: ffmpeg::codec::Profile,
    tags: Option<(
        ffmpeg::color::Primaries,
        ffmpeg::color::TransferCharacteristic,
        ffmpeg::color::Space,
        ffmpeg::color::Range,
    )>,
}

/// The luma plane of a 10-bit picture as samples.
fn luma(p: &ffmpeg::frame::Video) -> Vec<u16> {
    let (w, h) = (p.width() as usize, p.height() as usize);
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let row = &p.data(0)[y * p.stride(0)..][..2 * w];
        out.extend(
            row.chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]])),
        );
    }
    out
}

/// Barcode cells (rows 0 and 1) whose centre is neither black (64) nor white (940)
/// to within 100: a block the encoder took from elsewhere.
fn muddy_cells(y: &[u16]) -> usize {
    let w = W as usize;
    (0..2usize)
        .flat_map(|row| (0..64usize).map(move |bit| y[(row * 16 + 8) * w + bit * 16 + 8]))
        .filter(|&v| v.abs_diff(64) > 100 && v.abs_diff(940) > 100)
        .count()
}

/// The frame number in barcode row 1 (cells 16 pixels square; white is luma 940).
fn barcode(y: &[u16]) -> u64 {
    (0..64usize).fold(0u64, |v, bit| {
        (v << 1) | u64::from(y[24 * W as usize + bit * 16 + 8] > 512)
    })
}

/// Streams `frames` pattern pictures at 10 bits through `encoder` (BT.709, limited
/// range: `encoderCscMode` 2) and decodes them with FFmpeg's `decoder`.
fn round_trip(encoder: &'static str, codec: Codec, decoder: &str, frames: u64) -> Decoded {
    round_trip_at(encoder, codec, decoder, frames, true)
}

fn round_trip_at(
    encoder: &'static str,
    codec: Codec,
    decoder: &str,
    frames: u64,
    ten_bit: bool,
) -> Decoded {
    let mut pattern = PatternEncoder::open(encoder, codec, 8000, 2, ten_bit);
    let mut reference = Converter::new(
        W,
        H,
        ffmpeg::ffi::SWS_CS_ITU709,
        false,
        if ten_bit {
            Pixel::YUV420P10LE
        } else {
            Pixel::YUV420P
        },
        ConvertPath::default(),
    );
    let dec_codec = ffmpeg::decoder::find_by_name(decoder).expect("the decoder");
    let mut dec = ffmpeg::codec::context::Context::new_with_codec(dec_codec)
        .decoder()
        .video()
        .unwrap();
    let mut refs: HashMap<u64, Vec<u16>> = HashMap::new();
    let mut decoded = ffmpeg::frame::Video::empty();
    let mut d = Decoded {
        numbers: Vec::new(),
        muddy: Vec::new(),
        psnr: Vec::new(),
        formats: Vec::new(),
        profile: ffmpeg::codec::Profile::Unknown,
        tags: None,
    };
    for n in 1..=frames {
        let packet = pattern.encode(n);
        reference.convert(&pattern.frame.as_frame()).unwrap();
        refs.insert(n, luma(&reference.picture));
        if !packet {
            continue;
        }
        dec.send_packet(&ffmpeg::Packet::copy(&pattern.out.data))
            .unwrap();
        while dec.receive_frame(&mut decoded).is_ok() {
            d.formats.push(decoded.format());
            d.tags = Some((
                decoded.color_primaries(),
                decoded.color_transfer_characteristic(),
                decoded.color_space(),
                decoded.color_range(),
            ));
            let y = luma(&decoded);
            let number = barcode(&y);
            d.muddy.push(muddy_cells(&y));
            d.numbers.push(number);
            d.psnr
                .push(refs.get(&number).map_or(0.0, |r| psnr(&y, r, 1023.0)));
        }
    }
    d.profile = dec.profile();
    d
}

fn check_colour(d: &Decoded) {
    use ffmpeg::color::{Primaries, Range, Space, TransferCharacteristic};
    assert!(
        d.formats.iter().all(|f| *f == Pixel::YUV420P10LE),
        "{:?}",
        d.formats
    );
    assert_eq!(
        d.tags,
        Some((
            Primaries::BT709,
            TransferCharacteristic::BT709,
            Space::BT709,
            Range::MPEG
        )),
        "the bitstream says BT.709 limited range, as the client asked"
    );
}

#[test]
fn x265_main10_pictures_decode_as_10bit_in_order_and_tagged() {
    let d = round_trip("libx265", Codec::Hevc, "hevc", 40);
    assert_eq!(
        d.profile,
        ffmpeg::codec::Profile::HEVC(ffmpeg::codec::profile::HEVC::Main10)
    );
    check_colour(&d);
    let worst = d.psnr.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(worst >= 30.0, "luma PSNR down to {worst:.1} dB");
    assert_eq!(
        d.numbers,
        (1..=40).collect::<Vec<_>>(),
        "every picture, in order"
    );
    assert!(
        d.muddy.iter().all(|&m| m == 0),
        "barcode cells neither black nor white: {:?}",
        d.muddy
    );
}

/// SVT-AV1 1.4 (Debian 12) at 10 bits: the format and tags are right, but from
/// about the 25th picture on, every other picture has a few 16x16 blocks taken from
/// elsewhere (barcode cells go grey: [`muddy_cells`]), for good, not only after a key
/// frame as at 8 bits. So the probe does not offer it ([`super::probe`]); this test
/// keeps the path honest for when a newer SVT-AV1 fixes it.
#[test]
fn svt_av1_10bit_pictures_decode_as_10bit_and_tagged() {
    let d = round_trip("libsvtav1", Codec::Av1, "libdav1d", 24);
    check_colour(&d);
    // The key picture is right; the later ones keep stale blocks (more of them on a
    // loaded machine), so only their arrival is checked.
    assert_eq!(d.numbers.first(), Some(&1), "{:?}", d.numbers);
    assert!(
        d.psnr[0] >= 30.0,
        "key picture luma PSNR {:.1} dB",
        d.psnr[0]
    );
    assert!(d.numbers.len() >= 24 - 8, "{} decoded", d.numbers.len());
}
