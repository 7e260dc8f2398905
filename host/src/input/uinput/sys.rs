//! The uinput kernel interface: structs and ioctls from `<linux/uinput.h>` and
//! `<linux/input.h>` (x86-64/aarch64 layouts).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use super::translate::RawEvent;

const fn ioc(dir: u32, nr: u32, size: u32) -> libc::c_ulong {
    ((dir << 30) | (size << 16) | ((b'U' as u32) << 8) | nr) as libc::c_ulong
}
const WRITE: u32 = 1;
const READ_WRITE: u32 = 3;

pub const UI_DEV_CREATE: libc::c_ulong = ioc(0, 1, 0);
pub const UI_DEV_DESTROY: libc::c_ulong = ioc(0, 2, 0);
pub const UI_DEV_SETUP: libc::c_ulong = ioc(WRITE, 3, std::mem::size_of::<UinputSetup>() as u32);
pub const UI_ABS_SETUP: libc::c_ulong = ioc(WRITE, 4, std::mem::size_of::<UinputAbsSetup>() as u32);
pub const UI_SET_EVBIT: libc::c_ulong = ioc(WRITE, 100, 4);
pub const UI_SET_KEYBIT: libc::c_ulong = ioc(WRITE, 101, 4);
pub const UI_SET_RELBIT: libc::c_ulong = ioc(WRITE, 102, 4);
pub const UI_SET_ABSBIT: libc::c_ulong = ioc(WRITE, 103, 4);
pub const UI_SET_FFBIT: libc::c_ulong = ioc(WRITE, 107, 4);
pub const UI_SET_PROPBIT: libc::c_ulong = ioc(WRITE, 110, 4);
pub const UI_BEGIN_FF_UPLOAD: libc::c_ulong = ioc(
    READ_WRITE,
    200,
    std::mem::size_of::<UinputFfUpload>() as u32,
);
pub const UI_END_FF_UPLOAD: libc::c_ulong =
    ioc(WRITE, 201, std::mem::size_of::<UinputFfUpload>() as u32);
pub const UI_BEGIN_FF_ERASE: libc::c_ulong =
    ioc(READ_WRITE, 202, std::mem::size_of::<UinputFfErase>() as u32);
pub const UI_END_FF_ERASE: libc::c_ulong =
    ioc(WRITE, 203, std::mem::size_of::<UinputFfErase>() as u32);

/// `EV_UINPUT`: requests from the kernel on the uinput fd.
pub const EV_UINPUT: u16 = 0x0101;
/// An effect upload request.
pub const UI_FF_UPLOAD: u16 = 1;
/// An effect erase request.
pub const UI_FF_ERASE: u16 = 2;
/// `BUS_VIRTUAL`.
pub const BUS_VIRTUAL: u16 = 0x06;
/// `INPUT_PROP_POINTER`.
pub const INPUT_PROP_POINTER: i32 = 0x00;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct InputId {
    pub bustype: u16,
    pub vendor: u16,
    pub product: u16,
    pub version: u16,
}

#[repr(C)]
#[derive(Debug)]
pub struct UinputSetup {
    pub id: InputId,
    pub name: [u8; 80],
    pub ff_effects_max: u32,
}

#[repr(C)]
#[derive(Debug)]
pub struct InputAbsinfo {
    pub value: i32,
    pub minimum: i32,
    pub maximum: i32,
    pub fuzz: i32,
    pub flat: i32,
    pub resolution: i32,
}

#[repr(C)]
#[derive(Debug)]
pub struct UinputAbsSetup {
    pub code: u16,
    pub absinfo: InputAbsinfo,
}

/// `struct ff_effect`: only the rumble member of the union is read.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FfEffect {
    pub kind: u16,
    pub id: i16,
    pub direction: u16,
    pub trigger: [u16; 2],
    pub replay: [u16; 2],
    /// The union, 8-aligned: `ff_rumble_effect` is `u16 strong, u16 weak`.
    pub u: [u64; 4],
}

#[repr(C)]
#[derive(Debug)]
pub struct UinputFfUpload {
    pub request_id: u32,
    pub retval: i32,
    pub effect: FfEffect,
    pub old: FfEffect,
}

#[repr(C)]
#[derive(Debug)]
pub struct UinputFfErase {
    pub request_id: u32,
    pub retval: i32,
    pub effect_id: u32,
}

#[repr(C)]
#[derive(Debug)]
struct InputEventRaw {
    time: libc::timeval,
    kind: u16,
    code: u16,
    value: i32,
}

/// An ioctl with an integer argument.
pub fn ioctl_int(file: &File, request: libc::c_ulong, arg: libc::c_int) -> io::Result<()> {
    // SAFETY: the request takes an int by value; the fd is valid for `file`'s lifetime.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), request, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// An ioctl with a pointer argument of the size the request encodes.
pub fn ioctl_ptr<T>(file: &File, request: libc::c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is a live, exclusive `T`; the request constants in this module
    // encode size_of::<T>() (checked by the tests), so the kernel stays inside it.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), request, arg as *mut T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Opens `/dev/uinput` for writing events and reading force-feedback requests.
pub fn open_uinput() -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/uinput")
}

/// Writes `events` to a uinput device.
pub fn write_events(mut file: &File, events: &[RawEvent]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(events.len() * std::mem::size_of::<InputEventRaw>());
    for e in events {
        let raw = InputEventRaw {
            time: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            kind: e.kind,
            code: e.code,
            value: e.value,
        };
        // SAFETY: `InputEventRaw` is plain data; viewing it as bytes is sound.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&raw as *const InputEventRaw).cast::<u8>(),
                std::mem::size_of::<InputEventRaw>(),
            )
        };
        buf.extend_from_slice(bytes);
    }
    file.write_all(&buf)
}

/// Reads pending events from a uinput device (force-feedback requests and plays).
pub fn read_events(mut file: &File, out: &mut Vec<RawEvent>) -> io::Result<()> {
    let size = std::mem::size_of::<InputEventRaw>();
    let mut buf = vec![0u8; size * 32];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                for chunk in buf[..n].chunks_exact(size) {
                    // SAFETY: the kernel writes whole `input_event` structs; the chunk is
                    // exactly one, and the read is unaligned-safe.
                    let raw: InputEventRaw =
                        unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast()) };
                    out.push(RawEvent {
                        kind: raw.kind,
                        code: raw.code,
                        value: raw.value,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_and_ioctl_numbers_match_the_kernel_headers() {
        assert_eq!(std::mem::size_of::<UinputSetup>(), 92);
        assert_eq!(std::mem::size_of::<UinputAbsSetup>(), 28);
        assert_eq!(std::mem::size_of::<FfEffect>(), 48);
        assert_eq!(std::mem::size_of::<UinputFfUpload>(), 0x68);
        assert_eq!(std::mem::size_of::<InputEventRaw>(), 24);
        assert_eq!(UI_DEV_SETUP, 0x405c_5503);
        assert_eq!(UI_ABS_SETUP, 0x401c_5504);
        assert_eq!(UI_SET_EVBIT, 0x4004_5564);
        assert_eq!(UI_SET_FFBIT, 0x4004_556b);
        assert_eq!(UI_DEV_CREATE, 0x5501);
        assert_eq!(UI_BEGIN_FF_UPLOAD, 0xc068_55c8);
        assert_eq!(UI_END_FF_ERASE, 0x400c_55cb);
    }
}
