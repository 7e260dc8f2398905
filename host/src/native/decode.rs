//! The reference client's decoder: a reassembled frame's bitstream through FFmpeg to
//! BGR pixels, and the test pattern's barcode read back from them.

use anyhow::{Context, Result, anyhow};
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;
use punktfunk_core::native::control::Codec;

use crate::source::test_pattern::{read_barcode, read_row};

/// A decoded picture's size and barcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// `(capture time us, frame number)` when the barcode reads.
    pub barcode: Option<(u64, u64)>,
    /// Barcode row 2, when it reads: the session painter's tag of its session id
    /// (`tests/painter`), so a test knows it sees that session's app.
    pub tag: Option<u64>,
}

/// An FFmpeg video decoder with a BGR converter.
pub struct VideoDecoder {
    decoder: ffmpeg::decoder::Video,
    scaler: Option<(scaling::Context, u32, u32, Pixel)>,
    frame: ffmpeg::frame::Video,
    bgr: ffmpeg::frame::Video,
}

impl std::fmt::Debug for VideoDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VideoDecoder")
    }
}

impl VideoDecoder {
    /// Opens a decoder for `codec`.
    pub fn open(codec: Codec) -> Result<Self> {
        ffmpeg::init().map_err(|e| anyhow!("initialising FFmpeg: {e}"))?;
        let id = match codec {
            Codec::H264 => ffmpeg::codec::Id::H264,
            Codec::H265 => ffmpeg::codec::Id::HEVC,
            Codec::Av1 => ffmpeg::codec::Id::AV1,
        };
        let found =
            ffmpeg::decoder::find(id).ok_or_else(|| anyhow!("no FFmpeg decoder for {codec:?}"))?;
        let decoder = ffmpeg::codec::context::Context::new_with_codec(found)
            .decoder()
            .video()
            .context("opening the video decoder")?;
        Ok(Self {
            decoder,
            scaler: None,
            frame: ffmpeg::frame::Video::empty(),
            bgr: ffmpeg::frame::Video::empty(),
        })
    }

    /// Decodes one frame's bitstream; returns the pictures it produced (zero or one
    /// with a low-latency encoder).
    pub fn decode(&mut self, data: &[u8]) -> Result<Vec<Decoded>> {
        let packet = ffmpeg::Packet::copy(data);
        self.decoder
            .send_packet(&packet)
            .context("the decoder refused the frame")?;
        let mut out = Vec::new();
        while self.decoder.receive_frame(&mut self.frame).is_ok() {
            let (w, h, fmt) = (self.frame.width(), self.frame.height(), self.frame.format());
            if self
                .scaler
                .as_ref()
                .is_none_or(|(_, sw, sh, sf)| (*sw, *sh, *sf) != (w, h, fmt))
            {
                let ctx =
                    scaling::Context::get(fmt, w, h, Pixel::BGR24, w, h, scaling::Flags::POINT)
                        .context("creating the BGR converter")?;
                self.scaler = Some((ctx, w, h, fmt));
            }
            let (scaler, ..) = self.scaler.as_mut().expect("set above");
            scaler
                .run(&self.frame, &mut self.bgr)
                .context("converting to BGR")?;
            let (pixels, stride) = (self.bgr.data(0), self.bgr.stride(0));
            let barcode = read_barcode(pixels, stride, 3);
            out.push(Decoded {
                width: w,
                height: h,
                barcode,
                tag: barcode.and_then(|_| read_row(pixels, stride, 3, 2)),
            });
        }
        Ok(out)
    }
}
