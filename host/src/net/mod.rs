//! Sockets for the per-frame path.

pub mod udp_batch;
