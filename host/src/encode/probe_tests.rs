//! The start-up probe's tests (the module is long enough without them).
use super::*;

#[test]
fn software_h264_always_opens_and_sets_its_bit() {
    let e = Encoders::probe();
    let h264 = e
        .chosen
        .iter()
        .find(|a| a.codec == Codec::H264)
        .expect("libx264 at least");
    assert!(e.codec_mode_support() & scm::H264 != 0);
    // Whatever was chosen really opens.
    assert!(try_open(h264.name, false).is_ok());
    assert!(try_open("no_such_encoder", false).is_err());
    assert!(e.available.contains(h264));
    // Debian 12's x265 encodes 10-bit (multilib x265); SVT-AV1 does too but is
    // refused (TEN_BIT_REFUSED); H.264 is never offered at 10 bits.
    let ten: Vec<_> = e.ten_bit.iter().map(|a| (a.codec, a.name)).collect();
    assert!(ten.contains(&(Codec::Hevc, "libx265")), "{ten:?}");
    assert!(e.codec_mode_support() & scm::HEVC_MAIN10 != 0);
    assert!(e.ten_bit_supported());
    assert!(try_open("libx264", true).is_err());
    assert!(!ten.iter().any(|(_, n)| *n == "libsvtav1"), "{ten:?}");
    assert!(e.codec_mode_support() & scm::AV1_MAIN10 == 0);
    assert!(ten_bit_allowed("libsvtav1").is_err() && ten_bit_allowed("av1_vaapi").is_ok());
}

#[test]
fn ten_bit_is_advertised_only_for_a_kept_ten_bit_encoder() {
    let a = |codec, name: &'static str| Available {
        codec,
        name,
        hardware: false,
    };
    let mut e = Encoders {
        chosen: vec![
            a(Codec::H264, "libx264"),
            a(Codec::Hevc, "libx265"),
            a(Codec::Av1, "libsvtav1"),
        ],
        available: vec![],
        ten_bit: vec![],
    };
    let eight = scm::H264 | scm::HEVC | scm::AV1_MAIN8;
    assert_eq!(e.codec_mode_support(), eight);
    assert!(!e.ten_bit_supported());
    e.ten_bit = vec![a(Codec::Hevc, "libx265")];
    assert_eq!(e.codec_mode_support(), eight | scm::HEVC_MAIN10);
    assert!(e.ten_bit_supported());
    e.ten_bit.push(a(Codec::Av1, "libsvtav1"));
    assert_eq!(
        e.codec_mode_support(),
        eight | scm::HEVC_MAIN10 | scm::AV1_MAIN10
    );
    // A 10-bit encoder for a codec that is not offered at all offers nothing.
    e.chosen.retain(|c| c.codec == Codec::H264);
    assert_eq!(e.codec_mode_support(), scm::H264);
    assert!(!e.ten_bit_supported());
}

#[test]
fn the_default_encoder_setting_picks_among_what_opened_and_falls_back() {
    let a = |codec, name: &'static str, hardware| Available {
        codec,
        name,
        hardware,
    };
    let e = Encoders {
        chosen: vec![
            a(Codec::H264, "h264_nvenc", true),
            a(Codec::Hevc, "libx265", false),
        ],
        available: vec![
            a(Codec::H264, "h264_nvenc", true),
            a(Codec::H264, "libx264", false),
            a(Codec::Hevc, "libx265", false),
        ],
        ten_bit: vec![],
    };
    assert_eq!(e.preferring("auto"), e);
    let soft = e.preferring("libx264");
    assert_eq!(soft.chosen[0].name, "libx264");
    assert_eq!(soft.chosen[1].name, "libx265", "other codecs keep theirs");
    // A preference that did not open here: the probe's choice stays.
    assert_eq!(e.preferring("hevc_vaapi"), e);
}
