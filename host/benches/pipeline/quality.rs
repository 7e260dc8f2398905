//! Picture quality of a path's bitstream, measured as the interop tests measure it
//! (`tests/interop/streamclient.py`, `bars_psnr`): decode, convert to BGR, and take
//! the PSNR of the colour bars below the barcode against the painted source, every
//! 4th row, leaving 4 pixels either side of each bar edge (chroma subsampling blurs
//! edges by design). Runs after the timed blocks, so decoding costs no path CPU.

use anyhow::{Context, Result};
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;
use punktfunk_host::source::test_pattern::{CELL, SPEED, TestPattern};

/// Every `EVERY`th measured frame is compared, as the tests sample.
const EVERY: usize = 10;

/// The PSNR (dB) of the bars of decoded frame `number`, BGR24 rows `stride` apart.
fn bars_psnr(bgr: &[u8], stride: usize, w: u32, h: u32, number: u64, p: &TestPattern) -> f64 {
    let offset = (number * u64::from(SPEED)) % u64::from(w);
    let mut edge = vec![false; w as usize];
    for k in 1..8u64 {
        let e = ((k * u64::from(w)) / 8 + u64::from(w) - offset) % u64::from(w);
        let (lo, hi) = (e.saturating_sub(4), (e + 4).min(u64::from(w)));
        for x in lo..hi {
            edge[x as usize] = true;
        }
    }
    let (mut sum, mut n) = (0.0f64, 0u64);
    for y in (4 * CELL..h - CELL).step_by(4) {
        let row = &bgr[y as usize * stride..];
        for x in 0..w {
            if edge[x as usize] {
                continue;
            }
            let want = p.bar_at(number, x);
            for c in 0..3 {
                let d = f64::from(row[x as usize * 3 + c]) - f64::from(want[c]);
                sum += d * d;
            }
            n += 3;
        }
    }
    let mse = sum / n.max(1) as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// Min and mean bars PSNR of `stream` (access units of frames 1, 2, ...), over the
/// frames past `skip` (the warm-up block).
pub fn stream_psnr(stream: &[Vec<u8>], w: u32, h: u32, skip: usize) -> Result<(f64, f64)> {
    let codec = ffmpeg::decoder::find(ffmpeg::codec::Id::H264).context("no H.264 decoder")?;
    let mut dec = ffmpeg::codec::context::Context::new_with_codec(codec)
        .decoder()
        .video()?;
    let pattern = TestPattern::new(w, h);
    let mut scaler: Option<scaling::Context> = None;
    let mut decoded = ffmpeg::frame::Video::empty();
    let mut bgr = ffmpeg::frame::Video::empty();
    let mut psnr = Vec::new();
    let mut count = 0usize;
    let mut take = |dec: &mut ffmpeg::decoder::Video| -> Result<()> {
        while dec.receive_frame(&mut decoded).is_ok() {
            count += 1;
            if count <= skip || count % EVERY != 1 {
                continue;
            }
            let s = match &mut scaler {
                Some(s) => s,
                None => scaler.insert(scaling::Context::get(
                    decoded.format(),
                    w,
                    h,
                    Pixel::BGR24,
                    w,
                    h,
                    scaling::Flags::BICUBIC,
                )?),
            };
            s.run(&decoded, &mut bgr)?;
            psnr.push(bars_psnr(
                bgr.data(0),
                bgr.stride(0),
                w,
                h,
                count as u64,
                &pattern,
            ));
        }
        Ok(())
    };
    for au in stream {
        dec.send_packet(&ffmpeg::Packet::copy(au))?;
        take(&mut dec)?;
    }
    dec.send_eof()?;
    take(&mut dec)?;
    let min = psnr.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = psnr.iter().sum::<f64>() / psnr.len().max(1) as f64;
    Ok((min, mean))
}
