//! Typed nvhttp requests, parsed from query strings (Sunshine `nvhttp.cpp`; what
//! moonlight-common-c and moonlight-python send).

use super::hex;
use super::query::{Query, QueryError};

/// One phase of `/pair`, chosen by which parameter is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairRequest {
    /// Phase 1: `phrase=getservercert&salt=..&clientcert=..`.
    GetServerCert {
        /// 32 hex digits.
        salt: String,
        /// Hex of the client's PEM certificate.
        client_cert: String,
    },
    /// Phase 2: `clientchallenge=..`.
    ClientChallenge(String),
    /// Phase 3: `serverchallengeresp=..`.
    ServerChallengeResp(String),
    /// Phase 4: `clientpairingsecret=..`.
    ClientPairingSecret(String),
    /// Phase 5: `phrase=pairchallenge` (over HTTPS).
    PairChallenge,
}

impl PairRequest {
    /// Which phase the query asks for.
    pub fn from_query(q: &Query) -> Result<Self, QueryError> {
        if let Some(v) = q.get("clientchallenge") {
            return Ok(Self::ClientChallenge(v.to_owned()));
        }
        if let Some(v) = q.get("serverchallengeresp") {
            return Ok(Self::ServerChallengeResp(v.to_owned()));
        }
        if let Some(v) = q.get("clientpairingsecret") {
            return Ok(Self::ClientPairingSecret(v.to_owned()));
        }
        match q.get("phrase") {
            Some("getservercert") => Ok(Self::GetServerCert {
                salt: q.require("salt")?.to_owned(),
                client_cert: q.require("clientcert")?.to_owned(),
            }),
            Some("pairchallenge") => Ok(Self::PairChallenge),
            Some(_) => Err(QueryError::Invalid("phrase")),
            None => Err(QueryError::Missing("phrase")),
        }
    }
}

/// A client's display mode, `WIDTHxHEIGHTxFPS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayMode {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Refresh rate in frames per second.
    pub fps: u32,
}

impl DisplayMode {
    /// Largest width or height accepted (8K is 7680).
    pub const MAX_DIMENSION: u32 = 16_384;
    /// Highest refresh rate accepted.
    pub const MAX_FPS: u32 = 1_000;

    /// Parses `1920x1080x60`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut it = text.split('x');
        let width = it.next()?.parse().ok()?;
        let height = it.next()?.parse().ok()?;
        let fps = it.next()?.parse().ok()?;
        if it.next().is_some() {
            return None;
        }
        let mode = Self { width, height, fps };
        let ok = (1..=Self::MAX_DIMENSION).contains(&width)
            && (1..=Self::MAX_DIMENSION).contains(&height)
            && (1..=Self::MAX_FPS).contains(&fps);
        ok.then_some(mode)
    }
}

impl std::fmt::Display for DisplayMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.width, self.height, self.fps)
    }
}

/// `/launch` or `/resume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchRequest {
    /// The app to start (`/launch` only).
    pub app_id: Option<u32>,
    /// The client's display mode (`/launch` only; a resume takes it from RTSP).
    pub mode: Option<DisplayMode>,
    /// The AES key for this stream (`rikey`).
    pub key: [u8; 16],
    /// `rikeyid`: sent as a signed 32-bit integer, used as its 32 bits.
    pub key_id: u32,
    /// `sops`: let the host optimise game settings.
    pub sops: bool,
    /// `localAudioPlayMode`: also play audio on the host.
    pub local_audio: bool,
    /// `surroundAudioInfo`: `(channel mask << 16) | channel count`.
    pub surround_audio_info: u32,
    /// `corever`: 1 or more means the client speaks encrypted RTSP.
    pub core_version: u32,
}

impl LaunchRequest {
    /// Parses `/launch` (`resume == false`) or `/resume` parameters.
    pub fn from_query(q: &Query, resume: bool) -> Result<Self, QueryError> {
        let key_text = q.require("rikey")?;
        let key: [u8; 16] = hex::decode(key_text)
            .and_then(|k| k.try_into().ok())
            .ok_or(QueryError::Invalid("rikey"))?;
        let key_id_text = q.require("rikeyid")?.trim();
        let key_id = key_id_text
            .parse::<i32>()
            .map(|v| v as u32)
            .or_else(|_| key_id_text.parse::<u32>())
            .map_err(|_| QueryError::Invalid("rikeyid"))?;
        let (app_id, mode) = if resume {
            (
                q.parse_opt("appid")?,
                q.get("mode").and_then(DisplayMode::parse),
            )
        } else {
            let app_id: u32 = q.parse_req("appid")?;
            let mode = match q.get("mode") {
                Some(m) => Some(DisplayMode::parse(m).ok_or(QueryError::Invalid("mode"))?),
                None => None,
            };
            (Some(app_id), mode)
        };
        let flag = |name: &'static str| -> Result<bool, QueryError> {
            Ok(q.parse_opt::<i64>(name)?.unwrap_or(0) != 0)
        };
        Ok(Self {
            app_id,
            mode,
            key,
            key_id,
            sops: flag("sops")?,
            local_audio: flag("localAudioPlayMode")?,
            surround_audio_info: q.parse_opt("surroundAudioInfo")?.unwrap_or(0x3_0002),
            core_version: q.parse_opt("corever")?.unwrap_or(0),
        })
    }

    /// Audio channels the client asked for (2, 6 or 8).
    pub fn audio_channels(&self) -> u32 {
        match self.surround_audio_info & 0xFFFF {
            c @ (2 | 6 | 8) => c,
            _ => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn moonlight_python_launch_and_resume_parse() {
        let launch = Query::parse(
            "appid=1&mode=1280x720x60&additionalStates=1&sops=1&rikey=00112233445566778899aabbccddeeff&rikeyid=-653923824&localAudioPlayMode=0&surroundAudioInfo=196610&remoteControllersBitmap=0&gcmap=0&gcpersist=0&&corever=1",
        )
        .unwrap();
        let l = LaunchRequest::from_query(&launch, false).unwrap();
        assert_eq!(l.app_id, Some(1));
        assert_eq!(
            l.mode,
            Some(DisplayMode {
                width: 1280,
                height: 720,
                fps: 60
            })
        );
        assert_eq!(l.key_id, (-653_923_824i32) as u32);
        assert_eq!(l.key[15], 0xff);
        assert!(l.sops && !l.local_audio);
        assert_eq!((l.core_version, l.audio_channels()), (1, 2));

        let resume = Query::parse(
            "rikey=00112233445566778899AABBCCDDEEFF&rikeyid=7&surroundAudioInfo=196610&corever=1",
        )
        .unwrap();
        let r = LaunchRequest::from_query(&resume, true).unwrap();
        assert_eq!((r.app_id, r.mode, r.key_id), (None, None, 7));
        assert_eq!(
            LaunchRequest::from_query(&resume, false),
            Err(QueryError::Missing("appid"))
        );
    }

    #[test]
    fn bad_launch_parameters_are_errors() {
        let base = "appid=1&rikey=00112233445566778899aabbccddeeff&rikeyid=1";
        for (extra, err) in [
            ("&mode=0x720x60", QueryError::Invalid("mode")),
            ("&mode=99999x720x60", QueryError::Invalid("mode")),
            ("&mode=1x2", QueryError::Invalid("mode")),
            ("&corever=abc", QueryError::Invalid("corever")),
        ] {
            let q = Query::parse(&format!("{base}{extra}")).unwrap();
            assert_eq!(LaunchRequest::from_query(&q, false), Err(err), "{extra}");
        }
        let short_key = Query::parse("appid=1&rikey=0011&rikeyid=1").unwrap();
        assert_eq!(
            LaunchRequest::from_query(&short_key, false),
            Err(QueryError::Invalid("rikey"))
        );
        let bad_id =
            Query::parse("appid=1&rikey=00112233445566778899aabbccddeeff&rikeyid=x").unwrap();
        assert_eq!(
            LaunchRequest::from_query(&bad_id, false),
            Err(QueryError::Invalid("rikeyid"))
        );
    }

    #[test]
    fn pair_phases_are_recognised() {
        let p = |s: &str| PairRequest::from_query(&Query::parse(s).unwrap());
        assert_eq!(
            p("phrase=getservercert&salt=00&clientcert=11"),
            Ok(PairRequest::GetServerCert {
                salt: "00".into(),
                client_cert: "11".into()
            })
        );
        assert_eq!(
            p("clientchallenge=ab"),
            Ok(PairRequest::ClientChallenge("ab".into()))
        );
        assert_eq!(p("phrase=pairchallenge"), Ok(PairRequest::PairChallenge));
        assert_eq!(
            p("phrase=getservercert&salt=00"),
            Err(QueryError::Missing("clientcert"))
        );
        assert_eq!(p("phrase=bogus"), Err(QueryError::Invalid("phrase")));
        assert_eq!(p("devicename=roth"), Err(QueryError::Missing("phrase")));
    }

    proptest! {
        #[test]
        fn arbitrary_queries_never_panic(s in "[a-zA-Z0-9=&%x_-]{0,300}") {
            if let Ok(q) = Query::parse(&s) {
                let _ = LaunchRequest::from_query(&q, false);
                let _ = LaunchRequest::from_query(&q, true);
                let _ = PairRequest::from_query(&q);
            }
        }
    }
}
