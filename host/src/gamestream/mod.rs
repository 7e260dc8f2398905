//! The GameStream services Moonlight clients talk to.

pub mod nvhttp;
pub mod rtsp_server;
