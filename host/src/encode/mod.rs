//! Video encoding through FFmpeg.

pub mod probe;
