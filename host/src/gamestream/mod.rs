//! The GameStream services Moonlight clients talk to.

pub mod nvhttp;
