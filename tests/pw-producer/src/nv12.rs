//! NV12 output, as gamescope offers it: the format with a choice of colour matrix
//! (BT.601, BT.709) and range (limited, full), and the pattern painted in whichever the
//! consumer fixed, so the consumer gets YUV it need not convert.

use pipewire as pw;
use punktfunk_host::source::test_pattern::Nv12Pattern;
use punktfunk_yuv::Matrix;
use pw::spa;
use pw::spa::pod::{ChoiceValue, Property, Value};
use pw::spa::sys as spa_sys;
use pw::spa::utils::{Choice, ChoiceEnum, ChoiceFlags, Id};

/// The NV12 EnumFormat: `width` x `height` at `fps`, matrix and range left to the
/// consumer (BT.601 limited by default, as gamescope's).
pub fn format_param(width: u32, height: u32, fps: u32) -> Value {
    use spa::param::format::FormatProperties as F;
    let choice = |key: F, default: u32, alternatives: [u32; 2]| {
        Property::new(
            key.as_raw(),
            Value::Choice(ChoiceValue::Id(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Enum {
                    default: Id(default),
                    alternatives: alternatives.map(Id).to_vec(),
                },
            ))),
        )
    };
    let mut format = super::video_format(spa::param::video::VideoFormat::NV12, width, height, fps);
    if let Value::Object(o) = &mut format {
        o.properties.push(choice(
            F::VideoColorMatrix,
            spa_sys::SPA_VIDEO_COLOR_MATRIX_BT601,
            [
                spa_sys::SPA_VIDEO_COLOR_MATRIX_BT601,
                spa_sys::SPA_VIDEO_COLOR_MATRIX_BT709,
            ],
        ));
        o.properties.push(choice(
            F::VideoColorRange,
            spa_sys::SPA_VIDEO_COLOR_RANGE_16_235,
            [
                spa_sys::SPA_VIDEO_COLOR_RANGE_16_235,
                spa_sys::SPA_VIDEO_COLOR_RANGE_0_255,
            ],
        ));
    }
    format
}

/// The pattern for a negotiated NV12 format, in its matrix and range.
pub fn pattern_for(info: &spa::param::video::VideoInfoRaw) -> Nv12Pattern {
    let full = info.color_range() == spa_sys::SPA_VIDEO_COLOR_RANGE_0_255;
    let matrix = if info.color_matrix() == spa_sys::SPA_VIDEO_COLOR_MATRIX_BT709 {
        Matrix::bt709(full)
    } else {
        Matrix::bt601(full)
    };
    let size = info.size();
    Nv12Pattern::new(size.width, size.height, &matrix)
}

/// Bytes of one NV12 picture with rows `width` apart.
pub fn picture_len(width: u32, height: u32) -> u32 {
    width * height + width * height.div_ceil(2)
}

/// Paints frame `n` into `pixels` (the Y rows, then the UV rows, `width` apart).
pub fn paint(pattern: &mut Nv12Pattern, n: u64, unix_us: u64, pixels: &mut [u8]) {
    pattern.draw(n, unix_us);
    let (y, uv) = (&pattern.y, &pattern.uv);
    pixels[..y.len()].copy_from_slice(y);
    pixels[y.len()..y.len() + uv.len()].copy_from_slice(uv);
}
