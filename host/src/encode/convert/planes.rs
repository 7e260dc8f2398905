//! What a captured frame's planes must hold before anything reads them.

use anyhow::{Result, bail};

use crate::capture::{CpuFrame, PixelFormat, Plane};

/// Checks that `frame`'s planes hold a whole picture, so swscale never reads past the
/// borrowed memory: a producer that lies about sizes gets its frame refused, not a
/// crash.
pub fn check_planes(width: u32, height: u32, cpu: &CpuFrame<'_>) -> Result<()> {
    let (w, h) = (width as usize, height as usize);
    if w == 0 || h == 0 {
        bail!("an empty {width}x{height} frame");
    }
    let need = |plane: &Plane<'_>, row_bytes: usize, rows: usize, what: &str| -> Result<()> {
        if plane.stride < row_bytes {
            bail!(
                "{what} rows are {} bytes apart, less than a row of {row_bytes}",
                plane.stride
            );
        }
        let len = plane.stride * (rows - 1) + row_bytes;
        if plane.data.len() < len {
            bail!(
                "{what} has {} bytes, a {width}x{height} picture needs {len}",
                plane.data.len()
            );
        }
        Ok(())
    };
    match cpu.format {
        PixelFormat::Bgrx | PixelFormat::Rgbx | PixelFormat::Bgra => {
            need(&cpu.planes[0], w * 4, h, "the pixel plane")
        }
        PixelFormat::Nv12 => {
            need(&cpu.planes[0], w, h, "the Y plane")?;
            need(
                &cpu.planes[1],
                w.div_ceil(2) * 2,
                h.div_ceil(2),
                "the UV plane",
            )
        }
    }
}
