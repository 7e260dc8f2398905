//! Sockets for the per-frame path, and the network types the config names.

pub mod cidr;
pub mod iface;
pub mod listener;
pub mod pace;
pub mod udp_batch;
