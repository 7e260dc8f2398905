//! The levers: the host's path with one knob moved at a time.

use punktfunk_host::encode::convert::ConvertPath;
use punktfunk_host::encode::software::Tuning;

/// Ours with one lever moved at a time, named for the lever.
pub fn levers() -> Vec<(&'static str, Tuning, bool)> {
    let base = Tuning::default();
    let sws1 = ConvertPath::Swscale { slices: 1 };
    vec![
        (
            "before: swscale 1 band, I420, x264 auto threads",
            Tuning {
                convert: sws1,
                nv12: false,
                threads: None,
                ..base
            },
            false,
        ),
        (
            "swscale 2 bands",
            Tuning {
                convert: ConvertPath::Swscale { slices: 2 },
                nv12: false,
                threads: None,
                ..base
            },
            false,
        ),
        (
            "one-pass converter, 1 band",
            Tuning {
                convert: ConvertPath::Fast { slices: 1 },
                nv12: false,
                threads: None,
                ..base
            },
            false,
        ),
        (
            "one-pass converter, 2 bands",
            Tuning {
                nv12: false,
                threads: None,
                ..base
            },
            false,
        ),
        (
            "+ NV12 to x264",
            Tuning {
                threads: None,
                ..base
            },
            false,
        ),
        (
            "+ x264 1 thread",
            Tuning {
                threads: Some(1),
                ..base
            },
            false,
        ),
        (
            "+ x264 2 sliced threads",
            Tuning {
                threads: Some(2),
                ..base
            },
            false,
        ),
        (
            "+ x264 4 sliced threads",
            Tuning {
                threads: Some(4),
                ..base
            },
            false,
        ),
        (
            "+ x264 aq-mode=0",
            Tuning {
                x264_extra: "aq-mode=0",
                ..base
            },
            false,
        ),
        (
            "+ x264 weightp=0",
            Tuning {
                x264_extra: "weightp=0",
                ..base
            },
            false,
        ),
        (
            "+ x264 no-deblock (PSNR cost on real content)",
            Tuning {
                x264_extra: "no-deblock=1",
                ..base
            },
            false,
        ),
        (
            "+ x264 aq-mode=0:weightp=0",
            Tuning {
                x264_extra: "aq-mode=0:weightp=0",
                ..base
            },
            false,
        ),
        (
            "+ NV12 source + aq-mode=0:weightp=0",
            Tuning {
                x264_extra: "aq-mode=0:weightp=0",
                ..base
            },
            true,
        ),
    ]
}
