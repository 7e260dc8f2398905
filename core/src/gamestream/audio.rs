//! GameStream audio packets: Opus in RTP, protected by RS(4,2) FEC and optionally
//! AES-128-CBC (moonlight-common-c `AudioStream.c`, `RtpAudioQueue.[ch]`; Sunshine
//! `stream.cpp` `audioBroadcastThread`).
//!
//! - Data packet: RTP header (`0x80`, payload type 97, BE16 sequence, BE32 timestamp
//!   advancing by the packet duration in ms, ssrc 0), then the Opus packet, encrypted
//!   with CBC/PKCS#7 under the launch key and IV `BE32(rikeyid + sequence)` when audio
//!   encryption is on.
//! - Every 4 data packets (sequence numbers `4n..4n+3`) form a block; after its last
//!   data packet come 2 FEC packets: RTP header (type 127, sequence continuing from the
//!   data, timestamp 0) and the 12-byte `AUDIO_FEC_HEADER` (shard index, payload type
//!   97, BE16 base sequence, BE32 base timestamp, ssrc 0), then parity over the 4
//!   (encrypted) payloads with the fixed OpenFEC matrix. All 4 payloads of a block must
//!   be the same size, which CBR Opus guarantees.

use thiserror::Error;

use super::rtp::{RTP_HEADER_LEN, RTP_VERSION_BITS, RtpHeader, seq_before};
use crate::crypto::CryptoError;
use crate::crypto::block::{AesCbc, audio_iv};
use crate::fec::{BlockShape, ErasureCode, FecError, Gf8Rs};
use crate::wire::{Reader, WireError};

/// RTP payload type of audio data.
pub const PAYLOAD_TYPE_AUDIO: u8 = 97;
/// RTP payload type of audio FEC.
pub const PAYLOAD_TYPE_FEC: u8 = 127;
/// Data shards per audio FEC block.
pub const DATA_SHARDS: usize = 4;
/// Parity shards per audio FEC block.
pub const FEC_SHARDS: usize = 2;
/// `sizeof(AUDIO_FEC_HEADER)`.
pub const FEC_HEADER_LEN: usize = 12;
/// Largest audio payload accepted (Sunshine's `MAX_AUDIO_PACKET_SIZE`, padded).
pub const MAX_PAYLOAD: usize = 1408;

/// Why an audio packet could not be produced or parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AudioError {
    /// A field ran past the end of the packet.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The packet is not a valid audio or FEC packet.
    #[error("malformed audio packet: {0}")]
    Malformed(&'static str),
    /// Encryption or decryption failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// FEC failed.
    #[error(transparent)]
    Fec(#[from] FecError),
}

/// Encryption settings of the audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioCrypto {
    /// The launch key (`rikey`).
    pub key: [u8; 16],
    /// The launch key id (`rikeyid`).
    pub key_id: u32,
}

/// Up to three packets produced for one Opus packet: the data packet, then the two FEC
/// packets when it completed a block. Buffers are reused between calls.
#[derive(Debug, Clone, Default)]
pub struct AudioPackets {
    bufs: [Vec<u8>; 1 + FEC_SHARDS],
    count: usize,
}

impl AudioPackets {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The packets to send, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.bufs[..self.count].iter().map(Vec::as_slice)
    }

    /// Number of packets.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Turns Opus packets into GameStream audio and FEC packets.
#[derive(Debug)]
pub struct AudioPacketizer {
    cipher: Option<(AesCbc, u32)>,
    fec: Gf8Rs,
    packet_duration_ms: u32,
    sequence: u16,
    timestamp: u32,
    /// The current block's shards, `block_len` bytes each, back to back: 4 data then 2
    /// parity.
    block: Vec<u8>,
    block_len: usize,
    block_base: (u16, u32),
    /// False once a payload of another size joined the block: it then goes without FEC.
    block_uniform: bool,
    scratch: Vec<u8>,
}

impl AudioPacketizer {
    /// A packetizer; `crypto` is `None` when the client did not enable audio encryption.
    pub fn new(crypto: Option<AudioCrypto>, packet_duration_ms: u32) -> Result<Self, AudioError> {
        let cipher = match crypto {
            Some(c) => Some((AesCbc::new(&c.key)?, c.key_id)),
            None => None,
        };
        Ok(Self {
            cipher,
            fec: Gf8Rs::gamestream_audio(),
            packet_duration_ms,
            sequence: 0,
            timestamp: 0,
            block: vec![0; (DATA_SHARDS + FEC_SHARDS) * MAX_PAYLOAD],
            block_len: 0,
            block_base: (0, 0),
            block_uniform: true,
            scratch: Vec::with_capacity(MAX_PAYLOAD),
        })
    }

    /// Packetizes one Opus packet into `out`.
    pub fn packetize(&mut self, opus: &[u8], out: &mut AudioPackets) -> Result<(), AudioError> {
        let seq = self.sequence;
        let ts = self.timestamp;
        self.scratch.clear();
        self.scratch.extend_from_slice(opus);
        if let Some((cipher, key_id)) = &self.cipher {
            cipher.encrypt(audio_iv(*key_id, seq), &mut self.scratch)?;
        }
        let payload_len = self.scratch.len();
        if payload_len == 0 || payload_len > MAX_PAYLOAD {
            return Err(AudioError::Malformed("audio payload size out of range"));
        }
        let rtp = RtpHeader {
            flags: RTP_VERSION_BITS,
            payload_type: PAYLOAD_TYPE_AUDIO,
            sequence: seq,
            timestamp: ts,
            ssrc: 0,
        };
        let data = &mut out.bufs[0];
        data.clear();
        data.resize(RTP_HEADER_LEN, 0);
        rtp.write_to(data)?;
        data.extend_from_slice(&self.scratch);
        out.count = 1;

        let pos = usize::from(seq) % DATA_SHARDS;
        if pos == 0 {
            self.block_len = payload_len;
            self.block_base = (seq, ts);
            self.block_uniform = true;
        } else if payload_len != self.block_len {
            self.block_uniform = false;
        }
        if self.block_uniform {
            self.block[pos * payload_len..(pos + 1) * payload_len].copy_from_slice(&self.scratch);
        }
        if pos == DATA_SHARDS - 1 && self.block_uniform {
            self.emit_fec(seq, out)?;
        }
        self.sequence = seq.wrapping_add(1);
        self.timestamp = ts.wrapping_add(self.packet_duration_ms);
        Ok(())
    }

    fn emit_fec(&mut self, last_seq: u16, out: &mut AudioPackets) -> Result<(), AudioError> {
        let len = self.block_len;
        let shape = BlockShape {
            data: DATA_SHARDS,
            parity: FEC_SHARDS,
            shard_len: len,
        };
        let shards = &mut self.block[..shape.buffer_len()];
        self.fec.encode(shape, shards)?;
        for j in 0..FEC_SHARDS {
            let buf = &mut out.bufs[1 + j];
            buf.clear();
            buf.resize(RTP_HEADER_LEN + FEC_HEADER_LEN, 0);
            RtpHeader {
                flags: RTP_VERSION_BITS,
                payload_type: PAYLOAD_TYPE_FEC,
                sequence: last_seq.wrapping_add(1 + j as u16),
                timestamp: 0,
                ssrc: 0,
            }
            .write_to(buf)?;
            buf[12] = j as u8;
            buf[13] = PAYLOAD_TYPE_AUDIO;
            buf[14..16].copy_from_slice(&self.block_base.0.to_be_bytes());
            buf[16..20].copy_from_slice(&self.block_base.1.to_be_bytes());
            // ssrc stays 0
            let parity = &shards[(DATA_SHARDS + j) * len..(DATA_SHARDS + j + 1) * len];
            buf.extend_from_slice(parity);
        }
        out.count = 1 + FEC_SHARDS;
        Ok(())
    }
}

/// A parsed audio packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioPacket<'a> {
    /// Opus data (still encrypted if the stream is).
    Data {
        /// The RTP header.
        rtp: RtpHeader,
        /// The payload.
        payload: &'a [u8],
    },
    /// Parity for a block.
    Fec {
        /// The RTP header.
        rtp: RtpHeader,
        /// Which parity shard (0 or 1).
        shard: u8,
        /// Sequence number of the block's first data packet.
        base_sequence: u16,
        /// Timestamp of the block's first data packet.
        base_timestamp: u32,
        /// The parity bytes.
        payload: &'a [u8],
    },
}

impl<'a> AudioPacket<'a> {
    /// Parses an audio or FEC packet. Never panics.
    pub fn parse(packet: &'a [u8]) -> Result<Self, AudioError> {
        let mut r = Reader::new(packet);
        let rtp = RtpHeader::read(&mut r)?;
        match rtp.payload_type {
            PAYLOAD_TYPE_AUDIO => {
                let payload = r.rest();
                if payload.is_empty() || payload.len() > MAX_PAYLOAD {
                    return Err(AudioError::Malformed("audio payload size out of range"));
                }
                Ok(AudioPacket::Data { rtp, payload })
            }
            PAYLOAD_TYPE_FEC => {
                let shard = r.u8()?;
                let _payload_type = r.u8()?;
                let base_sequence = r.u16_be()?;
                let base_timestamp = r.u32_be()?;
                let _ssrc = r.u32_be()?;
                let payload = r.rest();
                if usize::from(shard) >= FEC_SHARDS {
                    return Err(AudioError::Malformed("FEC shard index out of range"));
                }
                if base_sequence % DATA_SHARDS as u16 != 0 {
                    return Err(AudioError::Malformed("FEC block not aligned to 4 packets"));
                }
                if payload.is_empty() || payload.len() > MAX_PAYLOAD {
                    return Err(AudioError::Malformed("FEC payload size out of range"));
                }
                Ok(AudioPacket::Fec {
                    rtp,
                    shard,
                    base_sequence,
                    base_timestamp,
                    payload,
                })
            }
            _ => Err(AudioError::Malformed("unknown audio payload type")),
        }
    }
}

#[derive(Debug, Clone)]
struct RxBlock {
    base: u16,
    len: Option<usize>,
    shards: Vec<u8>,
    present: [bool; DATA_SHARDS + FEC_SHARDS],
    emitted: [bool; DATA_SHARDS],
}

/// Receives audio like moonlight-common-c: emits each Opus packet (decrypted) as it
/// arrives and rebuilds lost ones from the block's FEC. Used by tests and the loss
/// harness; keeps at most [`RX_BLOCKS`] blocks.
#[derive(Debug)]
pub struct AudioReceiver {
    cipher: Option<(AesCbc, u32)>,
    fec: Gf8Rs,
    blocks: Vec<RxBlock>,
    newest: Option<u16>,
    /// Packets that failed to parse or decrypt.
    pub malformed: u64,
    /// Packets rebuilt from FEC.
    pub recovered: u64,
}

/// Blocks an [`AudioReceiver`] keeps for late FEC.
pub const RX_BLOCKS: usize = 4;

impl AudioReceiver {
    /// A receiver; `crypto` must match the sender's.
    pub fn new(crypto: Option<AudioCrypto>) -> Result<Self, AudioError> {
        let cipher = match crypto {
            Some(c) => Some((AesCbc::new(&c.key)?, c.key_id)),
            None => None,
        };
        Ok(Self {
            cipher,
            fec: Gf8Rs::gamestream_audio(),
            blocks: Vec::new(),
            newest: None,
            malformed: 0,
            recovered: 0,
        })
    }

    /// Feeds one packet; returns the `(sequence, opus)` packets it made available.
    pub fn push(&mut self, packet: &[u8]) -> Vec<(u16, Vec<u8>)> {
        match self.try_push(packet) {
            Ok(v) => v,
            Err(_) => {
                self.malformed += 1;
                Vec::new()
            }
        }
    }

    /// Index of the block starting at `base`, created if new; `None` when it is older
    /// than every block kept.
    fn block_index(&mut self, base: u16) -> Option<usize> {
        if let Some(newest) = self.newest
            && seq_before(base, newest.wrapping_sub((RX_BLOCKS * DATA_SHARDS) as u16))
        {
            return None;
        }
        if self.newest.is_none_or(|n| seq_before(n, base)) {
            self.newest = Some(base);
        }
        if let Some(i) = self.blocks.iter().position(|b| b.base == base) {
            return Some(i);
        }
        if self.blocks.len() == RX_BLOCKS {
            let newest = self.newest.unwrap_or(base);
            let oldest = (0..RX_BLOCKS)
                .max_by_key(|&i| newest.wrapping_sub(self.blocks[i].base))
                .unwrap_or(0);
            self.blocks.swap_remove(oldest);
        }
        self.blocks.push(RxBlock {
            base,
            len: None,
            shards: vec![0; (DATA_SHARDS + FEC_SHARDS) * MAX_PAYLOAD],
            present: [false; DATA_SHARDS + FEC_SHARDS],
            emitted: [false; DATA_SHARDS],
        });
        Some(self.blocks.len() - 1)
    }

    fn decrypt(&self, seq: u16, payload: &[u8]) -> Result<Vec<u8>, AudioError> {
        let mut buf = payload.to_vec();
        if let Some((cipher, key_id)) = &self.cipher {
            let n = cipher.decrypt(audio_iv(*key_id, seq), &mut buf)?.len();
            buf.truncate(n);
        }
        Ok(buf)
    }

    fn try_push(&mut self, packet: &[u8]) -> Result<Vec<(u16, Vec<u8>)>, AudioError> {
        let parsed = AudioPacket::parse(packet)?;
        let (base, index, payload) = match parsed {
            AudioPacket::Data { rtp, payload } => {
                let pos = usize::from(rtp.sequence) % DATA_SHARDS;
                (rtp.sequence.wrapping_sub(pos as u16), pos, payload)
            }
            AudioPacket::Fec {
                shard,
                base_sequence,
                payload,
                ..
            } => (base_sequence, DATA_SHARDS + usize::from(shard), payload),
        };
        let Some(bi) = self.block_index(base) else {
            return Ok(Vec::new());
        };
        let block = &mut self.blocks[bi];
        if block.present[index] {
            return Ok(Vec::new());
        }
        let len = *block.len.get_or_insert(payload.len());
        if len != payload.len() {
            return Err(AudioError::Malformed("audio block size mismatch"));
        }
        block.shards[index * len..(index + 1) * len].copy_from_slice(payload);
        block.present[index] = true;
        let mut ready = Vec::new();
        if index < DATA_SHARDS {
            block.emitted[index] = true;
            ready.push((base.wrapping_add(index as u16), index));
        } else if block.present.iter().filter(|p| **p).count() >= DATA_SHARDS
            && block.emitted.iter().any(|e| !e)
        {
            let shape = BlockShape {
                data: DATA_SHARDS,
                parity: FEC_SHARDS,
                shard_len: len,
            };
            let mut present = block.present;
            self.fec
                .reconstruct(shape, &mut block.shards[..shape.buffer_len()], &present)?;
            for (i, emitted) in block.emitted.iter_mut().enumerate() {
                if !*emitted {
                    *emitted = true;
                    present[i] = true;
                    self.recovered += 1;
                    ready.push((base.wrapping_add(i as u16), i));
                }
            }
            block.present = present;
        }
        let block = &self.blocks[bi];
        let mut out = Vec::with_capacity(ready.len());
        for (seq, i) in ready {
            let shard = block.shards[i * len..(i + 1) * len].to_vec();
            out.push((seq, self.decrypt(seq, &shard)?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CRYPTO: AudioCrypto = AudioCrypto {
        key: *b"launch-key-16byt",
        key_id: 0x1234_5678,
    };

    fn opus(seq: usize) -> Vec<u8> {
        // CBR: every packet the same length.
        (0..57).map(|i| (i * 7 + seq * 13) as u8).collect()
    }

    #[test]
    fn packet_layout_matches_rtp_audio_queue() {
        let mut p = AudioPacketizer::new(None, 5).unwrap();
        let mut out = AudioPackets::new();
        for i in 0..4 {
            p.packetize(&opus(i), &mut out).unwrap();
            assert_eq!(out.len(), if i == 3 { 3 } else { 1 });
        }
        let pkts: Vec<&[u8]> = out.iter().collect();
        // Data packet 3: 0x80, type 97, BE seq 3, BE timestamp 15 (3 x 5 ms), ssrc 0.
        assert_eq!(&pkts[0][..12], &[0x80, 97, 0, 3, 0, 0, 0, 15, 0, 0, 0, 0]);
        assert_eq!(&pkts[0][12..], &opus(3)[..]);
        // FEC packet 1: type 127, seq 5, then shard 1, type 97, base seq 0, base ts 0.
        assert_eq!(&pkts[2][..4], &[0x80, 127, 0, 5]);
        assert_eq!(&pkts[2][12..24], &[1, 97, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(pkts[2].len(), 12 + 12 + 57);
        // Parity row 0 of the OpenFEC matrix: 0x77 0x40 0x38 0x0e.
        let coeffs = [0x77u8, 0x40, 0x38, 0x0e];
        for b in 0..57 {
            let want = (0..4).fold(0u8, |acc, i| {
                acc ^ crate::fec::gf256::mul(coeffs[i], opus(i)[b])
            });
            assert_eq!(out.iter().nth(1).unwrap()[24 + b], want);
        }
    }

    #[test]
    fn encrypted_stream_recovers_two_lost_packets_per_block() {
        let mut p = AudioPacketizer::new(Some(CRYPTO), 5).unwrap();
        let mut rx = AudioReceiver::new(Some(CRYPTO)).unwrap();
        let mut out = AudioPackets::new();
        let mut got = Vec::new();
        for i in 0..40 {
            p.packetize(&opus(i), &mut out).unwrap();
            for (n, pkt) in out.iter().enumerate() {
                // Lose data packets 1 and 2 of every block.
                if n == 0 && matches!(i % 4, 1 | 2) {
                    continue;
                }
                assert_ne!(&pkt[12..], &opus(i)[..], "payload is encrypted");
                got.extend(rx.push(pkt));
            }
        }
        got.sort_by_key(|(s, _)| *s);
        assert_eq!(got.len(), 40);
        for (i, (seq, data)) in got.iter().enumerate() {
            assert_eq!(usize::from(*seq), i);
            assert_eq!(data, &opus(i));
        }
        assert_eq!(rx.recovered, 20);
        assert_eq!(rx.malformed, 0);
    }

    #[test]
    fn wrong_key_is_counted_not_delivered() {
        let mut p = AudioPacketizer::new(Some(CRYPTO), 5).unwrap();
        let mut rx = AudioReceiver::new(Some(AudioCrypto {
            key: *b"another-key-16by",
            ..CRYPTO
        }))
        .unwrap();
        let mut out = AudioPackets::new();
        let mut delivered = 0;
        for i in 0..8 {
            p.packetize(&opus(i), &mut out).unwrap();
            for pkt in out.iter() {
                delivered += rx.push(pkt).len();
            }
        }
        // CBC without authentication can decrypt to garbage with valid-looking padding
        // now and then; most packets must be rejected for bad padding.
        assert!(rx.malformed >= 4, "malformed {}", rx.malformed);
        assert!(delivered <= 4);
    }

    proptest! {
        #[test]
        fn arbitrary_audio_packets_never_panic(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1600), 1..50)) {
            let mut rx = AudioReceiver::new(Some(CRYPTO)).unwrap();
            for pk in &packets {
                let _ = AudioPacket::parse(pk);
                let _ = rx.push(pk);
            }
        }
    }
}
