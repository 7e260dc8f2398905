//! Encoding through FFmpeg: audio (Opus), and video behind one trait
//! ([`video::Encode`]) with software, VAAPI and NVENC backends, and the encode stage
//! both streaming protocols share ([`stage`]: capture, conversion, encoder).

pub mod audio;
pub mod convert;
pub mod convert10;
pub mod cuda;
pub mod nvenc;
pub mod prime;
pub mod probe;
pub mod slices;
pub mod software;
pub mod stage;
pub mod vaapi;
pub mod video;
pub mod vpp;

#[cfg(test)]
mod pattern_trip;
#[cfg(test)]
mod round_trip;
#[cfg(test)]
mod round_trip10;
