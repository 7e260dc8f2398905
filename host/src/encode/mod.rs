//! Encoding through FFmpeg.

pub mod audio;
pub mod probe;
pub mod video;
