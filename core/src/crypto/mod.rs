//! AES for every place punktfunk needs it, on one backend: aws-lc-rs.
//!
//! aws-lc-rs is already the provider under rustls and quinn, and it measured about 4x
//! faster than the pure-Rust `aes-gcm` crate for sealing a 1400-byte packet (see
//! `cargo bench -p punktfunk-core --bench crypto`), so the per-packet paths use it too.
//!
//! - [`gcm`]: AES-128-GCM with counter nonces that can never repeat under one key,
//!   in the IV layouts GameStream fixes for its control, RTSP and video streams and the
//!   layout of the native plane.
//! - [`replay`]: the sliding replay window of the native data plane.
//! - [`block`]: AES-128-CBC (GameStream audio) and AES-128-ECB (GameStream pairing).

pub mod block;
pub mod gcm;
pub mod replay;
pub mod rsa;

use thiserror::Error;

/// Length of an AES-128 key.
pub const AES128_KEY_LEN: usize = 16;
/// Length of a GCM tag.
pub const GCM_TAG_LEN: usize = 16;

/// Why a crypto operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CryptoError {
    /// The key had the wrong length.
    #[error("AES-128 keys are 16 bytes, got {0}")]
    KeyLength(usize),
    /// Authentication failed: the data was forged, corrupted or sealed under another key.
    #[error("authentication failed")]
    Authentication,
    /// The counter behind the nonces ran out; the key must be replaced.
    #[error("nonce counter exhausted after {0} messages; rekey required")]
    NoncesExhausted(u64),
    /// A nonce counter the opener was given does not fit the layout.
    #[error("nonce counter {0} does not fit this IV layout")]
    CounterRange(u64),
    /// Block-cipher input was not a whole number of blocks, or padding was invalid.
    #[error("invalid block cipher input length {0}")]
    BlockLength(usize),
    /// The backend refused the operation.
    #[error("crypto backend failure")]
    Backend,
}

impl From<aws_lc_rs::error::Unspecified> for CryptoError {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        CryptoError::Backend
    }
}

/// Checks and copies an AES-128 key.
pub fn aes128_key(key: &[u8]) -> Result<[u8; AES128_KEY_LEN], CryptoError> {
    key.try_into()
        .map_err(|_| CryptoError::KeyLength(key.len()))
}
