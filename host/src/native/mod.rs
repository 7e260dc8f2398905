//! punktfunk/1, host side: the QUIC control plane ([`server`]), the client used by the
//! probe and the tests ([`client`]), their shared plumbing ([`quic`]), pairing lockout
//! ([`lockout`]), each connection's session and stream ([`streaming`], [`service`]:
//! the session manager's display sessions through the shared encode stage), the data
//! plane's send and receive paths ([`sender`], [`receiver`], [`data`]) and its bench
//! ([`loopback`], on 127.0.0.1 or a veth pair: [`netns`]).

pub mod bench;
pub mod client;
pub mod data;
pub mod decode;
pub mod lockout;
pub mod loopback;
pub mod netns;
pub mod quic;
pub mod receiver;
pub mod report;
pub mod sender;
pub mod server;
pub mod service;
pub mod streaming;
pub mod synthetic;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_frames;
#[cfg(test)]
mod tests_stream;
