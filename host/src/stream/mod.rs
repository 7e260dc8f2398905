//! GameStream streaming: the threads of one running stream. The RTSP handshake (see
//! `gamestream::rtsp_server`) prepares it and starts it at PLAY through the session
//! manager ([`crate::session`]); [`session`] owns its threads: plain threads for the
//! per-frame paths ([`video`], [`audio`]) and one for the ENet control stream
//! ([`control`]). The shared ports' datagrams reach them through
//! [`crate::session::router`].

pub mod audio;
pub mod control;
pub mod pipeline;
pub mod session;
pub mod stats;
pub mod video;
pub mod video_send;

use punktfunk_core::gamestream::sdp::{
    HostCapabilities, SS_ENC_AUDIO, SS_ENC_CONTROL_V2, SS_ENC_VIDEO, SurroundOffer, VideoCodec,
};

use crate::config::Config;
use crate::encode::probe::{Codec, Encoders};

pub use stats::{LiveStream, StreamStats};

/// The capabilities DESCRIBE announces.
pub fn capabilities(config: &Config, encoders: &Encoders) -> HostCapabilities {
    let has = |c: Codec| encoders.chosen.iter().any(|a| a.codec == c);
    let mut encryption_supported = SS_ENC_CONTROL_V2;
    let mut encryption_requested = SS_ENC_CONTROL_V2;
    if config.stream.audio_encryption {
        encryption_supported |= SS_ENC_AUDIO;
    }
    if config.stream.video_encryption {
        // Requested, not just supported: moonlight-common-c then encrypts even when
        // its user did not opt in, since the host asks for it.
        encryption_supported |= SS_ENC_VIDEO;
        encryption_requested |= SS_ENC_VIDEO;
    }
    HostCapabilities {
        hevc: has(Codec::Hevc),
        av1: has(Codec::Av1),
        encryption_supported,
        encryption_requested,
        // Touch and pen are offered only where they arrive somewhere.
        feature_flags: crate::input::feature_flags(&config.input),
        // RFI requests are answered with an IDR frame.
        ref_pic_invalidation: true,
        // The Opus encoder does 5.1 and 7.1 at both qualities; the session's sink is
        // made at the client's channel count.
        surround: [6, 8]
            .into_iter()
            .filter_map(SurroundOffer::for_channels)
            .collect(),
    }
}

pub(crate) fn codecs(encoders: &Encoders) -> Vec<VideoCodec> {
    encoders.chosen.iter().map(|a| a.codec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigArgs, FileConfig};
    use crate::input::Backend;
    use punktfunk_core::gamestream::sdp::{self, SS_FF_CONTROLLER_TOUCH, SS_FF_PEN_TOUCH};

    fn config(backend: Backend, video_encryption: bool) -> Config {
        let mut file = FileConfig::default();
        file.input.backend = backend;
        file.stream.video_encryption = video_encryption;
        Config::resolve(file, &ConfigArgs::default()).unwrap()
    }

    #[test]
    fn describe_offers_only_what_the_host_does() {
        let encoders = Encoders::default();
        for backend in [Backend::Auto, Backend::Session, Backend::Uinput] {
            let caps = capabilities(&config(backend, true), &encoders);
            assert_eq!(caps.feature_flags, 0, "{backend:?} injects no touch or pen");
        }
        let caps = capabilities(&config(Backend::Recording, true), &encoders);
        assert_eq!(caps.feature_flags, SS_FF_PEN_TOUCH | SS_FF_CONTROLLER_TOUCH);
        // Video encryption is requested unless switched off for a trusted LAN.
        assert_ne!(caps.encryption_requested & SS_ENC_VIDEO, 0);
        let plain = capabilities(&config(Backend::Auto, false), &encoders);
        assert_eq!(plain.encryption_requested & SS_ENC_VIDEO, 0);
        assert_eq!(plain.encryption_supported & SS_ENC_VIDEO, 0);
        // 5.1 and 7.1, each at both qualities: what the Opus encoder does.
        let text = sdp::describe(&caps);
        for params in ["642014235", "660012345", "85301645237", "88001234567"] {
            assert!(
                text.contains(&format!("surround-params={params}\n")),
                "{text}"
            );
        }
    }
}
