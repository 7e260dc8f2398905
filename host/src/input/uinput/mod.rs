//! The real input backend: virtual devices through `/dev/uinput`.

pub mod ff;
pub mod keymap;
pub mod sys;
pub mod translate;

use std::collections::HashMap;
use std::fs::File;

use anyhow::{Context, Result};
use punktfunk_core::gamestream::input::InputEvent;

use super::{Feedback, InputSink};
use ff::ForceFeedback;
use sys::{InputAbsinfo, InputId, UinputAbsSetup, UinputSetup};
use translate::{Device, RawEvent, TranslateState, code, ev};

/// One created virtual device.
struct VirtualDevice {
    file: File,
    /// Uploaded force-feedback effects (gamepads only).
    ff: ForceFeedback,
}

impl VirtualDevice {
    fn create(
        name: &str,
        id: InputId,
        keys: &[u16],
        rels: &[u16],
        abs: &[(u16, i32, i32)],
        rumble: bool,
    ) -> Result<Self> {
        let file = sys::open_uinput().context("opening /dev/uinput")?;
        let set = |req, v: u16| sys::ioctl_int(&file, req, i32::from(v));
        if !keys.is_empty() {
            set(sys::UI_SET_EVBIT, ev::KEY)?;
            for &k in keys {
                set(sys::UI_SET_KEYBIT, k)?;
            }
        }
        if !rels.is_empty() {
            set(sys::UI_SET_EVBIT, ev::REL)?;
            for &r in rels {
                set(sys::UI_SET_RELBIT, r)?;
            }
        }
        if !abs.is_empty() {
            set(sys::UI_SET_EVBIT, ev::ABS)?;
            for &(a, _, _) in abs {
                set(sys::UI_SET_ABSBIT, a)?;
            }
        }
        if rumble {
            set(sys::UI_SET_EVBIT, ev::FF)?;
            set(sys::UI_SET_FFBIT, code::FF_RUMBLE)?;
        }
        for &(a, min, max) in abs {
            let mut setup = UinputAbsSetup {
                code: a,
                absinfo: InputAbsinfo {
                    value: 0,
                    minimum: min,
                    maximum: max,
                    fuzz: 0,
                    flat: 0,
                    resolution: 0,
                },
            };
            sys::ioctl_ptr(&file, sys::UI_ABS_SETUP, &mut setup)?;
        }
        let mut setup = UinputSetup {
            id,
            name: [0; 80],
            ff_effects_max: if rumble { 16 } else { 0 },
        };
        setup.name[..name.len().min(79)].copy_from_slice(&name.as_bytes()[..name.len().min(79)]);
        sys::ioctl_ptr(&file, sys::UI_DEV_SETUP, &mut setup)?;
        sys::ioctl_int(&file, sys::UI_DEV_CREATE, 0).context("creating the virtual device")?;
        Ok(Self {
            file,
            ff: ForceFeedback::default(),
        })
    }

    /// Serves force-feedback requests and reports rumble plays.
    fn poll_ff(&mut self, controller: u16, out: &mut Vec<Feedback>) -> Result<()> {
        let mut events = Vec::new();
        sys::read_events(&self.file, &mut events)?;
        let mut kernel = &self.file;
        for e in events {
            self.ff.handle(&mut kernel, e, controller, out)?;
        }
        Ok(())
    }
}

impl Drop for VirtualDevice {
    fn drop(&mut self) {
        let _ = sys::ioctl_int(&self.file, sys::UI_DEV_DESTROY, 0);
    }
}

/// Keyboard, mouse, absolute pointer and gamepads through uinput.
pub struct UinputSink {
    /// The keyboard and mice; `None` in a pads-only sink, whose keyboard and mouse
    /// input goes elsewhere (a session's compositor) and is dropped here.
    keyboard: Option<VirtualDevice>,
    mouse: Option<VirtualDevice>,
    pointer: Option<VirtualDevice>,
    pads: HashMap<u8, VirtualDevice>,
    state: TranslateState,
    scratch: Vec<(Device, RawEvent)>,
}

impl std::fmt::Debug for UinputSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UinputSink")
            .field("pads", &self.pads.len())
            .finish_non_exhaustive()
    }
}

const fn virtual_id(product: u16) -> InputId {
    InputId {
        bustype: sys::BUS_VIRTUAL,
        vendor: 0x1d6b, // Linux Foundation, as other virtual input devices use
        product,
        version: 1,
    }
}

fn create_pad(number: u8) -> Result<VirtualDevice> {
    let keys: Vec<u16> = translate::PAD_BUTTONS.iter().map(|(_, k)| *k).collect();
    let abs = [
        (code::ABS_X, -32768, 32767),
        (code::ABS_Y, -32768, 32767),
        (code::ABS_RX, -32768, 32767),
        (code::ABS_RY, -32768, 32767),
        (code::ABS_Z, 0, 255),
        (code::ABS_RZ, 0, 255),
        (code::ABS_HAT0X, -1, 1),
        (code::ABS_HAT0Y, -1, 1),
    ];
    // The Xbox 360 pad's ids: SDL and Steam map it without configuration.
    let id = InputId {
        bustype: 0x03, // USB
        vendor: 0x045e,
        product: 0x028e,
        version: 0x0110,
    };
    VirtualDevice::create(
        &format!("punktfunk gamepad {number}"),
        id,
        &keys,
        &[],
        &abs,
        true,
    )
}

impl UinputSink {
    /// Creates the keyboard and mice; gamepads appear as clients plug them in.
    pub fn open() -> Result<Self> {
        let keys: Vec<u16> = keymap::all_keys().collect();
        let keyboard =
            VirtualDevice::create("punktfunk keyboard", virtual_id(1), &keys, &[], &[], false)?;
        let buttons = [
            code::BTN_LEFT,
            code::BTN_RIGHT,
            code::BTN_MIDDLE,
            code::BTN_SIDE,
            code::BTN_EXTRA,
        ];
        let rels = [
            code::REL_X,
            code::REL_Y,
            code::REL_WHEEL,
            code::REL_HWHEEL,
            code::REL_WHEEL_HI_RES,
            code::REL_HWHEEL_HI_RES,
        ];
        let mouse = VirtualDevice::create(
            "punktfunk mouse",
            virtual_id(2),
            &buttons,
            &rels,
            &[],
            false,
        )?;
        let abs = [
            (code::ABS_X, 0, translate::ABS_POINTER_MAX),
            (code::ABS_Y, 0, translate::ABS_POINTER_MAX),
        ];
        let pointer = VirtualDevice::create(
            "punktfunk absolute pointer",
            virtual_id(3),
            &[code::BTN_LEFT],
            &[],
            &abs,
            false,
        )?;
        sys::ioctl_int(&pointer.file, sys::UI_SET_PROPBIT, sys::INPUT_PROP_POINTER).ok();
        Ok(Self {
            keyboard: Some(keyboard),
            mouse: Some(mouse),
            pointer: Some(pointer),
            pads: HashMap::new(),
            state: TranslateState::default(),
            scratch: Vec::new(),
        })
    }
}

impl UinputSink {
    /// Gamepads only: for sessions whose keyboard and mouse go to their compositor.
    /// Games read pads from `/dev/input` themselves, whatever the compositor, so pads
    /// stay uinput devices. Fails when `/dev/uinput` cannot be opened.
    pub fn pads_only() -> Result<Self> {
        // Opening (and closing) uinput once tells now, not at the first pad, whether
        // pads can be made at all.
        drop(sys::open_uinput().context("opening /dev/uinput")?);
        Ok(Self {
            keyboard: None,
            mouse: None,
            pointer: None,
            pads: HashMap::new(),
            state: TranslateState::default(),
            scratch: Vec::new(),
        })
    }
}

impl InputSink for UinputSink {
    fn handle(&mut self, event: &InputEvent) -> Result<()> {
        self.scratch.clear();
        translate::translate(event, &mut self.state, &mut self.scratch);
        // Plug and unplug pads to match what the client reports.
        let present: Vec<u8> = self.state.pads_present().collect();
        self.pads.retain(|n, _| present.contains(n));
        for n in present {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.pads.entry(n) {
                slot.insert(create_pad(n)?);
            }
        }
        let mut batch: Vec<RawEvent> = Vec::new();
        let mut current: Option<Device> = None;
        let scratch = std::mem::take(&mut self.scratch);
        for (device, e) in &scratch {
            if current.is_some_and(|d| d != *device) {
                self.flush(current.take().expect("checked"), &batch)?;
                batch.clear();
            }
            current = Some(*device);
            batch.push(*e);
        }
        if let Some(d) = current {
            self.flush(d, &batch)?;
        }
        self.scratch = scratch;
        Ok(())
    }

    fn poll_feedback(&mut self, out: &mut Vec<Feedback>) {
        for (n, pad) in &mut self.pads {
            if let Err(e) = pad.poll_ff(u16::from(*n), out) {
                tracing::debug!("force feedback on pad {n}: {e:#}");
            }
        }
    }
}

impl UinputSink {
    fn flush(&mut self, device: Device, events: &[RawEvent]) -> Result<()> {
        let device = match device {
            Device::Keyboard => self.keyboard.as_ref(),
            Device::Mouse => self.mouse.as_ref(),
            Device::Pointer => self.pointer.as_ref(),
            // None: the pad was unplugged by this very event.
            Device::Pad(n) => self.pads.get(&n),
        };
        let Some(device) = device else {
            return Ok(());
        };
        sys::write_events(&device.file, events).context("writing to a virtual device")
    }
}
