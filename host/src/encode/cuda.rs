//! DMA-BUF frames into CUDA, for NVENC without a CPU copy: the buffer's fd is imported
//! as CUDA external memory (`cuImportExternalMemory`, opaque fd), mapped to a device
//! pointer, and handed to FFmpeg's NVENC as an `AV_PIX_FMT_CUDA` frame whose planes
//! point into it. NVENC reads RGB (`BGR0`, `RGB0`) and NV12 surfaces itself and does
//! the colour conversion on the GPU.
//!
//! libcuda is loaded at run time (cudarc's `dynamic-loading`), so the host builds and
//! runs without the NVIDIA driver: [`driver`] then says why there is no import, and
//! the NVENC backend falls back to the CPU path (see [`super::nvenc`]).
//!
//! Imports are cached per buffer (a capture cycles through a small pool of buffers,
//! and NVENC registers each device pointer once), keyed by the fd's inode so a
//! re-sent fd of the same buffer hits the cache.

use std::os::fd::{AsRawFd, BorrowedFd};

use anyhow::{Context, Result, bail};
use cudarc::driver::{result, sys};
use ffmpeg::ffi;
use ffmpeg_next as ffmpeg;

use crate::capture::PixelFormat;

/// FFmpeg's software format of a CUDA frame over `format`: what NVENC is told the
/// device memory holds (`BGR0` is NVENC's ARGB, `RGB0` its ABGR).
pub fn sw_format(format: PixelFormat) -> ffi::AVPixelFormat {
    match format {
        PixelFormat::Bgrx => ffi::AVPixelFormat::AV_PIX_FMT_BGR0,
        PixelFormat::Bgra => ffi::AVPixelFormat::AV_PIX_FMT_BGRA,
        PixelFormat::Rgbx => ffi::AVPixelFormat::AV_PIX_FMT_RGB0,
        PixelFormat::Nv12 => ffi::AVPixelFormat::AV_PIX_FMT_NV12,
    }
}

/// Whether the CUDA driver loads and initialises here; `Err` says why not (no libcuda,
/// or a driver without a usable GPU).
pub fn driver() -> Result<()> {
    // SAFETY: only tries to dlopen libcuda by its usual names, then closes it again.
    if !unsafe { sys::is_culib_present() } {
        bail!("no CUDA driver (libcuda.so not found)");
    }
    result::init().map_err(|e| anyhow::anyhow!("the CUDA driver does not initialise: {e}"))
}

/// The first GPU's primary CUDA context, retained for as long as this lives.
#[derive(Debug)]
pub struct CudaContext {
    device: sys::CUdevice,
    ctx: sys::CUcontext,
}

// SAFETY: a CUDA context handle may be used from any thread once made current there
// (every use below makes it current first).
unsafe impl Send for CudaContext {}

impl CudaContext {
    /// Retains GPU `ordinal`'s primary context (the one FFmpeg's CUDA device uses too).
    pub fn open(ordinal: i32) -> Result<Self> {
        driver()?;
        let device = result::device::get(ordinal)
            .map_err(|e| anyhow::anyhow!("no CUDA device {ordinal}: {e}"))?;
        // SAFETY: `device` is a valid device handle; released in Drop.
        let ctx = unsafe { result::primary_ctx::retain(device) }
            .map_err(|e| anyhow::anyhow!("retaining the CUDA context: {e}"))?;
        Ok(Self { device, ctx })
    }

    fn make_current(&self) -> Result<()> {
        // SAFETY: the context is retained by `self`.
        unsafe { result::ctx::set_current(self.ctx) }
            .map_err(|e| anyhow::anyhow!("making the CUDA context current: {e}"))
    }

    /// The raw context, for FFmpeg's CUDA device.
    pub fn raw(&self) -> sys::CUcontext {
        self.ctx
    }
}

impl Drop for CudaContext {
    fn drop(&mut self) {
        // SAFETY: retained once in `open`.
        let _ = unsafe { result::primary_ctx::release(self.device) };
    }
}

/// One DMA-BUF imported into CUDA and mapped to a device pointer.
#[derive(Debug)]
pub struct Imported {
    ext: sys::CUexternalMemory,
    /// The buffer's first byte on the GPU.
    pub ptr: sys::CUdeviceptr,
    /// Its size in bytes.
    pub size: u64,
    key: (u64, u64),
}

impl Imported {
    /// Imports the buffer behind `fd` (`size` bytes). CUDA takes ownership of the fd it
    /// imports, so a duplicate is handed over and the capture keeps its own.
    pub fn import(cuda: &CudaContext, fd: BorrowedFd<'_>, size: u64) -> Result<Self> {
        let key = buffer_key(fd)?;
        cuda.make_current()?;
        let dup = fd
            .try_clone_to_owned()
            .context("duplicating the DMA-BUF fd")?;
        // SAFETY: `dup` is a valid fd of `size` bytes; on success CUDA owns it (so it is
        // leaked into CUDA with into_raw_fd), on failure it is still ours and closed.
        let ext = unsafe {
            result::external_memory::import_external_memory_opaque_fd(dup.as_raw_fd(), size)
        }
        .map_err(|e| anyhow::anyhow!("importing the DMA-BUF into CUDA: {e}"))?;
        std::mem::forget(dup);
        // SAFETY: `ext` was just imported with `size` bytes; the mapping is freed in Drop.
        let ptr = match unsafe { result::external_memory::get_mapped_buffer(ext, 0, size) } {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: nothing is mapped onto `ext` yet; destroyed once.
                let _ = unsafe { result::external_memory::destroy_external_memory(ext) };
                bail!("mapping the imported DMA-BUF: {e}");
            }
        };
        Ok(Self {
            ext,
            ptr,
            size,
            key,
        })
    }
}

impl Drop for Imported {
    fn drop(&mut self) {
        // SAFETY: the mapping and the import were made once in `import`; the mapping is
        // freed before the memory object, as CUDA requires.
        unsafe {
            let _ = result::memory_free(self.ptr);
            let _ = result::external_memory::destroy_external_memory(self.ext);
        }
    }
}

/// What identifies a DMA-BUF across fds: its device and inode.
fn buffer_key(fd: BorrowedFd<'_>) -> Result<(u64, u64)> {
    // SAFETY: fstat on a borrowed descriptor into a zeroed struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        bail!("fstat on the DMA-BUF: {}", std::io::Error::last_os_error());
    }
    Ok((st.st_dev, st.st_ino))
}

/// The imports of the capture's buffer pool, most recent last.
#[derive(Debug, Default)]
pub struct ImportCache {
    entries: Vec<Imported>,
}

/// Buffers kept imported: more than any capture's pool (PipeWire negotiates 2 to 8).
const CACHED: usize = 8;

impl ImportCache {
    /// The import of the buffer behind `fd`, importing it on first sight (and
    /// forgetting the least recently used one past [`CACHED`]).
    pub fn get(&mut self, cuda: &CudaContext, fd: BorrowedFd<'_>, size: u64) -> Result<&Imported> {
        let key = buffer_key(fd)?;
        if let Some(i) = self
            .entries
            .iter()
            .position(|e| e.key == key && e.size >= size)
        {
            let hit = self.entries.remove(i);
            self.entries.push(hit);
        } else {
            if self.entries.len() >= CACHED {
                self.entries.remove(0);
            }
            self.entries.push(Imported::import(cuda, fd, size)?);
        }
        Ok(self.entries.last().expect("just pushed"))
    }
}

/// FFmpeg's `AVCUDADeviceContext` (libavutil/hwcontext_cuda.h, not in ffmpeg-sys):
/// the CUDA context FFmpeg's CUDA device uses; we hand it ours.
#[repr(C)]
struct AvCudaDeviceContext {
    cuda_ctx: sys::CUcontext,
    stream: sys::CUstream,
    internal: *mut libc::c_void,
}

fn check(ret: libc::c_int, what: &str) -> Result<()> {
    if ret < 0 {
        bail!("{what}: {}", ffmpeg::Error::from(ret));
    }
    Ok(())
}

/// An owned `AVBufferRef` (a hardware device or frames context).
#[derive(Debug)]
pub struct HwRef(pub *mut ffi::AVBufferRef);

impl Drop for HwRef {
    fn drop(&mut self) {
        // SAFETY: we own this reference.
        unsafe { ffi::av_buffer_unref(&mut self.0) };
    }
}

// SAFETY: FFmpeg's buffer references are reference-counted atomically; this one is
// used by the encoder's thread only.
unsafe impl Send for HwRef {}

/// FFmpeg's CUDA device over `cuda` and a frames context of `width` x `height`
/// `sw_format` frames, for an NVENC encoder fed CUDA frames: (device, frames).
pub fn hw_frames(
    cuda: &CudaContext,
    sw: ffi::AVPixelFormat,
    width: u32,
    height: u32,
) -> Result<(HwRef, HwRef)> {
    // SAFETY: FFmpeg allocates the device; its hwctx is an AVCUDADeviceContext for the
    // CUDA type, whose context we set before init (FFmpeg then uses, not creates, it).
    // The frames context is allocated on that device and its plain fields set before
    // init. On error every reference made is released.
    unsafe {
        let mut device = ffi::av_hwdevice_ctx_alloc(ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA);
        if device.is_null() {
            bail!("allocating FFmpeg's CUDA device");
        }
        let dc = (*device).data.cast::<ffi::AVHWDeviceContext>();
        let hw = (*dc).hwctx.cast::<AvCudaDeviceContext>();
        (*hw).cuda_ctx = cuda.raw();
        if let Err(e) = check(ffi::av_hwdevice_ctx_init(device), "FFmpeg's CUDA device") {
            ffi::av_buffer_unref(&mut device);
            return Err(e);
        }
        let mut frames = ffi::av_hwframe_ctx_alloc(device);
        if frames.is_null() {
            ffi::av_buffer_unref(&mut device);
            bail!("allocating CUDA frames");
        }
        let fc = (*frames).data.cast::<ffi::AVHWFramesContext>();
        (*fc).format = ffi::AVPixelFormat::AV_PIX_FMT_CUDA;
        (*fc).sw_format = sw;
        (*fc).width = width as libc::c_int;
        (*fc).height = height as libc::c_int;
        // The frames are the capture's buffers, not the pool's.
        (*fc).initial_pool_size = 0;
        if let Err(e) = check(ffi::av_hwframe_ctx_init(frames), "CUDA frames") {
            ffi::av_buffer_unref(&mut frames);
            ffi::av_buffer_unref(&mut device);
            return Err(e);
        }
        Ok((HwRef(device), HwRef(frames)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_map_to_what_nvenc_reads() {
        use ffi::AVPixelFormat as F;
        assert_eq!(sw_format(PixelFormat::Bgrx), F::AV_PIX_FMT_BGR0);
        assert_eq!(sw_format(PixelFormat::Bgra), F::AV_PIX_FMT_BGRA);
        assert_eq!(sw_format(PixelFormat::Rgbx), F::AV_PIX_FMT_RGB0);
        assert_eq!(sw_format(PixelFormat::Nv12), F::AV_PIX_FMT_NV12);
    }

    #[test]
    fn without_a_driver_the_reason_is_clear_and_nothing_panics() {
        // On a machine with no libcuda (CI), every entry point says so instead of
        // panicking inside cudarc's loader.
        // SAFETY: as in `driver`.
        if unsafe { sys::is_culib_present() } {
            return;
        }
        let e = driver().unwrap_err().to_string();
        assert!(e.contains("no CUDA driver"), "{e}");
        let e = CudaContext::open(0).unwrap_err().to_string();
        assert!(e.contains("no CUDA driver"), "{e}");
    }

    #[test]
    fn the_cache_keys_buffers_by_inode() {
        let a = tempfile::tempfile().unwrap();
        let b = tempfile::tempfile().unwrap();
        use std::os::fd::AsFd;
        let ka = buffer_key(a.as_fd()).unwrap();
        let a2 = a.try_clone().unwrap();
        assert_eq!(
            buffer_key(a2.as_fd()).unwrap(),
            ka,
            "a dup is the same buffer"
        );
        assert_ne!(buffer_key(b.as_fd()).unwrap(), ka);
    }
}
