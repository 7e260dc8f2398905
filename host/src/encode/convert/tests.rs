//! The converter's paths against each other and against swscale.

use std::time::Instant;

use super::*;
use crate::capture::Plane;
use crate::encode::pattern_trip::psnr;

/// A captured frame of `format` and size over `planes`.
pub(crate) fn frame(format: PixelFormat, w: u32, h: u32, planes: [Plane<'_>; 2]) -> Frame<'_> {
    Frame {
        width: w,
        height: h,
        captured_at: Instant::now(),
        captured_unix_us: 0,
        pixels: Pixels::Cpu(CpuFrame { format, planes }),
    }
}

/// The Y value of the converted picture at (x, y).
fn luma(c: &Converter, x: usize, y: usize) -> u8 {
    c.picture.data(0)[y * c.picture.stride(0) + x]
}

#[test]
fn every_format_converts_to_the_same_grey_and_scales() {
    ffmpeg::init().unwrap();
    let (w, h) = (64u32, 32u32);
    let grey = vec![128u8; (w * h * 4) as usize];
    let nv12 = vec![128u8; (w * h * 3 / 2) as usize];
    let mut c = Converter::new(
        32,
        16,
        ffmpeg::ffi::SWS_CS_ITU709,
        true,
        Pixel::YUV420P,
        ConvertPath::default(),
    );
    for format in [PixelFormat::Bgrx, PixelFormat::Rgbx, PixelFormat::Bgra] {
        let p = Plane {
            data: &grey,
            stride: w as usize * 4,
        };
        c.convert(&frame(format, w, h, [p, Plane::EMPTY])).unwrap();
        let y = luma(&c, 10, 10);
        assert!((126..=130).contains(&y), "{format:?}: Y {y}");
    }
    let (yp, uv) = nv12.split_at((w * h) as usize);
    let planes = [
        Plane {
            data: yp,
            stride: w as usize,
        },
        Plane {
            data: uv,
            stride: w as usize,
        },
    ];
    c.convert(&frame(PixelFormat::Nv12, w, h, planes)).unwrap();
    // Limited-range 128 stretched to full range: (128 - 16) * 255 / 219.
    let y = luma(&c, 5, 5);
    assert!((128..=134).contains(&y), "NV12: Y {y}");
    assert_eq!((c.picture.width(), c.picture.height()), (32, 16));
}

/// The picture's planes as tightly packed I420 bytes (NV12 chroma de-interleaved).
fn i420(c: &Converter) -> Vec<u8> {
    let p = &c.picture;
    let (w, h) = (p.width() as usize, p.height() as usize);
    let mut out = Vec::new();
    for y in 0..h {
        out.extend_from_slice(&p.data(0)[y * p.stride(0)..][..w]);
    }
    if p.format() == Pixel::NV12 {
        for i in 0..2 {
            for y in 0..h / 2 {
                let row = &p.data(1)[y * p.stride(1)..][..w];
                out.extend(row.iter().skip(i).step_by(2));
            }
        }
    } else {
        for plane in 1..3 {
            for y in 0..h / 2 {
                out.extend_from_slice(&p.data(plane)[y * p.stride(plane)..][..w / 2]);
            }
        }
    }
    out
}

#[test]
fn every_conversion_path_gives_swscales_picture() {
    use crate::source::VideoSource;
    ffmpeg::init().unwrap();
    let (w, h) = (320u32, 180u32);
    let mut src = crate::source::test_pattern::TestPattern::new(w, h);
    let mut frame = crate::source::CapturedFrame::new(w, h);
    src.capture(7, &mut frame).unwrap();
    let reference = {
        let mut c = Converter::new(
            w,
            h,
            ffmpeg::ffi::SWS_CS_ITU709,
            false,
            Pixel::YUV420P,
            ConvertPath::Swscale { slices: 1 },
        );
        c.convert(&frame.as_frame()).unwrap();
        i420(&c)
    };
    for out in [Pixel::YUV420P, Pixel::NV12] {
        for path in [
            ConvertPath::Swscale { slices: 2 },
            ConvertPath::Fast { slices: 1 },
            ConvertPath::Fast { slices: 2 },
        ] {
            let mut c = Converter::new(w, h, ffmpeg::ffi::SWS_CS_ITU709, false, out, path);
            c.convert(&frame.as_frame()).unwrap();
            let got = i420(&c);
            let (yl, _) = got.split_at((w * h) as usize);
            let luma = psnr(yl, &reference[..(w * h) as usize], 255.0);
            let all = psnr(&got, &reference, 255.0);
            assert!(luma > 45.0, "{path:?} {out:?}: luma PSNR {luma:.1} dB");
            assert!(all > 35.0, "{path:?} {out:?}: PSNR {all:.1} dB");
        }
    }
}

#[test]
fn short_or_narrow_planes_are_refused() {
    let data = vec![0u8; 100];
    let short = Plane {
        data: &data,
        stride: 40,
    };
    let cpu = CpuFrame {
        format: PixelFormat::Bgrx,
        planes: [short, Plane::EMPTY],
    };
    // 10x3 BGRx needs 40 * 2 + 40 = 120 bytes.
    assert!(check_planes(10, 3, &cpu).is_err());
    assert!(check_planes(10, 2, &cpu).is_ok());
    let narrow = CpuFrame {
        format: PixelFormat::Bgrx,
        planes: [
            Plane {
                data: &data,
                stride: 20,
            },
            Plane::EMPTY,
        ],
    };
    assert!(check_planes(10, 1, &narrow).is_err());
    let nv12 = CpuFrame {
        format: PixelFormat::Nv12,
        planes: [
            Plane {
                data: &data,
                stride: 10,
            },
            Plane::EMPTY,
        ],
    };
    assert!(check_planes(10, 10, &nv12).is_err(), "no UV plane");
    assert!(check_planes(0, 10, &nv12).is_err());
}

#[test]
fn an_nv12_source_is_copied_exactly_with_and_without_the_helper_thread_and_at_an_odd_size() {
    ffmpeg::init().unwrap();
    for (w, h, slices) in [(66usize, 38usize, 2usize), (66, 38, 1), (33, 19, 2)] {
        // Source rows wider than the picture, every byte different from its neighbours.
        let (stride, crows) = (w + 10, h.div_ceil(2));
        let yp: Vec<u8> = (0..stride * h).map(|i| (i * 7 % 251) as u8).collect();
        let uv: Vec<u8> = (0..stride * crows).map(|i| (i * 11 % 241) as u8).collect();
        let mut c = Converter::new(
            w as u32,
            h as u32,
            ffmpeg::ffi::SWS_CS_ITU709,
            false,
            Pixel::NV12,
            ConvertPath::Fast { slices },
        );
        let planes = [Plane { data: &yp, stride }, Plane { data: &uv, stride }];
        c.convert(&frame(PixelFormat::Nv12, w as u32, h as u32, planes))
            .unwrap();
        let p = &c.picture;
        for y in 0..h {
            assert_eq!(
                &p.data(0)[y * p.stride(0)..][..w],
                &yp[y * stride..][..w],
                "{w}x{h} in {slices}: luma row {y}"
            );
        }
        let cw = w.div_ceil(2) * 2;
        for y in 0..crows {
            assert_eq!(
                &p.data(1)[y * p.stride(1)..][..cw],
                &uv[y * stride..][..cw],
                "{w}x{h} in {slices}: chroma row {y}"
            );
        }
    }
}
