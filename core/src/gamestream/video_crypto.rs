//! Encrypted video (`SS_ENC_VIDEO`, moonlight-common-c `Video.h` `ENC_VIDEO_HEADER`,
//! `VideoStream.c`): every packet, after FEC, is sealed whole with AES-128-GCM under
//! the launch key and sent behind a 32-byte prefix: the 12-byte IV, the frame number
//! (little-endian; the client drops packets of frames older than the one it is
//! assembling) and the 16-byte tag. The client decrypts before FEC recovery, so
//! parity is computed over the plaintext packets.
//!
//! The IV is the host's own choice; this host counts it up from 0 per stream with
//! `V` in byte 11 ([`IvLayout::VIDEO`]), so an IV never repeats under one key.

use crate::crypto::gcm::{GcmSealer, IvLayout};
use crate::crypto::{CryptoError, GCM_TAG_LEN};

/// Bytes before each encrypted packet: IV, frame number, tag.
pub const PREFIX_LEN: usize = 12 + 4 + GCM_TAG_LEN;

/// Seals the video packets of one stream.
#[derive(Debug)]
pub struct VideoSealer {
    sealer: GcmSealer,
}

impl VideoSealer {
    /// A sealer under the launch key (`rikey`).
    pub fn new(key: &[u8]) -> Result<Self, CryptoError> {
        Ok(Self {
            sealer: GcmSealer::new(key, IvLayout::VIDEO, 0)?,
        })
    }

    /// Encrypts the packets of frame `frame` (`packets`, `len` bytes each, as a
    /// [`PacketRun`](super::video::PacketRun) holds them) into `out`, replacing
    /// what was there; the packets in `out` are `len + PREFIX_LEN` bytes apart. `out`
    /// keeps its capacity, so a stream allocates only while its frames grow.
    pub fn seal_batch(
        &mut self,
        packets: &[u8],
        len: usize,
        frame: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        out.clear();
        for plain in packets.chunks_exact(len.max(1)) {
            let start = out.len();
            out.resize(start + PREFIX_LEN, 0);
            out.extend_from_slice(plain);
            let (counter, tag) = self.sealer.seal(&[], &mut out[start + PREFIX_LEN..])?;
            let iv = IvLayout::VIDEO.iv(counter)?;
            out[start..start + 12].copy_from_slice(&iv);
            out[start + 12..start + 16].copy_from_slice(&frame.to_le_bytes());
            out[start + 16..start + PREFIX_LEN].copy_from_slice(&tag);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::gcm::GcmKey;

    #[test]
    fn each_packet_opens_with_its_prefix_and_ivs_never_repeat() {
        let key = [9u8; 16];
        let packets: Vec<u8> = (0..3u8).flat_map(|i| [i; 40]).collect();
        let mut sealer = VideoSealer::new(&key).unwrap();
        let mut out = Vec::new();
        sealer.seal_batch(&packets, 40, 77, &mut out).unwrap();
        assert_eq!(out.len(), 3 * (40 + PREFIX_LEN));
        let opener = GcmKey::new(&key).unwrap();
        let mut ivs = Vec::new();
        for (i, packet) in out.chunks_exact(40 + PREFIX_LEN).enumerate() {
            let iv: [u8; 12] = packet[..12].try_into().unwrap();
            assert_eq!(iv[11], b'V');
            assert_eq!(u32::from_le_bytes(packet[12..16].try_into().unwrap()), 77);
            let mut body = packet[PREFIX_LEN..].to_vec();
            assert_ne!(body, vec![i as u8; 40], "encrypted");
            opener.open(iv, &[], &mut body, &packet[16..32]).unwrap();
            assert_eq!(body, vec![i as u8; 40]);
            ivs.push(iv);
        }
        // The next frame continues the count.
        sealer.seal_batch(&packets, 40, 78, &mut out).unwrap();
        ivs.push(out[..12].try_into().unwrap());
        ivs.sort();
        ivs.dedup();
        assert_eq!(ivs.len(), 4);
        // A flipped bit fails authentication.
        let mut body = out[PREFIX_LEN..PREFIX_LEN + 40].to_vec();
        body[0] ^= 1;
        let iv: [u8; 12] = out[..12].try_into().unwrap();
        assert!(opener.open(iv, &[], &mut body, &out[16..32]).is_err());
    }
}
