//! Sockets for the per-frame path.

pub mod iface;
pub mod listener;
pub mod udp_batch;
