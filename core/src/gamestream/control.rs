//! Control-stream messages inside the encrypted 0x0001 wrapper (moonlight-common-c
//! `ControlStream.c`, Sunshine `stream.cpp`): what the client sends, decoded, and what
//! the host sends back, encoded. Integers are little-endian unless noted.

use thiserror::Error;

use super::input::{self, InputError, InputEvent};
use crate::wire::{Reader, WireError};

/// Message types.
pub mod types {
    /// IDR request (also the client's first message, "Start A").
    pub const REQUEST_IDR: u16 = 0x0302;
    /// "Start B".
    pub const START_B: u16 = 0x0307;
    /// Reference-frame invalidation.
    pub const INVALIDATE_REFS: u16 = 0x0301;
    /// Long-term reference frame acknowledgement.
    pub const LTR_ACK: u16 = 0x0350;
    /// Periodic ping, every 100 ms.
    pub const PING: u16 = 0x0200;
    /// Legacy loss statistics.
    pub const LOSS_STATS: u16 = 0x0201;
    /// Frame FEC status (client to host; big-endian fields).
    pub const FEC_STATUS: u16 = 0x5502;
    /// Input.
    pub const INPUT: u16 = 0x0206;
    /// Rumble (host to client).
    pub const RUMBLE: u16 = 0x010b;
    /// Termination (both directions).
    pub const TERMINATION: u16 = 0x0109;
    /// HDR mode (host to client).
    pub const HDR_MODE: u16 = 0x010e;
    /// Trigger rumble (host to client).
    pub const RUMBLE_TRIGGERS: u16 = 0x5500;
}

/// The termination code for a graceful end (`NVST_DISCONN_SERVER_TERMINATED_CLOSED`).
pub const TERMINATION_GRACEFUL: u32 = 0x8003_0023;

/// Why a control message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ControlError {
    /// A field ran past the end.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A malformed input packet.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A reference-frame range that runs backwards.
    #[error("invalid reference-frame invalidation range")]
    BadRange,
}

/// Per-frame FEC statistics the client reports after a recovery or a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FecStatus {
    /// Frame number.
    pub frame: u32,
    /// Packets of the block missing below the highest one received: the loss the
    /// block saw (the client reports when it had to repair, so this is what FEC
    /// absorbed).
    pub missing: u16,
    /// Data packets in the block.
    pub data_packets: u16,
    /// Parity packets in the block.
    pub parity_packets: u16,
    /// Data packets that arrived.
    pub received_data: u16,
    /// Parity packets that arrived.
    pub received_parity: u16,
}

/// A message from the client, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// Send an IDR frame next.
    RequestIdr,
    /// The client's second start message.
    StartB,
    /// Frames `first..=last` were lost: invalidate references or send an IDR.
    InvalidateRefs {
        /// First lost frame.
        first: u64,
        /// Last lost frame.
        last: u64,
    },
    /// The client decoded a long-term reference frame.
    LtrAck {
        /// Its frame number.
        frame: u32,
    },
    /// Keep-alive.
    Ping,
    /// FEC statistics.
    FecStatus(FecStatus),
    /// An input event (`None`: a kind this host ignores).
    Input(Option<InputEvent>),
    /// The client ends the stream.
    Termination,
    /// Any other type, ignored.
    Other(u16),
}

/// Decodes a client message of `msg_type`.
pub fn parse(msg_type: u16, payload: &[u8]) -> Result<ClientMessage, ControlError> {
    let mut r = Reader::new(payload);
    Ok(match msg_type {
        types::REQUEST_IDR => ClientMessage::RequestIdr,
        types::START_B => ClientMessage::StartB,
        types::INVALIDATE_REFS => {
            // Sunshine reads two LE64s: first, last (the u32 + reserved layout).
            let first = u64::from_le_bytes(r.array()?);
            let last = u64::from_le_bytes(r.array()?);
            if last < first {
                return Err(ControlError::BadRange);
            }
            ClientMessage::InvalidateRefs { first, last }
        }
        types::LTR_ACK => ClientMessage::LtrAck { frame: r.u32_le()? },
        types::PING | types::LOSS_STATS => ClientMessage::Ping,
        types::FEC_STATUS => {
            let frame = r.u32_be()?;
            r.skip(4)?; // highest received, next contiguous sequence numbers
            let missing = r.u16_be()?;
            let data_packets = r.u16_be()?;
            let parity_packets = r.u16_be()?;
            let received_data = r.u16_be()?;
            let received_parity = r.u16_be()?;
            ClientMessage::FecStatus(FecStatus {
                frame,
                missing,
                data_packets,
                parity_packets,
                received_data,
                received_parity,
            })
        }
        types::INPUT => ClientMessage::Input(input::parse(payload)?),
        types::TERMINATION => ClientMessage::Termination,
        other => ClientMessage::Other(other),
    })
}

/// Rumble for `controller`: `(type, payload)`.
pub fn rumble(controller: u16, low_freq: u16, high_freq: u16) -> (u16, Vec<u8>) {
    let mut p = Vec::with_capacity(10);
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(&controller.to_le_bytes());
    p.extend_from_slice(&low_freq.to_le_bytes());
    p.extend_from_slice(&high_freq.to_le_bytes());
    (types::RUMBLE, p)
}

/// Termination with a big-endian HRESULT-style code: `(type, payload)`.
pub fn termination(code: u32) -> (u16, Vec<u8>) {
    (types::TERMINATION, code.to_be_bytes().to_vec())
}

/// HDR mode on or off (no metadata): `(type, payload)`.
pub fn hdr_mode(enabled: bool) -> (u16, Vec<u8>) {
    let mut p = vec![u8::from(enabled)];
    p.extend_from_slice(&[0u8; 26]);
    (types::HDR_MODE, p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn client_messages_decode() {
        assert_eq!(
            parse(types::REQUEST_IDR, &[0, 0]).unwrap(),
            ClientMessage::RequestIdr
        );
        assert_eq!(parse(types::START_B, &[0]).unwrap(), ClientMessage::StartB);
        let mut rfi = Vec::new();
        rfi.extend_from_slice(&5u32.to_le_bytes());
        rfi.extend_from_slice(&0u32.to_le_bytes());
        rfi.extend_from_slice(&9u32.to_le_bytes());
        rfi.extend_from_slice(&[0; 12]);
        assert_eq!(
            parse(types::INVALIDATE_REFS, &rfi).unwrap(),
            ClientMessage::InvalidateRefs { first: 5, last: 9 }
        );
        let mut back = rfi.clone();
        back[0] = 50;
        assert_eq!(
            parse(types::INVALIDATE_REFS, &back),
            Err(ControlError::BadRange)
        );
        let fec = [
            0, 0, 0, 42, 0, 9, 0, 5, 0, 1, 0, 10, 0, 2, 0, 9, 0, 2, 20, 0, 1,
        ];
        assert_eq!(
            parse(types::FEC_STATUS, &fec).unwrap(),
            ClientMessage::FecStatus(FecStatus {
                frame: 42,
                missing: 1,
                data_packets: 10,
                parity_packets: 2,
                received_data: 9,
                received_parity: 2
            })
        );
        assert_eq!(
            parse(types::PING, &[4, 0, 0, 0, 0, 0, 0xAB, 0xCD]).unwrap(),
            ClientMessage::Ping
        );
        assert_eq!(parse(0x7777, &[]).unwrap(), ClientMessage::Other(0x7777));
        assert!(parse(types::INVALIDATE_REFS, &[1, 2]).is_err());
    }

    #[test]
    fn host_messages_encode() {
        assert_eq!(
            rumble(1, 0x8000, 0xFFFF),
            (0x010b, vec![0, 0, 0, 0, 1, 0, 0, 0x80, 0xFF, 0xFF])
        );
        assert_eq!(
            termination(TERMINATION_GRACEFUL),
            (0x0109, vec![0x80, 0x03, 0x00, 0x23])
        );
        assert_eq!(hdr_mode(true).1.len(), 27);
    }

    proptest! {
        #[test]
        fn arbitrary_messages_never_panic(t in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(t, &payload);
        }

        #[test]
        fn fec_status_reads_its_fields_whatever_follows(
            frame in any::<u32>(), missing in any::<u16>(), data in any::<u16>(),
            parity in any::<u16>(), tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut p = frame.to_be_bytes().to_vec();
            p.extend_from_slice(&[0, 9, 0, 5]);
            p.extend_from_slice(&missing.to_be_bytes());
            p.extend_from_slice(&data.to_be_bytes());
            p.extend_from_slice(&parity.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 0]);
            p.extend_from_slice(&tail);
            match parse(types::FEC_STATUS, &p) {
                Ok(ClientMessage::FecStatus(s)) => {
                    prop_assert_eq!((s.frame, s.missing, s.data_packets, s.parity_packets), (frame, missing, data, parity));
                }
                other => prop_assert!(false, "{:?}", other),
            }
            // Any truncation is an error, never a panic or a wrong value.
            for cut in 0..18 {
                prop_assert!(parse(types::FEC_STATUS, &p[..cut]).is_err());
            }
        }

        #[test]
        fn known_types_with_arbitrary_payloads_never_panic(
            t in prop::sample::select(vec![0x0302u16, 0x0307, 0x0301, 0x0350, 0x0200, 0x0201, 0x5502, 0x0206, 0x0109]),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let _ = parse(t, &payload);
        }
    }
}
