//! NVIDIA GameStream wire formats, laid out exactly as moonlight-common-c reads them.
//!
//! Each file cites where its facts live in moonlight-common-c and Sunshine. Those
//! projects are GPL: this is our own code written from the facts.

pub mod apps;
pub mod audio;
pub mod control;
pub mod control_crypto;
pub mod fec_control;
pub mod handshake;
pub mod input;
pub mod nvhttp;
pub mod pairing;
pub mod ping;
pub mod rtp;
pub mod rtsp;
pub mod rtsp_framing;
pub mod sdp;
pub mod session;
pub mod video;
pub mod video_crypto;
