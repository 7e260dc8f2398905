//! Field-level encoding of control messages (see the parent module for the framing).

use super::{
    CONTROL_VERSION, Capabilities, Codec, ControlError, FRAME_HEADER, LatencyReport, LossReport,
    MAX_PAYLOAD, MAX_STRING, Message, Mode, PairFailure, ty,
};
use crate::gamestream::input::{ControllerState, InputEvent, MouseButton};
use crate::wire::Reader;

/// A growable big-endian writer.
struct Out<'a>(&'a mut Vec<u8>);

impl Out<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i16(&mut self, v: i16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn f32(&mut self, v: f32) {
        self.u32(v.to_bits());
    }
    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    fn bytes(&mut self, v: &[u8]) -> Result<(), ControlError> {
        let len = u16::try_from(v.len()).map_err(|_| ControlError::TooLong(v.len()))?;
        self.u16(len);
        self.0.extend_from_slice(v);
        Ok(())
    }
    fn string(&mut self, v: &str) -> Result<(), ControlError> {
        if v.len() > MAX_STRING {
            return Err(ControlError::Invalid("string field too long"));
        }
        self.bytes(v.as_bytes())
    }
}

fn caps(o: &mut Out<'_>, c: &Capabilities) {
    o.u8(c.codecs);
    o.u16(c.max_width);
    o.u16(c.max_height);
    o.u16(c.max_fps);
    o.u32(c.max_bitrate_kbps);
}

fn mode(o: &mut Out<'_>, m: &Mode) {
    o.u8(m.codec as u8);
    o.u16(m.width);
    o.u16(m.height);
    o.u16(m.fps);
    o.u32(m.bitrate_kbps);
    o.u8(m.fec_percent);
}

fn button_code(b: MouseButton) -> u8 {
    match b {
        MouseButton::Left => 1,
        MouseButton::Middle => 2,
        MouseButton::Right => 3,
        MouseButton::X1 => 4,
        MouseButton::X2 => 5,
    }
}

fn input(o: &mut Out<'_>, e: &InputEvent) -> Result<(), ControlError> {
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

/// Appends `msg`, framed, to `out`. On error `out` is left as it was.
pub(super) fn encode(msg: &Message, out: &mut Vec<u8>) -> Result<(), ControlError> {
    let start = out.len();
    out.extend_from_slice(&[CONTROL_VERSION, 0, 0, 0]);
    let result = encode_payload(msg, &mut Out(out));
    let len = out.len() - start - FRAME_HEADER;
    match result {
        Ok(t) if len <= MAX_PAYLOAD => {
            out[start + 1] = t;
            out[start + 2..start + 4].copy_from_slice(&(len as u16).to_be_bytes());
            Ok(())
        }
        Ok(_) => {
            out.truncate(start);
            Err(ControlError::TooLong(len))
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

fn encode_payload(msg: &Message, o: &mut Out<'_>) -> Result<u8, ControlError> {
    Ok(match msg {
        Message::Hello { name, caps: c } => {
            o.string(name)?;
            caps(o, c);
            ty::HELLO
        }
        Message::HostHello {
            name,
            paired,
            tofu,
            caps: c,
        } => {
            o.string(name)?;
            o.bool(*paired);
            o.bool(*tofu);
            caps(o, c);
            ty::HOST_HELLO
        }
        Message::PairStart { spake } => {
            o.bytes(spake)?;
            ty::PAIR_START
        }
        Message::PairReply { spake, confirm } => {
            o.bytes(spake)?;
            o.0.extend_from_slice(confirm);
            ty::PAIR_REPLY
        }
        Message::PairConfirm { confirm } => {
            o.0.extend_from_slice(confirm);
            ty::PAIR_CONFIRM
        }
        Message::PairOk => ty::PAIR_OK,
        Message::PairFailed { reason } => {
            o.u8(*reason as u8);
            ty::PAIR_FAILED
        }
        Message::ModeRequest(m) => {
            mode(o, m);
            ty::MODE_REQUEST
        }
        Message::ModeAck {
            mode: m,
            data_port,
            max_frame_bytes,
            epoch,
        } => {
            mode(o, m);
            o.u16(*data_port);
            o.u32(*max_frame_bytes);
            o.u32(*epoch);
            ty::MODE_ACK
        }
        Message::ModeRefused { reason } => {
            o.string(reason)?;
            ty::MODE_REFUSED
        }
        Message::RequestIdr => ty::REQUEST_IDR,
        Message::Loss(l) => {
            for v in [
                l.interval_ms,
                l.packets_expected,
                l.packets_lost,
                l.frames_delivered,
                l.frames_lost,
                l.frames_recovered,
            ] {
                o.u32(v);
            }
            ty::LOSS
        }
        Message::Latency(l) => {
            o.u32(l.p50_us);
            o.u32(l.p99_us);
            ty::LATENCY
        }
        Message::Input(e) => {
            input(o, e)?;
            ty::INPUT
        }
        Message::Goodbye { reason } => {
            o.string(reason)?;
            ty::GOODBYE
        }
    })
}

fn read_bool(r: &mut Reader<'_>) -> Result<bool, ControlError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(ControlError::Invalid("boolean other than 0 or 1")),
    }
}

fn read_bytes<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], ControlError> {
    let len = usize::from(r.u16_be()?);
    Ok(r.bytes(len)?)
}

fn read_string(r: &mut Reader<'_>) -> Result<String, ControlError> {
    let b = read_bytes(r)?;
    if b.len() > MAX_STRING {
        return Err(ControlError::Invalid("string field too long"));
    }
    String::from_utf8(b.to_vec()).map_err(|_| ControlError::Invalid("string is not UTF-8"))
}

fn read_i16(r: &mut Reader<'_>) -> Result<i16, ControlError> {
    Ok(r.i16_be()?)
}

fn read_f32(r: &mut Reader<'_>) -> Result<f32, ControlError> {
    Ok(f32::from_bits(r.u32_be()?))
}

fn read_caps(r: &mut Reader<'_>) -> Result<Capabilities, ControlError> {
    Ok(Capabilities {
        codecs: r.u8()?,
        max_width: r.u16_be()?,
        max_height: r.u16_be()?,
        max_fps: r.u16_be()?,
        max_bitrate_kbps: r.u32_be()?,
    })
}

fn read_mode(r: &mut Reader<'_>) -> Result<Mode, ControlError> {
    Ok(Mode {
        codec: Codec::from_u8(r.u8()?)?,
        width: r.u16_be()?,
        height: r.u16_be()?,
        fps: r.u16_be()?,
        bitrate_kbps: r.u32_be()?,
        fec_percent: r.u8()?,
    })
}

fn read_input(r: &mut Reader<'_>) -> Result<InputEvent, ControlError> {
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

/// Parses the payload of a message of type `t`; all of it must be used.
pub(super) fn decode_payload(t: u8, payload: &[u8]) -> Result<Message, ControlError> {
    let mut r = Reader::new(payload);
    let r = &mut r;
    let msg = match t {
        ty::HELLO => Message::Hello {
            name: read_string(r)?,
            caps: read_caps(r)?,
        },
        ty::HOST_HELLO => Message::HostHello {
            name: read_string(r)?,
            paired: read_bool(r)?,
            tofu: read_bool(r)?,
            caps: read_caps(r)?,
        },
        ty::PAIR_START => Message::PairStart {
            spake: read_bytes(r)?.to_vec(),
        },
        ty::PAIR_REPLY => Message::PairReply {
            spake: read_bytes(r)?.to_vec(),
            confirm: r.array()?,
        },
        ty::PAIR_CONFIRM => Message::PairConfirm {
            confirm: r.array()?,
        },
        ty::PAIR_OK => Message::PairOk,
        ty::PAIR_FAILED => Message::PairFailed {
            reason: PairFailure::from_u8(r.u8()?)?,
        },
        ty::MODE_REQUEST => Message::ModeRequest(read_mode(r)?),
        ty::MODE_ACK => Message::ModeAck {
            mode: read_mode(r)?,
            data_port: r.u16_be()?,
            max_frame_bytes: r.u32_be()?,
            epoch: r.u32_be()?,
        },
        ty::MODE_REFUSED => Message::ModeRefused {
            reason: read_string(r)?,
        },
        ty::REQUEST_IDR => Message::RequestIdr,
        ty::LOSS => Message::Loss(LossReport {
            interval_ms: r.u32_be()?,
            packets_expected: r.u32_be()?,
            packets_lost: r.u32_be()?,
            frames_delivered: r.u32_be()?,
            frames_lost: r.u32_be()?,
            frames_recovered: r.u32_be()?,
        }),
        ty::LATENCY => Message::Latency(LatencyReport {
            p50_us: r.u32_be()?,
            p99_us: r.u32_be()?,
        }),
        ty::INPUT => Message::Input(read_input(r)?),
        ty::GOODBYE => Message::Goodbye {
            reason: read_string(r)?,
        },
        other => return Err(ControlError::UnknownType(other)),
    };
    if r.remaining() > 0 {
        return Err(ControlError::Trailing(r.remaining()));
    }
    Ok(msg)
}
