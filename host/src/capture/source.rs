//! What the host streams when no display session supplies a capture:
//! `[stream] source` in the config and `serve --source`.

use std::fmt;
use std::str::FromStr;

use super::{CaptureSpec, NodeTarget};

/// A configured video source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SourceSetting {
    /// The built-in test pattern at the client's mode (`test-pattern`, the default).
    #[default]
    TestPattern,
    /// An existing PipeWire Video/Source node (`pipewire:<node name or id>`): a
    /// desktop's portal node, gamescope's, or a test producer.
    PipeWire(NodeTarget),
}

impl SourceSetting {
    /// The capture a stream at `width` x `height` @ `fps` opens for this source.
    pub fn spec(&self, width: u32, height: u32, fps: u32) -> CaptureSpec {
        match self {
            Self::TestPattern => CaptureSpec::TestPattern { width, height, fps },
            Self::PipeWire(node) => CaptureSpec::PipeWire {
                node: node.clone(),
                runtime_dir: None,
            },
        }
    }
}

impl FromStr for NodeTarget {
    type Err = String;

    /// All digits is an object id; anything else is a `node.name`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("a PipeWire node needs a name or an id".into());
        }
        Ok(match s.parse::<u32>() {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Name(s.to_owned()),
        })
    }
}

impl fmt::Display for NodeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

impl FromStr for SourceSetting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "test-pattern" || s == "test" {
            return Ok(Self::TestPattern);
        }
        if let Some(node) = s.strip_prefix("pipewire:") {
            return node.parse().map(Self::PipeWire);
        }
        Err(format!(
            "unknown video source {s:?}: use \"test-pattern\" or \"pipewire:<node name or id>\""
        ))
    }
}

impl fmt::Display for SourceSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TestPattern => f.write_str("test-pattern"),
            Self::PipeWire(node) => write!(f, "pipewire:{node}"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for SourceSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_print_back() {
        for (text, want) in [
            ("test-pattern", SourceSetting::TestPattern),
            ("pipewire:42", SourceSetting::PipeWire(NodeTarget::Id(42))),
            (
                "pipewire:pf-producer",
                SourceSetting::PipeWire(NodeTarget::Name("pf-producer".into())),
            ),
            (
                "pipewire:xdg-desktop-portal-wlr",
                SourceSetting::PipeWire(NodeTarget::Name("xdg-desktop-portal-wlr".into())),
            ),
        ] {
            let got: SourceSetting = text.parse().unwrap();
            assert_eq!(got, want);
            assert_eq!(got.to_string(), text);
        }
        assert!("pipewire:".parse::<SourceSetting>().is_err());
        assert!("v4l2:/dev/video0".parse::<SourceSetting>().is_err());
    }

    #[test]
    fn specs_follow_the_clients_mode() {
        assert_eq!(
            SourceSetting::TestPattern.spec(1280, 720, 60),
            CaptureSpec::TestPattern {
                width: 1280,
                height: 720,
                fps: 60
            }
        );
        assert_eq!(
            SourceSetting::PipeWire(NodeTarget::Id(7)).spec(1, 1, 1),
            CaptureSpec::PipeWire {
                node: NodeTarget::Id(7),
                runtime_dir: None
            }
        );
    }
}
