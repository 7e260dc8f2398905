//! The SDP-like bodies of the RTSP handshake: the host's DESCRIBE reply (what it can
//! do) and the client's ANNOUNCE (what it wants), as moonlight-common-c writes and
//! reads them (`RtspConnection.c`, `SdpGenerator.c`; Sunshine `rtsp.cpp`).

use thiserror::Error;

/// `x-ss-general.encryption*` bit: encrypted control stream with 12-byte IVs.
pub const SS_ENC_CONTROL_V2: u32 = 0x01;
/// `x-ss-general.encryption*` bit: video packets encrypted.
pub const SS_ENC_VIDEO: u32 = 0x02;
/// `x-ss-general.encryption*` bit: audio packets encrypted.
pub const SS_ENC_AUDIO: u32 = 0x04;
/// `x-ss-general.featureFlags` bit: the host takes pen and touch events.
pub const SS_FF_PEN_TOUCH: u32 = 0x01;
/// `x-ss-general.featureFlags` bit: the host takes controller touch and motion events.
pub const SS_FF_CONTROLLER_TOUCH: u32 = 0x02;

pub use crate::codec::VideoCodec;

/// An Opus multistream layout for more than two channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurroundLayout {
    /// Channels (6 or 8).
    pub channels: u8,
    /// Opus streams.
    pub streams: u8,
    /// Of which coupled (stereo) streams.
    pub coupled: u8,
    /// For each output channel in Moonlight's order (FL FR C LFE BL BR SL SR), the
    /// decoded stream channel that feeds it. The client hands this table to
    /// `opus_multistream_decoder_create` as is, so it is also the encoder's table for
    /// input in that order.
    pub mapping: Vec<u8>,
}

impl SurroundLayout {
    /// The normal-quality layout the host's encoder (FFmpeg's libopus wrapper with its
    /// default mapping family) produces for `channels` given in Moonlight's order:
    /// front left and right, then back (and for 7.1 side) left and right as coupled
    /// stereo streams, then centre and LFE as mono streams. 5.1 is 4 streams of which 2
    /// coupled, 7.1 is 5 of which 3 coupled: the stream counts libopus' own surround
    /// defaults use, at Sunshine's bitrates (256 and 450 kbit/s).
    pub fn normal(channels: u8) -> Option<Self> {
        let (streams, coupled, mapping) = match channels {
            6 => (4, 2, vec![0, 1, 4, 5, 2, 3]),
            8 => (5, 3, vec![0, 1, 6, 7, 4, 5, 2, 3]),
            _ => return None,
        };
        Some(Self {
            channels,
            streams,
            coupled,
            mapping,
        })
    }

    /// The high-quality layout (the client asks for it with
    /// `x-nv-audio.surround.AudioQuality:1` at 15 Mbit/s and more): one mono stream
    /// per channel, in order, which is what libopus' mapping family 255 encodes and
    /// what Sunshine offers too.
    pub fn high_quality(channels: u8) -> Option<Self> {
        if !matches!(channels, 6 | 8) {
            return None;
        }
        Some(Self {
            channels,
            streams: channels,
            coupled: 0,
            mapping: (0..channels).collect(),
        })
    }

    /// The layout of a stream with `channels` at the quality the client picked
    /// (`None` for stereo, which carries no layout).
    pub fn for_stream(channels: u8, high_quality: bool) -> Option<Self> {
        if high_quality {
            Self::high_quality(channels)
        } else {
            Self::normal(channels)
        }
    }

    /// The `surround-params` digits. moonlight-common-c moves the last mapping entry to
    /// position 3 when it reads the first (normal-quality) line of 6 or 8 channels
    /// (`parseOpusConfigurations`: GFE listed LFE last), so that line is sent
    /// pre-rotated; the high-quality line is read as is.
    fn params(&self, rotate: bool) -> String {
        let mut m = self.mapping.clone();
        if rotate && m.len() >= 4 {
            let lfe = m.remove(3);
            m.push(lfe);
        }
        let mut s = format!("{}{}{}", self.channels, self.streams, self.coupled);
        for c in m {
            s.push(char::from(b'0' + c));
        }
        s
    }
}

/// What the host offers for one surround channel count: the client takes the first
/// `surround-params=<channels>` line as normal quality and the next one with the same
/// channel count as high quality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurroundOffer {
    /// The normal-quality layout.
    pub normal: SurroundLayout,
    /// The high-quality layout; without it the client never asks for high quality.
    pub high_quality: Option<SurroundLayout>,
}

impl SurroundOffer {
    /// What the host's encoder does for `channels` (6 or 8): both qualities.
    pub fn for_channels(channels: u8) -> Option<Self> {
        Some(Self {
            normal: SurroundLayout::normal(channels)?,
            high_quality: SurroundLayout::high_quality(channels),
        })
    }
}

/// What the host announces in DESCRIBE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostCapabilities {
    /// An HEVC encoder opens.
    pub hevc: bool,
    /// An AV1 encoder opens.
    pub av1: bool,
    /// `SS_ENC_*` bits the host supports.
    pub encryption_supported: u32,
    /// `SS_ENC_*` bits the host insists on.
    pub encryption_requested: u32,
    /// `SS_FF_*` bits.
    pub feature_flags: u32,
    /// The host accepts reference-frame invalidation requests.
    pub ref_pic_invalidation: bool,
    /// Surround layouts the audio encoder produces (6 and/or 8 channels).
    pub surround: Vec<SurroundOffer>,
}

/// The DESCRIBE reply body. The client searches it with `strstr`, so only the
/// presence of each marker matters; lines end in `\n` as Sunshine's do.
pub fn describe(caps: &HostCapabilities) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "a=x-ss-general.featureFlags:{}\n",
        caps.feature_flags
    ));
    s.push_str(&format!(
        "a=x-ss-general.encryptionSupported:{}\n",
        caps.encryption_supported
    ));
    s.push_str(&format!(
        "a=x-ss-general.encryptionRequested:{}\n",
        caps.encryption_requested
    ));
    if caps.ref_pic_invalidation {
        s.push_str("a=x-nv-video[0].refPicInvalidation:1\n");
    }
    if caps.hevc {
        s.push_str("sprop-parameter-sets=AAAAAU\n");
    }
    if caps.av1 {
        s.push_str("a=rtpmap:98 AV1/90000\n");
    }
    for offer in &caps.surround {
        // Normal quality first, then the high-quality line of the same channel count.
        s.push_str(&format!(
            "a=fmtp:97 surround-params={}\n",
            offer.normal.params(true)
        ));
        if let Some(hq) = &offer.high_quality {
            s.push_str(&format!("a=fmtp:97 surround-params={}\n", hq.params(false)));
        }
    }
    s
}

/// Why an ANNOUNCE body was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// A required attribute is absent.
    #[error("ANNOUNCE lacks {0}")]
    Missing(&'static str),
    /// An attribute's value does not parse or is out of range.
    #[error("ANNOUNCE has an invalid {0}")]
    Invalid(&'static str),
    /// The body is not text.
    #[error("ANNOUNCE body is not UTF-8")]
    NotText,
}

/// The stream the client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// `packetSize`: NV video header plus payload bytes per packet.
    pub packet_size: usize,
    /// The bitrate the user configured (`x-ml-video.configuredBitrateKbps`; the x-nv
    /// fields cap at 100 Mbps).
    pub bitrate_kbps: u32,
    /// The codec.
    pub codec: VideoCodec,
    /// `x-nv-vqos[0].fec.repairPercent`, sent only to older hosts; Sunshine-class hosts
    /// choose their own.
    pub fec_percent: Option<u8>,
    /// Fewest parity packets per FEC block.
    pub min_fec_packets: usize,
    /// Audio channels (2, 6 or 8).
    pub audio_channels: u8,
    /// The client picked the high-quality surround layout.
    pub audio_high_quality: bool,
    /// Opus packet duration in milliseconds.
    pub audio_packet_ms: u32,
    /// `SS_ENC_*` bits the client enabled.
    pub encryption: u32,
    /// Reference frames the decoder allows (0 = any; it then does RFI).
    pub max_reference_frames: u32,
    /// `encoderCscMode`: colour space << 1 | full range.
    pub csc_mode: u32,
    /// 10-bit / HDR requested.
    pub hdr: bool,
    /// YUV 4:4:4 requested.
    pub yuv444: bool,
}

fn attributes(body: &str) -> impl Iterator<Item = (&str, &str)> {
    body.lines().filter_map(|line| {
        let attr = line.strip_prefix("a=")?;
        let (name, value) = attr.split_once(':')?;
        // moonlight-common-c writes one trailing space after each value.
        Some((name.trim(), value.trim()))
    })
}

impl StreamConfig {
    /// Parses an ANNOUNCE body. Missing or out-of-range values are errors (the host
    /// answers 400); optional ones take Moonlight's defaults.
    pub fn from_announce(body: &[u8]) -> Result<Self, SdpError> {
        let body = std::str::from_utf8(body).map_err(|_| SdpError::NotText)?;
        let get = |name: &str| attributes(body).find(|(n, _)| *n == name).map(|(_, v)| v);
        fn num<T: std::str::FromStr>(
            v: Option<&str>,
            name: &'static str,
        ) -> Result<Option<T>, SdpError> {
            v.map(|v| v.parse().map_err(|_| SdpError::Invalid(name)))
                .transpose()
        }
        let req = |name: &'static str| -> Result<u32, SdpError> {
            num::<u32>(get(name), name)?.ok_or(SdpError::Missing(name))
        };
        let width = req("x-nv-video[0].clientViewportWd")?;
        let height = req("x-nv-video[0].clientViewportHt")?;
        let fps = req("x-nv-video[0].maxFPS")?;
        if !(16..=16384).contains(&width) || !(16..=16384).contains(&height) {
            return Err(SdpError::Invalid("resolution"));
        }
        if !(1..=1000).contains(&fps) {
            return Err(SdpError::Invalid("x-nv-video[0].maxFPS"));
        }
        let packet_size = req("x-nv-video[0].packetSize")? as usize;
        if !(256..=16384).contains(&packet_size) {
            return Err(SdpError::Invalid("x-nv-video[0].packetSize"));
        }
        let bitrate_kbps = match num::<u32>(
            get("x-ml-video.configuredBitrateKbps"),
            "x-ml-video.configuredBitrateKbps",
        )? {
            Some(b) if b > 0 => b,
            _ => req("x-nv-vqos[0].bw.maximumBitrateKbps")?,
        };
        if !(100..=10_000_000).contains(&bitrate_kbps) {
            return Err(SdpError::Invalid("bitrate"));
        }
        let codec = match num::<u32>(
            get("x-nv-vqos[0].bitStreamFormat"),
            "x-nv-vqos[0].bitStreamFormat",
        )? {
            None | Some(0) => VideoCodec::H264,
            Some(1) => VideoCodec::Hevc,
            Some(2) => VideoCodec::Av1,
            Some(_) => return Err(SdpError::Invalid("x-nv-vqos[0].bitStreamFormat")),
        };
        let fec_percent = num::<u8>(
            get("x-nv-vqos[0].fec.repairPercent"),
            "x-nv-vqos[0].fec.repairPercent",
        )?;
        let min_fec_packets = num::<u32>(
            get("x-nv-vqos[0].fec.minRequiredFecPackets"),
            "x-nv-vqos[0].fec.minRequiredFecPackets",
        )?
        .unwrap_or(0)
        .min(64) as usize;
        let audio_channels = num::<u8>(
            get("x-nv-audio.surround.numChannels"),
            "x-nv-audio.surround.numChannels",
        )?
        .unwrap_or(2);
        if !matches!(audio_channels, 2 | 6 | 8) {
            return Err(SdpError::Invalid("x-nv-audio.surround.numChannels"));
        }
        let audio_packet_ms =
            num::<u32>(get("x-nv-aqos.packetDuration"), "x-nv-aqos.packetDuration")?.unwrap_or(5);
        if !matches!(audio_packet_ms, 5 | 10 | 20) {
            return Err(SdpError::Invalid("x-nv-aqos.packetDuration"));
        }
        let flag = |name: &'static str| -> Result<bool, SdpError> {
            Ok(num::<u32>(get(name), name)?.unwrap_or(0) != 0)
        };
        Ok(Self {
            width,
            height,
            fps,
            packet_size,
            bitrate_kbps,
            codec,
            fec_percent,
            min_fec_packets,
            audio_channels,
            audio_high_quality: flag("x-nv-audio.surround.AudioQuality")?,
            audio_packet_ms,
            encryption: num::<u32>(
                get("x-ss-general.encryptionEnabled"),
                "x-ss-general.encryptionEnabled",
            )?
            .unwrap_or(0),
            max_reference_frames: num::<u32>(
                get("x-nv-video[0].maxNumReferenceFrames"),
                "x-nv-video[0].maxNumReferenceFrames",
            )?
            .unwrap_or(1),
            csc_mode: num::<u32>(
                get("x-nv-video[0].encoderCscMode"),
                "x-nv-video[0].encoderCscMode",
            )?
            .unwrap_or(0),
            hdr: flag("x-nv-video[0].dynamicRangeMode")?,
            yuv444: flag("x-ss-video[0].chromaSamplingType")?,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An ANNOUNCE body as moonlight-common-c generates it for a Sunshine-class host
    /// (attribute order and the trailing space after each value included).
    pub const MOONLIGHT_ANNOUNCE: &str = "v=0\r\no=android 0 14 IN IPv4 127.0.0.1\r\ns=NVIDIA Streaming Client\r\na=x-ml-general.featureFlags:3 \r\na=x-ss-general.encryptionEnabled:5 \r\na=x-ss-video[0].chromaSamplingType:0 \r\na=x-nv-video[0].clientViewportWd:1280 \r\na=x-nv-video[0].clientViewportHt:720 \r\na=x-nv-video[0].maxFPS:60 \r\na=x-nv-video[0].packetSize:1392 \r\na=x-nv-video[0].rateControlMode:4 \r\na=x-nv-video[0].timeoutLengthMs:7000 \r\na=x-nv-video[0].framesWithInvalidRefThreshold:0 \r\na=x-nv-video[0].initialBitrateKbps:8000 \r\na=x-nv-video[0].initialPeakBitrateKbps:8000 \r\na=x-nv-vqos[0].bw.minimumBitrateKbps:8000 \r\na=x-nv-vqos[0].bw.maximumBitrateKbps:8000 \r\na=x-ml-video.configuredBitrateKbps:10000 \r\na=x-nv-vqos[0].fec.enable:1 \r\na=x-nv-vqos[0].videoQualityScoreUpdateTime:5000 \r\na=x-nv-vqos[0].qosTrafficType:5 \r\na=x-nv-aqos.qosTrafficType:4 \r\na=x-nv-general.featureFlags:167 \r\na=x-nv-general.useReliableUdp:13 \r\na=x-nv-vqos[0].fec.minRequiredFecPackets:2 \r\na=x-nv-vqos[0].bllFec.enable:0 \r\na=x-nv-vqos[0].drc.enable:0 \r\na=x-nv-general.enableRecoveryMode:0 \r\na=x-nv-video[0].videoEncoderSlicesPerFrame:1 \r\na=x-nv-clientSupportHevc:0 \r\na=x-nv-vqos[0].bitStreamFormat:0 \r\na=x-nv-video[0].dynamicRangeMode:0 \r\na=x-nv-video[0].maxNumReferenceFrames:1 \r\na=x-nv-video[0].clientRefreshRateX100:0 \r\na=x-nv-audio.surround.numChannels:2 \r\na=x-nv-audio.surround.channelMask:3 \r\na=x-nv-audio.surround.enable:0 \r\na=x-nv-audio.surround.AudioQuality:0 \r\na=x-nv-aqos.packetDuration:5 \r\na=x-nv-video[0].encoderCscMode:0 \r\nt=0 0\r\nm=video 47998  \r\n";

    #[test]
    fn parses_a_moonlight_announce() {
        let c = StreamConfig::from_announce(MOONLIGHT_ANNOUNCE.as_bytes()).unwrap();
        assert_eq!(
            (c.width, c.height, c.fps, c.packet_size),
            (1280, 720, 60, 1392)
        );
        assert_eq!(
            c.bitrate_kbps, 10_000,
            "configuredBitrateKbps wins over the capped x-nv fields"
        );
        assert_eq!(c.codec, VideoCodec::H264);
        assert_eq!(c.encryption, SS_ENC_CONTROL_V2 | SS_ENC_AUDIO);
        assert_eq!(
            (c.audio_channels, c.audio_packet_ms, c.min_fec_packets),
            (2, 5, 2)
        );
        assert_eq!(c.fec_percent, None);
        assert!(!c.hdr && !c.yuv444 && !c.audio_high_quality);
        let hevc = MOONLIGHT_ANNOUNCE.replace("bitStreamFormat:0", "bitStreamFormat:1");
        assert_eq!(
            StreamConfig::from_announce(hevc.as_bytes()).unwrap().codec,
            VideoCodec::Hevc
        );
    }

    #[test]
    fn missing_and_bad_values_are_errors() {
        let no_width = MOONLIGHT_ANNOUNCE.replace("a=x-nv-video[0].clientViewportWd:1280 \r\n", "");
        assert_eq!(
            StreamConfig::from_announce(no_width.as_bytes()),
            Err(SdpError::Missing("x-nv-video[0].clientViewportWd"))
        );
        for (from, to) in [
            ("clientViewportWd:1280", "clientViewportWd:99999"),
            ("maxFPS:60", "maxFPS:0"),
            ("packetSize:1392", "packetSize:12"),
            ("bitStreamFormat:0", "bitStreamFormat:7"),
            ("numChannels:2", "numChannels:5"),
            ("packetDuration:5", "packetDuration:abc"),
        ] {
            let body = MOONLIGHT_ANNOUNCE.replace(from, to);
            assert!(
                StreamConfig::from_announce(body.as_bytes()).is_err(),
                "{to}"
            );
        }
        assert_eq!(StreamConfig::from_announce(b"\xff"), Err(SdpError::NotText));
    }

    #[test]
    fn describe_offers_exactly_what_the_host_has() {
        let h264_only = describe(&HostCapabilities {
            encryption_supported: SS_ENC_CONTROL_V2 | SS_ENC_AUDIO,
            encryption_requested: SS_ENC_CONTROL_V2,
            ..Default::default()
        });
        assert!(h264_only.contains("a=x-ss-general.encryptionSupported:5\n"));
        assert!(!h264_only.contains("sprop-parameter-sets=AAAAAU"));
        assert!(!h264_only.contains("AV1/90000"));
        let all = describe(&HostCapabilities {
            hevc: true,
            av1: true,
            surround: vec![SurroundOffer {
                normal: SurroundLayout {
                    channels: 6,
                    streams: 4,
                    coupled: 2,
                    mapping: vec![0, 1, 4, 5, 2, 3],
                },
                high_quality: Some(SurroundLayout {
                    channels: 6,
                    streams: 4,
                    coupled: 2,
                    mapping: vec![0, 1, 4, 5, 2, 3],
                }),
            }],
            ..Default::default()
        });
        assert!(all.contains("sprop-parameter-sets=AAAAAU"));
        assert!(all.contains("a=rtpmap:98 AV1/90000"));
        // Normal quality is sent pre-rotated (the client moves the last entry back to
        // position 3), high quality as is.
        assert!(
            all.contains(
                "a=fmtp:97 surround-params=642014235\na=fmtp:97 surround-params=642014523\n"
            ),
            "{all}"
        );
    }

    /// How moonlight-common-c reads a DESCRIBE body (`parseOpusConfigurations` in
    /// RtspConnection.c): the first `surround-params=<n>` line, its mapping entry at
    /// the end moved to position 3, then the next such line as high quality.
    fn client_reads(body: &str, channels: u8) -> (SurroundLayout, Option<SurroundLayout>) {
        let prefix = format!("a=fmtp:97 surround-params={channels}");
        let parse = |at: &str| {
            let d: Vec<u8> = at
                .bytes()
                .take(2 + channels as usize)
                .map(|b| b - b'0')
                .collect();
            SurroundLayout {
                channels,
                streams: d[0],
                coupled: d[1],
                mapping: d[2..].to_vec(),
            }
        };
        let first = body.find(&prefix).expect("a line for the channel count") + prefix.len();
        let mut normal = parse(&body[first..]);
        let n = channels as usize;
        let orig = normal.mapping.clone();
        normal.mapping[3] = orig[n - 1];
        normal.mapping[4..n].copy_from_slice(&orig[3..n - 1]);
        let hq = body[first..]
            .find(&prefix)
            .map(|i| parse(&body[first + i + prefix.len()..]));
        (normal, hq)
    }

    #[test]
    fn surround_params_are_the_known_strings_and_read_back_as_meant() {
        let caps = HostCapabilities {
            surround: [6, 8]
                .into_iter()
                .filter_map(SurroundOffer::for_channels)
                .collect(),
            ..Default::default()
        };
        let body = describe(&caps);
        assert!(
            body.ends_with(
                "a=fmtp:97 surround-params=642014235\n\
                 a=fmtp:97 surround-params=660012345\n\
                 a=fmtp:97 surround-params=85301645237\n\
                 a=fmtp:97 surround-params=88001234567\n"
            ),
            "{body}"
        );
        for channels in [6, 8] {
            let (normal, hq) = client_reads(&body, channels);
            assert_eq!(Some(normal), SurroundLayout::normal(channels));
            assert_eq!(hq, SurroundLayout::high_quality(channels));
        }
        // Each layout names every decoded channel exactly once, within its streams.
        for layout in [6, 8]
            .into_iter()
            .flat_map(|c| [SurroundLayout::normal(c), SurroundLayout::high_quality(c)])
            .flatten()
        {
            let mut m = layout.mapping.clone();
            m.sort_unstable();
            assert_eq!(m, (0..layout.channels).collect::<Vec<_>>());
            assert_eq!(layout.streams + layout.coupled, layout.channels);
        }
        assert_eq!(SurroundLayout::for_stream(2, false), None);
        assert_eq!(SurroundOffer::for_channels(2), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = StreamConfig::from_announce(&body);
        }

        #[test]
        fn mutated_announces_never_panic(pos in 0usize..2000, ch in any::<char>()) {
            let mut s: Vec<char> = MOONLIGHT_ANNOUNCE.chars().collect();
            let i = pos % s.len();
            s[i] = ch;
            let body: String = s.into_iter().collect();
            let _ = StreamConfig::from_announce(body.as_bytes());
        }
    }
}
