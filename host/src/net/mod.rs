//! Sockets for the per-frame path.

pub mod iface;
pub mod udp_batch;
