//! The 12-byte RTP header GameStream puts on every video and audio packet
//! (moonlight-common-c `Video.h` `RTP_PACKET`; big-endian fields).

use crate::wire::{Reader, WireError, Writer};

/// RTP version 2, no padding, no CSRCs.
pub const RTP_VERSION_BITS: u8 = 0x80;
/// The extension bit: GameStream video always sets it and follows the header with 4
/// reserved bytes (`FLAG_EXTENSION`).
pub const RTP_EXTENSION: u8 = 0x10;
/// Size of the fixed header.
pub const RTP_HEADER_LEN: usize = 12;

/// A parsed RTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpHeader {
    /// Version, padding, extension and CSRC-count bits.
    pub flags: u8,
    /// Payload type (the marker bit is never used by GameStream).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source (0 on every GameStream stream).
    pub ssrc: u32,
}

impl RtpHeader {
    /// Reads a header.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            flags: r.u8()?,
            payload_type: r.u8()?,
            sequence: r.u16_be()?,
            timestamp: r.u32_be()?,
            ssrc: r.u32_be()?,
        })
    }

    /// Writes the header.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.u8(self.flags)?;
        w.u8(self.payload_type)?;
        w.u16_be(self.sequence)?;
        w.u32_be(self.timestamp)?;
        w.u32_be(self.ssrc)
    }

    /// Writes the header into the first 12 bytes of `buf`.
    pub fn write_to(&self, buf: &mut [u8]) -> Result<(), WireError> {
        self.write(&mut Writer::new(buf))
    }
}

/// `a` comes before `b` in 16-bit sequence space (moonlight-common-c `isBefore16`).
pub fn seq_before(a: u16, b: u16) -> bool {
    (a.wrapping_sub(b) as i16) < 0
}

/// `a` comes before `b` in 32-bit frame-number space.
pub fn frame_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
