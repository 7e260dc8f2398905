//! NVENC (NVIDIA GPUs) through FFmpeg's `*_nvenc` encoders.
//!
//! - **CPU frames** are converted to NV12 and handed to FFmpeg in system memory;
//!   FFmpeg uploads them to the GPU itself (the same path as [`super::software`]).
//! - **DMA-BUF frames** are imported into CUDA ([`super::cuda`]: external memory over
//!   the buffer's fd, mapped to a device pointer) and handed to a second NVENC
//!   encoder opened for `AV_PIX_FMT_CUDA` frames of the buffer's format: no CPU copy,
//!   and NVENC converts RGB to YUV itself. That encoder opens on the first DMA-BUF
//!   frame; a switch between the two paths starts with an IDR, since they do not
//!   share references.
//! - **10-bit streams** (HEVC Main10, AV1 10-bit) take the CPU path: the capture is
//!   converted to P010 and uploaded. FFmpeg 5.1's NVENC wrapper picks the bit depth
//!   from the input format, so RGB CUDA frames would come out 8-bit ([`gpu_path_for`]).
//! - Without the CUDA driver (or where the import fails), a linear DMA-BUF is mapped
//!   and read by the CPU, with the reason logged once; a tiled one is refused with the
//!   reason ([`import_plan`]), so the caller falls back.

mod gpu_path;
#[cfg(test)]
mod tests;

pub use gpu_path::{ImportPlan, import_plan};

use std::time::Instant;

use anyhow::{Result, bail};

use super::software::{FfmpegEncoder, Tuning, send_picture, set_rates};
use super::video::{Encode, EncodedFrame, VideoEncoderConfig};
use crate::capture::{DmaBufFrame, Frame, Pixels};
use gpu_path::GpuPath;

/// Whether the GPU path was tried, and how it went.
enum Gpu {
    Untried,
    Open(Box<GpuPath>),
    /// It failed to open (the reason was logged once); CPU frames only.
    Failed,
}

/// An open NVENC encoder.
pub struct NvencEncoder {
    inner: FfmpegEncoder,
    gpu: Gpu,
    name: &'static str,
    cfg: VideoEncoderConfig,
    tuning: Tuning,
    /// Whether the current picture is on the GPU path.
    on_gpu: bool,
    /// The path changed: the next frame must be an IDR.
    switched: bool,
    idr_requested: bool,
    /// A buffer could not be taken on the GPU path (logged once).
    take_failed: bool,
}

impl std::fmt::Debug for NvencEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvencEncoder")
            .field("inner", &self.inner)
            .field("on_gpu", &self.on_gpu)
            .finish_non_exhaustive()
    }
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

/// Whether a stream of `cfg` may take the CUDA import path, or why not.
pub fn gpu_path_for(cfg: &VideoEncoderConfig) -> std::result::Result<(), &'static str> {
    if cfg.ten_bit {
        return Err(
            "a 10-bit stream is converted to P010 on the CPU (NVENC would encode RGB CUDA frames at 8 bits)",
        );
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
            gpu: Gpu::Untried,
            name,
            cfg: *cfg,
            tuning: *tuning,
            on_gpu: false,
            switched: false,
            idr_requested: false,
            take_failed: false,
        })
    }

    /// Takes `dmabuf` on the GPU path, opening it on first use (or again for another
    /// format); `Ok(false)` when the GPU path is unavailable here.
    fn take_on_gpu(&mut self, frame: &Frame<'_>, dmabuf: &DmaBufFrame<'_>) -> Result<bool> {
        if let Err(why) = gpu_path_for(&self.cfg) {
            if !std::mem::replace(&mut self.take_failed, true) {
                tracing::info!(
                    encoder = self.name,
                    "DMA-BUF frames go through the CPU: {why}"
                );
            }
            return Ok(false);
        }
        let plan = import_plan(frame.width, frame.height, dmabuf)?;
        if (frame.width, frame.height) != (self.cfg.width, self.cfg.height) {
            // NVENC does not scale; the CPU path does.
            return Ok(false);
        }
        if matches!(&self.gpu, Gpu::Open(g) if g.format != plan.format) {
            self.gpu = Gpu::Untried;
        }
        if matches!(self.gpu, Gpu::Untried) {
            self.gpu = match GpuPath::open(self.name, &self.cfg, &self.tuning, plan.format) {
                Ok(g) => Gpu::Open(Box::new(g)),
                Err(e) => {
                    tracing::warn!(
                        encoder = self.name,
                        "DMA-BUF frames go through the CPU: no CUDA import ({e:#})"
                    );
                    Gpu::Failed
                }
            };
        }
        match &mut self.gpu {
            Gpu::Open(g) => match g.take(frame, dmabuf) {
                Ok(()) => Ok(true),
                Err(e) => {
                    // This buffer goes through the CPU; say why once per stream.
                    if !std::mem::replace(&mut self.take_failed, true) {
                        tracing::warn!(
                            encoder = self.name,
                            "a DMA-BUF goes through the CPU: {e:#}"
                        );
                    }
                    Ok(false)
                }
            },
            _ => Ok(false),
        }
    }

    fn set_path(&mut self, on_gpu: bool) {
        if self.on_gpu != on_gpu {
            self.on_gpu = on_gpu;
            self.switched = true;
        }
    }
}

impl Encode for NvencEncoder {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn convert(&mut self, frame: &Frame<'_>) -> Result<u64> {
        let t0 = Instant::now();
        if let Pixels::DmaBuf(d) = &frame.pixels
            && self.take_on_gpu(frame, d)?
        {
            self.set_path(true);
            return Ok(t0.elapsed().as_micros() as u64);
        }
        // CPU pixels, or a linear DMA-BUF without the CUDA import: the CPU maps it.
        let us = self.inner.convert(frame)?;
        self.set_path(false);
        Ok(us)
    }

    fn has_picture(&self) -> bool {
        match &self.gpu {
            Gpu::Open(g) if self.on_gpu => g.has_picture,
            _ => self.inner.has_picture(),
        }
    }

    fn encode_picture(
        &mut self,
        force_idr: bool,
        convert_us: u64,
        out: &mut EncodedFrame,
    ) -> Result<bool> {
        let idr = force_idr
            || std::mem::take(&mut self.switched)
            || std::mem::take(&mut self.idr_requested);
        match &mut self.gpu {
            Gpu::Open(g) if self.on_gpu => {
                let t1 = Instant::now();
                let got = send_picture(
                    &mut g.encoder,
                    &mut g.packet,
                    &mut g.picture,
                    &mut g.pts,
                    idr,
                    out,
                )?;
                out.convert_us = convert_us;
                out.encode_us = t1.elapsed().as_micros() as u64;
                Ok(got)
            }
            _ => self.inner.encode_picture(idr, convert_us, out),
        }
    }

    fn set_bitrate(&mut self, bitrate_kbps: u32) -> Result<()> {
        self.inner.set_bitrate(bitrate_kbps)?;
        if let Gpu::Open(g) = &mut self.gpu {
            set_rates(&mut g.encoder, bitrate_kbps, self.cfg.fps);
        }
        self.cfg.bitrate_kbps = bitrate_kbps;
        Ok(())
    }

    fn request_idr(&mut self) {
        self.idr_requested = true;
    }
}
