//! The punktfunk/1 data packet.
//!
//! ```text
//! offset size field
//!  0     1    version (1)
//!  1     1    kind (0 = video shard)
//!  2     1    flags (bit 0: keyframe)
//!  3     1    reserved, 0
//!  4     8    packet counter, BE (the GCM nonce counter; replay-checked)
//! 12     4    frame id, BE
//! 16     2    shard index, BE (data shards first, then parity)
//! 18     2    data shards k, BE
//! 20     2    parity shards m, BE
//! 22     4    frame length in bytes, BE (trims the last data shard's padding)
//! 26     ..   shard, encrypted
//! end-16 16   GCM tag over the shard, with bytes 0..26 as associated data
//! ```
//! All shards of a frame have the same length, so the shard length is the packet
//! length minus header and tag.

use thiserror::Error;

use crate::crypto::gcm::{GcmOpener, GcmSealer, IvLayout};
use crate::crypto::replay::{ReplayError, ReplayWindow};
use crate::crypto::{CryptoError, GCM_TAG_LEN};
use crate::wire::{Reader, WireError, Writer};

/// The protocol version this code speaks.
pub const VERSION: u8 = 1;
/// Header bytes before the shard.
pub const HEADER_LEN: usize = 26;
/// Header and tag: bytes a packet carries beyond its shard.
pub const OVERHEAD: usize = HEADER_LEN + GCM_TAG_LEN;
/// Most shards in one frame (GF(2^16) block limit).
pub const MAX_SHARDS: usize = 65535;

/// Packet kind: a shard of a video frame.
pub const KIND_VIDEO: u8 = 0;
/// Flag: the frame is a keyframe.
pub const FLAG_KEYFRAME: u8 = 0x01;

/// IV salt of packets the host sends: direction and plane, so the host's and the
/// client's counters can never produce the same nonce under a shared key.
pub const SALT_HOST_DATA: [u8; 4] = *b"pfHD";
/// IV salt of packets the client sends.
pub const SALT_CLIENT_DATA: [u8; 4] = *b"pfCD";

/// TLS exporter label of the data-plane keys: both ends of a QUIC connection export
/// 16 bytes with this label and a per-direction context, so the data plane's AES key
/// is tied to that authenticated session and never crosses the wire.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-punktfunk/1 data plane";
/// Exporter context of the host-to-client key.
pub const EXPORTER_HOST_TO_CLIENT: &[u8] = b"host to client";
/// Exporter context of the client-to-host key.
pub const EXPORTER_CLIENT_TO_HOST: &[u8] = b"client to host";
/// Packet kind: the client announcing its data address (an empty, sealed packet).
pub const KIND_ANNOUNCE: u8 = 1;

/// Why a native packet was refused. Every variant is counted and the packet dropped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NativeError {
    /// A field ran past the end of the packet.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A version this code does not speak.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// Header fields that contradict each other.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// Authentication failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A replayed or stale packet counter.
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

/// The header of a native data packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    /// Packet kind.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// The nonce counter.
    pub counter: u64,
    /// Frame id.
    pub frame_id: u32,
    /// Shard index within the frame.
    pub shard_index: u16,
    /// Data shards of the frame.
    pub data_shards: u16,
    /// Parity shards of the frame.
    pub parity_shards: u16,
    /// Frame length in bytes.
    pub frame_len: u32,
}

impl PacketHeader {
    /// Writes the header into `buf[..HEADER_LEN]`.
    pub fn write(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let mut w = Writer::new(buf);
        w.u8(VERSION)?;
        w.u8(self.kind)?;
        w.u8(self.flags)?;
        w.u8(0)?;
        w.u64_be(self.counter)?;
        w.u32_be(self.frame_id)?;
        w.u16_be(self.shard_index)?;
        w.u16_be(self.data_shards)?;
        w.u16_be(self.parity_shards)?;
        w.u32_be(self.frame_len)
    }

    /// Parses and validates a header. Never panics.
    pub fn parse(buf: &[u8]) -> Result<Self, NativeError> {
        let mut r = Reader::new(buf);
        let version = r.u8()?;
        if version != VERSION {
            return Err(NativeError::Version(version));
        }
        let kind = r.u8()?;
        let flags = r.u8()?;
        let _reserved = r.u8()?;
        let h = Self {
            kind,
            flags,
            counter: r.u64_be()?,
            frame_id: r.u32_be()?,
            shard_index: r.u16_be()?,
            data_shards: r.u16_be()?,
            parity_shards: r.u16_be()?,
            frame_len: r.u32_be()?,
        };
        let total = usize::from(h.data_shards) + usize::from(h.parity_shards);
        if h.data_shards == 0 {
            return Err(NativeError::Malformed("frame with no data shards"));
        }
        if total > MAX_SHARDS {
            return Err(NativeError::Malformed(
                "more shards than a GF(2^16) block holds",
            ));
        }
        if usize::from(h.shard_index) >= total {
            return Err(NativeError::Malformed("shard index outside the frame"));
        }
        if h.frame_len == 0 {
            return Err(NativeError::Malformed("empty frame"));
        }
        Ok(h)
    }

    /// Checks that the frame length fits `data_shards` shards of `shard_len` bytes.
    pub fn check_shard_len(&self, shard_len: usize) -> Result<(), NativeError> {
        let capacity = usize::from(self.data_shards) * shard_len;
        let min = (usize::from(self.data_shards) - 1) * shard_len;
        let len = self.frame_len as usize;
        if shard_len == 0 || len > capacity || len <= min {
            return Err(NativeError::Malformed(
                "frame length does not match its shards",
            ));
        }
        Ok(())
    }
}

/// Seals packets in place: the caller has written the header and shard into `packet`
/// (with `GCM_TAG_LEN` spare bytes at the end); this fills in the counter and the tag.
#[derive(Debug)]
pub struct PacketSealer {
    sealer: GcmSealer,
}

impl PacketSealer {
    /// A sealer for packets travelling in the direction `salt` names.
    pub fn new(key: &[u8], salt: [u8; 4]) -> Result<Self, NativeError> {
        Ok(Self {
            sealer: GcmSealer::new(key, IvLayout::SaltedBe64(salt), 0)?,
        })
    }

    /// The counter the next packet will carry.
    pub fn next_counter(&self) -> u64 {
        self.sealer.next_counter()
    }

    /// Seals `packet` (header, shard, tag space) in place.
    pub fn seal(&mut self, packet: &mut [u8]) -> Result<(), NativeError> {
        if packet.len() < OVERHEAD {
            return Err(NativeError::Malformed("packet shorter than its overhead"));
        }
        let counter = self.sealer.next_counter();
        packet[4..12].copy_from_slice(&counter.to_be_bytes());
        let (header, rest) = packet.split_at_mut(HEADER_LEN);
        let body_len = rest.len() - GCM_TAG_LEN;
        let (body, tag_out) = rest.split_at_mut(body_len);
        let (used, tag) = self.sealer.seal(header, body)?;
        debug_assert_eq!(used, counter);
        tag_out.copy_from_slice(&tag);
        Ok(())
    }
}

/// Opens packets in place and refuses replays.
#[derive(Debug)]
pub struct PacketOpener {
    opener: GcmOpener,
    replay: ReplayWindow,
}

impl PacketOpener {
    /// An opener for packets sealed with `salt`.
    pub fn new(key: &[u8], salt: [u8; 4]) -> Result<Self, NativeError> {
        Ok(Self {
            opener: GcmOpener::new(key, IvLayout::SaltedBe64(salt))?,
            replay: ReplayWindow::new(),
        })
    }

    /// Parses, replay-checks and decrypts `packet` in place; returns the header and the
    /// plaintext shard.
    pub fn open<'a>(
        &mut self,
        packet: &'a mut [u8],
    ) -> Result<(PacketHeader, &'a [u8]), NativeError> {
        let header = PacketHeader::parse(packet)?;
        if packet.len() < OVERHEAD + 2 {
            return Err(NativeError::Malformed("packet has no shard"));
        }
        let shard_len = packet.len() - OVERHEAD;
        header.check_shard_len(shard_len)?;
        self.replay.check(header.counter)?;
        let (aad, rest) = packet.split_at_mut(HEADER_LEN);
        let (body, tag) = rest.split_at_mut(shard_len);
        self.opener.open(header.counter, aad, body, tag)?;
        // Only an authenticated packet may move the window.
        self.replay.accept(header.counter)?;
        Ok((header, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 16] = [0x42; 16];

    fn packet(counter_hint: u16) -> Vec<u8> {
        let h = PacketHeader {
            kind: KIND_VIDEO,
            flags: FLAG_KEYFRAME,
            counter: 0,
            frame_id: 9,
            shard_index: counter_hint % 3,
            data_shards: 2,
            parity_shards: 1,
            frame_len: 15,
        };
        let mut p = vec![0u8; OVERHEAD + 8];
        h.write(&mut p).unwrap();
        p[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(b"shard-ok");
        p
    }

    #[test]
    fn header_layout_is_fixed() {
        let h = PacketHeader {
            kind: KIND_VIDEO,
            flags: FLAG_KEYFRAME,
            counter: 0x0102_0304_0506_0708,
            frame_id: 0x0A0B_0C0D,
            shard_index: 0x0102,
            data_shards: 0x0304,
            parity_shards: 0x0506,
            frame_len: 0x0708_090A,
        };
        let mut buf = [0u8; HEADER_LEN];
        h.write(&mut buf).unwrap();
        assert_eq!(
            buf,
            [
                1, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x0A, 0x0B, 0x0C, 0x0D, 1, 2, 3, 4, 5, 6, 7, 8,
                9, 0x0A
            ]
        );
        assert_eq!(PacketHeader::parse(&buf).unwrap(), h);
    }

    #[test]
    fn seal_open_roundtrip_refuses_replay_and_tampering() {
        let mut sealer = PacketSealer::new(&KEY, SALT_HOST_DATA).unwrap();
        let mut opener = PacketOpener::new(&KEY, SALT_HOST_DATA).unwrap();
        let mut p = packet(0);
        sealer.seal(&mut p).unwrap();
        let mut replay = p.clone();
        let (h, shard) = opener.open(&mut p).unwrap();
        assert_eq!((h.counter, h.frame_id, shard), (0, 9, &b"shard-ok"[..]));
        assert!(matches!(
            opener.open(&mut replay),
            Err(NativeError::Replay(_))
        ));
        let mut q = packet(1);
        sealer.seal(&mut q).unwrap();
        let mut tq = q.clone();
        tq[12] ^= 1; // the frame id is authenticated
        assert!(matches!(opener.open(&mut tq), Err(NativeError::Crypto(_))));
        // The failed attempt did not burn the counter.
        assert!(opener.open(&mut q).is_ok());
        // The other direction's salt does not open host packets.
        let mut other = PacketOpener::new(&KEY, SALT_CLIENT_DATA).unwrap();
        let mut r = packet(2);
        sealer.seal(&mut r).unwrap();
        assert!(matches!(other.open(&mut r), Err(NativeError::Crypto(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_are_refused_without_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = PacketHeader::parse(&bytes);
            let mut opener = PacketOpener::new(&KEY, SALT_HOST_DATA).unwrap();
            prop_assert!(opener.open(&mut bytes).is_err());
        }
    }
}
