//! What a video encoder is opened for, and the colour that follows from the client's
//! `encoderCscMode`.

use ffmpeg_next as ffmpeg;

use crate::encode::probe::Codec;

/// What to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoEncoderConfig {
    /// The codec.
    pub codec: Codec,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target bitrate for the encoder, in kbit/s.
    pub bitrate_kbps: u32,
    /// The client's `encoderCscMode`: colour space (0 BT.601, 1 BT.709, 2 BT.2020) << 1,
    /// plus 1 for full range.
    pub csc_mode: u32,
    /// A 10-bit stream (HEVC Main10, AV1 Main 10-bit): the client's ANNOUNCE asked
    /// for it (`x-nv-video[0].dynamicRangeMode:1`), which moonlight-common-c does only
    /// when serverinfo offered the codec's 10-bit `SCM_*` bit. The capture is SDR, so
    /// this is 10-bit SDR: the client's matrix and transfer, no PQ (see
    /// [`VideoEncoderConfig::colour`]).
    pub ten_bit: bool,
}

impl VideoEncoderConfig {
    /// The colour space, primaries, transfer and swscale matrix to convert and tag
    /// with, following the client's `encoderCscMode`. The host's sources are SDR
    /// desktops, so even a 10-bit stream keeps an SDR transfer: BT.2020 at 10 bits is
    /// tagged `bt2020-10` (as Sunshine tags "BT.2020 SDR"), never SMPTE 2084 (PQ),
    /// which would make the client's display stretch SDR levels into HDR brightness.
    pub(crate) fn colour(
        &self,
    ) -> (
        ffmpeg::color::Space,
        ffmpeg::color::Primaries,
        ffmpeg::color::TransferCharacteristic,
        libc::c_int,
    ) {
        use ffmpeg::color::{Primaries, Space, TransferCharacteristic};
        match self.csc_mode >> 1 {
            1 => (
                Space::BT709,
                Primaries::BT709,
                TransferCharacteristic::BT709,
                ffmpeg::ffi::SWS_CS_ITU709,
            ),
            2 => (
                Space::BT2020NCL,
                Primaries::BT2020,
                if self.ten_bit {
                    TransferCharacteristic::BT2020_10
                } else {
                    TransferCharacteristic::BT709
                },
                ffmpeg::ffi::SWS_CS_BT2020,
            ),
            _ => (
                Space::SMPTE170M,
                Primaries::SMPTE170M,
                TransferCharacteristic::SMPTE170M,
                ffmpeg::ffi::SWS_CS_ITU601,
            ),
        }
    }

    pub(crate) fn full_range(&self) -> bool {
        self.csc_mode & 1 == 1
    }

    /// The YUV matrix and range the client asked for, for a source that paints YUV
    /// itself ([`crate::capture::VideoCapture::offer_nv12`]).
    pub fn yuv_matrix(&self) -> punktfunk_yuv::Matrix {
        crate::encode::convert::matrix(self.colour().3, self.full_range())
    }

    /// The 10-bit converter's matrix for the client's colour space and range.
    pub fn yuv_matrix10(&self) -> punktfunk_yuv::ten_bit::Matrix10 {
        crate::encode::convert10::matrix10(self.colour().3, self.full_range())
    }
}
