//! Host settings the web console edits, typed and validated, stored in the store's
//! settings table (one key each, so adding a setting needs no migration).
//!
//! The streaming code reads them with [`HostSettings::load`] when a stream starts, so a
//! change applies to the next stream. The port base applies at the next start of the
//! service, and only when neither `--port-base` nor the config file sets one.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::Config;
use crate::store::{Store, StoreError};

const KEY_ENCODER: &str = "settings.default_encoder";
const KEY_BITRATE_CAP: &str = "settings.bitrate_cap_kbps";
const KEY_FEC: &str = "settings.fec_percent";
const KEY_PORT_BASE: &str = "settings.port_base";
/// The key `identity.rs` stores the host name under.
pub const KEY_HOSTNAME: &str = "host.hostname";

/// "Pick the best encoder that opened" (hardware first).
pub const AUTO_ENCODER: &str = "auto";
/// Bitrate cap bounds, kbit/s: 0.5 to 1000 Mbit/s.
pub const BITRATE_CAP_RANGE: (u32, u32) = (500, 1_000_000);
pub use crate::config::MAX_FEC_PERCENT;

/// The stored settings, with defaults for what was never set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSettings {
    /// `auto` or an FFmpeg encoder name that opened at start-up.
    pub default_encoder: String,
    /// The highest video bitrate a client may ask for, kbit/s.
    pub bitrate_cap_kbps: u32,
    /// Forward error correction, percent of parity added to each frame.
    pub fec_percent: u8,
    /// A port base for the next start, if one was set here.
    pub port_base: Option<u16>,
}

impl Default for HostSettings {
    fn default() -> Self {
        Self {
            default_encoder: AUTO_ENCODER.to_owned(),
            bitrate_cap_kbps: 150_000,
            fec_percent: 20,
            port_base: None,
        }
    }
}

/// A change to the settings; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsChange {
    pub default_encoder: Option<String>,
    pub bitrate_cap_kbps: Option<u32>,
    pub fec_percent: Option<u8>,
    /// `Some(None)` forgets a stored port base.
    pub port_base: Option<Option<u16>>,
}

/// A setting value that is out of range, naming the field and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct InvalidSetting {
    /// The field's name in the API.
    pub field: &'static str,
    /// What is allowed.
    pub message: String,
}

impl SettingsChange {
    /// Checks every field; `encoders` are the names that can be chosen.
    pub fn validate(&self, encoders: &[&str]) -> Result<(), InvalidSetting> {
        if let Some(enc) = &self.default_encoder
            && enc != AUTO_ENCODER
            && !encoders.contains(&enc.as_str())
        {
            return Err(InvalidSetting {
                field: "default_encoder",
                message: format!(
                    "{enc:?} is not an encoder that works on this machine; choose one of: {}",
                    std::iter::once(AUTO_ENCODER)
                        .chain(encoders.iter().copied())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        if let Some(cap) = self.bitrate_cap_kbps
            && !(BITRATE_CAP_RANGE.0..=BITRATE_CAP_RANGE.1).contains(&cap)
        {
            return Err(InvalidSetting {
                field: "bitrate_cap_kbps",
                message: format!(
                    "must be between {} and {} kbit/s",
                    BITRATE_CAP_RANGE.0, BITRATE_CAP_RANGE.1
                ),
            });
        }
        if let Some(fec) = self.fec_percent
            && fec > MAX_FEC_PERCENT
        {
            return Err(InvalidSetting {
                field: "fec_percent",
                message: format!("must be between 0 and {MAX_FEC_PERCENT} percent"),
            });
        }
        if let Some(Some(base)) = self.port_base
            && let Err(e) = crate::config::Ports::from_base(base)
        {
            return Err(InvalidSetting {
                field: "port_base",
                message: format!("{e}"),
            });
        }
        Ok(())
    }
}

impl HostSettings {
    /// Reads the stored settings, defaults for what is unset.
    /// What applies when nothing is stored: the built-in defaults, with the config
    /// file's `[stream] fec_percent`.
    pub fn defaults(config: &Config) -> Self {
        Self {
            fec_percent: config.stream.fec_percent,
            ..Self::default()
        }
    }

    pub async fn load(store: &Store, config: &Config) -> Result<Self, StoreError> {
        let d = Self::defaults(config);
        Ok(Self {
            default_encoder: store
                .get_setting(KEY_ENCODER)
                .await?
                .unwrap_or(d.default_encoder),
            bitrate_cap_kbps: store
                .get_setting(KEY_BITRATE_CAP)
                .await?
                .unwrap_or(d.bitrate_cap_kbps),
            fec_percent: store.get_setting(KEY_FEC).await?.unwrap_or(d.fec_percent),
            port_base: store.get_setting(KEY_PORT_BASE).await?.flatten(),
        })
    }

    /// Stores a validated change (validate it first with [`SettingsChange::validate`]).
    pub async fn apply(
        store: &Store,
        change: &SettingsChange,
        config: &Config,
    ) -> Result<Self, StoreError> {
        if let Some(enc) = &change.default_encoder {
            store.set_setting(KEY_ENCODER, enc).await?;
        }
        if let Some(cap) = change.bitrate_cap_kbps {
            store.set_setting(KEY_BITRATE_CAP, &cap).await?;
        }
        if let Some(fec) = change.fec_percent {
            store.set_setting(KEY_FEC, &fec).await?;
        }
        if let Some(base) = change.port_base {
            store.set_setting(KEY_PORT_BASE, &base).await?;
        }
        Self::load(store, config).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn defaults_roundtrip_and_partial_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let mut config = Config::resolve(Default::default(), &Default::default()).unwrap();
        assert_eq!(
            HostSettings::load(&store, &config).await.unwrap(),
            HostSettings::default()
        );
        // Unset, the FEC share is the config file's.
        config.stream.fec_percent = 35;
        assert_eq!(
            HostSettings::load(&store, &config)
                .await
                .unwrap()
                .fec_percent,
            35
        );
        config.stream.fec_percent = 20;
        let change = SettingsChange {
            bitrate_cap_kbps: Some(80_000),
            port_base: Some(Some(40000)),
            ..Default::default()
        };
        change.validate(&["libx264"]).unwrap();
        let s = HostSettings::apply(&store, &change, &config).await.unwrap();
        assert_eq!(s.bitrate_cap_kbps, 80_000);
        assert_eq!(s.port_base, Some(40000));
        assert_eq!(s.fec_percent, 20);
        let s = HostSettings::apply(
            &store,
            &SettingsChange {
                port_base: Some(None),
                default_encoder: Some("libx264".into()),
                ..Default::default()
            },
            &config,
        )
        .await
        .unwrap();
        assert_eq!(s.port_base, None);
        assert_eq!(s.default_encoder, "libx264");
        assert_eq!(s.bitrate_cap_kbps, 80_000);
    }

    #[test]
    fn validation_names_the_field_and_the_range() {
        let bad = [
            SettingsChange {
                default_encoder: Some("h264_nvenc".into()),
                ..Default::default()
            },
            SettingsChange {
                bitrate_cap_kbps: Some(10),
                ..Default::default()
            },
            SettingsChange {
                fec_percent: Some(81),
                ..Default::default()
            },
            SettingsChange {
                port_base: Some(Some(3)),
                ..Default::default()
            },
        ];
        let fields: Vec<_> = bad
            .iter()
            .map(|c| c.validate(&["libx264"]).unwrap_err().field)
            .collect();
        assert_eq!(
            fields,
            [
                "default_encoder",
                "bitrate_cap_kbps",
                "fec_percent",
                "port_base"
            ]
        );
        let e = bad[0].validate(&["libx264"]).unwrap_err();
        assert!(e.message.contains("auto, libx264"), "{e}");
        assert!(
            SettingsChange {
                default_encoder: Some("auto".into()),
                fec_percent: Some(0),
                ..Default::default()
            }
            .validate(&[])
            .is_ok()
        );
    }
}
