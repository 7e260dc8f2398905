//! punktfunk/1 control messages: what host and client say to each other on the QUIC
//! control stream.
//!
//! Every message is framed as
//!
//! ```text
//! offset size field
//!  0     1    version (1)
//!  1     1    message type
//!  2     2    payload length, BE (at most [`MAX_PAYLOAD`])
//!  4     ..   payload
//! ```
//!
//! so a receiver knows where a message ends before it parses it, skips nothing it does
//! not understand silently, and can refuse an oversized message before buffering it.
//! Payload integers are big-endian; strings and byte strings carry a u16 length.
//! [`MessageDecoder`] is the sans-IO stream side: push the bytes a stream delivered,
//! pull whole messages out. Parsing never panics on any input (property-tested below).
//!
//! Input events reuse [`InputEvent`], the protocol-neutral event the GameStream path
//! already feeds into the input sink (it lives in `gamestream::input` for historical
//! reasons; both protocols produce the same type).

use thiserror::Error;

use crate::gamestream::input::InputEvent;
use crate::wire::{Reader, WireError};

/// Control protocol version this code speaks.
pub const CONTROL_VERSION: u8 = 1;
/// Framing bytes before a payload.
pub const FRAME_HEADER: usize = 4;
/// Largest payload a message may carry.
pub const MAX_PAYLOAD: usize = 16 * 1024;
/// Longest string field (names, reasons, text input).
pub const MAX_STRING: usize = 1024;

/// Why bytes did not make a message. Each is counted by the receiver; the
/// connection is closed because the stream can no longer be trusted to be in sync.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ControlError {
    /// A field ran past the end of the payload.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A version this code does not speak.
    #[error("unsupported control protocol version {0}")]
    Version(u8),
    /// An unknown message type.
    #[error("unknown control message type {0:#04x}")]
    UnknownType(u8),
    /// The length prefix exceeds [`MAX_PAYLOAD`].
    #[error("control message of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// The payload has bytes left after its last field.
    #[error("{0} trailing bytes after a control message")]
    Trailing(usize),
    /// A field holds a value outside its range.
    #[error("invalid control message: {0}")]
    Invalid(&'static str),
}

/// Video codecs, as a bit set in [`Capabilities::codecs`] and a value in [`Mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Codec {
    /// H.264 / AVC.
    H264 = 1,
    /// H.265 / HEVC.
    H265 = 2,
    /// AV1.
    Av1 = 4,
}

impl From<Codec> for crate::codec::VideoCodec {
    fn from(c: Codec) -> Self {
        match c {
            Codec::H264 => Self::H264,
            Codec::H265 => Self::Hevc,
            Codec::Av1 => Self::Av1,
        }
    }
}

impl Codec {
    fn from_u8(v: u8) -> Result<Self, ControlError> {
        match v {
            1 => Ok(Codec::H264),
            2 => Ok(Codec::H265),
            4 => Ok(Codec::Av1),
            _ => Err(ControlError::Invalid("unknown codec")),
        }
    }
}

/// What one side can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Bit set of [`Codec`] values.
    pub codecs: u8,
    /// Largest width.
    pub max_width: u16,
    /// Largest height.
    pub max_height: u16,
    /// Highest frame rate.
    pub max_fps: u16,
    /// Highest bitrate, kbit/s.
    pub max_bitrate_kbps: u32,
}

/// A stream mode: what the encoder produces and how the data plane protects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Codec.
    pub codec: Codec,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Frames per second.
    pub fps: u16,
    /// Bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Parity shards as a percentage of data shards (the starting point; adaptive FEC
    /// moves it within the host's bounds).
    pub fec_percent: u8,
}

/// Why pairing ended without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PairFailure {
    /// The PIN did not match.
    WrongPin = 1,
    /// Pairing is not armed on the host.
    NotArmed = 2,
    /// Too many wrong PINs: pairing is locked for a while.
    LockedOut = 3,
    /// Something else (store failure, protocol error).
    Other = 4,
}

impl PairFailure {
    fn from_u8(v: u8) -> Result<Self, ControlError> {
        match v {
            1 => Ok(Self::WrongPin),
            2 => Ok(Self::NotArmed),
            3 => Ok(Self::LockedOut),
            4 => Ok(Self::Other),
            _ => Err(ControlError::Invalid("unknown pairing failure")),
        }
    }
}

/// Loss counts over one report interval, sent by the client; adaptive FEC follows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LossReport {
    /// Milliseconds the report covers.
    pub interval_ms: u32,
    /// Data packets the client expected (from the frames' shard counts).
    pub packets_expected: u32,
    /// Of those, packets that never arrived.
    pub packets_lost: u32,
    /// Frames delivered.
    pub frames_delivered: u32,
    /// Frames dropped unrecoverable.
    pub frames_lost: u32,
    /// Frames that needed parity.
    pub frames_recovered: u32,
}

/// Frame latency percentiles the client measured, microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencyReport {
    /// Median capture-to-reassembled.
    pub p50_us: u32,
    /// 99th percentile capture-to-reassembled.
    pub p99_us: u32,
}

/// A control message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Client, first: who it is and what it can do.
    Hello {
        /// Device name, shown in the console once paired.
        name: String,
        /// What the client can decode.
        caps: Capabilities,
    },
    /// Host, in answer to `Hello`.
    HostHello {
        /// Host name.
        name: String,
        /// Whether the client's certificate is already paired.
        paired: bool,
        /// Whether the host accepts unpaired clients on first use (opt-in).
        tofu: bool,
        /// What the host can encode.
        caps: Capabilities,
    },
    /// Client: SPAKE2 message A (the PIN entered by the user stays on the client).
    PairStart {
        /// SPAKE2 outbound message.
        spake: Vec<u8>,
    },
    /// Host: SPAKE2 message B and the host's key confirmation.
    PairReply {
        /// SPAKE2 outbound message.
        spake: Vec<u8>,
        /// HMAC proving the host derived the same key.
        confirm: [u8; 32],
    },
    /// Client: its key confirmation.
    PairConfirm {
        /// HMAC proving the client derived the same key.
        confirm: [u8; 32],
    },
    /// Host: pairing succeeded; the client's certificate is now pinned.
    PairOk,
    /// Host: pairing failed.
    PairFailed {
        /// Why.
        reason: PairFailure,
    },
    /// Client: the mode it wants (at start, or later to renegotiate mid-stream).
    ModeRequest(Mode),
    /// Host: the mode it will stream (possibly clamped from the request), the data
    /// plane's UDP port, and the largest frame it will send.
    ModeAck {
        /// The mode in effect.
        mode: Mode,
        /// UDP port of the data plane on the host.
        data_port: u16,
        /// Largest frame the host sends in this mode, bytes (sizes reassembly).
        max_frame_bytes: u32,
        /// Increments with each renegotiation; data packets of an older epoch are stale.
        epoch: u32,
    },
    /// Host: the requested mode cannot be served.
    ModeRefused {
        /// Why, for the user.
        reason: String,
    },
    /// Client: the decoder lost a reference; send a keyframe.
    RequestIdr,
    /// Client: loss over the last interval.
    Loss(LossReport),
    /// Client: latency over the last interval.
    Latency(LatencyReport),
    /// Client: an input event.
    Input(InputEvent),
    /// Either side: the session ends.
    Goodbye {
        /// Why, for the user.
        reason: String,
    },
}

mod ty {
    pub const HELLO: u8 = 0x01;
    pub const HOST_HELLO: u8 = 0x02;
    pub const PAIR_START: u8 = 0x10;
    pub const PAIR_REPLY: u8 = 0x11;
    pub const PAIR_CONFIRM: u8 = 0x12;
    pub const PAIR_OK: u8 = 0x13;
    pub const PAIR_FAILED: u8 = 0x14;
    pub const MODE_REQUEST: u8 = 0x20;
    pub const MODE_ACK: u8 = 0x21;
    pub const MODE_REFUSED: u8 = 0x22;
    pub const REQUEST_IDR: u8 = 0x30;
    pub const LOSS: u8 = 0x31;
    pub const LATENCY: u8 = 0x32;
    pub const INPUT: u8 = 0x40;
    pub const GOODBYE: u8 = 0x7f;
}

mod codec;
mod input;

impl Message {
    /// Appends the framed message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), ControlError> {
        codec::encode(self, out)
    }

    /// The framed message as a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ControlError> {
        let mut v = Vec::new();
        self.encode(&mut v)?;
        Ok(v)
    }

    /// Parses one framed message from the front of `buf`; returns it and the bytes
    /// used, or `Ok(None)` when `buf` does not hold a whole message yet.
    pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, ControlError> {
        if buf.len() < FRAME_HEADER {
            // Refuse a bad version as early as the first byte.
            if let Some(&v) = buf.first()
                && v != CONTROL_VERSION
            {
                return Err(ControlError::Version(v));
            }
            return Ok(None);
        }
        let mut r = Reader::new(buf);
        let version = r.u8()?;
        if version != CONTROL_VERSION {
            return Err(ControlError::Version(version));
        }
        let ty = r.u8()?;
        let len = usize::from(r.u16_be()?);
        if len > MAX_PAYLOAD {
            return Err(ControlError::TooLong(len));
        }
        if r.remaining() < len {
            return Ok(None);
        }
        let payload = r.bytes(len)?;
        let msg = codec::decode_payload(ty, payload)?;
        Ok(Some((msg, FRAME_HEADER + len)))
    }
}

/// Reassembles messages from a byte stream, with a bounded buffer.
#[derive(Debug, Default)]
pub struct MessageDecoder {
    buf: Vec<u8>,
}

impl MessageDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes a stream delivered.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `Ok(None)` if more bytes are needed. After an error the
    /// stream is out of sync; the caller closes it.
    pub fn next_message(&mut self) -> Result<Option<Message>, ControlError> {
        match Message::decode(&self.buf)? {
            Some((msg, used)) => {
                self.buf.drain(..used);
                Ok(Some(msg))
            }
            None => Ok(None),
        }
    }

    /// Bytes buffered but not yet a message (at most one frame's worth).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests;
