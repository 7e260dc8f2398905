//! Field-level encoding of control messages (see the parent module for the framing).

use super::input::{input, read_input};
use super::{
    CONTROL_VERSION, Capabilities, Codec, ControlError, FRAME_HEADER, LatencyReport, LossReport,
    MAX_PAYLOAD, MAX_STRING, Message, Mode, PairFailure, ty,
};
use crate::wire::Reader;

/// A growable big-endian writer.
pub(super) struct Out<'a>(pub(super) &'a mut Vec<u8>);

impl Out<'_> {
    pub(super) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(super) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(super) fn i16(&mut self, v: i16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(super) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(super) fn f32(&mut self, v: f32) {
        self.u32(v.to_bits());
    }
    pub(super) fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    pub(super) fn bytes(&mut self, v: &[u8]) -> Result<(), ControlError> {
        let len = u16::try_from(v.len()).map_err(|_| ControlError::TooLong(v.len()))?;
        self.u16(len);
        self.0.extend_from_slice(v);
        Ok(())
    }
    pub(super) fn string(&mut self, v: &str) -> Result<(), ControlError> {
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

pub(super) fn read_bool(r: &mut Reader<'_>) -> Result<bool, ControlError> {
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

pub(super) fn read_string(r: &mut Reader<'_>) -> Result<String, ControlError> {
    let b = read_bytes(r)?;
    if b.len() > MAX_STRING {
        return Err(ControlError::Invalid("string field too long"));
    }
    String::from_utf8(b.to_vec()).map_err(|_| ControlError::Invalid("string is not UTF-8"))
}

pub(super) fn read_i16(r: &mut Reader<'_>) -> Result<i16, ControlError> {
    Ok(r.i16_be()?)
}

pub(super) fn read_f32(r: &mut Reader<'_>) -> Result<f32, ControlError> {
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
