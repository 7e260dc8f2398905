//! `[stream] audio_source` in the config: what a stream's sound is.

use std::fmt;
use std::str::FromStr;

use crate::capture::NodeTarget;

/// A configured audio source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioSourceSetting {
    /// The display session's own sink (`session`, the default): what the app plays.
    /// Where no display session runs (`[display] backend = "none"`, or a configured
    /// video source) there is no app to hear, so the demo tone plays instead.
    #[default]
    Session,
    /// The 440 Hz demo tone (`tone`).
    Tone,
    /// An existing PipeWire node (`pipewire:<node name or id>`): an Audio/Sink is
    /// captured from its monitor, an Audio/Source directly.
    PipeWire(NodeTarget),
}

impl FromStr for AudioSourceSetting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s {
            "session" => return Ok(Self::Session),
            "tone" => return Ok(Self::Tone),
            _ => {}
        }
        if let Some(node) = s.strip_prefix("pipewire:") {
            return node.parse().map(Self::PipeWire);
        }
        Err(format!(
            "unknown audio source {s:?}: use \"session\", \"tone\" or \"pipewire:<node name or id>\""
        ))
    }
}

impl fmt::Display for AudioSourceSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session => f.write_str("session"),
            Self::Tone => f.write_str("tone"),
            Self::PipeWire(node) => write!(f, "pipewire:{node}"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for AudioSourceSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_sources_parse_and_print_back() {
        for (text, want) in [
            ("session", AudioSourceSetting::Session),
            ("tone", AudioSourceSetting::Tone),
            (
                "pipewire:42",
                AudioSourceSetting::PipeWire(NodeTarget::Id(42)),
            ),
            (
                "pipewire:alsa_output.pci-0000_00_1f.3.analog-stereo",
                AudioSourceSetting::PipeWire(NodeTarget::Name(
                    "alsa_output.pci-0000_00_1f.3.analog-stereo".into(),
                )),
            ),
        ] {
            let got: AudioSourceSetting = text.parse().unwrap();
            assert_eq!(got, want);
            assert_eq!(got.to_string(), text);
        }
        for bad in ["", "pipewire:", "pulse:foo", "Session"] {
            assert!(bad.parse::<AudioSourceSetting>().is_err(), "{bad:?}");
        }
        assert_eq!(AudioSourceSetting::default(), AudioSourceSetting::Session);
    }
}
