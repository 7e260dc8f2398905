//! Force feedback against the kernel's struct layout.
//!
//! The offsets below are what `<linux/uinput.h>` and `<linux/input.h>` give on x86-64
//! (Debian 12, kernel headers 6.1), printed with `offsetof`/`sizeof` by a small C
//! program compiled against /usr/include. aarch64 has the same layout. The fake kernel
//! writes and reads the structs as raw bytes at those offsets, as `copy_to_user` and
//! `copy_from_user` do, so a Rust field out of place fails here.

use std::collections::HashMap;
use std::io;
use std::mem::{offset_of, size_of};

use super::super::sys::{self, FfEffect, UinputFfErase, UinputFfUpload};
use super::super::translate::{RawEvent, code, ev};
use super::*;

// struct ff_effect
const FF_EFFECT_SIZE: usize = 48;
const FF_TYPE: usize = 0;
const FF_ID: usize = 2;
const FF_DIRECTION: usize = 4;
const FF_REPLAY: usize = 10;
const FF_U: usize = 16;
const FF_RUMBLE_STRONG: usize = 16;
const FF_RUMBLE_WEAK: usize = 18;
// struct uinput_ff_upload
const UPLOAD_SIZE: usize = 104;
const UPLOAD_REQUEST_ID: usize = 0;
const UPLOAD_RETVAL: usize = 4;
const UPLOAD_EFFECT: usize = 8;
const UPLOAD_OLD: usize = 56;
// struct uinput_ff_erase
const ERASE_SIZE: usize = 12;
const ERASE_REQUEST_ID: usize = 0;
const ERASE_RETVAL: usize = 4;
const ERASE_EFFECT_ID: usize = 8;
/// `FF_PERIODIC`: an effect kind the pad does not announce.
const FF_PERIODIC: u16 = 0x51;

#[test]
fn rust_structs_have_the_kernel_layout() {
    assert_eq!(size_of::<FfEffect>(), FF_EFFECT_SIZE);
    assert_eq!(offset_of!(FfEffect, kind), FF_TYPE);
    assert_eq!(offset_of!(FfEffect, id), FF_ID);
    assert_eq!(offset_of!(FfEffect, direction), FF_DIRECTION);
    assert_eq!(offset_of!(FfEffect, replay), FF_REPLAY);
    assert_eq!(offset_of!(FfEffect, u), FF_U);
    assert_eq!(size_of::<UinputFfUpload>(), UPLOAD_SIZE);
    assert_eq!(offset_of!(UinputFfUpload, request_id), UPLOAD_REQUEST_ID);
    assert_eq!(offset_of!(UinputFfUpload, retval), UPLOAD_RETVAL);
    assert_eq!(offset_of!(UinputFfUpload, effect), UPLOAD_EFFECT);
    assert_eq!(offset_of!(UinputFfUpload, old), UPLOAD_OLD);
    assert_eq!(size_of::<UinputFfErase>(), ERASE_SIZE);
    assert_eq!(offset_of!(UinputFfErase, request_id), ERASE_REQUEST_ID);
    assert_eq!(offset_of!(UinputFfErase, retval), ERASE_RETVAL);
    assert_eq!(offset_of!(UinputFfErase, effect_id), ERASE_EFFECT_ID);
    // The request numbers encode these sizes (the kernel's _IOWR/_IOW values).
    assert_eq!(sys::UI_BEGIN_FF_UPLOAD, 0xc068_55c8);
    assert_eq!(sys::UI_END_FF_UPLOAD, 0x4068_55c9);
    assert_eq!(sys::UI_BEGIN_FF_ERASE, 0xc00c_55ca);
    assert_eq!(sys::UI_END_FF_ERASE, 0x400c_55cb);
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_ne_bytes());
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}
fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

/// The bytes of an `ff_effect` as a game uploads it.
fn effect_bytes(kind: u16, id: i16, strong: u16, weak: u16) -> [u8; FF_EFFECT_SIZE] {
    let mut b = [0u8; FF_EFFECT_SIZE];
    put_u16(&mut b, FF_TYPE, kind);
    put_u16(&mut b, FF_ID, id as u16);
    put_u16(&mut b, FF_REPLAY, 1000); // replay.length in ms: not ours to use
    put_u16(&mut b, FF_RUMBLE_STRONG, strong);
    put_u16(&mut b, FF_RUMBLE_WEAK, weak);
    b
}

/// Copies raw kernel bytes into a plain-data struct of exactly that size.
fn fill<T>(target: &mut T, bytes: &[u8]) {
    assert_eq!(bytes.len(), size_of::<T>());
    // SAFETY: `T` is a repr(C) plain-data struct of `bytes.len()` bytes for which any
    // bit pattern is valid (integers only); `target` is exclusive.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), (target as *mut T).cast(), bytes.len()) }
}

/// (request_id, retval) of an upload or erase answer, read as the kernel's
/// `copy_from_user` does: the first eight bytes, at the kernel's offsets.
fn answer_of<T>(v: &T) -> (u32, i32) {
    assert!(size_of::<T>() >= 8);
    // SAFETY: the first 8 bytes of both answer structs are two initialised 32-bit
    // fields (no padding: checked by the layout test); `v` is live for the read.
    let b = unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), 8) };
    const _: () = assert!(UPLOAD_REQUEST_ID == ERASE_REQUEST_ID && UPLOAD_RETVAL == ERASE_RETVAL);
    (
        get_u32(b, UPLOAD_REQUEST_ID),
        get_u32(b, UPLOAD_RETVAL) as i32,
    )
}

/// uinput as a game and the kernel drive it: pending requests by id, and the answers.
#[derive(Default)]
struct FakeKernel {
    uploads: HashMap<u32, Vec<u8>>,
    erases: HashMap<u32, Vec<u8>>,
    /// (request id, retval) of every END_FF_UPLOAD / END_FF_ERASE, read at the
    /// kernel's offsets.
    upload_answers: Vec<(u32, i32)>,
    erase_answers: Vec<(u32, i32)>,
    fail: bool,
}

impl FakeKernel {
    /// A game uploads `effect`: returns the EV_UINPUT event the pad's fd then yields.
    fn upload(&mut self, request_id: u32, effect: [u8; FF_EFFECT_SIZE]) -> RawEvent {
        let mut b = vec![0xAAu8; UPLOAD_SIZE]; // the kernel overwrites every field
        put_u32(&mut b, UPLOAD_REQUEST_ID, request_id);
        put_u32(&mut b, UPLOAD_RETVAL, 0);
        b[UPLOAD_EFFECT..UPLOAD_EFFECT + FF_EFFECT_SIZE].copy_from_slice(&effect);
        b[UPLOAD_OLD..UPLOAD_OLD + FF_EFFECT_SIZE].fill(0);
        self.uploads.insert(request_id, b);
        RawEvent {
            kind: sys::EV_UINPUT,
            code: sys::UI_FF_UPLOAD,
            value: request_id as i32,
        }
    }

    fn erase(&mut self, request_id: u32, effect_id: u32) -> RawEvent {
        let mut b = vec![0u8; ERASE_SIZE];
        put_u32(&mut b, ERASE_REQUEST_ID, request_id);
        put_u32(&mut b, ERASE_EFFECT_ID, effect_id);
        self.erases.insert(request_id, b);
        RawEvent {
            kind: sys::EV_UINPUT,
            code: sys::UI_FF_ERASE,
            value: request_id as i32,
        }
    }
}

fn failure(fail: bool) -> io::Result<()> {
    if fail {
        Err(io::Error::from_raw_os_error(libc::EFAULT))
    } else {
        Ok(())
    }
}

impl FfKernel for FakeKernel {
    fn begin_upload(&mut self, up: &mut UinputFfUpload) -> io::Result<()> {
        failure(self.fail)?;
        let b = self
            .uploads
            .get(&up.request_id)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        fill(up, b);
        Ok(())
    }
    fn end_upload(&mut self, up: &mut UinputFfUpload) -> io::Result<()> {
        let (id, retval) = answer_of(up);
        self.uploads.remove(&id);
        self.upload_answers.push((id, retval));
        Ok(())
    }
    fn begin_erase(&mut self, er: &mut UinputFfErase) -> io::Result<()> {
        failure(self.fail)?;
        let b = self
            .erases
            .get(&er.request_id)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        fill(er, b);
        Ok(())
    }
    fn end_erase(&mut self, er: &mut UinputFfErase) -> io::Result<()> {
        let (id, retval) = answer_of(er);
        self.erases.remove(&id);
        self.erase_answers.push((id, retval));
        Ok(())
    }
}

fn play(id: u16, value: i32) -> RawEvent {
    RawEvent {
        kind: ev::FF,
        code: id,
        value,
    }
}

fn rumble(controller: u16, low: u16, high: u16) -> Feedback {
    Feedback::Rumble {
        controller,
        low,
        high,
    }
}

#[test]
fn rumble_magnitudes_are_read_from_the_union_start() {
    // SAFETY: plain-data struct; all-zero is a valid value.
    let mut effect: FfEffect = unsafe { std::mem::zeroed() };
    fill(
        &mut effect,
        &effect_bytes(code::FF_RUMBLE, 3, 0xC000, 0x0123),
    );
    assert_eq!(effect.id, 3);
    assert_eq!(rumble_magnitudes(&effect), Some((0xC000, 0x0123)));
    fill(&mut effect, &effect_bytes(FF_PERIODIC, 3, 0xC000, 0x0123));
    assert_eq!(rumble_magnitudes(&effect), None);
}

#[test]
fn upload_play_stop_replace_and_erase() {
    let (mut k, mut ff, mut out) = (FakeKernel::default(), ForceFeedback::default(), Vec::new());
    let ev = k.upload(7, effect_bytes(code::FF_RUMBLE, 0, 0xFFFF, 0x1000));
    ff.handle(&mut k, ev, 2, &mut out).unwrap();
    assert_eq!(k.upload_answers, [(7, 0)], "upload answered with success");
    assert!(k.uploads.is_empty());
    assert!(out.is_empty(), "an upload alone rumbles nothing");

    ff.handle(&mut k, play(0, 1), 2, &mut out).unwrap();
    ff.handle(&mut k, play(0, 0), 2, &mut out).unwrap();
    assert_eq!(out, [rumble(2, 0xFFFF, 0x1000), rumble(2, 0, 0)]);

    // The game changes its effect in place (same id).
    out.clear();
    let ev = k.upload(8, effect_bytes(code::FF_RUMBLE, 0, 0x2000, 0x3000));
    ff.handle(&mut k, ev, 2, &mut out).unwrap();
    ff.handle(&mut k, play(0, 1), 2, &mut out).unwrap();
    assert_eq!(out, [rumble(2, 0x2000, 0x3000)]);

    // Erased, the effect plays as silence.
    out.clear();
    let ev = k.erase(9, 0);
    ff.handle(&mut k, ev, 2, &mut out).unwrap();
    assert_eq!(k.erase_answers, [(9, 0)]);
    assert!(k.erases.is_empty());
    ff.handle(&mut k, play(0, 1), 2, &mut out).unwrap();
    assert_eq!(out, [rumble(2, 0, 0)]);
}

#[test]
fn effects_are_kept_apart_by_id() {
    let (mut k, mut ff, mut out) = (FakeKernel::default(), ForceFeedback::default(), Vec::new());
    for (req, id, strong, weak) in [(1, 0, 100, 200), (2, 1, 300, 400), (3, 15, 65535, 0)] {
        let ev = k.upload(req, effect_bytes(code::FF_RUMBLE, id, strong, weak));
        ff.handle(&mut k, ev, 0, &mut out).unwrap();
    }
    let ev = k.erase(4, 1);
    ff.handle(&mut k, ev, 0, &mut out).unwrap();
    for id in [15, 0, 1] {
        ff.handle(&mut k, play(id, 1), 0, &mut out).unwrap();
    }
    assert_eq!(
        out,
        [rumble(0, 65535, 0), rumble(0, 100, 200), rumble(0, 0, 0)]
    );
}

#[test]
fn a_non_rumble_upload_is_refused_not_faked() {
    let (mut k, mut ff, mut out) = (FakeKernel::default(), ForceFeedback::default(), Vec::new());
    let ev = k.upload(5, effect_bytes(FF_PERIODIC, 0, 0xFFFF, 0xFFFF));
    ff.handle(&mut k, ev, 0, &mut out).unwrap();
    assert_eq!(k.upload_answers, [(5, -libc::EINVAL)]);
    ff.handle(&mut k, play(0, 1), 0, &mut out).unwrap();
    assert_eq!(out, [rumble(0, 0, 0)]);
}

#[test]
fn a_failing_ioctl_is_an_error_and_other_events_are_ignored() {
    let (mut k, mut ff, mut out) = (FakeKernel::default(), ForceFeedback::default(), Vec::new());
    let ev = k.upload(1, effect_bytes(code::FF_RUMBLE, 0, 1, 1));
    k.fail = true;
    let err = ff.handle(&mut k, ev, 0, &mut out).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EFAULT));
    assert!(k.upload_answers.is_empty());
    let other = RawEvent {
        kind: ev::KEY,
        code: 30,
        value: 1,
    };
    ff.handle(&mut k, other, 0, &mut out).unwrap();
    assert!(out.is_empty());
}
