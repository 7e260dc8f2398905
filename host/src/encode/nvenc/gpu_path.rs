//! NVENC's GPU path: a linear DMA-BUF imported into CUDA (checked first by
//! [`import_plan`]) and handed to an encoder opened for CUDA frames, with no CPU copy.

use std::os::fd::AsRawFd;

use anyhow::{Context, Result, bail};
use ffmpeg::ffi;
use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;

use crate::capture::{DmaBufFrame, Frame, PixelFormat};
use crate::encode::cuda::{CudaContext, HwRef, ImportCache};
use crate::encode::software::{Tuning, open_context};
use crate::encode::video::VideoEncoderConfig;

/// NVENC fed CUDA frames over imported DMA-BUFs of one format.
pub(super) struct GpuPath {
    // Dropped in this order: the encoder and the frame that reference the frames
    // context, then the contexts, the imports, and last the CUDA context under all.
    pub(super) encoder: ffmpeg::encoder::video::Encoder,
    pub(super) picture: ffmpeg::frame::Video,
    pub(super) frames: HwRef,
    pub(super) _device: HwRef,
    pub(super) cache: ImportCache,
    pub(super) cuda: CudaContext,
    pub(super) format: PixelFormat,
    pub(super) packet: ffmpeg::Packet,
    pub(super) pts: i64,
    pub(super) has_picture: bool,
}

unsafe extern "C" fn keep_import(_opaque: *mut libc::c_void, _data: *mut u8) {
    // The imported memory belongs to the import cache, not to the frame.
}

impl GpuPath {
    pub(super) fn open(
        name: &'static str,
        cfg: &VideoEncoderConfig,
        tuning: &Tuning,
        format: PixelFormat,
    ) -> Result<Self> {
        let cuda = CudaContext::open(0)?;
        let (device, frames) = crate::encode::cuda::hw_frames(
            &cuda,
            crate::encode::cuda::sw_format(format),
            cfg.width,
            cfg.height,
        )?;
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
    pub(super) fn take(&mut self, frame: &Frame<'_>, dmabuf: &DmaBufFrame<'_>) -> Result<()> {
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
        let size = crate::encode::prime::dmabuf_size(first.fd.as_raw_fd())? as u64;
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
