//! Memory shared with another process by file descriptor: a memfd of a fixed size,
//! mapped read-write and shared, so what a Wayland compositor (wl_shm) or a PipeWire
//! peer writes into its own mapping of the fd is what we read, and the other way round.
//!
//! One type for every such buffer: wlr-screencopy's capture buffers here, and the
//! test apps that stand in for a game (the painter's wl_shm buffers).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// A memfd of `len` bytes and our shared mapping of it; unmapped on drop.
#[derive(Debug)]
pub struct SharedMemory {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone and only reached through `&self` /
// `&mut self`; moving it to another thread moves that ownership with it.
unsafe impl Send for SharedMemory {}

impl SharedMemory {
    /// A fresh memfd named `name` (shown in /proc/PID/fd), sized and mapped to `len` bytes.
    pub fn create(name: &CStr, len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an empty buffer",
            ));
        }
        let size = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "buffer too large"))?;
        // SAFETY: `name` is NUL-terminated; the returned fd is checked.
        let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sizing our own fd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: mapping `len` bytes of an fd that is exactly that long, shared so the
        // peer's writes are visible; checked against MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Self { fd, ptr, len })
    }

    /// The fd to hand to the peer.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an empty buffer is refused at creation.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes. The caller keeps to the protocol that says when the peer writes
    /// (a pending screencopy, a buffer the compositor still reads).
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, to write.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` maps `len` bytes for as long as `self` lives, and `&mut self`
        // makes this the only reference into the mapping on our side.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `create`; the fd closes after.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_mapping_of_the_fd_sees_what_we_write() {
        let mut mem = SharedMemory::create(c"pf-shm-test", 4096).unwrap();
        assert_eq!(mem.len(), 4096);
        mem.as_mut_slice()[..4].copy_from_slice(b"punk");
        // SAFETY: libc::stat is plain data; all zeroes is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat on our own fd into a stat we own.
        assert_eq!(unsafe { libc::fstat(mem.fd().as_raw_fd(), &mut st) }, 0);
        assert_eq!(st.st_size, 4096);
        let path = format!("/proc/self/fd/{}", mem.fd().as_raw_fd());
        assert_eq!(&std::fs::read(path).unwrap()[..4], b"punk");
        assert!(SharedMemory::create(c"pf-shm-test", 0).is_err());
    }
}
