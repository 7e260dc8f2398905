//! Encrypted RTSP framing, used when the launch answered `rtspenc://`
//! (moonlight-common-c `RtspConnection.c` `ENC_RTSP_HEADER`; Sunshine `rtsp.cpp`
//! `encrypted_rtsp_header_t`).
//!
//! Each message is `BE32 (0x80000000 | length)`, `BE32 sequence`, a 16-byte GCM tag,
//! then `length` bytes of ciphertext, keyed with the launch key. The IV is the
//! little-endian sequence number with `C R` (client) or `H R` (host) in bytes 10 and
//! 11; the client starts at 1, and so does the host.

use thiserror::Error;

use crate::crypto::gcm::{GcmOpener, GcmSealer, IvLayout};
use crate::crypto::{CryptoError, GCM_TAG_LEN};
use crate::wire::{Reader, WireError};

/// Set in `typeAndLength` of every encrypted message.
pub const ENCRYPTED_BIT: u32 = 0x8000_0000;
/// Bytes before the ciphertext.
pub const HEADER_LEN: usize = 4 + 4 + GCM_TAG_LEN;
/// Longest message accepted; RTSP messages in a GameStream handshake are a few KB.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Why an encrypted RTSP message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtspFramingError {
    /// A field ran past the end of the input.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The message lacks the encrypted bit: plaintext on an encrypted session.
    #[error("unencrypted RTSP message on an encrypted session")]
    NotEncrypted,
    /// The announced length is over [`MAX_MESSAGE`].
    #[error("encrypted RTSP message of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// Authentication failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// The fixed header of an encrypted RTSP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptedHeader {
    /// Ciphertext bytes that follow the header.
    pub len: usize,
    /// Sequence number (the IV counter).
    pub seq: u32,
    /// GCM tag.
    pub tag: [u8; GCM_TAG_LEN],
}

impl EncryptedHeader {
    /// Parses the 24-byte header; the caller then reads `len` more bytes.
    pub fn parse(header: &[u8]) -> Result<Self, RtspFramingError> {
        let mut r = Reader::new(header);
        let type_and_len = r.u32_be()?;
        if type_and_len & ENCRYPTED_BIT == 0 {
            return Err(RtspFramingError::NotEncrypted);
        }
        let len = (type_and_len & !ENCRYPTED_BIT) as usize;
        if len > MAX_MESSAGE {
            return Err(RtspFramingError::TooLong(len));
        }
        let seq = r.u32_be()?;
        let tag = r.array()?;
        Ok(Self { len, seq, tag })
    }
}

/// Whether `first_byte` starts an encrypted message (plaintext RTSP starts with a
/// letter).
pub fn is_encrypted(first_byte: u8) -> bool {
    first_byte & 0x80 != 0
}

/// One direction of an encrypted RTSP session.
#[derive(Debug)]
pub struct RtspCrypto {
    sealer: GcmSealer,
    opener: GcmOpener,
}

impl RtspCrypto {
    /// The host's side: seals with `HR`, opens the client's `CR`.
    pub fn host(key: &[u8]) -> Result<Self, RtspFramingError> {
        Ok(Self {
            sealer: GcmSealer::new(key, IvLayout::RTSP_HOST, 1)?,
            opener: GcmOpener::new(key, IvLayout::RTSP_CLIENT)?,
        })
    }

    /// The client's side, for tests and the reference client.
    pub fn client(key: &[u8]) -> Result<Self, RtspFramingError> {
        Ok(Self {
            sealer: GcmSealer::new(key, IvLayout::RTSP_CLIENT, 1)?,
            opener: GcmOpener::new(key, IvLayout::RTSP_HOST)?,
        })
    }

    /// Frames and encrypts `plaintext`, appending the message to `out`.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), RtspFramingError> {
        if plaintext.len() > MAX_MESSAGE {
            return Err(RtspFramingError::TooLong(plaintext.len()));
        }
        let start = out.len();
        out.extend_from_slice(&(ENCRYPTED_BIT | plaintext.len() as u32).to_be_bytes());
        out.extend_from_slice(&[0; 4 + GCM_TAG_LEN]);
        out.extend_from_slice(plaintext);
        let (seq, tag) = self.sealer.seal(&[], &mut out[start + HEADER_LEN..])?;
        out[start + 4..start + 8].copy_from_slice(&(seq as u32).to_be_bytes());
        out[start + 8..start + HEADER_LEN].copy_from_slice(&tag);
        Ok(())
    }

    /// Decrypts the ciphertext that followed `header`, in place.
    pub fn open(
        &self,
        header: &EncryptedHeader,
        ciphertext: &mut [u8],
    ) -> Result<(), RtspFramingError> {
        if ciphertext.len() != header.len {
            return Err(RtspFramingError::Wire(WireError::Truncated {
                offset: HEADER_LEN,
                needed: header.len,
                available: ciphertext.len(),
            }));
        }
        self.opener
            .open(u64::from(header.seq), &[], ciphertext, &header.tag)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn client_request_opens_on_host_and_reply_on_client() {
        let key = [3u8; 16];
        let mut client = RtspCrypto::client(&key).unwrap();
        let mut host = RtspCrypto::host(&key).unwrap();
        let req = b"OPTIONS rtsp://127.0.0.1:48010 RTSP/1.0\r\nCSeq: 1\r\n\r\n";
        let mut wire = Vec::new();
        client.seal(req, &mut wire).unwrap();
        assert_eq!(
            &wire[..4],
            &(0x8000_0000u32 | req.len() as u32).to_be_bytes()
        );
        assert_eq!(&wire[4..8], &1u32.to_be_bytes(), "the client starts at 1");
        let h = EncryptedHeader::parse(&wire[..HEADER_LEN]).unwrap();
        let mut body = wire[HEADER_LEN..].to_vec();
        host.open(&h, &mut body).unwrap();
        assert_eq!(&body, req);

        let mut reply = Vec::new();
        host.seal(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n", &mut reply)
            .unwrap();
        let h = EncryptedHeader::parse(&reply[..HEADER_LEN]).unwrap();
        let mut body = reply[HEADER_LEN..].to_vec();
        // The host's own opener refuses its own messages (different IV tag).
        assert!(host.open(&h, &mut body.clone()).is_err());
        client.open(&h, &mut body).unwrap();
        assert!(body.starts_with(b"RTSP/1.0 200 OK"));
    }

    #[test]
    fn plaintext_and_oversized_headers_are_refused() {
        assert!(!is_encrypted(b'O'));
        assert_eq!(
            EncryptedHeader::parse(b"OPTIONS rtsp://x RTSP/1.0"),
            Err(RtspFramingError::NotEncrypted)
        );
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&(ENCRYPTED_BIT | 1_000_000).to_be_bytes());
        assert_eq!(
            EncryptedHeader::parse(&h),
            Err(RtspFramingError::TooLong(1_000_000))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = EncryptedHeader::parse(&bytes);
            if let Ok(h) = EncryptedHeader::parse(&bytes) {
                let host = RtspCrypto::host(&[1; 16]).unwrap();
                let mut body = bytes.get(HEADER_LEN..).unwrap_or(&[]).to_vec();
                prop_assert!(host.open(&h, &mut body).is_err());
            }
        }
    }
}
