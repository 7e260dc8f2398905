//! NVENC's checks that run without a GPU: the import plan, the 10-bit path, and a
//! clear reason where there is no NVIDIA driver.

use std::os::fd::AsFd;

use ffmpeg_next::format::Pixel;

use super::*;
use crate::capture::{DmaBufPlane, PixelFormat};

#[test]
fn only_linear_buffers_of_known_formats_are_imported() {
    let file = tempfile::tempfile().unwrap();
    let plane = DmaBufPlane {
        fd: file.as_fd(),
        offset: 0,
        stride: 1280 * 4,
    };
    let mut d = DmaBufFrame {
        fourcc: PixelFormat::Bgrx.drm_fourcc(),
        modifier: 0,
        planes: [Some(plane), None, None, None],
    };
    let plan = import_plan(1280, 720, &d).unwrap();
    assert_eq!(plan.format, PixelFormat::Bgrx);
    assert_eq!(plan.luma_bytes, 1280 * 4 * 720);
    // AMD/Intel/NVIDIA tiled modifiers are refused with the reason.
    d.modifier = 0x0300_0000_0000_0014;
    let e = import_plan(1280, 720, &d).unwrap_err().to_string();
    assert!(e.contains("tiled"), "{e}");
    d.modifier = 0;
    d.fourcc = u32::from_le_bytes(*b"AB30");
    assert!(import_plan(1280, 720, &d).is_err());
    d.fourcc = PixelFormat::Bgrx.drm_fourcc();
    assert!(import_plan(1281, 720, &d).is_err(), "stride too short");
}

#[test]
fn ten_bit_streams_feed_nvenc_p010_from_the_cpu() {
    use super::super::software::input_format;
    let t = Tuning::default();
    for name in ["hevc_nvenc", "av1_nvenc"] {
        assert_eq!(input_format(name, &t, true).unwrap(), Pixel::P010LE);
        assert_eq!(input_format(name, &t, false).unwrap(), Pixel::NV12);
    }
    assert!(input_format("h264_nvenc", &t, true).is_err());
    let mut cfg = VideoEncoderConfig {
        codec: super::super::probe::Codec::Hevc,
        width: 1280,
        height: 720,
        fps: 60,
        bitrate_kbps: 10_000,
        csc_mode: 0,
        ten_bit: false,
    };
    assert!(gpu_path_for(&cfg).is_ok());
    cfg.ten_bit = true;
    assert!(gpu_path_for(&cfg).unwrap_err().contains("P010"));
}

#[test]
fn without_a_gpu_nvenc_fails_to_open_with_a_reason() {
    ffmpeg_next::init().unwrap();
    let cfg = VideoEncoderConfig {
        codec: super::super::probe::Codec::H264,
        width: 640,
        height: 360,
        fps: 60,
        bitrate_kbps: 4000,
        csc_mode: 0,
        ten_bit: false,
    };
    let opened = NvencEncoder::open("h264_nvenc", &cfg, &Tuning::default());
    if let Err(why) = driver_present() {
        let e = opened.unwrap_err();
        assert!(
            format!("{e:#}").contains("no NVIDIA driver"),
            "{e:#} / {why}"
        );
    }
}
