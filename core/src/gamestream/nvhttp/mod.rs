//! GameStream's HTTP control plane ("nvhttp"): query parsing, typed requests and the
//! XML replies, with no HTTP types. The host's HTTP server feeds request targets in
//! and writes the bodies out.

pub mod hex;
pub mod query;
pub mod requests;
pub mod xml;

/// The `appversion` punktfunk announces: Sunshine-class (negative fourth field), at
/// least 7.1.431 so clients enable encrypted control v2, multi-FEC blocks and
/// `control/13/0` (moonlight-common-c `Limelight-internal.h`).
pub const APP_VERSION: &str = "7.1.431.-1";
/// The `GfeVersion` Sunshine announces; clients only pass it through.
pub const GFE_VERSION: &str = "3.23.0.74";

/// `ServerCodecModeSupport` bits (moonlight-common-c `Limelight.h`, `SCM_*`).
pub mod scm {
    /// H.264.
    pub const H264: u32 = 0x0000_0001;
    /// HEVC Main.
    pub const HEVC: u32 = 0x0000_0100;
    /// HEVC Main10.
    pub const HEVC_MAIN10: u32 = 0x0000_0200;
    /// AV1 Main 8-bit (Sunshine extension).
    pub const AV1_MAIN8: u32 = 0x0001_0000;
    /// AV1 Main 10-bit (Sunshine extension).
    pub const AV1_MAIN10: u32 = 0x0002_0000;
}
