//! The colour standards the converters know, and each one's luma weights: the one
//! table both the 8-bit [`crate::Matrix`] and the 10-bit
//! [`crate::ten_bit::Matrix10`] are built from.

/// A colour standard (its matrix coefficients, ITU-T H.273 table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standard {
    /// BT.601 (SMPTE 170M).
    Bt601,
    /// BT.709.
    Bt709,
    /// BT.2020 non-constant luminance.
    Bt2020,
}

impl Standard {
    /// The standard's `(Kr, Kb)`: BT.601 0.299/0.114, BT.709 0.2126/0.0722, BT.2020
    /// 0.2627/0.0593.
    pub const fn kr_kb(self) -> (f64, f64) {
        match self {
            Standard::Bt601 => (0.299, 0.114),
            Standard::Bt709 => (0.2126, 0.0722),
            Standard::Bt2020 => (0.2627, 0.0593),
        }
    }
}
