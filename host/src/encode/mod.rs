//! Encoding through FFmpeg.

pub mod audio;
pub mod convert;
pub mod probe;
pub mod video;
