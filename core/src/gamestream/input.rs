//! Input packets, as moonlight-common-c sends them inside control message 0x0206
//! (`Input.h`, `InputStream.c`; Sunshine `input.cpp`).
//!
//! Every packet starts with `BE32 size` (bytes after this field) and `LE32 magic`.
//! Mouse deltas, positions and scroll amounts are big-endian; controller, touch and pen
//! fields little-endian; floats are little-endian IEEE-754.

use thiserror::Error;

use crate::wire::{Reader, WireError};

/// Why an input packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputError {
    /// A field ran past the end.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The size field disagrees with the packet.
    #[error("input packet size field says {declared}, packet has {actual}")]
    Size {
        /// What the header declares.
        declared: usize,
        /// What arrived.
        actual: usize,
    },
    /// A field value outside its range.
    #[error("invalid input packet: {0}")]
    Invalid(&'static str),
}

/// Keyboard modifier bits.
pub mod modifiers {
    /// Shift.
    pub const SHIFT: u8 = 0x01;
    /// Control.
    pub const CTRL: u8 = 0x02;
    /// Alt.
    pub const ALT: u8 = 0x04;
    /// Meta (Windows/Super).
    pub const META: u8 = 0x08;
}

/// A mouse button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MouseButton {
    /// Left (1).
    Left,
    /// Middle (2).
    Middle,
    /// Right (3).
    Right,
    /// Back (4).
    X1,
    /// Forward (5).
    X2,
}

/// Gamepad state of one controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerState {
    /// Controller number, 0..16.
    pub number: u8,
    /// Bit per connected controller.
    pub active_mask: u16,
    /// Button flags (Moonlight's, including Sunshine's extended upper 16 bits).
    pub buttons: u32,
    /// Left trigger, 0..255.
    pub left_trigger: u8,
    /// Right trigger, 0..255.
    pub right_trigger: u8,
    /// Left stick X, -32768..32767.
    pub left_x: i16,
    /// Left stick Y.
    pub left_y: i16,
    /// Right stick X.
    pub right_x: i16,
    /// Right stick Y.
    pub right_y: i16,
}

/// One decoded input event.
#[derive(Debug, Clone, PartialEq)]
pub enum InputEvent {
    /// A key went down or up. `code` is a Windows virtual-key code.
    Key {
        /// Virtual-key code.
        code: u16,
        /// Pressed (true) or released.
        down: bool,
        /// `modifiers::*` bits held.
        modifiers: u8,
        /// Sunshine's flags (bit 0: not normalised to US layout).
        flags: u8,
    },
    /// Relative pointer motion.
    MouseMove {
        /// Horizontal delta.
        dx: i16,
        /// Vertical delta.
        dy: i16,
    },
    /// Absolute pointer position within a reference area.
    MousePosition {
        /// X.
        x: i16,
        /// Y.
        y: i16,
        /// Reference width (as sent: the client's width minus one).
        width: i16,
        /// Reference height (as sent).
        height: i16,
    },
    /// A mouse button went down or up.
    MouseButton {
        /// Which button.
        button: MouseButton,
        /// Pressed (true) or released.
        down: bool,
    },
    /// Vertical wheel, in 1/120 of a notch (positive up).
    Scroll {
        /// Amount.
        amount: i16,
    },
    /// Horizontal wheel, in 1/120 of a notch (positive right).
    HScroll {
        /// Amount.
        amount: i16,
    },
    /// Full state of one gamepad.
    Controller(ControllerState),
    /// A gamepad appeared.
    ControllerArrival {
        /// Controller number.
        number: u8,
        /// `LI_CTYPE_*`: 0 unknown, 1 Xbox, 2 PlayStation, 3 Nintendo, 4 Steam.
        kind: u8,
        /// `LI_CCAP_*` bits (rumble 0x02, touchpad 0x08, gyro 0x20, ...).
        capabilities: u16,
        /// Buttons the pad has.
        supported_buttons: u32,
    },
    /// A touch contact.
    Touch {
        /// `LI_TOUCH_EVENT_*`.
        event: u8,
        /// Rotation in degrees, 0xFFFF unknown.
        rotation: u16,
        /// Contact id.
        pointer: u32,
        /// X, 0..1 of the video area.
        x: f32,
        /// Y, 0..1.
        y: f32,
        /// Pressure or hover distance.
        pressure: f32,
    },
    /// A pen contact.
    Pen {
        /// `LI_TOUCH_EVENT_*`.
        event: u8,
        /// 1 pen, 2 eraser.
        tool: u8,
        /// Buttons held.
        buttons: u8,
        /// X, 0..1.
        x: f32,
        /// Y, 0..1.
        y: f32,
        /// Pressure or hover distance.
        pressure: f32,
        /// Rotation, 0xFFFF unknown.
        rotation: u16,
        /// Tilt in degrees, 0xFF unknown.
        tilt: u8,
    },
    /// A touch on a gamepad's touchpad.
    ControllerTouch {
        /// Controller number.
        number: u8,
        /// `LI_TOUCH_EVENT_*`.
        event: u8,
        /// Contact id.
        pointer: u32,
        /// X, 0..1.
        x: f32,
        /// Y, 0..1.
        y: f32,
        /// Pressure.
        pressure: f32,
    },
    /// An accelerometer (1) or gyroscope (2) sample.
    Motion {
        /// Controller number.
        number: u8,
        /// 1 accelerometer (m/s²), 2 gyroscope (deg/s).
        kind: u8,
        /// X.
        x: f32,
        /// Y.
        y: f32,
        /// Z.
        z: f32,
    },
    /// A gamepad's battery.
    Battery {
        /// Controller number.
        number: u8,
        /// `LI_BATTERY_STATE_*`.
        state: u8,
        /// Percent, 0xFF unknown.
        percent: u8,
    },
    /// Typed text (one code point per packet from Moonlight).
    Text(String),
    /// The client can play haptics (sent once at start).
    HapticsEnabled,
}

/// Magic numbers (`LE32` after the size field).
pub mod magic {
    /// Key down.
    pub const KEY_DOWN: u32 = 0x0000_0003;
    /// Key up.
    pub const KEY_UP: u32 = 0x0000_0004;
    /// Absolute mouse position.
    pub const MOUSE_ABS: u32 = 0x0000_0005;
    /// Relative mouse move (gen 5+).
    pub const MOUSE_REL: u32 = 0x0000_0007;
    /// Mouse button down (gen 5+).
    pub const MOUSE_BUTTON_DOWN: u32 = 0x0000_0008;
    /// Mouse button up (gen 5+).
    pub const MOUSE_BUTTON_UP: u32 = 0x0000_0009;
    /// Vertical scroll (gen 5+).
    pub const SCROLL: u32 = 0x0000_000A;
    /// Multi-controller state (gen 5+).
    pub const MULTI_CONTROLLER: u32 = 0x0000_000C;
    /// Haptics enable.
    pub const HAPTICS: u32 = 0x0000_000D;
    /// UTF-8 text.
    pub const UTF8_TEXT: u32 = 0x0000_0017;
    /// Horizontal scroll (Sunshine).
    pub const HSCROLL: u32 = 0x5500_0001;
    /// Touch (Sunshine).
    pub const TOUCH: u32 = 0x5500_0002;
    /// Pen (Sunshine).
    pub const PEN: u32 = 0x5500_0003;
    /// Controller arrival (Sunshine).
    pub const CONTROLLER_ARRIVAL: u32 = 0x5500_0004;
    /// Controller touchpad (Sunshine).
    pub const CONTROLLER_TOUCH: u32 = 0x5500_0005;
    /// Controller motion (Sunshine).
    pub const CONTROLLER_MOTION: u32 = 0x5500_0006;
    /// Controller battery (Sunshine).
    pub const CONTROLLER_BATTERY: u32 = 0x5500_0007;
}

/// Controllers GameStream addresses (0..16).
pub const MAX_CONTROLLERS: u8 = 16;

fn controller_number(n: u16) -> Result<u8, InputError> {
    u8::try_from(n)
        .ok()
        .filter(|n| *n < MAX_CONTROLLERS)
        .ok_or(InputError::Invalid("controller number out of range"))
}

fn finite(v: f32, what: &'static str) -> Result<f32, InputError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(InputError::Invalid(what))
    }
}

/// Parses one input packet (the payload of control message 0x0206). `Ok(None)` for a
/// well-formed packet of a kind this host ignores.
pub fn parse(packet: &[u8]) -> Result<Option<InputEvent>, InputError> {
    let mut r = Reader::new(packet);
    let size = r.u32_be()? as usize;
    if size != r.remaining() {
        return Err(InputError::Size {
            declared: size,
            actual: r.remaining(),
        });
    }
    let m = r.u32_le()?;
    let event = match m {
        magic::KEY_DOWN | magic::KEY_UP => {
            let flags = r.u8()?;
            let code = r.u16_le()?;
            let modifiers = r.u8()?;
            r.skip(2)?;
            InputEvent::Key {
                code,
                down: m == magic::KEY_DOWN,
                modifiers,
                flags,
            }
        }
        magic::MOUSE_REL => InputEvent::MouseMove {
            dx: r.i16_be()?,
            dy: r.i16_be()?,
        },
        magic::MOUSE_ABS => {
            let x = r.i16_be()?;
            let y = r.i16_be()?;
            r.skip(2)?;
            InputEvent::MousePosition {
                x,
                y,
                width: r.i16_be()?,
                height: r.i16_be()?,
            }
        }
        magic::MOUSE_BUTTON_DOWN | magic::MOUSE_BUTTON_UP => {
            let button = match r.u8()? {
                1 => MouseButton::Left,
                2 => MouseButton::Middle,
                3 => MouseButton::Right,
                4 => MouseButton::X1,
                5 => MouseButton::X2,
                _ => return Err(InputError::Invalid("unknown mouse button")),
            };
            InputEvent::MouseButton {
                button,
                down: m == magic::MOUSE_BUTTON_DOWN,
            }
        }
        magic::SCROLL => InputEvent::Scroll {
            amount: r.i16_be()?,
        },
        magic::HSCROLL => InputEvent::HScroll {
            amount: r.i16_be()?,
        },
        magic::MULTI_CONTROLLER => {
            let _header_b = r.u16_le()?;
            let number = controller_number(r.u16_le()?)?;
            let active_mask = r.u16_le()?;
            let _mid_b = r.u16_le()?;
            let low = r.u16_le()?;
            let left_trigger = r.u8()?;
            let right_trigger = r.u8()?;
            let left_x = r.i16_le()?;
            let left_y = r.i16_le()?;
            let right_x = r.i16_le()?;
            let right_y = r.i16_le()?;
            let _tail_a = r.u16_le()?;
            let high = r.u16_le()?;
            let _tail_b = r.u16_le()?;
            InputEvent::Controller(ControllerState {
                number,
                active_mask,
                buttons: u32::from(low) | (u32::from(high) << 16),
                left_trigger,
                right_trigger,
                left_x,
                left_y,
                right_x,
                right_y,
            })
        }
        magic::CONTROLLER_ARRIVAL => InputEvent::ControllerArrival {
            number: controller_number(u16::from(r.u8()?))?,
            kind: r.u8()?,
            capabilities: r.u16_le()?,
            supported_buttons: r.u32_le()?,
        },
        magic::TOUCH => {
            let event = r.u8()?;
            r.skip(1)?;
            let rotation = r.u16_le()?;
            let pointer = r.u32_le()?;
            InputEvent::Touch {
                event,
                rotation,
                pointer,
                x: finite(r.f32_le()?, "touch x")?,
                y: finite(r.f32_le()?, "touch y")?,
                pressure: finite(r.f32_le()?, "touch pressure")?,
            }
        }
        magic::PEN => {
            let event = r.u8()?;
            let tool = r.u8()?;
            let buttons = r.u8()?;
            r.skip(1)?;
            let x = finite(r.f32_le()?, "pen x")?;
            let y = finite(r.f32_le()?, "pen y")?;
            let pressure = finite(r.f32_le()?, "pen pressure")?;
            let rotation = r.u16_le()?;
            let tilt = r.u8()?;
            InputEvent::Pen {
                event,
                tool,
                buttons,
                x,
                y,
                pressure,
                rotation,
                tilt,
            }
        }
        magic::CONTROLLER_TOUCH => {
            let number = controller_number(u16::from(r.u8()?))?;
            let event = r.u8()?;
            r.skip(2)?;
            InputEvent::ControllerTouch {
                number,
                event,
                pointer: r.u32_le()?,
                x: finite(r.f32_le()?, "touchpad x")?,
                y: finite(r.f32_le()?, "touchpad y")?,
                pressure: finite(r.f32_le()?, "touchpad pressure")?,
            }
        }
        magic::CONTROLLER_MOTION => {
            let number = controller_number(u16::from(r.u8()?))?;
            let kind = r.u8()?;
            r.skip(2)?;
            InputEvent::Motion {
                number,
                kind,
                x: finite(r.f32_le()?, "motion x")?,
                y: finite(r.f32_le()?, "motion y")?,
                z: finite(r.f32_le()?, "motion z")?,
            }
        }
        magic::CONTROLLER_BATTERY => InputEvent::Battery {
            number: controller_number(u16::from(r.u8()?))?,
            state: r.u8()?,
            percent: r.u8()?,
        },
        magic::UTF8_TEXT => {
            let text = std::str::from_utf8(r.rest())
                .map_err(|_| InputError::Invalid("text is not UTF-8"))?;
            if text.is_empty() || text.len() > 32 {
                return Err(InputError::Invalid("text length out of range"));
            }
            InputEvent::Text(text.to_owned())
        }
        magic::HAPTICS => InputEvent::HapticsEnabled,
        _ => return Ok(None),
    };
    Ok(Some(event))
}

#[cfg(test)]
mod tests;
