//! The 10-bit side of [`super::convert::Converter`]: captured 8-bit frames into the
//! 10-bit pictures HEVC Main10 and AV1 10-bit encoders take (`yuv420p10le` for x265
//! and SVT-AV1, P010 for VAAPI and NVENC).
//!
//! Packed RGB and NV12 of the encoder's size go through `punktfunk_yuv::ten_bit` (one
//! pass, the matrix's extra precision kept, two bands at once on the converter's
//! helper thread); anything that needs scaling goes through swscale, which the
//! converter already drives for every other output format.

use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;
use punktfunk_yuv::ten_bit::{Band10, Matrix10, Planes10, nv12_to_10bit, rgb_to_10bit};

use super::convert::bands::{BandChroma, in_bands};
use super::convert::rgb_order;
use super::slices::SliceWorker;
use crate::capture::CpuFrame;

/// Whether `format` is one of the 10-bit 4:2:0 layouts this module writes.
pub fn is_ten_bit(format: Pixel) -> bool {
    matches!(format, Pixel::YUV420P10LE | Pixel::P010LE)
}

/// The 10-bit matrix for an `SWS_CS_*` constant and range.
pub(crate) fn matrix10(sws_space: libc::c_int, full_range: bool) -> Matrix10 {
    Matrix10::standard(super::convert::standard(sws_space), full_range)
}

/// Converts `cpu` (the picture's size, even) into `picture` (a 10-bit layout, see
/// [`is_ten_bit`]). Returns `false`, touching nothing, for a frame it does not take
/// (the caller converts that one through swscale).
pub(crate) fn convert(
    picture: &mut ffmpeg::frame::Video,
    cpu: &CpuFrame<'_>,
    m: &Matrix10,
    full_range: bool,
    worker: Option<&SliceWorker>,
) -> bool {
    if !is_ten_bit(picture.format()) {
        return false;
    }
    let (w, h) = (picture.width() as usize, picture.height() as usize);
    if w % 2 == 1 || h % 2 == 1 || h < 2 {
        return false;
    }
    // Packed RGB, or NV12 (no order) widened.
    let order = rgb_order(cpu.format);
    in_bands::<u16>(picture, worker, |b| {
        let (y0, c0) = (b.y0, b.y0 / 2);
        let out = Band10 {
            y: b.y,
            y_stride: b.y_stride,
            chroma: match b.chroma {
                BandChroma::Interleaved(uv) => Planes10::P010(uv),
                BandChroma::Planar { u, v } => Planes10::Planar { u, v },
            },
            c_stride: b.c_stride,
            width: b.width,
            rows: b.rows,
        };
        let [p0, p1] = cpu.planes;
        match order {
            Some(order) => rgb_to_10bit(&p0.data[y0 * p0.stride..], p0.stride, order, out, m),
            None => nv12_to_10bit(
                &p0.data[y0 * p0.stride..],
                p0.stride,
                &p1.data[c0 * p1.stride..],
                p1.stride,
                full_range,
                out,
            ),
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{PixelFormat, Plane};
    use crate::encode::convert::tests::frame;
    use crate::encode::convert::{ConvertPath, Converter};

    fn sample(p: &ffmpeg::frame::Video, plane: usize, x: usize, y: usize) -> u16 {
        let row = &p.data(plane)[y * p.stride(plane)..];
        u16::from_le_bytes([row[2 * x], row[2 * x + 1]])
    }

    /// BT.709 limited-range red, in every path: the one-pass converter (both
    /// layouts), and swscale when the capture must be scaled.
    #[test]
    fn bgrx_and_nv12_become_10bit_pictures_in_both_layouts_and_through_swscale() {
        ffmpeg::init().unwrap();
        let red: Vec<u8> = [0u8, 0, 255, 0].repeat(64 * 32);
        let bgrx = |w, h| {
            frame(
                PixelFormat::Bgrx,
                w,
                h,
                [
                    Plane {
                        data: &red,
                        stride: w as usize * 4,
                    },
                    Plane::EMPTY,
                ],
            )
        };
        // H.273 at 10 bits: Y = 64 + 876 Kr, Cb = 512 - 448 Kr / (1 - Kb), Cr = 960.
        let want = [250u16, 409, 960];
        for (out, shift) in [(Pixel::YUV420P10LE, 0), (Pixel::P010LE, 6)] {
            let mut c = Converter::new(
                32,
                16,
                ffmpeg::ffi::SWS_CS_ITU709,
                false,
                out,
                ConvertPath::default(),
            );
            c.convert(&bgrx(32, 16)).unwrap();
            let p = &c.picture;
            let got = if out == Pixel::P010LE {
                [sample(p, 0, 3, 3), sample(p, 1, 2, 1), sample(p, 1, 3, 1)]
            } else {
                [sample(p, 0, 3, 3), sample(p, 1, 1, 1), sample(p, 2, 1, 1)]
            };
            assert_eq!(got.map(|v| v >> shift), want, "{out:?}");
            // Twice the size: swscale scales and converts, to within a code value or two.
            c.convert(&bgrx(64, 32)).unwrap();
            let y = sample(&c.picture, 0, 5, 5) >> shift;
            assert!(y.abs_diff(want[0]) <= 2, "{out:?} scaled: Y {y}");
        }
        // NV12 of the picture's size: every sample widened (16 -> 64, 240 -> 960).
        let mut nv12 = vec![16u8; 32 * 16];
        nv12.extend([128u8, 240].repeat(16 * 8));
        let (yp, uv) = nv12.split_at(32 * 16);
        let mut c = Converter::new(
            32,
            16,
            ffmpeg::ffi::SWS_CS_ITU709,
            false,
            Pixel::YUV420P10LE,
            ConvertPath::default(),
        );
        let planes = [
            Plane {
                data: yp,
                stride: 32,
            },
            Plane {
                data: uv,
                stride: 32,
            },
        ];
        c.convert(&frame(PixelFormat::Nv12, 32, 16, planes))
            .unwrap();
        let p = &c.picture;
        assert_eq!(
            [sample(p, 0, 7, 9), sample(p, 1, 4, 4), sample(p, 2, 4, 4)],
            [64, 512, 960]
        );
    }
}
