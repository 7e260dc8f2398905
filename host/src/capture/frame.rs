//! One captured picture as the encoder receives it.
//!
//! A frame borrows the capture's own buffer: CPU pixels are converted straight from the
//! mapped memory (no copy between capture and colour conversion), and DMA-BUF frames
//! carry only descriptors, which a hardware encoder imports without touching the
//! pixels. The borrow ends when the frame is dropped; only then may the capture hand
//! the buffer back to its producer.

use std::os::fd::BorrowedFd;
use std::time::Instant;

/// How the pixels of a CPU frame are laid out in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 32 bits a pixel: blue, green, red, unused (DRM XRGB8888, SPA BGRx, wl_shm XRGB8888).
    Bgrx,
    /// 32 bits a pixel: red, green, blue, unused (DRM XBGR8888, SPA RGBx).
    Rgbx,
    /// 32 bits a pixel: blue, green, red, alpha (DRM ARGB8888, SPA BGRA); alpha is ignored.
    Bgra,
    /// A full-resolution Y plane, then interleaved U/V at half resolution both ways.
    Nv12,
}

impl PixelFormat {
    /// How many planes a frame of this format carries.
    pub fn planes(self) -> usize {
        match self {
            Self::Bgrx | Self::Rgbx | Self::Bgra => 1,
            Self::Nv12 => 2,
        }
    }

    /// The DRM fourcc code of this layout (what DMA-BUF descriptors name).
    pub fn drm_fourcc(self) -> u32 {
        let code = |s: &[u8; 4]| u32::from_le_bytes(*s);
        match self {
            Self::Bgrx => code(b"XR24"),
            Self::Rgbx => code(b"XB24"),
            Self::Bgra => code(b"AR24"),
            Self::Nv12 => code(b"NV12"),
        }
    }

    /// The layout a DRM fourcc code names, if it is one we convert.
    pub fn from_drm_fourcc(fourcc: u32) -> Option<Self> {
        [Self::Bgrx, Self::Rgbx, Self::Bgra, Self::Nv12]
            .into_iter()
            .find(|f| f.drm_fourcc() == fourcc)
    }
}

/// One plane of CPU pixels.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    /// The plane's bytes, at least `stride * rows` long.
    pub data: &'a [u8],
    /// Bytes from one row to the next.
    pub stride: usize,
}

impl Plane<'_> {
    /// A plane with no bytes, for the unused slots of packed formats.
    pub const EMPTY: Plane<'static> = Plane {
        data: &[],
        stride: 0,
    };
}

/// Pixels in memory the host can read.
#[derive(Debug, Clone, Copy)]
pub struct CpuFrame<'a> {
    /// The layout.
    pub format: PixelFormat,
    /// The planes; only the first `format.planes()` are meaningful.
    pub planes: [Plane<'a>; 2],
}

/// One plane of a DMA-BUF.
#[derive(Debug, Clone, Copy)]
pub struct DmaBufPlane<'a> {
    /// The buffer's file descriptor, valid while the frame lives.
    pub fd: BorrowedFd<'a>,
    /// Where the plane starts in that buffer, bytes.
    pub offset: u32,
    /// Bytes from one row to the next.
    pub stride: u32,
}

/// A GPU buffer described for import (EGL, VAAPI DRM PRIME, CUDA external memory).
#[derive(Debug, Clone, Copy)]
pub struct DmaBufFrame<'a> {
    /// DRM fourcc of the pixel layout.
    pub fourcc: u32,
    /// DRM format modifier (tiling, compression).
    pub modifier: u64,
    /// The planes; `None` past the last one.
    pub planes: [Option<DmaBufPlane<'a>>; 4],
}

/// Where a frame's pixels are.
#[derive(Debug, Clone, Copy)]
pub enum Pixels<'a> {
    /// In mapped memory.
    Cpu(CpuFrame<'a>),
    /// In a DMA-BUF.
    DmaBuf(DmaBufFrame<'a>),
}

/// One captured picture.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// When it was captured (monotonic), for the host latency in the frame header.
    pub captured_at: Instant,
    /// When it was captured, wall clock in microseconds since the Unix epoch (the
    /// barcode tests compare it with the client's decode time).
    pub captured_unix_us: u64,
    /// The pixels.
    pub pixels: Pixels<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_codes_round_trip_and_match_drm_fourcc_h() {
        // DRM_FORMAT_XRGB8888 = fourcc_code('X', 'R', '2', '4') = 0x34325258.
        assert_eq!(PixelFormat::Bgrx.drm_fourcc(), 0x3432_5258);
        // DRM_FORMAT_NV12 = fourcc_code('N', 'V', '1', '2') = 0x3231_564e.
        assert_eq!(PixelFormat::Nv12.drm_fourcc(), 0x3231_564e);
        for f in [
            PixelFormat::Bgrx,
            PixelFormat::Rgbx,
            PixelFormat::Bgra,
            PixelFormat::Nv12,
        ] {
            assert_eq!(PixelFormat::from_drm_fourcc(f.drm_fourcc()), Some(f));
        }
        assert_eq!(PixelFormat::from_drm_fourcc(0), None);
    }
}
