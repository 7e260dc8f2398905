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

use std::os::fd::AsRawFd;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ffmpeg::ffi;
use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;

use super::cuda::{CudaContext, HwRef, ImportCache};
use super::software::{FfmpegEncoder, Tuning, open_context, send_picture, set_rates};
use super::video::{Encode, EncodedFrame, VideoEncoderConfig};
use crate::capture::{DmaBufFrame, Frame, PixelFormat, Pixels};

/// NVENC fed CUDA frames over imported DMA-BUFs of one format.
struct GpuPath {
    // Dropped in this order: the encoder and the frame that reference the frames
    // context, then the contexts, the imports, and last the CUDA context under all.
    encoder: ffmpeg::encoder::video::Encoder,
    picture: ffmpeg::frame::Video,
    frames: HwRef,
    _device: HwRef,
    cache: ImportCache,
    cuda: CudaContext,
    format: PixelFormat,
    packet: ffmpeg::Packet,
    pts: i64,
    has_picture: bool,
}

unsafe extern "C" fn keep_import(_opaque: *mut libc::c_void, _data: *mut u8) {
    // The imported memory belongs to the import cache, not to the frame.
}

impl GpuPath {
    fn open(
        name: &'static str,
        cfg: &VideoEncoderConfig,
        tuning: &Tuning,
        format: PixelFormat,
    ) -> Result<Self> {
        let cuda = CudaContext::open(0)?;
        let (device, frames) =
            super::cuda::hw_frames(&cuda, super::cuda::sw_format(format), cfg.width, cfg.height)?;
        let encoder = open_context(name, cfg, tuning, Pixel::CUDA, Some(frames.0))?;
        tracing::info!(
            encoder = name,
            ?format,
            "NVENC takes DMA-BUF frames through CUDA"
        );
        Ok(Self {
            encoder,
            picture: ffmpeg::frame::Video::empty(),
            frames,
            _device: device,
            cache: ImportCache::default(),
            cuda,
            format,
            packet: ffmpeg::Packet::empty(),
            pts: 0,
            has_picture: false,
        })
    }

    /// Points the next picture at `dmabuf`, imported (or found in the cache).
    fn take(&mut self, frame: &Frame<'_>, dmabuf: &DmaBufFrame<'_>) -> Result<()> {
        let planes = self.format.planes();
        let first = dmabuf.planes[0].context("a DMA-BUF without planes")?;
        for i in 1..planes {
            let p = dmabuf.planes[i].with_context(|| format!("DMA-BUF plane {i} is missing"))?;
            if p.fd.as_raw_fd() != first.fd.as_raw_fd() {
                bail!("planes in separate buffers are not imported into CUDA");
            }
            // NVENC registers one pitched allocation and finds the chroma right after
            // `height` luma rows.
            if p.offset != first.offset + first.stride * frame.height || p.stride != first.stride {
                bail!("an NV12 DMA-BUF whose chroma does not follow its luma rows");
            }
        }
        let size = super::prime::dmabuf_size(first.fd.as_raw_fd())? as u64;
        let import = self.cache.get(&self.cuda, first.fd, size)?;
        let (ptr, len) = (import.ptr, import.size);
        // SAFETY: the frame is ours; its planes point into the imported buffer (offsets
        // within `size`, checked by the caller's import plan for the first plane), its
        // buffer reference frees nothing (the cache owns the import), and it references
        // the frames context the encoder was opened with.
        unsafe {
            let f = self.picture.as_mut_ptr();
            ffi::av_frame_unref(f);
            (*f).format = ffi::AVPixelFormat::AV_PIX_FMT_CUDA as libc::c_int;
            (*f).width = frame.width as libc::c_int;
            (*f).height = frame.height as libc::c_int;
            for (i, p) in dmabuf.planes.iter().take(planes).flatten().enumerate() {
                if u64::from(p.offset) >= len {
                    bail!("DMA-BUF plane {i} starts past the buffer's end");
                }
                (*f).data[i] = (ptr + u64::from(p.offset)) as usize as *mut u8;
                (*f).linesize[i] = p.stride as libc::c_int;
            }
            (*f).buf[0] = ffi::av_buffer_create(
                ptr as usize as *mut u8,
                len as usize,
                Some(keep_import),
                std::ptr::null_mut(),
                0,
            );
            if (*f).buf[0].is_null() {
                bail!("allocating the CUDA frame's reference");
            }
            (*f).hw_frames_ctx = ffi::av_buffer_ref(self.frames.0);
        }
        self.has_picture = true;
        Ok(())
    }
}

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
    fn ten_bit_streams_feed_nvenc_p010_from_the_cpu() {
        use super::super::software::input_format;
        let t = Tuning::default();
        for name in ["hevc_nvenc", "av1_nvenc"] {
            assert_eq!(input_format(name, &t, true).unwrap(), Pixel::P010LE);
            assert_eq!(input_format(name, &t, false).unwrap(), Pixel::NV12);
        }
        assert!(input_format("h264_nvenc", &t, true).is_err());
        let mut cfg = VideoEncoderConfig {
            codec: super::super::probe::Codec::Hevc,
            width: 1280,
            height: 720,
            fps: 60,
            bitrate_kbps: 10_000,
            csc_mode: 0,
            ten_bit: false,
        };
        assert!(gpu_path_for(&cfg).is_ok());
        cfg.ten_bit = true;
        assert!(gpu_path_for(&cfg).unwrap_err().contains("P010"));
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
            ten_bit: false,
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
