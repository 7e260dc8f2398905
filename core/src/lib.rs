//! punktfunk-core: the sans-IO heart of punktfunk.
//!
//! Everything in this crate is pure computation over caller-provided buffers and
//! caller-provided time: FEC, packetization and reassembly, crypto, pacing and the
//! parsers of network input. There are no sockets, threads, clocks or async here, so
//! every piece can be unit-tested, property-tested and fuzzed on its own. The `host`
//! crate owns the I/O and drives these state machines.
//!
//! Layout, one module per concern:
//! - [`wire`]: bounds-checked readers and writers; parsers never panic.
//! - [`fec`]: the two erasure codes behind one small trait: GameStream's GF(2^8)
//!   Cauchy Reed-Solomon and the native GF(2^16) Leopard code.
//! - [`gamestream`]: NVIDIA GameStream wire formats as moonlight-common-c reads them.
//! - [`native`]: the punktfunk/1 data plane (whole frames in one GF(2^16) block).
//! - [`crypto`]: AES-GCM with counter nonces, the replay window, AES-CBC/ECB.
//! - [`packet_run`]: the packet run both packetizers fill and the host sends.
//! - [`pacing`]: spreading a frame's packets over part of the frame interval.
//! - [`time`]: media clock conversions (there is no clock in this crate).

#![forbid(unsafe_code)]

pub mod codec;
pub mod crypto;
pub mod fec;
pub mod gamestream;
pub mod native;
pub mod pacing;
pub mod packet_run;
pub mod time;
pub mod wire;
