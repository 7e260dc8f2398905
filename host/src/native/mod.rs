//! The native punktfunk/1 plane: I/O around `punktfunk_core::native`.

pub mod loopback;
