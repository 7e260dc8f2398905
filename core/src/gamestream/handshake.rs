//! The RTSP handshake as a pure function: request in, response (and what it means for
//! the stream) out. The host's RTSP server only moves bytes.
//!
//! Order for a 7.1.431-class host (moonlight-common-c `RtspConnection.c`): OPTIONS,
//! DESCRIBE, SETUP `streamid=audio/0/0`, SETUP `streamid=video/0/0`, SETUP
//! `streamid=control/13/0`, ANNOUNCE (the client's SDP), PLAY.

use super::ping::PingPayload;
use super::rtsp::{RtspRequest, RtspResponse};
use super::sdp::{SS_ENC_VIDEO, StreamConfig, VideoCodec};

/// The UDP ports a SETUP reply names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPorts {
    /// Audio.
    pub audio: u16,
    /// Video.
    pub video: u16,
    /// Control (ENet).
    pub control: u16,
}

/// Everything the handshake answers with, fixed per launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeParams {
    /// Ports of the media streams.
    pub ports: StreamPorts,
    /// `X-SS-Ping-Payload` for audio and video.
    pub ping_payload: PingPayload,
    /// `X-SS-Connect-Data`: the ENet connect data identifying this session.
    pub connect_data: u32,
    /// The DESCRIBE body.
    pub describe: String,
    /// Codecs an encoder exists for.
    pub codecs: Vec<VideoCodec>,
    /// `SS_ENC_*` bits the host insists on.
    pub encryption_requested: u32,
    /// `SS_ENC_*` bits the host supports.
    pub encryption_supported: u32,
}

/// What a request means for the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum HandshakeEvent {
    /// The client described the stream it wants.
    Announced(StreamConfig),
    /// The client is ready: start streaming.
    Play,
}

impl HandshakeParams {
    fn session_id(&self) -> String {
        format!("{:08X}", self.connect_data)
    }
}

/// Answers one request.
pub fn respond(req: &RtspRequest, p: &HandshakeParams) -> (RtspResponse, Option<HandshakeEvent>) {
    let cseq = req.cseq();
    let ok = || RtspResponse::new(200, cseq);
    match req.method.as_str() {
        "OPTIONS" => (
            ok().header("Public", "OPTIONS DESCRIBE SETUP ANNOUNCE PLAY"),
            None,
        ),
        "DESCRIBE" => (ok().body(p.describe.clone()), None),
        "SETUP" => {
            let session = format!("{};timeout = 90", p.session_id());
            let target = req.target.as_str();
            let reply = if target.contains("streamid=audio") {
                ok().header("Session", session)
                    .header("Transport", format!("server_port={}", p.ports.audio))
                    .header(
                        "X-SS-Ping-Payload",
                        String::from_utf8_lossy(&p.ping_payload).into_owned(),
                    )
            } else if target.contains("streamid=video") {
                ok().header("Session", session)
                    .header("Transport", format!("server_port={}", p.ports.video))
                    .header(
                        "X-SS-Ping-Payload",
                        String::from_utf8_lossy(&p.ping_payload).into_owned(),
                    )
            } else if target.contains("streamid=control") {
                ok().header("Session", session)
                    .header("Transport", format!("server_port={}", p.ports.control))
                    .header("X-SS-Connect-Data", p.connect_data.to_string())
            } else {
                RtspResponse::new(404, cseq)
            };
            (reply, None)
        }
        "ANNOUNCE" => match StreamConfig::from_announce(&req.body) {
            // A codec DESCRIBE did not offer.
            Ok(config) if !p.codecs.contains(&config.codec) => (RtspResponse::new(400, cseq), None),
            Ok(config) if config.encryption & p.encryption_requested != p.encryption_requested => {
                (RtspResponse::new(403, cseq), None)
            }
            Ok(config) if config.encryption & !p.encryption_supported != 0 => {
                (RtspResponse::new(400, cseq), None)
            }
            Ok(config) if config.encryption & SS_ENC_VIDEO != 0 && config.packet_size < 512 => {
                (RtspResponse::new(400, cseq), None)
            }
            Ok(config) => (ok(), Some(HandshakeEvent::Announced(config))),
            Err(_) => (RtspResponse::new(400, cseq), None),
        },
        "PLAY" => (ok(), Some(HandshakeEvent::Play)),
        _ => (RtspResponse::new(405, cseq), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gamestream::sdp::{SS_ENC_AUDIO, SS_ENC_CONTROL_V2};

    fn params() -> HandshakeParams {
        HandshakeParams {
            ports: StreamPorts {
                audio: 48000,
                video: 47998,
                control: 47999,
            },
            ping_payload: *b"0123456789ABCDEF",
            connect_data: 0x1234_5678,
            describe: "a=x-ss-general.featureFlags:3\n".into(),
            codecs: vec![VideoCodec::H264],
            encryption_requested: SS_ENC_CONTROL_V2,
            encryption_supported: SS_ENC_CONTROL_V2 | SS_ENC_AUDIO,
        }
    }

    fn req(method: &str, target: &str, body: &str) -> RtspRequest {
        RtspRequest {
            method: method.into(),
            target: target.into(),
            headers: vec![("CSeq".into(), "4".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    fn text(r: &RtspResponse) -> String {
        String::from_utf8(r.serialize()).unwrap()
    }

    #[test]
    fn full_moonlight_sequence() {
        let p = params();
        let (r, e) = respond(&req("OPTIONS", "rtsp://0.0.0.0:48010", ""), &p);
        assert_eq!((r.status, e), (200, None));
        let (r, _) = respond(&req("DESCRIBE", "rtsp://0.0.0.0:48010", ""), &p);
        assert!(text(&r).ends_with("\r\n\r\na=x-ss-general.featureFlags:3\n"));
        let (r, _) = respond(&req("SETUP", "streamid=audio/0/0", ""), &p);
        let t = text(&r);
        assert!(t.contains("Session: 12345678;timeout = 90\r\n"));
        assert!(t.contains("Transport: server_port=48000\r\n"));
        assert!(t.contains("X-SS-Ping-Payload: 0123456789ABCDEF\r\n"));
        let (r, _) = respond(&req("SETUP", "streamid=video/0/0", ""), &p);
        assert!(text(&r).contains("Transport: server_port=47998\r\n"));
        let (r, _) = respond(&req("SETUP", "streamid=control/13/0", ""), &p);
        let t = text(&r);
        assert!(t.contains("Transport: server_port=47999\r\n"));
        assert!(t.contains("X-SS-Connect-Data: 305419896\r\n"));
        let announce = crate::gamestream::sdp::tests::MOONLIGHT_ANNOUNCE;
        let (r, e) = respond(&req("ANNOUNCE", "streamid=control/13/0", announce), &p);
        assert_eq!(r.status, 200);
        assert!(matches!(e, Some(HandshakeEvent::Announced(c)) if c.width == 1280));
        let (r, e) = respond(&req("PLAY", "/", ""), &p);
        assert_eq!((r.status, e), (200, Some(HandshakeEvent::Play)));
    }

    #[test]
    fn bad_requests_get_4xx() {
        let p = params();
        assert_eq!(
            respond(&req("SETUP", "streamid=bogus", ""), &p).0.status,
            404
        );
        assert_eq!(respond(&req("TEARDOWN", "/", ""), &p).0.status, 405);
        assert_eq!(respond(&req("ANNOUNCE", "x", "garbage"), &p).0.status, 400);
        let announce = crate::gamestream::sdp::tests::MOONLIGHT_ANNOUNCE;
        let hevc = announce.replace("bitStreamFormat:0", "bitStreamFormat:1");
        assert_eq!(
            respond(&req("ANNOUNCE", "x", &hevc), &p).0.status,
            400,
            "HEVC was not offered"
        );
        let no_control = announce.replace("encryptionEnabled:5", "encryptionEnabled:4");
        assert_eq!(
            respond(&req("ANNOUNCE", "x", &no_control), &p).0.status,
            403
        );
        let video = announce.replace("encryptionEnabled:5", "encryptionEnabled:7");
        assert_eq!(
            respond(&req("ANNOUNCE", "x", &video), &p).0.status,
            400,
            "video encryption not offered"
        );
    }
}
