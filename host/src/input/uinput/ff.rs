//! Force feedback of a virtual gamepad: serving the kernel's effect uploads and erases,
//! and turning effect plays into rumble for the client.
//!
//! A game uploads an `ff_effect` to the pad; uinput forwards it as an `EV_UINPUT`
//! request that must be fetched (`UI_BEGIN_FF_UPLOAD`) and answered (`UI_END_FF_UPLOAD`)
//! before the game's own ioctl returns. Plays then arrive as `EV_FF` events carrying the
//! effect id. The ioctls sit behind [`FfKernel`] so the handling can be tested here,
//! where there is no `/dev/uinput`, against structs laid out as the kernel fills them.

use std::collections::HashMap;
use std::fs::File;
use std::io;

use super::sys::{self, FfEffect, UinputFfErase, UinputFfUpload};
use super::translate::{RawEvent, code, ev};
use crate::input::Feedback;

/// The four uinput force-feedback ioctls.
pub trait FfKernel {
    /// `UI_BEGIN_FF_UPLOAD`: the kernel fills `effect` (and `old`) for `request_id`.
    fn begin_upload(&mut self, up: &mut UinputFfUpload) -> io::Result<()>;
    /// `UI_END_FF_UPLOAD`: hands `retval` back to the uploading game.
    fn end_upload(&mut self, up: &mut UinputFfUpload) -> io::Result<()>;
    /// `UI_BEGIN_FF_ERASE`: the kernel fills `effect_id` for `request_id`.
    fn begin_erase(&mut self, er: &mut UinputFfErase) -> io::Result<()>;
    /// `UI_END_FF_ERASE`: hands `retval` back to the erasing game.
    fn end_erase(&mut self, er: &mut UinputFfErase) -> io::Result<()>;
}

impl FfKernel for &File {
    fn begin_upload(&mut self, up: &mut UinputFfUpload) -> io::Result<()> {
        sys::ioctl_ptr(self, sys::UI_BEGIN_FF_UPLOAD, up)
    }
    fn end_upload(&mut self, up: &mut UinputFfUpload) -> io::Result<()> {
        sys::ioctl_ptr(self, sys::UI_END_FF_UPLOAD, up)
    }
    fn begin_erase(&mut self, er: &mut UinputFfErase) -> io::Result<()> {
        sys::ioctl_ptr(self, sys::UI_BEGIN_FF_ERASE, er)
    }
    fn end_erase(&mut self, er: &mut UinputFfErase) -> io::Result<()> {
        sys::ioctl_ptr(self, sys::UI_END_FF_ERASE, er)
    }
}

/// The (strong, weak) magnitudes of a rumble effect, `None` for any other kind.
///
/// `ff_rumble_effect` is `{ __u16 strong_magnitude; __u16 weak_magnitude; }` at the
/// start of the effect's union, in the machine's byte order.
pub fn rumble_magnitudes(effect: &FfEffect) -> Option<(u16, u16)> {
    if effect.kind != code::FF_RUMBLE {
        return None;
    }
    let b = effect.u[0].to_ne_bytes();
    Some((
        u16::from_ne_bytes([b[0], b[1]]),
        u16::from_ne_bytes([b[2], b[3]]),
    ))
}

/// The effects uploaded to one gamepad.
#[derive(Debug, Default)]
pub struct ForceFeedback {
    /// Rumble magnitudes (strong, weak) by effect id.
    effects: HashMap<i16, (u16, u16)>,
}

impl ForceFeedback {
    /// Handles one event read from the pad's uinput fd: serves an upload or erase
    /// request, or reports a play (or stop) as rumble of `controller`. Other events
    /// are ignored.
    pub fn handle(
        &mut self,
        kernel: &mut impl FfKernel,
        e: RawEvent,
        controller: u16,
        out: &mut Vec<Feedback>,
    ) -> io::Result<()> {
        match (e.kind, e.code) {
            (sys::EV_UINPUT, sys::UI_FF_UPLOAD) => {
                // SAFETY: plain-data struct the kernel fills; all-zero is a valid value.
                let mut up: UinputFfUpload = unsafe { std::mem::zeroed() };
                up.request_id = e.value as u32;
                kernel.begin_upload(&mut up)?;
                up.retval = match rumble_magnitudes(&up.effect) {
                    Some(m) => {
                        // A re-upload of a known id (a game changing its effect) replaces it.
                        self.effects.insert(up.effect.id, m);
                        0
                    }
                    // The pad announces FF_RUMBLE only, so the kernel sends nothing
                    // else; refuse anything that slips through rather than fake it.
                    None => -libc::EINVAL,
                };
                kernel.end_upload(&mut up)
            }
            (sys::EV_UINPUT, sys::UI_FF_ERASE) => {
                let mut er = UinputFfErase {
                    request_id: e.value as u32,
                    retval: 0,
                    effect_id: 0,
                };
                kernel.begin_erase(&mut er)?;
                self.effects.remove(&(er.effect_id as i16));
                er.retval = 0;
                kernel.end_erase(&mut er)
            }
            (ev::FF, id) => {
                // value > 0 plays the effect (value = repeat count), 0 stops it.
                let (low, high) = if e.value > 0 {
                    self.effects.get(&(id as i16)).copied().unwrap_or((0, 0))
                } else {
                    (0, 0)
                };
                out.push(Feedback::Rumble {
                    controller,
                    low,
                    high,
                });
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
#[path = "ff_tests.rs"]
mod tests;
