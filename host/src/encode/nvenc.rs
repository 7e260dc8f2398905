//! NVENC (NVIDIA GPUs) through FFmpeg's `*_nvenc` encoders.
//!
//! CPU frames are converted to NV12 and handed to FFmpeg in system memory; FFmpeg
//! uploads them to the GPU itself (the same path as [`super::software`]). DMA-BUF
//! frames need CUDA's external-memory import (`cuImportExternalMemory` of the
//! DMA-BUF fd, then an `AV_PIX_FMT_CUDA` frame over the imported memory): see
//! [`import_plan`] for the checks that run without a GPU. Without a CUDA import, a
//! linear DMA-BUF is mapped and read by the CPU, and a tiled one is refused with the
//! reason, so the caller falls back.

use anyhow::{Result, bail};

use super::software::{FfmpegEncoder, Tuning};
use super::video::{Encode, EncodedFrame, VideoEncoderConfig};
use crate::capture::{DmaBufFrame, Frame, PixelFormat, Pixels};

/// An open NVENC encoder.
#[derive(Debug)]
pub struct NvencEncoder {
    inner: FfmpegEncoder,
}

/// What a DMA-BUF import into CUDA needs to know, checked before touching the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportPlan {
    /// The layout of the imported pixels.
    pub format: PixelFormat,
    /// Bytes of the first plane to import (stride x height).
    pub luma_bytes: u64,
}

/// Checks that `dmabuf` (of `width` x `height`) can be imported into CUDA as a linear
/// buffer: CUDA's external-memory import takes a flat allocation, so only linear (or
/// implicit-modifier) layouts of a format NVENC reads work.
pub fn import_plan(width: u32, height: u32, dmabuf: &DmaBufFrame<'_>) -> Result<ImportPlan> {
    const MOD_LINEAR: u64 = 0;
    const MOD_INVALID: u64 = 0x00ff_ffff_ffff_ffff;
    let Some(format) = PixelFormat::from_drm_fourcc(dmabuf.fourcc) else {
        bail!(
            "DMA-BUF fourcc {:#010x} is not a format NVENC is fed",
            dmabuf.fourcc
        );
    };
    if dmabuf.modifier != MOD_LINEAR && dmabuf.modifier != MOD_INVALID {
        bail!(
            "DMA-BUF modifier {:#x} is tiled; CUDA imports only linear buffers",
            dmabuf.modifier
        );
    }
    let Some(plane) = dmabuf.planes[0] else {
        bail!("a DMA-BUF without planes");
    };
    let row = match format {
        PixelFormat::Nv12 => u64::from(width),
        _ => u64::from(width) * 4,
    };
    if u64::from(plane.stride) < row {
        bail!(
            "DMA-BUF rows are {} bytes apart, less than a row of {row}",
            plane.stride
        );
    }
    Ok(ImportPlan {
        format,
        luma_bytes: u64::from(plane.stride) * u64::from(height),
    })
}

/// Whether the NVIDIA driver's libraries load here; `Err` says which is missing (a
/// clearer reason than FFmpeg's when there is no NVIDIA driver at all).
pub fn driver_present() -> Result<()> {
    for lib in [c"libcuda.so.1", c"libnvidia-encode.so.1"] {
        // SAFETY: dlopen with a constant name; the handle is closed again at once.
        let h = unsafe { libc::dlopen(lib.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
        if h.is_null() {
            bail!("no NVIDIA driver ({} not found)", lib.to_string_lossy());
        }
        // SAFETY: a handle dlopen just returned.
        unsafe { libc::dlclose(h) };
    }
    Ok(())
}

impl NvencEncoder {
    /// Opens `name` (`h264_nvenc`, `hevc_nvenc`, `av1_nvenc`). Fails with the reason
    /// where no NVIDIA driver or NVENC-capable GPU is present (Hopper datacenter GPUs
    /// such as the H100 have no NVENC: FFmpeg's open fails there).
    pub fn open(name: &'static str, cfg: &VideoEncoderConfig, tuning: &Tuning) -> Result<Self> {
        driver_present()?;
        Ok(Self {
            inner: FfmpegEncoder::open(name, cfg, tuning)?,
        })
    }
}

impl Encode for NvencEncoder {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn convert(&mut self, frame: &Frame<'_>) -> Result<u64> {
        if let Pixels::DmaBuf(d) = &frame.pixels {
            // Without the CUDA import, linear buffers go through the CPU mapping; the
            // plan's checks give tiled ones a clear reason first.
            import_plan(frame.width, frame.height, d)?;
        }
        self.inner.convert(frame)
    }

    fn has_picture(&self) -> bool {
        self.inner.has_picture()
    }

    fn encode_picture(
        &mut self,
        force_idr: bool,
        convert_us: u64,
        out: &mut EncodedFrame,
    ) -> Result<bool> {
        self.inner.encode_picture(force_idr, convert_us, out)
    }

    fn set_bitrate(&mut self, bitrate_kbps: u32) -> Result<()> {
        self.inner.set_bitrate(bitrate_kbps)
    }

    fn request_idr(&mut self) {
        self.inner.request_idr();
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::capture::DmaBufPlane;

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
    fn without_a_gpu_nvenc_fails_to_open_with_a_reason() {
        ffmpeg_next::init().unwrap();
        let cfg = VideoEncoderConfig {
            codec: super::super::probe::Codec::H264,
            width: 640,
            height: 360,
            fps: 60,
            bitrate_kbps: 4000,
            csc_mode: 0,
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
}
