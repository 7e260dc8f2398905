//! The CPU path's view of a DMA-BUF: a linear buffer mapped read-only, bracketed by
//! the kernel's sync ioctls, and its planes as a [`CpuFrame`].

use std::os::fd::AsRawFd;

use anyhow::{Context, Result, bail};

use crate::capture::{CpuFrame, DmaBufFrame, PixelFormat, Plane};

/// A read-only mapping of a linear DMA-BUF for the CPU path (software encoders on a
/// machine whose compositor hands out DMA-BUFs).
pub(super) struct DmaBufMap {
    ptr: *mut libc::c_void,
    len: usize,
    fd: libc::c_int,
}

/// `DMA_BUF_IOCTL_SYNC` (`_IOW('b', 0, struct dma_buf_sync)`) and its flags.
const DMA_BUF_IOCTL_SYNC: libc::c_ulong = 0x4008_6200;
const DMA_BUF_SYNC_READ: u64 = 1;
const DMA_BUF_SYNC_START: u64 = 0;
const DMA_BUF_SYNC_END: u64 = 4;
/// `DRM_FORMAT_MOD_LINEAR`; `DRM_FORMAT_MOD_INVALID` (implicit) is treated alike,
/// which is what shm-backed and most single-GPU linear buffers announce.
const MOD_LINEAR: u64 = 0;
const MOD_INVALID: u64 = 0x00ff_ffff_ffff_ffff;

impl DmaBufMap {
    pub(super) fn new(dmabuf: &DmaBufFrame<'_>) -> Result<Self> {
        if dmabuf.modifier != MOD_LINEAR && dmabuf.modifier != MOD_INVALID {
            bail!(
                "a tiled DMA-BUF (modifier {:#x}) needs a hardware encoder",
                dmabuf.modifier
            );
        }
        let plane = dmabuf.planes[0].context("a DMA-BUF without planes")?;
        let fd = plane.fd.as_raw_fd();
        // SAFETY: fstat on a descriptor the frame borrows, into a zeroed struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            bail!("fstat on the DMA-BUF: {}", std::io::Error::last_os_error());
        }
        let len = usize::try_from(st.st_size).unwrap_or(0);
        if len == 0 {
            bail!("the DMA-BUF reports no size");
        }
        // SAFETY: a fresh shared read-only mapping of `len` bytes of the borrowed fd;
        // unmapped in Drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            bail!("mapping the DMA-BUF: {}", std::io::Error::last_os_error());
        }
        let sync = [DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ];
        // SAFETY: the ioctl reads one u64 flags word; failure only means no cache sync
        // is needed (not every exporter implements it).
        unsafe { libc::ioctl(fd, DMA_BUF_IOCTL_SYNC, sync.as_ptr()) };
        Ok(Self { ptr, len, fd })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for DmaBufMap {
    fn drop(&mut self) {
        let sync = [DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ];
        // SAFETY: as in `new`; then the mapping made there is released exactly once.
        unsafe {
            libc::ioctl(self.fd, DMA_BUF_IOCTL_SYNC, sync.as_ptr());
            libc::munmap(self.ptr, self.len);
        }
    }
}

/// The CPU view of a linear DMA-BUF's planes inside its mapping.
pub(super) fn dmabuf_planes<'m>(
    map: &'m DmaBufMap,
    dmabuf: &DmaBufFrame<'_>,
) -> Result<CpuFrame<'m>> {
    let format = PixelFormat::from_drm_fourcc(dmabuf.fourcc)
        .with_context(|| format!("DMA-BUF fourcc {:#010x} is not converted", dmabuf.fourcc))?;
    let mut planes = [Plane::EMPTY; 2];
    for (i, slot) in planes.iter_mut().enumerate().take(format.planes()) {
        let p = dmabuf.planes[i].with_context(|| format!("DMA-BUF plane {i} is missing"))?;
        let bytes = map.bytes();
        let start = (p.offset as usize).min(bytes.len());
        *slot = Plane {
            data: &bytes[start..],
            stride: p.stride as usize,
        };
    }
    Ok(CpuFrame { format, planes })
}
