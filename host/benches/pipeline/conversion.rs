//! The colour conversion alone, each conversion path against swscale's reference.

use std::time::Instant;

use anyhow::Result;
use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;
use punktfunk_host::encode::convert::ConvertPath;
use punktfunk_host::encode::probe::Codec;
use punktfunk_host::encode::video::VideoEncoderConfig;
use punktfunk_host::source::test_pattern::TestPattern;
use punktfunk_host::source::{CapturedFrame, VideoSource};
use serde_json::json;

use super::Case;
use super::reference::{Reference, ptr0};
use super::support::{percentile, process_cpu};

/// The colour conversion alone, each path on the same painted frame: CPU per frame
/// over all threads (the two-band paths use a helper thread) and wall p50. The
/// reference is swscale with default (bicubic) flags, as in the reference path.
pub fn conversion_table(case: &Case, frames: usize) -> Result<Vec<serde_json::Value>> {
    use punktfunk_host::encode::convert::Converter;
    let (w, h) = (case.width, case.height);
    let mut source = TestPattern::new(w, h);
    let mut frame = CapturedFrame::new(w, h);
    source.capture(1, &mut frame)?;
    let mut reference = Reference::open(&VideoEncoderConfig {
        codec: Codec::H264,
        width: w,
        height: h,
        fps: case.fps,
        bitrate_kbps: 1000,
        csc_mode: 0,
        ten_bit: false,
    })?;
    let space = ffmpeg::ffi::SWS_CS_ITU601;
    let mut paths: Vec<(&str, Option<Converter>)> =
        vec![("reference: swscale bicubic, I420", None)];
    for (name, out, path) in [
        (
            "swscale fast-bilinear, I420, 1 band",
            Pixel::YUV420P,
            ConvertPath::Swscale { slices: 1 },
        ),
        (
            "swscale fast-bilinear, I420, 2 bands",
            Pixel::YUV420P,
            ConvertPath::Swscale { slices: 2 },
        ),
        (
            "one-pass, I420, 1 band",
            Pixel::YUV420P,
            ConvertPath::Fast { slices: 1 },
        ),
        (
            "one-pass, I420, 2 bands",
            Pixel::YUV420P,
            ConvertPath::Fast { slices: 2 },
        ),
        (
            "one-pass, NV12, 1 band",
            Pixel::NV12,
            ConvertPath::Fast { slices: 1 },
        ),
        (
            "one-pass, NV12, 2 bands",
            Pixel::NV12,
            ConvertPath::Fast { slices: 2 },
        ),
    ] {
        paths.push((name, Some(Converter::new(w, h, space, false, out, path))));
    }
    let mut rows = Vec::new();
    let mut ref_cpu = 0.0;
    println!(
        "{:<50} {:>10} {:>9} {:>8}",
        "conversion alone", "wall p50", "CPU ms/f", "CPU x"
    );
    for (name, conv) in &mut paths {
        let mut wall = Vec::with_capacity(frames);
        let cpu0 = process_cpu();
        for _ in 0..frames {
            let t = Instant::now();
            match conv {
                None => {
                    let src: [*const u8; 4] = [frame.data.as_ptr(), ptr0(), ptr0(), ptr0()];
                    let stride = [frame.stride as i32, 0, 0, 0];
                    // SAFETY: as in Reference::process.
                    unsafe {
                        let dst = reference.picture.as_mut_ptr();
                        ffmpeg::ffi::sws_scale(
                            reference.scaler.as_mut_ptr(),
                            src.as_ptr(),
                            stride.as_ptr(),
                            0,
                            h as i32,
                            (*dst).data.as_ptr(),
                            (*dst).linesize.as_ptr(),
                        );
                    }
                }
                Some(c) => c.convert(&frame.as_frame())?,
            }
            wall.push(t.elapsed().as_micros() as u64);
        }
        let cpu = (process_cpu() - cpu0).as_secs_f64() * 1000.0 / frames as f64;
        if conv.is_none() {
            ref_cpu = cpu;
        }
        println!(
            "{:<50} {:>10.2} {:>9.2} {:>8.2}",
            name,
            percentile(&wall, 0.5),
            cpu,
            cpu / ref_cpu.max(1e-9)
        );
        rows.push(
            json!({"path": name, "wall_p50_ms": percentile(&wall, 0.5), "cpu_ms_per_frame": cpu}),
        );
    }
    Ok(rows)
}
