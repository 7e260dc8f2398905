//! Input events on the control stream: the same [`InputEvent`] the GameStream path
//! feeds into the input sink, one tag byte per variant, fields big-endian.

use super::ControlError;
use super::codec::{Out, read_bool, read_f32, read_i16, read_string};
use crate::gamestream::input::{ControllerState, InputEvent, MouseButton};
use crate::wire::Reader;

fn button_code(b: MouseButton) -> u8 {
    match b {
        MouseButton::Left => 1,
        MouseButton::Middle => 2,
        MouseButton::Right => 3,
        MouseButton::X1 => 4,
        MouseButton::X2 => 5,
    }
}

pub(super) fn input(o: &mut Out<'_>, e: &InputEvent) -> Result<(), ControlError> {
    match e {
        InputEvent::Key {
            code,
            down,
            modifiers,
            flags,
        } => {
            o.u8(1);
            o.u16(*code);
            o.bool(*down);
            o.u8(*modifiers);
            o.u8(*flags);
        }
        InputEvent::MouseMove { dx, dy } => {
            o.u8(2);
            o.i16(*dx);
            o.i16(*dy);
        }
        InputEvent::MousePosition {
            x,
            y,
            width,
            height,
        } => {
            o.u8(3);
            for v in [x, y, width, height] {
                o.i16(*v);
            }
        }
        InputEvent::MouseButton { button, down } => {
            o.u8(4);
            o.u8(button_code(*button));
            o.bool(*down);
        }
        InputEvent::Scroll { amount } => {
            o.u8(5);
            o.i16(*amount);
        }
        InputEvent::HScroll { amount } => {
            o.u8(6);
            o.i16(*amount);
        }
        InputEvent::Controller(c) => {
            o.u8(7);
            o.u8(c.number);
            o.u16(c.active_mask);
            o.u32(c.buttons);
            o.u8(c.left_trigger);
            o.u8(c.right_trigger);
            for v in [c.left_x, c.left_y, c.right_x, c.right_y] {
                o.i16(v);
            }
        }
        InputEvent::ControllerArrival {
            number,
            kind,
            capabilities,
            supported_buttons,
        } => {
            o.u8(8);
            o.u8(*number);
            o.u8(*kind);
            o.u16(*capabilities);
            o.u32(*supported_buttons);
        }
        InputEvent::Touch {
            event,
            rotation,
            pointer,
            x,
            y,
            pressure,
        } => {
            o.u8(9);
            o.u8(*event);
            o.u16(*rotation);
            o.u32(*pointer);
            for v in [x, y, pressure] {
                o.f32(*v);
            }
        }
        InputEvent::Pen {
            event,
            tool,
            buttons,
            x,
            y,
            pressure,
            rotation,
            tilt,
        } => {
            o.u8(10);
            o.u8(*event);
            o.u8(*tool);
            o.u8(*buttons);
            for v in [x, y, pressure] {
                o.f32(*v);
            }
            o.u16(*rotation);
            o.u8(*tilt);
        }
        InputEvent::ControllerTouch {
            number,
            event,
            pointer,
            x,
            y,
            pressure,
        } => {
            o.u8(11);
            o.u8(*number);
            o.u8(*event);
            o.u32(*pointer);
            for v in [x, y, pressure] {
                o.f32(*v);
            }
        }
        InputEvent::Motion {
            number,
            kind,
            x,
            y,
            z,
        } => {
            o.u8(12);
            o.u8(*number);
            o.u8(*kind);
            for v in [x, y, z] {
                o.f32(*v);
            }
        }
        InputEvent::Battery {
            number,
            state,
            percent,
        } => {
            o.u8(13);
            o.u8(*number);
            o.u8(*state);
            o.u8(*percent);
        }
        InputEvent::Text(t) => {
            o.u8(14);
            o.string(t)?;
        }
        InputEvent::HapticsEnabled => o.u8(15),
    }
    Ok(())
}

pub(super) fn read_input(r: &mut Reader<'_>) -> Result<InputEvent, ControlError> {
    Ok(match r.u8()? {
        1 => InputEvent::Key {
            code: r.u16_be()?,
            down: read_bool(r)?,
            modifiers: r.u8()?,
            flags: r.u8()?,
        },
        2 => InputEvent::MouseMove {
            dx: read_i16(r)?,
            dy: read_i16(r)?,
        },
        3 => InputEvent::MousePosition {
            x: read_i16(r)?,
            y: read_i16(r)?,
            width: read_i16(r)?,
            height: read_i16(r)?,
        },
        4 => InputEvent::MouseButton {
            button: match r.u8()? {
                1 => MouseButton::Left,
                2 => MouseButton::Middle,
                3 => MouseButton::Right,
                4 => MouseButton::X1,
                5 => MouseButton::X2,
                _ => return Err(ControlError::Invalid("unknown mouse button")),
            },
            down: read_bool(r)?,
        },
        5 => InputEvent::Scroll {
            amount: read_i16(r)?,
        },
        6 => InputEvent::HScroll {
            amount: read_i16(r)?,
        },
        7 => InputEvent::Controller(ControllerState {
            number: r.u8()?,
            active_mask: r.u16_be()?,
            buttons: r.u32_be()?,
            left_trigger: r.u8()?,
            right_trigger: r.u8()?,
            left_x: read_i16(r)?,
            left_y: read_i16(r)?,
            right_x: read_i16(r)?,
            right_y: read_i16(r)?,
        }),
        8 => InputEvent::ControllerArrival {
            number: r.u8()?,
            kind: r.u8()?,
            capabilities: r.u16_be()?,
            supported_buttons: r.u32_be()?,
        },
        9 => InputEvent::Touch {
            event: r.u8()?,
            rotation: r.u16_be()?,
            pointer: r.u32_be()?,
            x: read_f32(r)?,
            y: read_f32(r)?,
            pressure: read_f32(r)?,
        },
        10 => InputEvent::Pen {
            event: r.u8()?,
            tool: r.u8()?,
            buttons: r.u8()?,
            x: read_f32(r)?,
            y: read_f32(r)?,
            pressure: read_f32(r)?,
            rotation: r.u16_be()?,
            tilt: r.u8()?,
        },
        11 => InputEvent::ControllerTouch {
            number: r.u8()?,
            event: r.u8()?,
            pointer: r.u32_be()?,
            x: read_f32(r)?,
            y: read_f32(r)?,
            pressure: read_f32(r)?,
        },
        12 => InputEvent::Motion {
            number: r.u8()?,
            kind: r.u8()?,
            x: read_f32(r)?,
            y: read_f32(r)?,
            z: read_f32(r)?,
        },
        13 => InputEvent::Battery {
            number: r.u8()?,
            state: r.u8()?,
            percent: r.u8()?,
        },
        14 => InputEvent::Text(read_string(r)?),
        15 => InputEvent::HapticsEnabled,
        _ => return Err(ControlError::Invalid("unknown input event")),
    })
}
