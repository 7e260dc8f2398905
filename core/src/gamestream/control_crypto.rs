//! The encrypted control-stream wrapper, message type 0x0001 (moonlight-common-c
//! `ControlStream.c` `NVCTL_ENCRYPTED_PACKET_HEADER`; Sunshine `stream.cpp`
//! `control_encrypted_t`). Used for every control message once the host announces
//! 7.1.431 or later and the client enables `SS_ENC_CONTROL_V2`.
//!
//! Layout, little-endian: `0x0001` | length (= 4 + 16 + plaintext) | seq (u32) |
//! GCM tag (16) | ciphertext of { type (u16), payload length (u16), payload }.
//! The IV is the 12-byte [`IvLayout::CONTROL_CLIENT`] / [`IvLayout::CONTROL_HOST`]
//! layout over `seq`.

use thiserror::Error;

use crate::crypto::gcm::{GcmOpener, GcmSealer, IvLayout};
use crate::crypto::{CryptoError, GCM_TAG_LEN};
use crate::wire::{Reader, WireError};

/// Message type of the encrypted wrapper.
pub const ENCRYPTED_TYPE: u16 = 0x0001;
/// Bytes before the ciphertext: type, length, seq, tag.
pub const ENCRYPTED_HEADER_LEN: usize = 2 + 2 + 4 + GCM_TAG_LEN;
/// The inner header: type and payload length.
pub const INNER_HEADER_LEN: usize = 4;

/// Why a control message could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ControlCryptoError {
    /// A field ran past the end of the packet.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The packet is not a well-formed encrypted control message.
    #[error("malformed encrypted control message: {0}")]
    Malformed(&'static str),
    /// Decryption or authentication failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// A decrypted control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlMessage {
    /// The sender's sequence number (the IV counter).
    pub seq: u32,
    /// Message type (0x0206 input, 0x0302 IDR request, ...).
    pub msg_type: u16,
    /// The message body.
    pub payload: Vec<u8>,
}

/// Seals control messages the host sends (IV tag `HC`).
#[derive(Debug)]
pub struct ControlSealer(GcmSealer);

impl ControlSealer {
    /// A sealer under the launch key; host sequence numbers start at 0.
    pub fn host(key: &[u8]) -> Result<Self, ControlCryptoError> {
        Ok(Self(GcmSealer::new(key, IvLayout::CONTROL_HOST, 0)?))
    }

    /// A sealer for the client's direction (`CC`), for tests and the reference client.
    pub fn client(key: &[u8]) -> Result<Self, ControlCryptoError> {
        Ok(Self(GcmSealer::new(key, IvLayout::CONTROL_CLIENT, 0)?))
    }

    /// Writes the encrypted wrapper for `(msg_type, payload)` into `out`.
    pub fn seal(
        &mut self,
        msg_type: u16,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ControlCryptoError> {
        let inner_len = INNER_HEADER_LEN + payload.len();
        let outer_len = u16::try_from(4 + GCM_TAG_LEN + inner_len)
            .map_err(|_| ControlCryptoError::Malformed("control message too long"))?;
        let payload_len = u16::try_from(payload.len())
            .map_err(|_| ControlCryptoError::Malformed("control message too long"))?;
        out.clear();
        out.extend_from_slice(&ENCRYPTED_TYPE.to_le_bytes());
        out.extend_from_slice(&outer_len.to_le_bytes());
        out.extend_from_slice(&[0; 4 + GCM_TAG_LEN]);
        out.extend_from_slice(&msg_type.to_le_bytes());
        out.extend_from_slice(&payload_len.to_le_bytes());
        out.extend_from_slice(payload);
        let (seq, tag) = self.0.seal(&[], &mut out[ENCRYPTED_HEADER_LEN..])?;
        out[4..8].copy_from_slice(&(seq as u32).to_le_bytes());
        out[8..8 + GCM_TAG_LEN].copy_from_slice(&tag);
        Ok(())
    }
}

/// Opens control messages from the peer.
#[derive(Debug)]
pub struct ControlOpener(GcmOpener);

impl ControlOpener {
    /// Opens what the client sends (`CC`).
    pub fn from_client(key: &[u8]) -> Result<Self, ControlCryptoError> {
        Ok(Self(GcmOpener::new(key, IvLayout::CONTROL_CLIENT)?))
    }

    /// Opens what the host sends (`HC`), for tests and the reference client.
    pub fn from_host(key: &[u8]) -> Result<Self, ControlCryptoError> {
        Ok(Self(GcmOpener::new(key, IvLayout::CONTROL_HOST)?))
    }

    /// Decrypts one encrypted control packet. Never panics on any input.
    pub fn open(&self, packet: &[u8]) -> Result<ControlMessage, ControlCryptoError> {
        let mut r = Reader::new(packet);
        if r.u16_le()? != ENCRYPTED_TYPE {
            return Err(ControlCryptoError::Malformed(
                "not an encrypted control message",
            ));
        }
        let len = usize::from(r.u16_le()?);
        if len != r.remaining() {
            return Err(ControlCryptoError::Malformed(
                "length does not match the packet",
            ));
        }
        if len < 4 + GCM_TAG_LEN + INNER_HEADER_LEN {
            return Err(ControlCryptoError::Malformed(
                "encrypted control message too short",
            ));
        }
        let seq = r.u32_le()?;
        let tag = r.bytes(GCM_TAG_LEN)?;
        let mut plain = r.rest().to_vec();
        self.0.open(u64::from(seq), &[], &mut plain, tag)?;
        let mut inner = Reader::new(&plain);
        let msg_type = inner.u16_le()?;
        let payload_len = usize::from(inner.u16_le()?);
        if payload_len != inner.remaining() {
            return Err(ControlCryptoError::Malformed("inner length does not match"));
        }
        let payload = inner.rest().to_vec();
        Ok(ControlMessage {
            seq,
            msg_type,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 16] = [7; 16];

    #[test]
    fn client_message_roundtrips_and_layout_is_little_endian() {
        let mut client = ControlSealer::client(&KEY).unwrap();
        let host = ControlOpener::from_client(&KEY).unwrap();
        let mut pkt = Vec::new();
        for seq in 0..3u32 {
            client.seal(0x0302, &[1, 2, 3], &mut pkt).unwrap();
            assert_eq!(&pkt[..2], &[0x01, 0x00]);
            assert_eq!(u16::from_le_bytes([pkt[2], pkt[3]]) as usize, pkt.len() - 4);
            assert_eq!(u32::from_le_bytes(pkt[4..8].try_into().unwrap()), seq);
            let msg = host.open(&pkt).unwrap();
            assert_eq!(
                msg,
                ControlMessage {
                    seq,
                    msg_type: 0x0302,
                    payload: vec![1, 2, 3]
                }
            );
        }
        // A host-sealed message does not open as a client one: the IV tag differs.
        let mut h = ControlSealer::host(&KEY).unwrap();
        h.seal(0x0302, &[1, 2, 3], &mut pkt).unwrap();
        assert!(matches!(
            host.open(&pkt),
            Err(ControlCryptoError::Crypto(_))
        ));
        assert!(ControlOpener::from_host(&KEY).unwrap().open(&pkt).is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(pkt in proptest::collection::vec(any::<u8>(), 0..300)) {
            let host = ControlOpener::from_client(&KEY).unwrap();
            prop_assert!(host.open(&pkt).is_err());
        }

        #[test]
        fn any_bit_flip_is_rejected(byte in 0usize..31, bit in 0u8..8) {
            let mut client = ControlSealer::client(&KEY).unwrap();
            let mut pkt = Vec::new();
            client.seal(0x0206, &[9; 7], &mut pkt).unwrap();
            pkt[byte] ^= 1 << bit;
            prop_assert!(ControlOpener::from_client(&KEY).unwrap().open(&pkt).is_err());
        }
    }
}
