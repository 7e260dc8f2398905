//! GameStream input events to Linux input events, per virtual device. Pure, so the
//! encoding is unit-tested on machines without `/dev/uinput`.

use punktfunk_core::gamestream::input::{ControllerState, InputEvent, MouseButton};

use super::keymap::linux_key;

/// `EV_*` types.
pub mod ev {
    /// Synchronisation.
    pub const SYN: u16 = 0x00;
    /// Keys and buttons.
    pub const KEY: u16 = 0x01;
    /// Relative axes.
    pub const REL: u16 = 0x02;
    /// Absolute axes.
    pub const ABS: u16 = 0x03;
    /// Force feedback.
    pub const FF: u16 = 0x15;
}

/// Codes used here.
#[allow(missing_docs)]
pub mod code {
    pub const SYN_REPORT: u16 = 0;
    pub const REL_X: u16 = 0x00;
    pub const REL_Y: u16 = 0x01;
    pub const REL_HWHEEL: u16 = 0x06;
    pub const REL_WHEEL: u16 = 0x08;
    pub const REL_WHEEL_HI_RES: u16 = 0x0b;
    pub const REL_HWHEEL_HI_RES: u16 = 0x0c;
    pub const ABS_X: u16 = 0x00;
    pub const ABS_Y: u16 = 0x01;
    pub const ABS_Z: u16 = 0x02;
    pub const ABS_RX: u16 = 0x03;
    pub const ABS_RY: u16 = 0x04;
    pub const ABS_RZ: u16 = 0x05;
    pub const ABS_HAT0X: u16 = 0x10;
    pub const ABS_HAT0Y: u16 = 0x11;
    pub const BTN_LEFT: u16 = 0x110;
    pub const BTN_RIGHT: u16 = 0x111;
    pub const BTN_MIDDLE: u16 = 0x112;
    pub const BTN_SIDE: u16 = 0x113;
    pub const BTN_EXTRA: u16 = 0x114;
    pub const BTN_SOUTH: u16 = 0x130;
    pub const BTN_EAST: u16 = 0x131;
    pub const BTN_NORTH: u16 = 0x133;
    pub const BTN_WEST: u16 = 0x134;
    pub const BTN_TL: u16 = 0x136;
    pub const BTN_TR: u16 = 0x137;
    pub const BTN_SELECT: u16 = 0x13a;
    pub const BTN_START: u16 = 0x13b;
    pub const BTN_MODE: u16 = 0x13c;
    pub const BTN_THUMBL: u16 = 0x13d;
    pub const BTN_THUMBR: u16 = 0x13e;
    pub const FF_RUMBLE: u16 = 0x50;
}

/// The absolute pointer's axis range: positions are scaled into it whatever the
/// client's reference size.
pub const ABS_POINTER_MAX: i32 = 65_535;

/// Which virtual device an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    /// The keyboard.
    Keyboard,
    /// The relative mouse.
    Mouse,
    /// The absolute pointer.
    Pointer,
    /// Gamepad `n`.
    Pad(u8),
}

/// One Linux input event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEvent {
    /// `EV_*`.
    pub kind: u16,
    /// Code.
    pub code: u16,
    /// Value.
    pub value: i32,
}

const fn raw(kind: u16, code: u16, value: i32) -> RawEvent {
    RawEvent { kind, code, value }
}

const SYN: RawEvent = raw(ev::SYN, code::SYN_REPORT, 0);

/// Moonlight's gamepad button bits and the Xbox-layout buttons they press.
pub const PAD_BUTTONS: [(u32, u16); 11] = [
    (0x1000, code::BTN_SOUTH),  // A
    (0x2000, code::BTN_EAST),   // B
    (0x4000, code::BTN_NORTH),  // X (Linux BTN_X)
    (0x8000, code::BTN_WEST),   // Y (Linux BTN_Y)
    (0x0100, code::BTN_TL),     // LB
    (0x0200, code::BTN_TR),     // RB
    (0x0020, code::BTN_SELECT), // Back
    (0x0010, code::BTN_START),  // Start
    (0x0400, code::BTN_MODE),   // Guide
    (0x0040, code::BTN_THUMBL), // LS click
    (0x0080, code::BTN_THUMBR), // RS click
];

const DPAD_UP: u32 = 0x0001;
const DPAD_DOWN: u32 = 0x0002;
const DPAD_LEFT: u32 = 0x0004;
const DPAD_RIGHT: u32 = 0x0008;

/// What the translator remembers between events.
#[derive(Debug, Clone, Default)]
pub struct TranslateState {
    pads: [Option<ControllerState>; 16],
}

/// The evdev button code of a GameStream mouse button (also what Wayland's pointer
/// protocols carry).
pub fn mouse_button(b: MouseButton) -> u16 {
    match b {
        MouseButton::Left => code::BTN_LEFT,
        MouseButton::Middle => code::BTN_MIDDLE,
        MouseButton::Right => code::BTN_RIGHT,
        MouseButton::X1 => code::BTN_SIDE,
        MouseButton::X2 => code::BTN_EXTRA,
    }
}

fn scale(v: i16, range: i16) -> i32 {
    if range <= 0 {
        return 0;
    }
    (i32::from(v.clamp(0, range)) * ABS_POINTER_MAX) / i32::from(range)
}

fn pad_events(prev: Option<&ControllerState>, c: &ControllerState, out: &mut Vec<RawEvent>) {
    let old_buttons = prev.map_or(0, |p| p.buttons);
    for (bit, key) in PAD_BUTTONS {
        let now = c.buttons & bit != 0;
        if prev.is_none() || now != (old_buttons & bit != 0) {
            out.push(raw(ev::KEY, key, i32::from(now)));
        }
    }
    let hat =
        |neg: u32, pos: u32, b: u32| -> i32 { i32::from(b & pos != 0) - i32::from(b & neg != 0) };
    let axes = [
        (
            code::ABS_HAT0X,
            hat(DPAD_LEFT, DPAD_RIGHT, c.buttons),
            prev.map(|p| hat(DPAD_LEFT, DPAD_RIGHT, p.buttons)),
        ),
        (
            code::ABS_HAT0Y,
            hat(DPAD_UP, DPAD_DOWN, c.buttons),
            prev.map(|p| hat(DPAD_UP, DPAD_DOWN, p.buttons)),
        ),
        (
            code::ABS_X,
            i32::from(c.left_x),
            prev.map(|p| i32::from(p.left_x)),
        ),
        // XInput's Y axes point up, evdev's down.
        (
            code::ABS_Y,
            -i32::from(c.left_y) - 1,
            prev.map(|p| -i32::from(p.left_y) - 1),
        ),
        (
            code::ABS_RX,
            i32::from(c.right_x),
            prev.map(|p| i32::from(p.right_x)),
        ),
        (
            code::ABS_RY,
            -i32::from(c.right_y) - 1,
            prev.map(|p| -i32::from(p.right_y) - 1),
        ),
        (
            code::ABS_Z,
            i32::from(c.left_trigger),
            prev.map(|p| i32::from(p.left_trigger)),
        ),
        (
            code::ABS_RZ,
            i32::from(c.right_trigger),
            prev.map(|p| i32::from(p.right_trigger)),
        ),
    ];
    for (axis, now, before) in axes {
        if before != Some(now) {
            out.push(raw(ev::ABS, axis, now));
        }
    }
}

/// Translates one event. Each device's batch ends with `SYN_REPORT`. Controller
/// states also tell which pads exist: `pads_present` lists them after the call.
pub fn translate(
    event: &InputEvent,
    state: &mut TranslateState,
    out: &mut Vec<(Device, RawEvent)>,
) {
    let mut push_batch = |device: Device, events: &[RawEvent]| {
        if events.is_empty() {
            return;
        }
        for e in events {
            out.push((device, *e));
        }
        out.push((device, SYN));
    };
    match event {
        InputEvent::Key { code, down, .. } => {
            if let Some(key) = linux_key(*code & 0xFF) {
                push_batch(Device::Keyboard, &[raw(ev::KEY, key, i32::from(*down))]);
            }
        }
        InputEvent::MouseMove { dx, dy } => {
            let mut batch = Vec::with_capacity(2);
            if *dx != 0 {
                batch.push(raw(ev::REL, code::REL_X, i32::from(*dx)));
            }
            if *dy != 0 {
                batch.push(raw(ev::REL, code::REL_Y, i32::from(*dy)));
            }
            push_batch(Device::Mouse, &batch);
        }
        InputEvent::MousePosition {
            x,
            y,
            width,
            height,
        } => push_batch(
            Device::Pointer,
            &[
                raw(ev::ABS, code::ABS_X, scale(*x, *width)),
                raw(ev::ABS, code::ABS_Y, scale(*y, *height)),
            ],
        ),
        InputEvent::MouseButton { button, down } => {
            push_batch(
                Device::Mouse,
                &[raw(ev::KEY, mouse_button(*button), i32::from(*down))],
            );
        }
        InputEvent::Scroll { amount } => {
            // Hi-res in 1/120 notches, plus whole notches for applications that only
            // read REL_WHEEL.
            let mut batch = vec![raw(ev::REL, code::REL_WHEEL_HI_RES, i32::from(*amount))];
            if *amount / 120 != 0 {
                batch.push(raw(ev::REL, code::REL_WHEEL, i32::from(*amount / 120)));
            }
            push_batch(Device::Mouse, &batch);
        }
        InputEvent::HScroll { amount } => {
            let mut batch = vec![raw(ev::REL, code::REL_HWHEEL_HI_RES, i32::from(*amount))];
            if *amount / 120 != 0 {
                batch.push(raw(ev::REL, code::REL_HWHEEL, i32::from(*amount / 120)));
            }
            push_batch(Device::Mouse, &batch);
        }
        InputEvent::Controller(c) => {
            let slot = usize::from(c.number);
            let mut batch = Vec::new();
            pad_events(state.pads[slot].as_ref(), c, &mut batch);
            state.pads[slot] = Some(*c);
            push_batch(Device::Pad(c.number), &batch);
            // A cleared bit in the active mask unplugs that pad.
            for (n, pad) in state.pads.iter_mut().enumerate() {
                if c.active_mask & (1 << n) == 0 && n != slot {
                    *pad = None;
                }
            }
            if c.active_mask & (1 << slot) == 0 {
                state.pads[slot] = None;
            }
        }
        InputEvent::ControllerArrival { number, .. } => {
            state.pads[usize::from(*number)].get_or_insert(ControllerState {
                number: *number,
                active_mask: 1 << number,
                buttons: 0,
                left_trigger: 0,
                right_trigger: 0,
                left_x: 0,
                left_y: 0,
                right_x: 0,
                right_y: 0,
            });
        }
        // Touch, pen, motion, battery and text need device types the host does not
        // create yet; they are decoded and recorded, not injected.
        _ => {}
    }
}

impl TranslateState {
    /// Controller numbers that currently have a pad.
    pub fn pads_present(&self) -> impl Iterator<Item = u8> + '_ {
        self.pads
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(n, _)| n as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(events: &[InputEvent]) -> (Vec<(Device, RawEvent)>, TranslateState) {
        let mut s = TranslateState::default();
        let mut out = Vec::new();
        for e in events {
            translate(e, &mut s, &mut out);
        }
        (out, s)
    }

    #[test]
    fn keys_and_mouse() {
        let (out, _) = run(&[
            InputEvent::Key {
                code: 0x41,
                down: true,
                modifiers: 0,
                flags: 0,
            },
            InputEvent::MouseMove { dx: 5, dy: 0 },
            InputEvent::MouseButton {
                button: MouseButton::Right,
                down: true,
            },
            InputEvent::Scroll { amount: -240 },
        ]);
        assert_eq!(
            out,
            vec![
                (Device::Keyboard, raw(ev::KEY, 30, 1)),
                (Device::Keyboard, SYN),
                (Device::Mouse, raw(ev::REL, code::REL_X, 5)),
                (Device::Mouse, SYN),
                (Device::Mouse, raw(ev::KEY, code::BTN_RIGHT, 1)),
                (Device::Mouse, SYN),
                (Device::Mouse, raw(ev::REL, code::REL_WHEEL_HI_RES, -240)),
                (Device::Mouse, raw(ev::REL, code::REL_WHEEL, -2)),
                (Device::Mouse, SYN),
            ]
        );
        let (out, _) = run(&[InputEvent::MousePosition {
            x: 640,
            y: 719,
            width: 1279,
            height: 719,
        }]);
        assert_eq!(
            out[0],
            (
                Device::Pointer,
                raw(ev::ABS, code::ABS_X, 640 * 65535 / 1279)
            )
        );
        assert_eq!(out[1], (Device::Pointer, raw(ev::ABS, code::ABS_Y, 65535)));
    }

    #[test]
    fn gamepad_reports_only_changes_and_flips_y() {
        let pad = |buttons, lx, ly| {
            InputEvent::Controller(ControllerState {
                number: 0,
                active_mask: 1,
                buttons,
                left_trigger: 0,
                right_trigger: 0,
                left_x: lx,
                left_y: ly,
                right_x: 0,
                right_y: 0,
            })
        };
        let (out, s) = run(&[pad(0, 0, 0), pad(0x1000 | DPAD_UP, 1000, 32767)]);
        let second: Vec<_> = out
            .iter()
            .skip_while(|(_, e)| *e != SYN)
            .skip(1)
            .map(|(_, e)| *e)
            .collect();
        assert_eq!(
            second,
            vec![
                raw(ev::KEY, code::BTN_SOUTH, 1),
                raw(ev::ABS, code::ABS_HAT0Y, -1),
                raw(ev::ABS, code::ABS_X, 1000),
                raw(ev::ABS, code::ABS_Y, -32768),
                SYN,
            ]
        );
        assert_eq!(s.pads_present().collect::<Vec<_>>(), vec![0]);
        // Clearing the pad's bit unplugs it.
        let mut s = s;
        let mut out = Vec::new();
        translate(
            &InputEvent::Controller(ControllerState {
                number: 0,
                active_mask: 0,
                buttons: 0,
                left_trigger: 0,
                right_trigger: 0,
                left_x: 0,
                left_y: 0,
                right_x: 0,
                right_y: 0,
            }),
            &mut s,
            &mut out,
        );
        assert_eq!(s.pads_present().count(), 0);
    }
}
