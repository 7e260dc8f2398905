//! The video codecs the host streams, named once: GameStream's SDP, the encoder
//! probe, the console and the logs all use this type.

/// A video codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 / AVC (`x-nv-vqos[0].bitStreamFormat` 0).
    H264,
    /// H.265 / HEVC (1).
    Hevc,
    /// AV1 (2).
    Av1,
}

impl VideoCodec {
    /// Every codec, in the order the host probes and offers them.
    pub const ALL: [VideoCodec; 3] = [VideoCodec::H264, VideoCodec::Hevc, VideoCodec::Av1];

    /// The name people read: status pages, the console, the log.
    pub fn display_name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "H.264",
            VideoCodec::Hevc => "HEVC",
            VideoCodec::Av1 => "AV1",
        }
    }

    /// The name in the management API's JSON and in settings.
    pub fn api_name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Hevc => "hevc",
            VideoCodec::Av1 => "av1",
        }
    }
}

impl std::fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.display_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_codec_has_distinct_names() {
        let api: Vec<_> = VideoCodec::ALL.iter().map(|c| c.api_name()).collect();
        let shown: Vec<_> = VideoCodec::ALL.iter().map(|c| c.to_string()).collect();
        assert_eq!(api, ["h264", "hevc", "av1"]);
        assert_eq!(shown, ["H.264", "HEVC", "AV1"]);
    }
}
