//! punktfunk/1, host side: the QUIC control plane ([`server`]), the client used by the
//! probe and the tests ([`client`]), their shared plumbing ([`quic`]), pairing lockout
//! ([`lockout`]) and the data-plane loopback demo ([`loopback`]).

pub mod bench;
pub mod client;
pub mod data;
pub mod decode;
pub mod lockout;
pub mod loopback;
pub mod pattern_source;
pub mod quic;
pub mod receiver;
pub mod server;
pub mod service;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_stream;
