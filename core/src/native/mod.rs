//! punktfunk/1, the native data plane.
//!
//! Each video frame is one GF(2^16) Reed-Solomon block of up to 65535 shards, so
//! the ~1 Gbps ceiling GameStream's 4 x 255-shard blocks impose does not apply, and any
//! `k` of a frame's `k + m` packets rebuild it. Every packet is sealed with
//! AES-128-GCM under a per-session key, its header authenticated as associated data,
//! its nonce built from a 64-bit packet counter that a [`ReplayWindow`] checks on
//! receipt.
//!
//! - [`adaptive_fec`]: the parity percentage following the client's loss reports.
//! - [`loss_meter`]: the client's loss accounting behind its reports.
//! - [`control`]: the control-stream messages (hello, pairing, modes, reports, input).
//! - [`pairing`]: SPAKE2 over the host's PIN, bound to both TLS certificates.
//! - [`wire`]: the versioned packet header, sealing and opening.
//! - [`packetizer`]: frame -> FEC block -> sealed packets, in one reused buffer.
//! - [`reassembly`]: packets -> frames, delivered as soon as any `k` shards are in,
//!   with bounded memory.
//!
//! [`ReplayWindow`]: crate::crypto::replay::ReplayWindow

pub mod adaptive_fec;
pub mod control;
pub mod loss_meter;
pub mod packetizer;
pub mod pairing;
pub mod reassembly;
pub mod wire;
